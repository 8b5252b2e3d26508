"""Aliases (kms-api.md §10) and tags (§12): name and tag rules, limits, the alias race, and which
actions resolve an alias in KeyId (registry `key_aliases`) while the rest answer Unsupported.Alias."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from tests import support
from tests.keys.helpers import (
    Rendezvous,
    all_aliases,
    b64,
    create_key,
    describe,
    encrypt,
    err,
    key_in_state,
    ok,
    run_together,
    tag_json,
    tags,
    versions,
)

ARN = f"acs:kms:cn-hangzhou:{support.TEST_ACCOUNT}"


@pytest.mark.parametrize("name", ["alias/a", "alias/" + "x" * 255, "alias/a_b-c/d/E9", "alias/ac", "alias/ac-s",
                                  "alias/my/acs"])
def test_valid_alias_names(kms, name):
    key = create_key(kms)
    ok(kms, "CreateAlias", {"AliasName": name, "KeyId": key})
    assert all_aliases(kms) == {name: key}
    assert describe(kms, name)["KeyId"] == key


@pytest.mark.parametrize("name", ["alias/", "alias/" + "x" * 256, "a", "foo/bar", "alias/a b", "alias/a.b",
                                  "alias/a*", "Alias/abc", "alias/acs", "alias/acs-x", "alias/acs/x", "alias/acsfoo",
                                  " alias/a", "alias/é", ""])
def test_invalid_alias_names(kms, name):
    key = create_key(kms)
    err(kms, "CreateAlias", {"AliasName": name, "KeyId": key}, "InvalidParameter", 400, "AliasName")
    assert all_aliases(kms) == {}


def test_alias_lifecycle(kms):
    k1, k2 = create_key(kms), create_key(kms)
    ok(kms, "CreateAlias", {"AliasName": "alias/app", "KeyId": k1})
    err(kms, "CreateAlias", {"AliasName": "alias/app", "KeyId": k1}, "AliasAlreadyExists", 400)
    err(kms, "CreateAlias", {"AliasName": "alias/app", "KeyId": k2}, "AliasAlreadyExists", 400)
    ok(kms, "CreateAlias", {"AliasName": "alias/app2", "KeyId": k1})
    body = ok(kms, "ListAliasesByKeyId", {"KeyId": k1})
    assert body["TotalCount"] == 2 and body["Aliases"]["Alias"] == [
        {"AliasArn": f"{ARN}:alias/app", "AliasName": "alias/app", "KeyId": k1},
        {"AliasArn": f"{ARN}:alias/app2", "AliasName": "alias/app2", "KeyId": k1}]
    assert ok(kms, "ListAliasesByKeyId", {"KeyId": k2})["Aliases"]["Alias"] == []
    ok(kms, "UpdateAlias", {"AliasName": "alias/app", "KeyId": k2})
    assert all_aliases(kms) == {"alias/app": k2, "alias/app2": k1}
    assert encrypt(kms, "alias/app")["KeyId"] == k2
    err(kms, "UpdateAlias", {"AliasName": "alias/missing", "KeyId": k1}, "Forbidden.AliasNotFound", 404)
    err(kms, "UpdateAlias", {"AliasName": "alias/app", "KeyId": str(uuid.uuid4())}, "Forbidden.KeyNotFound", 404)
    err(kms, "UpdateAlias", {"AliasName": "bad name", "KeyId": k1}, "InvalidParameter", 400, "AliasName")
    ok(kms, "DeleteAlias", {"AliasName": "alias/app"})
    err(kms, "DeleteAlias", {"AliasName": "alias/app"}, "Forbidden.AliasNotFound", 404)
    err(kms, "DeleteAlias", {"AliasName": "nope"}, "InvalidParameter", 400, "AliasName")
    err(kms, "DeleteAlias", {}, "MissingParameter", 400, "AliasName")
    err(kms, "CreateAlias", {"KeyId": k1}, "MissingParameter", 400, "AliasName")
    err(kms, "Encrypt", {"KeyId": "alias/app", "Plaintext": b64(b"x")}, "Forbidden.AliasNotFound", 404)
    assert describe(kms, k2)["KeyState"] == "Enabled"  # deleting an alias leaves the key alone
    assert all_aliases(kms) == {"alias/app2": k1}


def test_update_alias_checks_only_the_new_target(kms):
    pending, enabled = create_key(kms), create_key(kms)
    ok(kms, "CreateAlias", {"AliasName": "alias/moving", "KeyId": pending})
    ok(kms, "ScheduleKeyDeletion", {"KeyId": pending, "PendingWindowInDays": "7"})
    ok(kms, "UpdateAlias", {"AliasName": "alias/moving", "KeyId": enabled})  # old target PendingDeletion: fine
    assert all_aliases(kms)["alias/moving"] == enabled
    err(kms, "UpdateAlias", {"AliasName": "alias/moving", "KeyId": pending}, "Rejected.PendingDeletion", 409)
    assert all_aliases(kms)["alias/moving"] == enabled
    for state in ("Disabled", "PendingImport"):
        target = key_in_state(kms, state)
        ok(kms, "UpdateAlias", {"AliasName": "alias/moving", "KeyId": target})
        assert all_aliases(kms)["alias/moving"] == target


def test_alias_paging(kms):
    key = create_key(kms)
    names = sorted(f"alias/p{i}" for i in range(5))
    for name in names:
        ok(kms, "CreateAlias", {"AliasName": name, "KeyId": key})
    seen = []
    for page in (1, 2, 3):
        body = ok(kms, "ListAliases", {"PageSize": "2", "PageNumber": str(page)})
        assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (5, page, 2)
        seen += [a["AliasName"] for a in body["Aliases"]["Alias"]]
    assert seen == names
    assert ok(kms, "ListAliases", {})["PageSize"] == 10
    by_key = ok(kms, "ListAliasesByKeyId", {"KeyId": key, "PageSize": "2", "PageNumber": "3"})
    assert [a["AliasName"] for a in by_key["Aliases"]["Alias"]] == names[4:]
    ok(kms, "ListAliases", {"PageSize": "100"})
    ok(kms, "ListAliasesByKeyId", {"KeyId": key, "PageSize": "101"})
    for bad in ("0", "101", "x"):
        err(kms, "ListAliases", {"PageSize": bad}, "InvalidParameter", 400, "PageSize")
    err(kms, "ListAliasesByKeyId", {"KeyId": key, "PageSize": "102"}, "InvalidParameter", 400, "PageSize")
    err(kms, "ListAliases", {"PageNumber": "0"}, "InvalidParameter", 400, "PageNumber")


def test_alias_quota(kms, monkeypatch):
    monkeypatch.setenv("KMS_ALIAS_QUOTA", "3")
    key = create_key(kms)
    for i in range(3):
        ok(kms, "CreateAlias", {"AliasName": f"alias/q{i}", "KeyId": key})
    err(kms, "CreateAlias", {"AliasName": "alias/q3", "KeyId": key}, "Rejected.LimitExceeded", 400)
    assert len(all_aliases(kms)) == 3
    ok(kms, "DeleteAlias", {"AliasName": "alias/q0"})
    ok(kms, "CreateAlias", {"AliasName": "alias/q3", "KeyId": key})
    ok(kms, "UpdateAlias", {"AliasName": "alias/q3", "KeyId": create_key(kms)})  # moving is not creating


@pytest.mark.parametrize("forced", [True, False], ids=["rendezvous", "free"])
def test_alias_race_gives_one_alias(kms, new_store, per_thread_store, forced):
    contenders = [create_key(kms), create_key(kms)]
    barrier = threading.Barrier(2)
    stores = [Rendezvous(new_store(), barrier, "put_new", "aliases") if forced else new_store() for _ in range(2)]

    def create(store, key):
        per_thread_store(store)
        return kms.call("CreateAlias", {"AliasName": "alias/raced", "KeyId": key})

    results = run_together([lambda s=s, k=k: create(s, k) for s, k in zip(stores, contenders, strict=True)])
    outcomes = sorted((status, body.get("Code")) for status, body in results)
    assert outcomes == [(200, None), (400, "AliasAlreadyExists")], results
    winner = contenders[[status for status, _ in results].index(200)]
    assert all_aliases(kms) == {"alias/raced": winner}


# --- KeyId forms per action -------------------------------------------------------------------

WITH_ALIAS = {
    "DescribeKey": {}, "DescribeKeyVersion": {"KeyVersionId": None}, "ListKeyVersions": {}, "CreateKeyVersion": {},
    "Encrypt": {"Plaintext": b64(b"x")}, "GenerateDataKey": {}, "GenerateDataKeyWithoutPlaintext": {},
    "TagResource": {"Tags": tag_json({"k": "v"})},
}
WITHOUT_ALIAS = {
    "EnableKey": {}, "DisableKey": {}, "ScheduleKeyDeletion": {"PendingWindowInDays": "7"},
    "UpdateKeyDescription": {"Description": "d"}, "UpdateRotationPolicy": {"EnableAutomaticRotation": "false"},
    "CreateAlias": {"AliasName": "alias/second"}, "UpdateAlias": {"AliasName": "alias/target"},
    "ListAliasesByKeyId": {}, "UntagResource": {"TagKeys": "k"}, "ListResourceTags": {},
}


def forms(key: str) -> dict[str, str]:
    return {"id": key, "key arn": f"{ARN}:key/{key}", "alias": "alias/named", "alias arn": f"{ARN}:alias/named"}


@pytest.mark.parametrize("action", list(WITH_ALIAS))
def test_actions_taking_an_alias(kms, action):
    key = create_key(kms)
    ok(kms, "CreateAlias", {"AliasName": "alias/named", "KeyId": key})
    extra = {n: (v if v is not None else describe(kms, key)["PrimaryKeyVersion"])
             for n, v in WITH_ALIAS[action].items()}
    for form, value in forms(key).items():
        body = ok(kms, action, {"KeyId": value, **extra})
        resolved = (body.get("KeyMetadata") or body.get("KeyVersion") or body).get("KeyId")
        if action in ("DescribeKey", "DescribeKeyVersion", "CreateKeyVersion", "Encrypt", "GenerateDataKey",
                      "GenerateDataKeyWithoutPlaintext"):
            assert resolved == key, (form, body)
    if action == "ListKeyVersions":
        assert ok(kms, action, {"KeyId": "alias/named"})["KeyVersions"]["KeyVersion"][0]["KeyId"] == key
    err(kms, action, {"KeyId": "alias/unknown", **extra}, "Forbidden.AliasNotFound", 404)
    err(kms, action, {"KeyId": f"{ARN}:alias/unknown", **extra}, "Forbidden.AliasNotFound", 404)
    err(kms, action, {"KeyId": f"acs:kms:cn-shanghai:{support.TEST_ACCOUNT}:key/{key}", **extra},
        "Forbidden.KeyNotFound", 404)
    err(kms, action, {"KeyId": "acs:kms:cn-hangzhou:9999999999999999:alias/named", **extra},
        "Forbidden.KeyNotFound", 404)


def test_reencrypt_destination_by_alias(kms):
    source, dest = create_key(kms), create_key(kms)
    ok(kms, "CreateAlias", {"AliasName": "alias/dest", "KeyId": dest})
    blob = encrypt(kms, source, b"r")["CiphertextBlob"]
    for value in ("alias/dest", f"{ARN}:alias/dest", f"{ARN}:key/{dest}"):
        assert ok(kms, "ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": value})["KeyId"] == dest


@pytest.mark.parametrize("action", list(WITHOUT_ALIAS))
def test_actions_refusing_an_alias(kms, action):
    key = create_key(kms, Tags=tag_json({"k": "v"}))
    ok(kms, "CreateAlias", {"AliasName": "alias/named", "KeyId": key})
    ok(kms, "CreateAlias", {"AliasName": "alias/target", "KeyId": create_key(kms)})
    extra = WITHOUT_ALIAS[action]
    before = (describe(kms, key), all_aliases(kms), tags(kms, key))
    for value in (forms(key)["alias"], forms(key)["alias arn"], "alias/unknown"):
        err(kms, action, {"KeyId": value, **extra}, "Unsupported.Alias", 400)
    assert (describe(kms, key), all_aliases(kms), tags(kms, key)) == before
    ok(kms, action, {"KeyId": forms(key)["key arn"], **extra})
    if action == "ScheduleKeyDeletion":
        err(kms, "CancelKeyDeletion", {"KeyId": "alias/named"}, "Unsupported.Alias", 400)
        ok(kms, "CancelKeyDeletion", {"KeyId": forms(key)["key arn"]})
    if action == "UpdateAlias":
        assert all_aliases(kms)["alias/target"] == key


def test_foreign_or_malformed_arns(kms):
    key = create_key(kms)
    for arn in (f"acs:kms:cn-hangzhou:{support.TEST_ACCOUNT}:secret/{key}", f"acs:kms:cn-hangzhou:{key}",
                f"acs:kms:cn-hangzhou:{support.TEST_ACCOUNT}:key/{uuid.uuid4()}"):
        err(kms, "DescribeKey", {"KeyId": arn}, "Forbidden.KeyNotFound", 404)
    assert versions(kms, f"{ARN}:key/{key}") == [describe(kms, key)["PrimaryKeyVersion"]]


# --- tags -------------------------------------------------------------------------------------

def test_tag_untag_list(kms):
    key = create_key(kms)
    assert tags(kms, key) == {}
    ok(kms, "TagResource", {"KeyId": key, "Tags": tag_json({"b": "2", "a": "1", "c": ""})})
    body = ok(kms, "ListResourceTags", {"KeyId": key})
    assert body["Tags"]["Tag"] == [{"KeyId": key, "TagKey": k, "TagValue": v} for k, v in (("a", "1"), ("b", "2"),
                                                                                             ("c", ""))]
    ok(kms, "TagResource", {"KeyId": key, "Tags": tag_json({"a": "one"})})  # overwrite
    assert tags(kms, key) == {"a": "one", "b": "2", "c": ""}
    ok(kms, "UntagResource", {"KeyId": key, "TagKeys": "a, b"})  # comma form
    assert tags(kms, key) == {"c": ""}
    ok(kms, "TagResource", {"KeyId": key, "Tags": tag_json({"x": "1", "y": "2"})})
    ok(kms, "UntagResource", {"KeyId": key, "TagKeys": '["x", "y", "absent"]'})  # JSON form; absent is fine
    assert tags(kms, key) == {"c": ""}
    for bad in ("", "[]", "[a", '["a", 1]', '["' + "k" * 129 + '"]', "k" * 129):
        err(kms, "UntagResource", {"KeyId": key, "TagKeys": bad}, "InvalidParameter", 400, "TagKeys")
    err(kms, "UntagResource", {"KeyId": key}, "MissingParameter", 400, "TagKeys")
    err(kms, "TagResource", {"KeyId": key}, "MissingParameter", 400, "Tags")
    assert tags(kms, key) == {"c": ""}


def test_tag_limit_ten_per_key(kms):
    key = create_key(kms)
    ten = {f"k{i}": str(i) for i in range(10)}
    ok(kms, "TagResource", {"KeyId": key, "Tags": tag_json(ten)})
    err(kms, "TagResource", {"KeyId": key, "Tags": tag_json({"k10": "x"})}, "Rejected.LimitExceeded", 400)
    assert tags(kms, key) == ten
    ok(kms, "TagResource", {"KeyId": key, "Tags": tag_json({"k0": "new"})})  # overwriting adds nothing
    assert tags(kms, key)["k0"] == "new" and len(tags(kms, key)) == 10
    other = create_key(kms)
    eleven = tag_json({f"k{i}": "v" for i in range(11)})
    err(kms, "TagResource", {"KeyId": other, "Tags": eleven}, "InvalidParameter", 400, "Tags")
    assert tags(kms, other) == {}


GOOD_TAGS = [{"k" * 128: "v" * 128}, {"a b/\\_-.+=:@": "a b/\\_-.+=:@"}, {"acs": "x"}, {"aliyu": "x"},
             {"x": ""}, {"Key9": "Value9"}]
BAD_TAGS = [
    tag_json({"k" * 129: "v"}), tag_json({"k": "v" * 129}), tag_json({"": "v"}), tag_json({"a#b": "v"}),
    tag_json({"k": "v#"}), tag_json({"aliyun": "v"}), tag_json({"aliyunX": "v"}), tag_json({"Aliyun-x": "v"}),
    tag_json({"acs:x": "v"}), tag_json({"ACS:x": "v"}), tag_json({"k": "é"}),
    '[{"TagKey":"a","TagValue":"1"},{"TagKey":"a","TagValue":"2"}]', "not json", '{"TagKey":"a","TagValue":"b"}',
    '[{"TagValue":"b"}]', '[{"TagKey":"a","TagValue":"b","Extra":"c"}]', '[{"TagKey":"a","TagValue":1}]',
    '[{"TagKey":1,"TagValue":"b"}]', '["a"]', '[{"TagKey":"a","TagValue":null}]',
]


@pytest.mark.parametrize("pairs", GOOD_TAGS)
def test_tag_rules_accept(kms, pairs):
    key = create_key(kms)
    ok(kms, "TagResource", {"KeyId": key, "Tags": tag_json(pairs)})
    assert tags(kms, key) == pairs
    assert tags(kms, create_key(kms, Tags=tag_json(pairs))) == pairs


@pytest.mark.parametrize("value", BAD_TAGS)
def test_tag_rules_reject(kms, value):
    key = create_key(kms)
    err(kms, "TagResource", {"KeyId": key, "Tags": value}, "InvalidParameter", 400, "Tags")
    err(kms, "CreateKey", {"Tags": value}, "InvalidParameter", 400, "Tags")
    assert tags(kms, key) == {}
    assert ok(kms, "ListKeys", {})["TotalCount"] == 1


def test_tag_resource_addressing(kms):
    key = create_key(kms)
    err(kms, "TagResource", {"KeyId": key, "SecretName": "s", "Tags": tag_json({"a": "b"})}, "InvalidParameter", 400)
    err(kms, "TagResource", {"Tags": tag_json({"a": "b"})}, "InvalidParameter", 400)
    err(kms, "TagResource", {"CertificateId": "c-1", "Tags": tag_json({"a": "b"})}, "Forbidden.ResourceNotFound", 404)
    err(kms, "TagResource", {"SecretName": f"nosuch-{uuid.uuid4()}", "Tags": tag_json({"a": "b"})},
        "Forbidden.ResourceNotFound", 404)
    err(kms, "UntagResource", {"KeyId": key, "CertificateId": "c", "TagKeys": "a"}, "InvalidParameter", 400)
    assert tags(kms, key) == {}


def test_tags_and_key_states(kms):
    key = create_key(kms, Tags=tag_json({"t": "1"}))
    ok(kms, "DisableKey", {"KeyId": key})
    ok(kms, "TagResource", {"KeyId": key, "Tags": tag_json({"d": "2"})})
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "7"})
    err(kms, "TagResource", {"KeyId": key, "Tags": tag_json({"p": "3"})}, "Rejected.PendingDeletion", 409)
    err(kms, "UntagResource", {"KeyId": key, "TagKeys": "t"}, "Rejected.PendingDeletion", 409)
    assert tags(kms, key) == {"t": "1", "d": "2"}


def test_create_key_tags_up_to_twenty(kms):
    twenty = {f"t{i:02}": f"v{i}" for i in range(20)}
    key = create_key(kms, Tags=tag_json(twenty))
    assert tags(kms, key) == twenty
    err(kms, "CreateKey", {"Tags": tag_json({f"t{i}": "v" for i in range(21)})}, "InvalidParameter", 400, "Tags")
    assert ok(kms, "ListKeys", {})["TotalCount"] == 1


def test_list_keys_filters_by_tag(kms):
    a = create_key(kms, Tags=tag_json({"env": "prod", "team": "x"}))
    b = create_key(kms, Tags=tag_json({"env": "dev"}))
    c = create_key(kms)

    def listed(*filters) -> set[str]:
        body = ok(kms, "ListKeys", {"Filters": json.dumps([{"Key": k, "Values": v} for k, v in filters]),
                                    "PageSize": "100"})
        assert body["TotalCount"] == len(body["Keys"]["Key"])
        return {k["KeyId"] for k in body["Keys"]["Key"]}

    assert listed(("TagKey", ["env"])) == {a, b}
    assert listed(("TagKey", ["team"])) == {a}
    assert listed(("TagValue", ["dev"])) == {b}
    assert listed(("TagValue", ["dev", "prod"])) == {a, b}
    assert listed(("TagKey", ["team"]), ("TagValue", ["dev"])) == set()
    assert listed(("TagKey", ["nothing"])) == set()
    assert listed() == {a, b, c}
    ok(kms, "UntagResource", {"KeyId": a, "TagKeys": "team"})
    assert listed(("TagKey", ["team"])) == set()
    err(kms, "ListKeys", {"Filters": '[{"Key":"Nope","Values":["x"]}]'}, "InvalidParameter", 400, "Filters")
