"""The service on Tablestore over a faulty network (the proxy) and a faulty server (the fake's
injected errors): a lost request or a lost answer at any store call of an action is retried and
the action succeeds exactly once; a store that cannot be reached answers 503
ServiceUnavailableTemporary after a bounded number of attempts, with nothing half done."""

from __future__ import annotations

import json
import logging
import os

import pytest

from alikms.shared.store.tablestore import TablestoreStore
from alikms.testing.fake_tablestore import http_client
from tests import support
from tests.conftest import Kms
from tests.reliability.invariants import check_invariants, visible

ok = support.ok


@pytest.fixture
def kms(local_env, invoke, monkeypatch, ots_proxy, ots_backend):
    """The service in process, its store talking HTTP through the proxy, with short timeouts."""
    store = TablestoreStore(http_client(ots_proxy.url, ots_backend), deadline=1.0, connect_timeout=0.3,
                            read_timeout=0.3)
    monkeypatch.setattr("alikms.shared.runtime.get_store", lambda: store)
    yield Kms(store, invoke)
    store.close()


def _name(prefix: str) -> str:
    return f"{prefix}-{os.urandom(5).hex()}"


def _key(kms) -> str:
    return ok(kms, "CreateKey")["KeyMetadata"]["KeyId"]


def _secret(kms, versions: int = 1) -> str:
    name = _name("s")
    ok(kms, "CreateSecret", {"SecretName": name, "VersionId": "v0", "SecretData": "zero"})
    for n in range(1, versions):
        ok(kms, "PutSecretValue", {"SecretName": name, "VersionId": f"v{n}", "SecretData": f"d{n}"})
    return name


def _listed(kms, name: str) -> list[str]:
    body = ok(kms, "ListSecretVersionIds", {"SecretName": name, "IncludeDeprecated": "true"})
    return [v["VersionId"] for v in body["VersionIds"]["VersionId"]]


def _aliases(kms) -> dict[str, str]:
    return {a["AliasName"]: a["KeyId"] for a in ok(kms, "ListAliases", {"PageSize": "100"})["Aliases"]["Alias"]}


def _count_keys(kms) -> int:
    return ok(kms, "ListKeys", {"PageSize": "100"})["TotalCount"]


def _versions(kms, key: str) -> int:
    return ok(kms, "ListKeyVersions", {"KeyId": key})["TotalCount"]


# Each setup prepares one call on fresh names: (params, effect), where effect() holds once the
# action has taken effect exactly once.

def create_key(kms):
    count = _count_keys(kms)
    return {}, lambda: _count_keys(kms) == count + 1


def create_key_version(kms):
    key = _key(kms)
    return {"KeyId": key}, lambda: _versions(kms, key) == 2


def create_alias(kms):
    key, alias = _key(kms), f"alias/{_name('a')}"
    return {"AliasName": alias, "KeyId": key}, lambda: _aliases(kms).get(alias) == key


def delete_alias(kms):
    alias = f"alias/{_name('a')}"
    ok(kms, "CreateAlias", {"AliasName": alias, "KeyId": _key(kms)})
    return {"AliasName": alias}, lambda: alias not in _aliases(kms)


def tag_resource(kms):
    key = _key(kms)
    return ({"KeyId": key, "Tags": json.dumps([{"TagKey": "t", "TagValue": "v"}])},
            lambda: ok(kms, "ListResourceTags", {"KeyId": key})["Tags"]["Tag"] != [])


def create_secret(kms):
    name = _name("s")
    return {"SecretName": name, "VersionId": "v0", "SecretData": "zero"}, lambda: _listed(kms, name) == ["v0"]


def put_secret_value(kms):
    name = _secret(kms)
    return {"SecretName": name, "VersionId": "v1", "SecretData": "one"}, lambda: _listed(kms, name) == ["v0", "v1"]


def update_secret_version_stage(kms):
    name = _secret(kms, 2)
    return ({"SecretName": name, "VersionStage": "ACSCurrent", "RemoveFromVersion": "v1", "MoveToVersion": "v0"},
            lambda: ok(kms, "GetSecretValue", {"SecretName": name})["VersionId"] == "v0")


def delete_secret(kms):
    name = _secret(kms, 2)
    return ({"SecretName": name, "ForceDeleteWithoutRecovery": "true"},
            lambda: kms.call("DescribeSecret", {"SecretName": name})[0] == 404)


ACTIONS = {"CreateKey": create_key, "CreateKeyVersion": create_key_version, "CreateAlias": create_alias,
           "DeleteAlias": delete_alias, "TagResource": tag_resource, "CreateSecret": create_secret,
           "PutSecretValue": put_secret_value, "UpdateSecretVersionStage": update_secret_version_stage,
           "DeleteSecret": delete_secret}


@pytest.mark.parametrize("fault", ["drop_before", "drop_after"])
@pytest.mark.parametrize("operation", ["PutRow", "DeleteRow", "GetRow", "GetRange"])
@pytest.mark.parametrize("action", sorted(ACTIONS))
def test_a_lost_request_or_answer_at_any_store_call_is_invisible(kms, ots_proxy, action, fault, operation):
    """Lose each store call of one kind that the action makes, in turn (the request's nonce write
    included): the action still succeeds, exactly once."""
    for skip in range(20):
        params, effect = ACTIONS[action](kms)
        rule = ots_proxy.add(fault, action=operation, skip=skip, count=1)
        status, body = kms.call(action, params)
        ots_proxy.rules.remove(rule)
        assert status == 200, (action, operation, fault, skip, body)
        assert effect(), (action, operation, fault, skip)
        if rule.fired == 0:  # the action made `skip` such calls, and each had its turn
            break
    else:
        pytest.fail("the action kept making store calls")
    check_invariants(kms)


@pytest.mark.parametrize("code", ["OTSServerBusy", "OTSTimeout", "OTSInternalServerError"])
def test_server_errors_at_every_call_are_retried(kms, ots_backend, code):
    """The fake answers an error to every other request, applying the writes behind OTSTimeout."""
    ots_backend.inject(code, probability=0.5, count=None, after_apply=code == "OTSTimeout")
    for action in sorted(ACTIONS):
        params, effect = ACTIONS[action](kms)
        status, body = kms.call(action, params)
        assert status == 200, (action, body)
        assert effect(), action
    ots_backend.clear_injections()
    assert len(ots_backend.injected) > 20
    check_invariants(kms)


def test_an_unreachable_store_answers_503_promptly_and_changes_nothing(kms, ots_proxy, kms_logs):
    key = _key(kms)
    name = _secret(kms)
    before = visible(kms)
    ots_proxy.drop_before()
    for action, params in [("Encrypt", {"KeyId": key, "Plaintext": "aGk="}), ("DescribeKey", {"KeyId": key}),
                           ("CreateKey", {}), ("PutSecretValue", {"SecretName": name, "VersionId": "x",
                                                                  "SecretData": "x"})]:
        with kms_logs.at_level(logging.ERROR, logger="kms"):
            status, body = kms.call(action, params)
        assert (status, body["Code"]) == (503, "ServiceUnavailableTemporary"), (action, body)
    assert not [r for r in kms_logs.records if r.levelno >= logging.ERROR]  # not the catch-all's 500
    assert ots_proxy.stats["requests"] <= 4 * 30  # retries are bounded by the deadline
    ots_proxy.clear()
    assert visible(kms) == before


def test_a_store_that_holds_every_request_answers_503(kms, ots_proxy):
    key = _key(kms)
    ots_proxy.delay(30.0)  # far beyond every timeout: the test finishing at all shows the bound
    status, body = kms.call("DescribeKey", {"KeyId": key})
    assert (status, body["Code"]) == (503, "ServiceUnavailableTemporary")
    assert ots_proxy.stats["delay"] >= 2  # the first attempt timed out and was tried again


def test_chaos_leaves_every_invariant(kms, ots_proxy):
    """Seeded random drops before and after, on a mixed run of actions: every answer is a success
    or the documented 503, and whatever happened, the state is consistent."""
    ots_proxy.reseed(16)
    for _ in range(3):
        for action in sorted(ACTIONS):
            ots_proxy.clear()
            params, _ = ACTIONS[action](kms)
            ots_proxy.drop_before(probability=0.15)
            ots_proxy.drop_after(probability=0.15)
            status, body = kms.call(action, params)
            assert status in (200, 503), (action, body)
    ots_proxy.clear()
    assert ots_proxy.stats["drop_before"] + ots_proxy.stats["drop_after"] > 10
    check_invariants(kms)
