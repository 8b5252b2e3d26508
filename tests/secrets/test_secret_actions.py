"""The Secrets Manager actions on both stores (kms-api.md §11, §12, §16 item 10): creation and name rules,
values and their limits, versions and stage labels, roll-off, listing, tags, and that every refused
call answers its documented error and leaves what DescribeSecret / ListSecretVersionIds show unchanged.
Deletion, recovery windows and the encryption key's states are in test_secret_lifecycle.py."""

from __future__ import annotations

import json
import os
import time

from tests.secrets.helpers import (
    ARN_PREFIX,
    SCOPE,
    b64,
    create,
    create_key,
    describe,
    err,
    ok,
    parse_iso,
    put,
    refused,
    stages,
    unique,
    value,
    value_rows,
    versions,
)

IP = "InvalidParameter"
NOT_FOUND = ("Forbidden.ResourceNotFound", 404)


def secret_count(kms) -> int:
    return ok(kms, "ListSecrets", {"PageSize": "100"})["TotalCount"]


def test_create_describe_get(kms):
    name = unique("app/db")
    body = ok(kms, "CreateSecret", {"SecretName": name, "VersionId": "v1", "SecretData": "pw-1",
                                    "Description": "the db", "Tags": json.dumps([{"TagKey": "env",
                                                                                  "TagValue": "prod"}])})
    assert body["Arn"] == ARN_PREFIX + name and body["SecretType"] == "Generic"
    desc = describe(kms, name)
    assert desc["Arn"] == ARN_PREFIX + name and desc["SecretName"] == name and desc["SecretType"] == "Generic"
    assert desc["Description"] == "the db" and desc["EncryptionKeyId"]
    assert abs(parse_iso(desc["CreateTime"]) - time.time()) < 120 and desc["UpdateTime"]
    assert "PlannedDeleteTime" not in desc and "Tags" not in desc
    assert "pw-1" not in json.dumps(desc)
    assert describe(kms, name, FetchTags="true")["Tags"] == {"Tag": [{"TagKey": "env", "TagValue": "prod"}]}
    got = value(kms, name)
    assert (got["SecretName"], got["SecretData"], got["SecretDataType"], got["VersionId"]) \
        == (name, "pw-1", "text", "v1")
    assert got["VersionStages"] == {"VersionStage": ["ACSCurrent"]} and got["SecretType"] == "Generic"
    assert got["CreateTime"] == desc["CreateTime"]
    # The ARN is accepted wherever a name is; another region's or account's ARN names nothing.
    arn = ARN_PREFIX + name
    assert describe(kms, arn)["SecretName"] == name and value(kms, arn)["SecretData"] == "pw-1"
    assert versions(kms, arn) == {"v1": ["ACSCurrent"]}
    for foreign in (arn.replace("cn-hangzhou", "cn-shanghai"), arn.replace(":1234567890123456:", ":999:")):
        err(kms, "DescribeSecret", {"SecretName": foreign}, *NOT_FOUND)
        err(kms, "GetSecretValue", {"SecretName": foreign}, *NOT_FOUND)
    status, body = kms.call("GetSecretValue", {"SecretName": name, "DryRun": "true"})  # §1.5: DryRun always fails
    assert body["Code"] == "DryRunOperationError" and "SecretData" not in body, (status, body)
    for action in ("DescribeSecret", "GetSecretValue", "ListSecretVersionIds"):
        err(kms, action, {"SecretName": "no-such-secret"}, *NOT_FOUND)
        err(kms, action, {}, "MissingParameter", 400, "SecretName")


def test_name_rules(kms):
    for name in ("a", "x" * 192, "RdsSecret/Mysql5.4/MyCred", "A-z_0.9+=@/x"):
        create(kms, name, data="d-" + name)
        assert value(kms, name)["SecretData"] == "d-" + name
        assert describe(kms, ARN_PREFIX + name)["SecretName"] == name
    count = secret_count(kms)
    for bad in ("acs/mine", "acs/ram/user/x", "x" * 193, "has space", "semi;colon", "tab\tname", "q?x", "a#b"):
        err(kms, "CreateSecret", {"SecretName": bad, "VersionId": "v", "SecretData": "d"}, IP, 400, "SecretName")
    assert secret_count(kms) == count
    # A duplicate name is refused and the existing secret keeps its value.
    refused(kms, "a", "CreateSecret", {"SecretName": "a", "VersionId": "v9", "SecretData": "other"},
            "Rejected.ResourceExist", 409)
    assert value(kms, "a")["SecretData"] == "d-a"
    for missing in ("SecretName", "VersionId", "SecretData"):
        params = {"SecretName": unique(), "VersionId": "v", "SecretData": "d"}
        del params[missing]
        err(kms, "CreateSecret", params, "MissingParameter", 400, missing)
    err(kms, "CreateSecret", {"SecretName": unique(), "VersionId": "v" * 65, "SecretData": "d"}, IP, 400, "VersionId")
    assert secret_count(kms) == count


def test_managed_secret_types_are_unsupported(kms):
    """§11.1: CreateSecret answers 400 `UnsupportedOperation` (not the `Rejected.` variant)."""
    for secret_type in ("Rds", "RAMCredentials", "ECS"):
        err(kms, "CreateSecret", {"SecretName": unique(), "VersionId": "v", "SecretData": "d",
                                  "SecretType": secret_type}, "UnsupportedOperation", 400)
    assert secret_count(kms) == 0


def test_tags_and_quota_on_create(kms, monkeypatch):
    from alikms.shared.config import get_config

    many = lambda n: json.dumps([{"TagKey": f"k{i}", "TagValue": "v"} for i in range(n)])  # noqa: E731
    name, _ = create(kms, Tags=many(20))
    assert len(describe(kms, name, FetchTags="true")["Tags"]["Tag"]) == 20
    for bad in (many(21), '[{"TagKey":"aliyun-x","TagValue":"v"}]', '[{"TagKey":"k","TagValue":"' + "v" * 129 + '"}]',
                "not json"):
        err(kms, "CreateSecret", {"SecretName": unique(), "VersionId": "v", "SecretData": "d", "Tags": bad},
            IP, 400, "Tags")
    monkeypatch.setenv("KMS_SECRET_QUOTA", "2")
    get_config.cache_clear()
    create(kms)
    err(kms, "CreateSecret", {"SecretName": unique(), "VersionId": "v", "SecretData": "d"}, "Rejected.LimitExceeded",
        400)
    assert secret_count(kms) == 2
    get_config.cache_clear()


def test_encryption_key_choice(kms):
    a, _ = create(kms)
    b, _ = create(kms)
    service = describe(kms, a)["EncryptionKeyId"]
    assert describe(kms, b)["EncryptionKeyId"] == service  # one service-created key per account
    meta = ok(kms, "DescribeKey", {"KeyId": service})["KeyMetadata"]
    assert (meta["KeyState"], meta["KeyUsage"]) == ("Enabled", "ENCRYPT/DECRYPT")
    key = create_key(kms)
    c, _ = create(kms, EncryptionKeyId=key)
    d, dv = create(kms, EncryptionKeyId=f"acs:kms:cn-hangzhou:1234567890123456:key/{key}")
    assert describe(kms, c)["EncryptionKeyId"] == key and describe(kms, d)["EncryptionKeyId"] == key
    assert value(kms, d)["SecretData"] == dv
    count = secret_count(kms)
    err(kms, "CreateSecret", {"SecretName": unique(), "VersionId": "v", "SecretData": "d",
                              "EncryptionKeyId": "00000000-0000-4000-8000-000000000000"}, "Forbidden.KeyNotFound", 404)
    rsa = create_key(kms, KeySpec="RSA_2048", KeyUsage="ENCRYPT/DECRYPT")
    status, body = kms.call("CreateSecret", {"SecretName": unique(), "VersionId": "v", "SecretData": "d",
                                             "EncryptionKeyId": rsa})
    assert status == 400, body  # an asymmetric key cannot protect secret values
    ok(kms, "DisableKey", {"KeyId": key})
    err(kms, "CreateSecret", {"SecretName": unique(), "VersionId": "v", "SecretData": "d", "EncryptionKeyId": key},
        "Rejected.Disabled", 409)
    assert secret_count(kms) == count


def test_value_size_and_types(kms):
    big = "x" * 30720
    name, _ = create(kms, data=big)
    assert value(kms, name)["SecretData"] == big
    wide = "中" * 10240  # 30720 bytes in UTF-8: the limit counts bytes, not characters
    put(kms, name, "v-wide", wide)
    assert value(kms, name)["SecretData"] == wide
    count = secret_count(kms)
    for too_big in ("x" * 30721, "中" * 10240 + "x"):
        err(kms, "CreateSecret", {"SecretName": unique(), "VersionId": "v", "SecretData": too_big}, IP, 400,
            "SecretData")
        refused(kms, name, "PutSecretValue", {"SecretName": name, "VersionId": "v-big", "SecretData": too_big},
                IP, 400, "SecretData")
    raw = os.urandom(48)
    binary, _ = create(kms, data=b64(raw), SecretDataType="binary")
    got = value(kms, binary)
    assert got["SecretDataType"] == "binary" and got["SecretData"] == b64(raw)
    for not_b64 in ("not base64!", "abc", "@@@@"):
        err(kms, "CreateSecret", {"SecretName": unique(), "VersionId": "v", "SecretData": not_b64,
                                  "SecretDataType": "binary"}, IP, 400, "SecretData")
        refused(kms, binary, "PutSecretValue", {"SecretName": binary, "VersionId": "v-bad", "SecretData": not_b64,
                                                "SecretDataType": "binary"}, IP, 400, "SecretData")
    err(kms, "CreateSecret", {"SecretName": unique(), "VersionId": "v", "SecretData": "d", "SecretDataType": "blob"},
        IP, 400, "SecretDataType")
    assert secret_count(kms) == count + 1
    put(kms, binary, "v-text", "now text")  # the data type belongs to each version
    assert value(kms, binary)["SecretDataType"] == "text"
    assert value(kms, binary, VersionId="v0")["SecretDataType"] == "binary"


def test_put_moves_current_and_previous_and_custom_labels(kms):
    name, d0 = create(kms)
    body = put(kms, name, "v1", "d1")
    assert body["SecretName"] == name and body["VersionId"] == "v1"
    assert body["VersionStages"] == {"VersionStage": ["ACSCurrent"]}
    assert stages(kms, name) == {"ACSCurrent": "v1", "ACSPrevious": "v0"}
    assert value(kms, name)["SecretData"] == "d1"
    prev = value(kms, name, VersionStage="ACSPrevious")
    assert (prev["VersionId"], prev["SecretData"], prev["VersionStages"]) == ("v0", d0,
                                                                              {"VersionStage": ["ACSPrevious"]})
    assert value(kms, name, VersionId="v0")["SecretData"] == d0
    assert value(kms, name, VersionId="v1", VersionStage="ACSCurrent")["SecretData"] == "d1"
    put(kms, name, "v2", "d2", VersionStages='["MyLabel"]')
    assert stages(kms, name) == {"ACSCurrent": "v1", "ACSPrevious": "v0", "MyLabel": "v2"}
    assert value(kms, name, VersionStage="MyLabel")["SecretData"] == "d2"
    put(kms, name, "v3", "d3", VersionStages='{"VersionStage": ["ACSCurrent", "ACSNext"]}')
    assert stages(kms, name) == {"ACSCurrent": "v3", "ACSPrevious": "v1", "ACSNext": "v3", "MyLabel": "v2"}
    assert versions(kms, name) == {"v0": [], "v1": ["ACSPrevious"], "v2": ["MyLabel"], "v3": ["ACSCurrent", "ACSNext"]}
    assert versions(kms, name, deprecated=False) == {"v1": ["ACSPrevious"], "v2": ["MyLabel"],
                                                     "v3": ["ACSCurrent", "ACSNext"]}
    put(kms, name, "v4", "d4", VersionStages='["MyLabel"]')  # a label lives on one version: it moves
    assert stages(kms, name)["MyLabel"] == "v4" and versions(kms, name)["v2"] == []
    assert value(kms, name, VersionId="v0")["VersionStages"] == {"VersionStage": []}
    for vid, stage in (("nope", None), (None, "NoSuchStage"), ("v0", "ACSCurrent")):
        params = {"SecretName": name, **({"VersionId": vid} if vid else {}),
                  **({"VersionStage": stage} if stage else {})}
        err(kms, "GetSecretValue", params, *NOT_FOUND)
    err(kms, "GetSecretValue", {"SecretName": name, "VersionStage": "bad stage"}, IP, 400, "VersionStage")


def test_put_is_idempotent_and_refuses_other_data_under_an_existing_id(kms):
    name, d0 = create(kms)
    put(kms, name, "v1", "d1")
    before = versions(kms, name)
    assert put(kms, name, "v1", "d1")["VersionStages"] == {"VersionStage": ["ACSCurrent"]}
    assert put(kms, name, "v0", d0)["VersionId"] == "v0"  # the first version too: no change, no label move
    assert versions(kms, name) == before and value(kms, name)["SecretData"] == "d1"
    for vid, data in (("v1", "other"), ("v0", "other"), ("v1", "d1 ")):
        refused(kms, name, "PutSecretValue", {"SecretName": name, "VersionId": vid, "SecretData": data},
                "Rejected.ResourceExist", 409)
    assert value(kms, name, VersionId="v0")["SecretData"] == d0
    for bad in ("not json", "[]", '["bad label"]', '["A","A"]', '{"Other": ["A"]}'):
        refused(kms, name, "PutSecretValue", {"SecretName": name, "VersionId": "v9", "SecretData": "d9",
                                              "VersionStages": bad}, IP, 400, "VersionStages")
    refused(kms, name, "PutSecretValue", {"SecretName": name, "VersionId": "v" * 65, "SecretData": "d"},
            IP, 400, "VersionId")
    err(kms, "PutSecretValue", {"SecretName": "no-such", "VersionId": "v", "SecretData": "d"}, *NOT_FOUND)
    put(kms, ARN_PREFIX + name, "v2", "d2")
    assert stages(kms, name) == {"ACSCurrent": "v2", "ACSPrevious": "v1"}


def test_roll_off_keeps_ten_versions_dropping_the_oldest_unlabelled(kms):
    name, _ = create(kms, data="d0")
    put(kms, name, "v1", "d1", VersionStages='["Keep"]')
    for i in range(2, 12):
        put(kms, name, f"v{i}", f"d{i}")
    have = versions(kms, name)
    assert list(have) == ["v1"] + [f"v{i}" for i in range(3, 12)]  # v0 went first, then v2 (v1 is labelled)
    assert stages(kms, name) == {"ACSCurrent": "v11", "ACSPrevious": "v10", "Keep": "v1"}
    assert set(value_rows(kms.store, name)) == set(have)  # the dropped values are deleted too
    for gone in ("v0", "v2"):
        err(kms, "GetSecretValue", {"SecretName": name, "VersionId": gone}, *NOT_FOUND)
    assert value(kms, name, VersionId="v1")["SecretData"] == "d1"
    assert value(kms, name, VersionId="v3")["SecretData"] == "d3"


def test_refused_put_at_the_version_limit_changes_nothing(kms):
    """Ten versions all carrying a label: an eleventh cannot roll anything off and is refused. The
    refused VersionId must stay unused: once room is made, it can be written with any data."""
    name, _ = create(kms, data="d0")
    for i in range(1, 10):
        put(kms, name, f"v{i}", f"d{i}", VersionStages=f'["L{i}"]')
    refused(kms, name, "PutSecretValue", {"SecretName": name, "VersionId": "v10", "SecretData": "first"},
            "Rejected.LimitExceeded", 400)
    ok(kms, "UpdateSecretVersionStage", {"SecretName": name, "VersionStage": "L1", "RemoveFromVersion": "v1"})
    put(kms, name, "v10", "second")
    assert value(kms, name)["SecretData"] == "second"
    kept = {"v0", *(f"v{i}" for i in range(2, 11))}  # v1, unlabelled now, was the one to roll off
    assert set(versions(kms, name)) == set(value_rows(kms.store, name)) == kept


def test_list_secret_version_ids_paging(kms):
    name, _ = create(kms)
    for i in range(1, 5):
        put(kms, name, f"v{i}", f"d{i}", VersionStages=f'["L{i}"]')
    body = ok(kms, "ListSecretVersionIds", {"SecretName": name})
    assert (body["PageNumber"], body["PageSize"], body["TotalCount"]) == (1, 20, 5)
    first = body["VersionIds"]["VersionId"][0]
    assert first["VersionId"] == "v0" and abs(parse_iso(first["CreateTime"]) - time.time()) < 120
    assert "SecretData" not in json.dumps(body)
    seen = []
    for page in (1, 2, 3):
        body = ok(kms, "ListSecretVersionIds", {"SecretName": name, "PageSize": "2", "PageNumber": str(page)})
        assert (body["PageNumber"], body["PageSize"], body["TotalCount"]) == (page, 2, 5)
        seen += [v["VersionId"] for v in body["VersionIds"]["VersionId"]]
    assert seen == ["v0", "v1", "v2", "v3", "v4"]
    for size in ("0", "101", "x"):
        err(kms, "ListSecretVersionIds", {"SecretName": name, "PageSize": size}, IP, 400, "PageSize")
    err(kms, "ListSecretVersionIds", {"SecretName": name, "IncludeDeprecated": "maybe"}, IP, 400, "IncludeDeprecated")


def test_update_secret(kms):
    name, _ = create(kms, Description="old")
    assert ok(kms, "UpdateSecret", {"SecretName": name, "Description": "new"})["SecretName"] == name
    assert describe(kms, name)["Description"] == "new"
    ok(kms, "UpdateSecret", {"SecretName": ARN_PREFIX + name, "Description": "by arn"})
    assert describe(kms, name)["Description"] == "by arn"
    refused(kms, name, "UpdateSecret", {"SecretName": name, "ExtendedConfig.CustomData": '{"a":"b"}'},
            IP, 400, "ExtendedConfig.CustomData")
    refused(kms, name, "UpdateSecret", {"SecretName": name, "Description": "x" * 8193}, IP, 400, "Description")
    err(kms, "UpdateSecret", {"SecretName": "no-such", "Description": "d"}, *NOT_FOUND)


def test_update_secret_version_stage(kms):
    name, _ = create(kms)
    put(kms, name, "v1", "d1")
    put(kms, name, "v2", "d2")
    call = lambda **p: ok(kms, "UpdateSecretVersionStage", {"SecretName": name, **p})  # noqa: E731
    assert call(VersionStage="Blue", MoveToVersion="v0")["SecretName"] == name
    assert stages(kms, name) == {"ACSCurrent": "v2", "ACSPrevious": "v1", "Blue": "v0"}
    call(VersionStage="Blue", RemoveFromVersion="v0", MoveToVersion="v1")
    assert stages(kms, name)["Blue"] == "v1" and versions(kms, name)["v0"] == []
    call(VersionStage="Blue", MoveToVersion="v2")  # attaching a held label takes it off its holder
    assert stages(kms, name)["Blue"] == "v2"
    call(VersionStage="Blue", RemoveFromVersion="v2")
    assert "Blue" not in stages(kms, name)
    call(VersionStage="ACSCurrent", MoveToVersion="v0")  # ACSPrevious follows the version that was current
    assert stages(kms, name) == {"ACSCurrent": "v0", "ACSPrevious": "v2"}
    assert value(kms, name)["VersionId"] == "v0"
    ok(kms, "UpdateSecretVersionStage", {"SecretName": ARN_PREFIX + name, "VersionStage": "ACSCurrent",
                                         "RemoveFromVersion": "v0", "MoveToVersion": "v2"})
    assert stages(kms, name) == {"ACSCurrent": "v2", "ACSPrevious": "v0"}
    call(VersionStage="Green", MoveToVersion="v1")
    bad = [
        ({"VersionStage": "ACSCurrent", "RemoveFromVersion": "v2"}, "MissingParameter", 400),
        ({"VersionStage": "ACSPrevious", "RemoveFromVersion": "v0"}, "MissingParameter", 400),
        ({"VersionStage": "Green"}, "MissingParameter", 400),
        ({"VersionStage": "Green", "RemoveFromVersion": "v0"}, "Rejected.InvalidRequest", 400),
        ({"VersionStage": "Green", "RemoveFromVersion": "v0", "MoveToVersion": "v2"}, "Rejected.InvalidRequest", 400),
        ({"VersionStage": "NoSuch", "RemoveFromVersion": "v1"}, "Rejected.InvalidRequest", 400),
        ({"VersionStage": "Green", "MoveToVersion": "nope"}, *NOT_FOUND),
        ({"VersionStage": "Green", "RemoveFromVersion": "nope"}, *NOT_FOUND),
        ({"VersionStage": "bad label", "MoveToVersion": "v1"}, IP, 400),
    ]
    for params, code, status in bad:
        refused(kms, name, "UpdateSecretVersionStage", {"SecretName": name, **params}, code, status)
    err(kms, "UpdateSecretVersionStage", {"SecretName": "no-such", "VersionStage": "X", "MoveToVersion": "v"},
        *NOT_FOUND)


def test_list_secrets_paging_filters_and_tags(kms):
    tag = lambda k, v: json.dumps([{"TagKey": k, "TagValue": v}])  # noqa: E731
    create(kms, "a-db-prod", Description="database", Tags=tag("env", "prod"))
    create(kms, "b-db-dev", Description="database", Tags=tag("env", "dev"))
    create(kms, "c-web", Description="frontend", Tags=tag("team", "web"))
    names = []
    for page in (1, 2):
        body = ok(kms, "ListSecrets", {"PageSize": "2", "PageNumber": str(page)})
        assert (body["TotalCount"], body["PageNumber"], body["PageSize"]) == (3, page, 2)
        names += [s["SecretName"] for s in body["SecretList"]["Secret"]]
        assert all("Tags" not in s and s["SecretType"] == "Generic" and s["CreateTime"]
                   for s in body["SecretList"]["Secret"])
    assert sorted(names) == ["a-db-prod", "b-db-dev", "c-web"]
    assert ok(kms, "ListSecrets", {})["PageSize"] == 10

    def listed(*filters) -> list[str]:
        body = ok(kms, "ListSecrets", {"Filters": json.dumps([{"Key": k, "Values": v} for k, v in filters])})
        assert body["TotalCount"] == len(body["SecretList"]["Secret"])
        return sorted(s["SecretName"] for s in body["SecretList"]["Secret"])

    assert listed(("SecretName", ["db"])) == ["a-db-prod", "b-db-dev"]
    assert listed(("SecretName", ["prod", "web"])) == ["a-db-prod", "c-web"]  # OR within a key
    assert listed(("SecretName", ["db"]), ("TagValue", ["dev"])) == ["b-db-dev"]  # AND across keys
    assert listed(("TagKey", ["env"])) == ["a-db-prod", "b-db-dev"]
    assert listed(("TagValue", ["web"])) == ["c-web"]
    assert listed(("Description", ["front"])) == ["c-web"]
    assert listed(("SecretType", ["Generic"])) == ["a-db-prod", "b-db-dev", "c-web"]
    assert listed(("TagKey", ["none"])) == []
    body = ok(kms, "ListSecrets", {"FetchTags": "true", "Filters": json.dumps([{"Key": "SecretName",
                                                                                "Values": ["c-"]}])})
    assert body["SecretList"]["Secret"][0]["Tags"] == {"Tag": [{"TagKey": "team", "TagValue": "web"}]}
    for bad in ("not json", '[{"Key": "Nope", "Values": ["x"]}]', json.dumps([{"Key": "SecretName",
                                                                               "Values": ["a"]}] * 11),
                json.dumps([{"Key": "SecretName", "Values": [str(i) for i in range(11)]}])):
        err(kms, "ListSecrets", {"Filters": bad}, IP, 400, "Filters")
    for size in ("0", "101"):
        err(kms, "ListSecrets", {"PageSize": size}, IP, 400, "PageSize")


def test_tags_on_secrets(kms):
    name, _ = create(kms)
    tags = lambda: describe(kms, name, FetchTags="true")["Tags"]["Tag"]  # noqa: E731
    ok(kms, "TagResource", {"SecretName": name,
                            "Tags": '[{"TagKey":"k1","TagValue":"a"},{"TagKey":"k2","TagValue":"b"}]'})
    ok(kms, "TagResource", {"SecretName": ARN_PREFIX + name, "Tags": '[{"TagKey":"k1","TagValue":"c"}]'})
    assert tags() == [{"TagKey": "k1", "TagValue": "c"}, {"TagKey": "k2", "TagValue": "b"}]
    listed = ok(kms, "ListSecrets", {"Filters": '[{"Key":"TagKey","Values":["k2"]}]'})["SecretList"]["Secret"]
    assert [s["SecretName"] for s in listed] == [name]
    ok(kms, "UntagResource", {"SecretName": name, "TagKeys": '["k1","absent"]'})
    assert tags() == [{"TagKey": "k2", "TagValue": "b"}]
    ok(kms, "UntagResource", {"SecretName": ARN_PREFIX + name, "TagKeys": "k2"})
    assert tags() == []
    ok(kms, "TagResource", {"SecretName": name, "Tags": json.dumps([{"TagKey": f"t{i}",
                                                                     "TagValue": "v"} for i in range(10)])})
    refused(kms, name, "TagResource", {"SecretName": name, "Tags": '[{"TagKey":"t10","TagValue":"v"}]'},
            "Rejected.LimitExceeded", 400)
    refused(kms, name, "TagResource", {"SecretName": name, "Tags": '[{"TagKey":"acs:x","TagValue":"v"}]'}, IP, 400)
    key = create_key(kms)
    refused(kms, name, "TagResource", {"SecretName": name, "KeyId": key, "Tags": '[{"TagKey":"a","TagValue":"v"}]'},
            IP, 400)
    err(kms, "TagResource", {"SecretName": "no-such", "Tags": '[{"TagKey":"a","TagValue":"v"}]'}, *NOT_FOUND)
    err(kms, "UntagResource", {"SecretName": "no-such", "TagKeys": '["a"]'}, *NOT_FOUND)


def test_values_are_never_stored_in_plaintext(kms):
    from tests.secrets.helpers import assert_not_stored

    text = "pl41n text é中 @+&= " + os.urandom(8).hex()
    raw = b"\x00RAW" + os.urandom(24)
    a, _ = create(kms, data=text)
    b, _ = create(kms, data=b64(raw), SecretDataType="binary")
    extra = ["second " + os.urandom(8).hex(), "third " + os.urandom(8).hex()]
    put(kms, a, "v1", extra[0])
    put(kms, b, "v1", extra[1], VersionStages='["Other"]')
    assert value(kms, a, VersionId="v0")["SecretData"] == text
    assert value(kms, b)["SecretData"] == b64(raw)
    assert_not_stored(kms.store, [text, b64(raw), *extra])
    if getattr(kms.store, "_path", None) is not None:
        files = b"".join(p.read_bytes() for p in kms.store._path.parent.glob(kms.store._path.name + "*"))
        assert raw not in files
    rows = value_rows(kms.store, a)
    assert set(rows) == {"v0", "v1"} and rows["v0"]["key_id"] == describe(kms, a)["EncryptionKeyId"]
    assert kms.store.get("secrets", SCOPE, a).data["stages"] == {"ACSCurrent": "v1", "ACSPrevious": "v0"}
