"""Instance concurrency: one instance (one process, one configuration, one store client, one set of
caches) answering many events at once on threads, as Function Compute does with InstanceConcurrency
above 1 (the templates set alikms.deploy.templates.INSTANCE_CONCURRENCY). Events go through the
deployed entry points (index.py) against each store: SQLite, and the Tablestore fake over loopback
HTTP through the real SDK client, whose connection pool the threads share.

The invariants are those of the multi-instance concurrency tests (tests/secrets/test_secret_concurrency.py,
tests/keys/test_rotation.py): nothing lost or doubled (every key created is listed once; one of many
racing creates of the same name wins and the others get the documented refusal), replay protection
holds (one signed request sent by every thread at once is answered once), and no answer leaks into
another thread's (every plaintext decrypts to its own thread's value, with the caches of unwrapped
material churning under the threads)."""

from __future__ import annotations

import base64
import importlib
import json
import sys
import threading

import pytest

from alikms.deploy import entrypoints, templates
from alikms.shared import versions
from alikms.shared.store.tablestore import create_tables
from alikms.testing.fake_tablestore import serve
from tests import support
from tests.conftest import reset_caches

THREADS = max(templates.INSTANCE_CONCURRENCY, 12)


@pytest.fixture(params=["sqlite", "tablestore"])
def instance(request, tmp_path, monkeypatch):
    """The environment of one deployed instance on each store; the entry points module."""
    for name in ("KMS_STORE", "KMS_DATA_DIR", "KMS_ROOT_KEY", "OTS_ENDPOINT", "OTS_INSTANCE", "OTS_ACCESS_KEY_ID",
                 "OTS_ACCESS_KEY_SECRET", "OTS_SECURITY_TOKEN", "ALIBABA_CLOUD_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KMS_ACCESS_KEY_ID", support.TEST_AK)
    monkeypatch.setenv("KMS_ACCESS_KEY_SECRET", support.TEST_SECRET)
    monkeypatch.setenv("KMS_ACCOUNT_ID", support.TEST_ACCOUNT)
    monkeypatch.setenv("KMS_AUTO_OPEN", "true")
    monkeypatch.setenv("KMS_ROOT_KEY", "r1:" + base64.b64encode(b"\x05" * 32).decode())
    server = None
    if request.param == "sqlite":
        monkeypatch.setenv("KMS_STORE", "sqlite")
        monkeypatch.setenv("KMS_DATA_DIR", str(tmp_path / "data"))
    else:
        server, url = serve()
        import tablestore

        create_tables(tablestore.OTSClient(url, "test-akid", "test-secret", "kmsfake"))
        monkeypatch.setenv("KMS_STORE", "tablestore")
        monkeypatch.setenv("OTS_ENDPOINT", url)
        monkeypatch.setenv("OTS_INSTANCE", "kmsfake")
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "test-akid")
        monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "test-secret")
    # Many short GIL slices, so threads interleave inside the handlers rather than between them.
    old_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    reset_caches()
    try:
        yield importlib.import_module(entrypoints.MODULE)
    finally:
        sys.setswitchinterval(old_interval)
        reset_caches()
        if server is not None:
            server.shutdown()
            server.server_close()


def invoke(index, action: str, params: dict, **sign) -> tuple[int, dict]:
    query = support.sign_v1_params(action, {k: str(v) for k, v in params.items()}, support.TEST_AK,
                                   support.TEST_SECRET, **sign)
    result = getattr(index, entrypoints.method(action))(support.gateway_event(action, query), None)
    return result["statusCode"], json.loads(result["body"])


def together(work, count: int = THREADS) -> list:
    """Run work(i) on `count` threads released at once; their results in order (exceptions re-raised)."""
    start = threading.Barrier(count)
    results: list = [None] * count

    def body(i: int) -> None:
        start.wait(10)
        try:
            results[i] = work(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the test below
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    for r in results:
        if isinstance(r, BaseException):
            raise r
    return results


def test_creates_on_many_threads_lose_and_double_nothing(instance):
    def create(i: int) -> list[str]:
        made = []
        for n in range(3):
            status, body = invoke(instance, "CreateKey", {"Description": f"t{i}-{n}"})
            assert status == 200, body
            made.append(body["KeyMetadata"]["KeyId"])
        return made

    created = [k for keys in together(create) for k in keys]
    assert len(set(created)) == len(created) == 3 * THREADS
    listed, page = [], 1
    while True:
        status, body = invoke(instance, "ListKeys", {"PageSize": 100, "PageNumber": page})
        assert status == 200, body
        listed += [k["KeyId"] for k in body["Keys"]["Key"]]
        if len(listed) >= body["TotalCount"]:
            break
        page += 1
    assert sorted(listed) == sorted(created)

    # One name, every thread at once: one wins, the rest are told it exists; one alias likewise.
    outcomes = together(lambda i: invoke(instance, "CreateSecret", {"SecretName": "race", "VersionId": f"v{i}",
                                                                    "SecretData": f"value {i}"}))
    winners = [i for i, (status, _body) in enumerate(outcomes) if status == 200]
    assert len(winners) == 1
    assert all(body["Code"] == "Rejected.ResourceExist" for status, body in outcomes if status != 200)
    status, body = invoke(instance, "GetSecretValue", {"SecretName": "race"})
    assert (status, body["SecretData"], body["VersionId"]) == (200, f"value {winners[0]}", f"v{winners[0]}")
    outcomes = together(lambda i: invoke(instance, "CreateAlias", {"AliasName": "alias/race", "KeyId": created[i]}))
    winners = [i for i, (status, _body) in enumerate(outcomes) if status == 200]
    assert len(winners) == 1
    assert all(body["Code"] == "AliasAlreadyExists" for status, body in outcomes if status != 200)
    status, body = invoke(instance, "DescribeKey", {"KeyId": "alias/race"})
    assert body["KeyMetadata"]["KeyId"] == created[winners[0]]


def test_replay_protection_holds_across_threads(instance):
    status, body = invoke(instance, "CreateKey", {})
    assert status == 200, body
    key = body["KeyMetadata"]["KeyId"]
    nonce, ts = "replayed-nonce-0001", support.timestamp()
    outcomes = together(lambda i: invoke(instance, "DescribeKey", {"KeyId": key}, nonce=nonce, ts=ts))
    assert sorted(status for status, _body in outcomes) == [200] + [400] * (THREADS - 1)
    assert all(body["Code"] == "SignatureNonceUsed" for status, body in outcomes if status != 200)


def test_each_thread_gets_its_own_answers_while_caches_churn(instance, monkeypatch):
    # A cache of two unwrapped versions for THREADS keys: entries are evicted while other threads
    # are reading them.
    monkeypatch.setattr(versions, "_CACHE_SIZE", 2)
    keys = []
    for _ in range(THREADS):
        status, body = invoke(instance, "CreateKey", {})
        assert status == 200, body
        keys.append(body["KeyMetadata"]["KeyId"])

    def round_trips(i: int) -> int:
        for n in range(8):
            data = f"thread {i} round {n}".encode()
            status, sealed = invoke(instance, "Encrypt", {"KeyId": keys[(i + n) % THREADS],
                                                          "Plaintext": base64.b64encode(data).decode()})
            assert status == 200, sealed
            status, opened = invoke(instance, "Decrypt", {"CiphertextBlob": sealed["CiphertextBlob"]})
            assert status == 200, opened
            assert base64.b64decode(opened["Plaintext"]) == data
            assert opened["KeyId"] == keys[(i + n) % THREADS]
        return i

    assert together(round_trips) == list(range(THREADS))
