"""Writers racing on one secret, on both stores. Each thread acts as its own function instance: its
own store object on the same data (a new SqliteStore on the same file, or a new TablestoreStore on a
new client of the same fake backend) and its own Context, calling the action's `run` directly. A
barrier inside the store makes every racer finish its reads before anyone writes the secret row, so
the conditional write really has to settle the race. Afterwards: no version lost (beyond the
documented roll-off of 10), every label on exactly one version, every kept value readable."""

from __future__ import annotations

import functools
import importlib
import threading
import time
import uuid

import pytest

from alikms.shared import registry
from alikms.shared.errors import KmsError
from tests import support
from tests.secrets.helpers import create, put, stages, value, value_rows, versions


@pytest.fixture
def instance(kms, new_store):
    """Factory: one more store object on the data `kms` uses, for a thread acting as another
    function instance (run its actions with `run_action`)."""
    from alikms.shared.config import get_config

    get_config()  # first use settles the data directory (see test_first_use_of_a_fresh_data_dir_by_racers)
    return new_store


class Meeting:
    """A store wrapper: the first write to the `secrets` table waits at `barrier` (once per racer)."""

    def __init__(self, store, barrier: threading.Barrier | None) -> None:
        self._store, self._barrier = store, barrier

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name not in ("update", "put_new") or self._barrier is None:
            return attr

        def wrapped(table, *args, **kwargs):
            if table == "secrets" and self._barrier is not None:
                barrier, self._barrier = self._barrier, None
                try:
                    barrier.wait(5)
                except threading.BrokenBarrierError:
                    pass  # a partner failed before writing: go on alone
            return attr(table, *args, **kwargs)

        return wrapped


def run_action(store, action: str, params: dict, meet: threading.Barrier | None = None) -> dict:
    from alikms.shared.config import get_config
    from alikms.shared.context import Context

    spec = registry.action(action)
    handler = importlib.import_module(spec.module).handler
    ctx = Context(str(uuid.uuid4()), support.TEST_ACCOUNT, "cn-hangzhou", support.TEST_AK, "127.0.0.1",
                  time.time(), Meeting(store, meet), get_config(), spec)
    return handler.run(handler.request_model.model_validate(params), ctx).to_wire()




def assert_consistent(kms, name: str) -> dict[str, list[str]]:
    """Every label on exactly one version (`stages` checks it), ACSCurrent present, values readable."""
    have = versions(kms, name)
    labels = stages(kms, name)
    assert "ACSCurrent" in labels and set(labels.values()) <= set(have)
    assert set(value_rows(kms.store, name)) == set(have)
    return have


def test_two_puts_with_different_ids_keep_both_versions(kms, instance):
    name, _ = create(kms, data="d0")
    meet = threading.Barrier(2)
    results = support.run_together([lambda vid=vid: run_action(instance(), "PutSecretValue",
                                               {"SecretName": name, "VersionId": vid,
                                                "SecretData": "data-" + vid}, meet)
                    for vid in ("va", "vb")])
    assert all(isinstance(r, dict) for r in results), results
    have = assert_consistent(kms, name)
    assert set(have) == {"v0", "va", "vb"}
    labels = stages(kms, name)
    assert {labels["ACSCurrent"], labels["ACSPrevious"]} == {"va", "vb"}  # the loser became previous
    assert have["v0"] == []
    for vid in ("va", "vb"):
        assert value(kms, name, VersionId=vid)["SecretData"] == "data-" + vid


def test_put_against_a_custom_label_move_keeps_both_effects(kms, instance):
    name, _ = create(kms, data="d0")
    put(kms, name, "v1", "d1")
    meet = threading.Barrier(2)
    results = support.run_together([
        lambda: run_action(instance(), "PutSecretValue", {"SecretName": name, "VersionId": "v2", "SecretData": "d2"},
                           meet),
        lambda: run_action(instance(), "UpdateSecretVersionStage",
                           {"SecretName": name, "VersionStage": "Blue", "MoveToVersion": "v0"}, meet),
    ])
    assert all(isinstance(r, dict) for r in results), results
    assert_consistent(kms, name)
    assert stages(kms, name) == {"ACSCurrent": "v2", "ACSPrevious": "v1", "Blue": "v0"}
    assert value(kms, name)["SecretData"] == "d2"


def test_put_against_an_acs_current_move_leaves_one_current(kms, instance):
    name, _ = create(kms, data="d0")
    put(kms, name, "v1", "d1")
    meet = threading.Barrier(2)
    results = support.run_together([
        lambda: run_action(instance(), "PutSecretValue", {"SecretName": name, "VersionId": "v2", "SecretData": "d2"},
                           meet),
        lambda: run_action(instance(), "UpdateSecretVersionStage",
                           {"SecretName": name, "VersionStage": "ACSCurrent", "MoveToVersion": "v0"}, meet),
    ])
    assert all(isinstance(r, dict) for r in results), results
    have = assert_consistent(kms, name)
    assert set(have) == {"v0", "v1", "v2"}
    labels = stages(kms, name)
    # Either order is a valid history: put last -> (v2 current, v0 previous); move last -> (v0, v2).
    assert (labels["ACSCurrent"], labels["ACSPrevious"]) in {("v2", "v0"), ("v0", "v2")}
    assert value(kms, name)["VersionId"] == labels["ACSCurrent"]


def test_ten_concurrent_puts_lose_nothing_beyond_the_roll_off(kms, instance):
    name, _ = create(kms, data="d0")
    ids = [f"p{i}" for i in range(10)]
    meet = threading.Barrier(len(ids))
    results = support.run_together([lambda vid=vid: run_action(instance(), "PutSecretValue",
                                               {"SecretName": name, "VersionId": vid,
                                                "SecretData": "data-" + vid}, meet)
                    for vid in ids])
    assert all(isinstance(r, dict) for r in results), results
    have = assert_consistent(kms, name)
    # Eleven versions were written; the one rolled off is the oldest unlabelled one, the initial v0.
    assert set(have) == set(ids)
    labels = stages(kms, name)
    assert set(labels) == {"ACSCurrent", "ACSPrevious"} and labels["ACSCurrent"] != labels["ACSPrevious"]
    for vid in ids:
        assert value(kms, name, VersionId=vid)["SecretData"] == "data-" + vid


def test_same_version_id_raced_with_same_and_other_data(kms, instance):
    """Two identical puts both succeed with one version; a put with other data under that id loses."""
    name, _ = create(kms, data="d0")
    meet = threading.Barrier(2)
    same = support.run_together([lambda: run_action(instance(), "PutSecretValue",
                                    {"SecretName": name, "VersionId": "v1", "SecretData": "same"}, meet)
                 for _ in range(2)])
    assert all(isinstance(r, dict) for r in same), same
    assert set(assert_consistent(kms, name)) == {"v0", "v1"}
    results = support.run_together([lambda d=d: run_action(instance(), "PutSecretValue",
                                           {"SecretName": name, "VersionId": "v2", "SecretData": d})
                    for d in ("left", "right")])
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, KmsError)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert losses[0].code == "Rejected.ResourceExist"
    winner = "left" if results[0] is wins[0] else "right"
    assert value(kms, name)["SecretData"] == winner and set(assert_consistent(kms, name)) == {"v0", "v1", "v2"}


def test_two_creates_of_one_name(kms, instance):
    name = "raced-" + uuid.uuid4().hex[:8]
    meet = threading.Barrier(2)
    results = support.run_together([lambda vid=vid: run_action(instance(), "CreateSecret",
                                               {"SecretName": name, "VersionId": vid,
                                                "SecretData": "data-" + vid}, meet)
                    for vid in ("ca", "cb")])
    wins = [r for r in results if isinstance(r, dict)]
    losses = [r for r in results if isinstance(r, KmsError)]
    assert len(wins) == 1 and len(losses) == 1, results
    assert losses[0].code == "Rejected.ResourceExist"
    vid = wins[0]["VersionId"]
    assert versions(kms, name) == {vid: ["ACSCurrent"]} and set(value_rows(kms.store, name)) == {vid}
    assert value(kms, name)["SecretData"] == "data-" + vid


class PauseBeforeValueWrite:
    """A store wrapper: the first new row in `secret_versions` waits until `go` is set."""

    def __init__(self, store, reached: threading.Event, go: threading.Event) -> None:
        self._store, self._reached, self._go = store, reached, go

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name != "put_new":
            return attr

        def wrapped(table, *args, **kwargs):
            if table == "secret_versions" and not self._reached.is_set():
                self._reached.set()
                assert self._go.wait(10)
            return attr(table, *args, **kwargs)

        return wrapped


def test_put_racing_a_force_delete_leaves_nothing_behind(kms, instance):
    """PutSecretValue has read the live secret; before it stores its value, the secret is deleted for
    good. The put must fail without leaving a value row under the name: a new secret of that name
    may use the same VersionId for any data."""
    name, _ = create(kms, data="d0")
    reached, go = threading.Event(), threading.Event()
    store = PauseBeforeValueWrite(instance(), reached, go)
    outcome: list = []
    worker = threading.Thread(target=lambda: outcome.append(support.run_together([lambda: run_action(
        store, "PutSecretValue", {"SecretName": name, "VersionId": "v1", "SecretData": "late"})])[0]))
    worker.start()
    assert reached.wait(10)
    run_action(instance(), "DeleteSecret", {"SecretName": name, "ForceDeleteWithoutRecovery": "true"})
    go.set()
    worker.join(20)
    assert not worker.is_alive()
    assert isinstance(outcome[0], KmsError) and outcome[0].code == "Forbidden.ResourceNotFound", outcome
    assert value_rows(kms.store, name) == {}
    create(kms, name, data="new owner", vid="v1")
    assert value(kms, name)["SecretData"] == "new owner"


def test_two_timer_runs_at_once_delete_each_secret_once(kms, instance):
    from alikms.shared.config import get_config
    from alikms.shared.context import Context

    names = [create(kms)[0] for _ in range(3)]
    for name in names:
        put(kms, name, "v1", "d1")
        run_action(kms.store, "DeleteSecret", {"SecretName": name, "RecoveryWindowInDays": "7"})
    live, _ = create(kms)
    job_spec = registry.job_for_module("alikms.functions.jobs.delete_expired_secrets")
    job = importlib.import_module(job_spec.module).handler
    when = time.time() + 8 * 86400
    results = support.run_together([lambda: job.run(Context("job", "", "cn-hangzhou", "", "", when, instance(),
                                                            get_config()), {})
                    for _ in range(2)])
    assert all(isinstance(r, dict) and r["Failed"] == [] for r in results), results
    deleted = results[0]["Deleted"] + results[1]["Deleted"]
    assert sorted(deleted) == sorted(names)  # each secret deleted by exactly one run
    for name in names:
        assert kms.store.get("secrets", f"{support.TEST_ACCOUNT}/cn-hangzhou", name) is None
        assert value_rows(kms.store, name) == {}
    assert value(kms, live)["VersionId"] == "v0"


def test_first_use_of_a_fresh_data_dir_by_racers(tmp_path):
    """Instances starting together on a new data directory all get the one root key (the first
    writer's), never an empty or half-written file."""
    from alikms.shared import config

    for round_ in range(20):
        data_dir = tmp_path / f"d{round_}"
        data_dir.mkdir()
        read = functools.partial(config.read_root_key_file, config.root_key_file(data_dir))
        results = support.run_together([read] * 8)
        assert not [r for r in results if isinstance(r, BaseException)], results
        assert len({tuple(sorted(r.items())) for r in results}) == 1
