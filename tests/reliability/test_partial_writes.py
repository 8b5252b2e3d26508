"""A failed call leaves nothing behind: every multi-write action and timer job, with a store failure
injected at each of its writes in turn, leaves the state as before or as after, never in between.

Two kinds of failure at write n: the write never reaches the store ("before"), or it is applied and
its answer lost ("after": what a dropped connection or an OTSTimeout does). Either way the action
answers 503 ServiceUnavailableTemporary (jobs record the failure), every invariant holds (versions,
primaries, aliases, stages, values, tags), what a caller can see is the state before or shows the
action's whole effect, a retry completes the action, and the sweeps remove any row no record
points at. Runs on SQLite and on the Tablestore fake (the `kms` fixture).
"""

from __future__ import annotations

import base64
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from alikms.functions.jobs.delete_expired_keys import delete_expired_keys
from alikms.functions.jobs.delete_expired_secrets import delete_expired_secrets
from alikms.shared import lifecycle, secrets
from alikms.shared.records import Alias, Key, Secret
from alikms.shared.store import Store, StoreUnavailable
from tests import support
from tests.reliability.invariants import DAY, check_invariants, context, leftovers, visible
from tests.support import unique

ok = support.ok


class FaultyStore(Store):
    """The real store, except that its n-th write (put_new, update, delete; from 1) fails with
    StoreUnavailable: before reaching the store, or after being applied ("after")."""

    def __init__(self, inner: Store, fail_at: int, mode: str) -> None:
        self.inner, self.fail_at, self.mode = inner, fail_at, mode
        self.writes: list[tuple[str, str]] = []
        self.fired = False

    def _write(self, op: str, table: str, apply):
        self.writes.append((op, table))
        if len(self.writes) != self.fail_at:
            return apply()
        self.fired = True
        if self.mode == "after":
            apply()
        raise StoreUnavailable()

    def put_new(self, table, pk, sk, data):
        return self._write("put_new", table, lambda: self.inner.put_new(table, pk, sk, data))

    def update(self, table, pk, sk, data, expected_rev):
        return self._write("update", table, lambda: self.inner.update(table, pk, sk, data, expected_rev))

    def delete(self, table, pk, sk="", expected_rev=None):
        return self._write("delete", table, lambda: self.inner.delete(table, pk, sk, expected_rev))

    def get(self, table, pk, sk=""):
        return self.inner.get(table, pk, sk)

    def query(self, table, pk, start_after=None, limit=100):
        return self.inner.query(table, pk, start_after, limit)

    def scan(self, table, start_after=None, limit=100):
        return self.inner.scan(table, start_after, limit)

    def count(self, table, pk):
        return self.inner.count(table, pk)

    def remember_nonce(self, key, now, ttl):  # request signatures, not the action's writes
        return self.inner.remember_nonce(key, now, ttl)

    def changes(self, table):
        return self.inner.changes(table)


# --- the scenarios ---------------------------------------------------------------------------------

def new_key(kms, **params) -> str:
    return ok(kms, "CreateKey", params)["KeyMetadata"]["KeyId"]


def key_of(kms, key_id: str) -> Key:
    return Key.get(kms.store, context(kms.store).scope, key_id)


def secret_of(kms, name: str) -> Secret | None:
    return Secret.get(kms.store, context(kms.store).scope, name)


def import_params(kms, key_id: str, material: bytes) -> dict:
    params = ok(kms, "GetParametersForImport", {"KeyId": key_id, "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                                                "WrappingKeySpec": "RSA_2048"})
    public = serialization.load_der_public_key(base64.b64decode(params["PublicKey"]))
    wrapped = public.encrypt(material, padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    return {"KeyId": key_id, "ImportToken": params["ImportToken"],
            "EncryptedKeyMaterial": base64.b64encode(wrapped).decode()}


@dataclass
class Scenario:
    name: str
    setup: Callable  # kms -> state dict
    call: Callable  # (kms, state) -> status (actions) or job result (jobs)
    done: Callable  # (kms, state) -> bool: the whole effect is there
    job: bool = False
    days: float = 0  # when the call happens (timer jobs fired in the future)


def action(name: str, params: Callable) -> Callable:
    return lambda kms, s: kms.call(name, params(s))[0]


def job(name: str, days: float) -> dict:
    return {"call": lambda kms, s: kms.fire(name, time.time() + days * DAY), "days": days, "job": True}


def _put_setup(kms) -> dict:
    name = unique("s")
    ok(kms, "CreateSecret", {"SecretName": name, "VersionId": "v0", "SecretData": "zero"})
    for n in range(1, 10):  # ten versions: the next put rolls the oldest unlabelled one off
        ok(kms, "PutSecretValue", {"SecretName": name, "VersionId": f"v{n}", "SecretData": f"d{n}"})
    return {"name": name}


def _overdue_secret(kms) -> dict:
    name = unique("s")
    ok(kms, "CreateSecret", {"SecretName": name, "VersionId": "old", "SecretData": "old"})
    ok(kms, "DeleteSecret", {"SecretName": name, "RecoveryWindowInDays": "7"})
    secret = secret_of(kms, name)
    secret.planned_delete_time = int(time.time()) - 60
    secret.save(kms.store)
    return {"name": name}


def _external(kms, imported: bool) -> dict:
    key_id = new_key(kms, Origin="EXTERNAL")
    material = os.urandom(32)
    if imported:
        ok(kms, "ImportKeyMaterial", import_params(kms, key_id, material))
    return {"key": key_id, "import": import_params(kms, key_id, material),
            "expire": str(int(time.time()) + 30 * DAY)}


def _overdue_key(kms) -> dict:
    key_id = new_key(kms, Tags=json.dumps([{"TagKey": "k", "TagValue": "v"}]))
    ok(kms, "CreateKeyVersion", {"KeyId": key_id})
    for n in range(2):
        ok(kms, "CreateAlias", {"AliasName": f"alias/{unique('d')}{n}", "KeyId": key_id})
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key_id, "PendingWindowInDays": "7"})
    return {"key": key_id}


def _due_rotation(kms) -> dict:
    key_id = new_key(kms, EnableAutomaticRotation="true", RotationInterval=f"{7 * DAY}s")
    return {"key": key_id, "count": key_of(kms, key_id).version_count}


SCENARIOS = [
    Scenario("CreateKey", lambda kms: {"count": len(list(Key.all(kms.store, context(kms.store).scope)))},
             action("CreateKey", lambda s: {"Tags": json.dumps([{"TagKey": "t", "TagValue": "v"}])}),
             lambda kms, s: len(list(Key.all(kms.store, context(kms.store).scope))) > s["count"]),
    Scenario("CreateKeyVersion", lambda kms: {"key": (k := new_key(kms)), "count": key_of(kms, k).version_count},
             action("CreateKeyVersion", lambda s: {"KeyId": s["key"]}),
             lambda kms, s: key_of(kms, s["key"]).version_count > s["count"]),
    Scenario("ImportKeyMaterial", lambda kms: _external(kms, imported=False),
             action("ImportKeyMaterial", lambda s: {**s["import"], "KeyMaterialExpireUnix": s["expire"]}),
             lambda kms, s: key_of(kms, s["key"]).state == lifecycle.ENABLED),
    Scenario("ImportKeyMaterial again", lambda kms: _external(kms, imported=True),
             action("ImportKeyMaterial", lambda s: {**s["import"], "KeyMaterialExpireUnix": s["expire"]}),
             lambda kms, s: key_of(kms, s["key"]).material_expire_time == int(s["expire"])),
    Scenario("DeleteKeyMaterial", lambda kms: _external(kms, imported=True),
             action("DeleteKeyMaterial", lambda s: {"KeyId": s["key"]}),
             lambda kms, s: key_of(kms, s["key"]).state == lifecycle.PENDING_IMPORT),
    Scenario("CreateAlias", lambda kms: {"key": new_key(kms), "alias": f"alias/{unique('a')}"},
             action("CreateAlias", lambda s: {"AliasName": s["alias"], "KeyId": s["key"]}),
             lambda kms, s: Alias.get(kms.store, context(kms.store).scope, s["alias"]) is not None),
    Scenario("UpdateAlias",
             lambda kms: {"alias": (a := f"alias/{unique('a')}"), "to": new_key(kms),
                          "_": ok(kms, "CreateAlias", {"AliasName": a, "KeyId": new_key(kms)})},
             action("UpdateAlias", lambda s: {"AliasName": s["alias"], "KeyId": s["to"]}),
             lambda kms, s: Alias.get(kms.store, context(kms.store).scope, s["alias"]).key_id == s["to"]),
    Scenario("DeleteAlias",
             lambda kms: {"alias": (a := f"alias/{unique('a')}"),
                          "_": ok(kms, "CreateAlias", {"AliasName": a, "KeyId": new_key(kms)})},
             action("DeleteAlias", lambda s: {"AliasName": s["alias"]}),
             lambda kms, s: Alias.get(kms.store, context(kms.store).scope, s["alias"]) is None),
    Scenario("TagResource key", lambda kms: {"key": new_key(kms)},
             action("TagResource", lambda s: {"KeyId": s["key"], "Tags": json.dumps([{"TagKey": "a",
                                                                                      "TagValue": "b"}])}),
             lambda kms, s: key_of(kms, s["key"]).tags == {"a": "b"}),
    Scenario("UntagResource secret",
             lambda kms: {"name": (n := unique("s")), "_": ok(kms, "CreateSecret", {
                 "SecretName": n, "VersionId": "v", "SecretData": "x",
                 "Tags": json.dumps([{"TagKey": "a", "TagValue": "b"}])})},
             action("UntagResource", lambda s: {"SecretName": s["name"], "TagKeys": '["a"]'}),
             lambda kms, s: secret_of(kms, s["name"]).tags == {}),
    Scenario("UpdateRotationPolicy", lambda kms: {"key": new_key(kms)},
             action("UpdateRotationPolicy", lambda s: {"KeyId": s["key"], "EnableAutomaticRotation": "true",
                                                       "RotationInterval": f"{7 * DAY}s"}),
             lambda kms, s: key_of(kms, s["key"]).automatic_rotation),
    Scenario("CreateSecret with the service key", lambda kms: {"name": unique("s")},
             action("CreateSecret", lambda s: {"SecretName": s["name"], "VersionId": "v1", "SecretData": "one"}),
             lambda kms, s: secret_of(kms, s["name"]) is not None),
    Scenario("CreateSecret over an overdue one", _overdue_secret,
             action("CreateSecret", lambda s: {"SecretName": s["name"], "VersionId": "new", "SecretData": "new"}),
             lambda kms, s: [v["id"] for v in secret_of(kms, s["name"]).versions] == ["new"]),
    Scenario("PutSecretValue with a roll-off", _put_setup,
             action("PutSecretValue", lambda s: {"SecretName": s["name"], "VersionId": "v10", "SecretData": "d10"}),
             lambda kms, s: secret_of(kms, s["name"]).stages[secrets.CURRENT] == "v10"),
    Scenario("UpdateSecretVersionStage", _put_setup,
             action("UpdateSecretVersionStage", lambda s: {"SecretName": s["name"], "VersionStage": "ACSCurrent",
                                                           "RemoveFromVersion": "v9", "MoveToVersion": "v3"}),
             lambda kms, s: secret_of(kms, s["name"]).stages[secrets.CURRENT] == "v3"),
    Scenario("DeleteSecret forced", _put_setup,
             action("DeleteSecret", lambda s: {"SecretName": s["name"], "ForceDeleteWithoutRecovery": "true"}),
             lambda kms, s: secret_of(kms, s["name"]) is None),
    Scenario("RestoreSecret",
             lambda kms: {"name": (n := _put_setup(kms)["name"]),
                          "_": ok(kms, "DeleteSecret", {"SecretName": n, "RecoveryWindowInDays": "7"})},
             action("RestoreSecret", lambda s: {"SecretName": s["name"]}),
             lambda kms, s: secret_of(kms, s["name"]).planned_delete_time is None),
    Scenario("RotateKeys job", _due_rotation, done=lambda kms, s: key_of(kms, s["key"]).version_count > s["count"],
             **job("RotateKeys", 8)),
    Scenario("DeleteExpiredKeys job", _overdue_key, done=lambda kms, s: key_of(kms, s["key"]) is None,
             **job("DeleteExpiredKeys", 8)),
    Scenario("DeleteExpiredSecrets job",
             lambda kms: {"name": (n := _put_setup(kms)["name"]),
                          "_": ok(kms, "DeleteSecret", {"SecretName": n, "RecoveryWindowInDays": "7"})},
             done=lambda kms, s: secret_of(kms, s["name"]) is None, **job("DeleteExpiredSecrets", 8)),
    Scenario("ExpireKeyMaterial job",
             lambda kms: {**(s := _external(kms, imported=False)),
                          "_": ok(kms, "ImportKeyMaterial", {**s["import"], "KeyMaterialExpireUnix": s["expire"]})},
             done=lambda kms, s: key_of(kms, s["key"]).imported_material is None, **job("ExpireKeyMaterial", 31)),
]


def _failed(result) -> bool:
    return bool(result["Failed"]) if isinstance(result, dict) else result != 200


@pytest.mark.parametrize("mode", ["before", "after"])
@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_a_store_failure_at_any_write_leaves_before_or_after(kms, monkeypatch, scenario, mode):
    writes_seen = 0
    for fail_at in range(1, 40):
        state = scenario.setup(kms)
        before = visible(kms, scenario.days)
        faulty = FaultyStore(kms.store, fail_at, mode)
        monkeypatch.setattr("alikms.shared.runtime.get_store", lambda faulty=faulty: faulty)
        try:
            result = scenario.call(kms, state)
        except StoreUnavailable:  # a job whose own bookkeeping read or write failed: the run fails
            assert scenario.job
            result = None
        finally:
            monkeypatch.setattr("alikms.shared.runtime.get_store", lambda: kms.store)
        if not faulty.fired:  # the call made fewer writes: every write has had its turn
            assert not _failed(result), result
            assert scenario.done(kms, state)
            break
        writes_seen = fail_at
        if not scenario.job:
            assert result == 503, (scenario.name, fail_at, result)
        check_invariants(kms, scenario.days)
        after_failure = visible(kms, scenario.days)
        assert after_failure == before or scenario.done(kms, state), (scenario.name, mode, fail_at, faulty.writes)
        # The caller (or the next timer run) tries again: the action completes.
        scenario.call(kms, state)
        assert scenario.done(kms, state), (scenario.name, mode, fail_at)
        check_invariants(kms, scenario.days)
    else:
        pytest.fail("the call never ran out of writes")
    assert writes_seen >= 1
    # What a failure left behind that no record points at, the sweeps remove once it is old enough.
    later = time.time() + 2 * 3600
    kms.fire("DeleteExpiredKeys", later)
    kms.fire("DeleteExpiredSecrets", later)
    rest = leftovers(kms)
    assert rest["versions"] == [] and rest["values"] == [], rest
    check_invariants(kms)


def test_import_material_leaves_no_phantom_version(kms, monkeypatch):
    """Issue 16.2's case: the second write of ImportKeyMaterial failing used to leave the key
    PendingImport with a version and no primary. The import is now one write."""
    state = _external(kms, imported=False)
    faulty = FaultyStore(kms.store, 1, "before")
    monkeypatch.setattr("alikms.shared.runtime.get_store", lambda: faulty)
    status, body = kms.call("ImportKeyMaterial", {**state["import"], "KeyMaterialExpireUnix": state["expire"]})
    monkeypatch.setattr("alikms.shared.runtime.get_store", lambda: kms.store)
    assert (status, body["Code"]) == (503, "ServiceUnavailableTemporary")
    assert faulty.writes == [("update", "keys")]
    listed = ok(kms, "ListKeyVersions", {"KeyId": state["key"]})
    assert listed["TotalCount"] == 0
    assert ok(kms, "DescribeKey", {"KeyId": state["key"]})["KeyMetadata"]["KeyState"] == "PendingImport"


def test_two_sweeps_at_once_remove_each_leftover_once(kms, monkeypatch, new_store):
    """Leftovers of failed calls (a CreateKey's version, PutSecretValue's values), swept by two
    timer runs at once on two store objects: each row goes exactly once, nothing else does."""
    name = _put_setup(kms)["name"]
    for n in range(3):
        for action, params in [("CreateKey", {}),
                               ("PutSecretValue", {"SecretName": name, "VersionId": f"x{n}", "SecretData": "x"})]:
            faulty = FaultyStore(kms.store, 2, "before")  # the second write: the one that publishes
            monkeypatch.setattr("alikms.shared.runtime.get_store", lambda faulty=faulty: faulty)
            assert kms.call(action, params)[0] == 503
    monkeypatch.setattr("alikms.shared.runtime.get_store", lambda: kms.store)
    left = leftovers(kms)
    assert (len(left["versions"]), len(left["values"])) == (3, 3)
    before = visible(kms)
    stores = [kms.store, new_store()]
    later = 2 * 3600 / DAY  # past the age at which an unreferenced row is surely nobody's
    runs = support.run_together([lambda s=s, job=job: job(context(s, later), {})
                                 for s in stores for job in (delete_expired_keys, delete_expired_secrets)])
    for result in runs:
        assert not isinstance(result, BaseException), result
        assert result["Failed"] == []
    assert sum(r["Orphans"] for r in runs) == 6  # each leftover removed by exactly one run
    assert leftovers(kms) == {"versions": [], "adoptable": [], "values": []}
    assert visible(kms) == before
    check_invariants(kms)
