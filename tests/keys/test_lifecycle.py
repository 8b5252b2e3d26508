"""The key-state table (kms-api.md §4), cell by cell, for every registered action that takes a key:
the documented code and HTTP status in each of the four states, the effect of every allowed call,
and that a refused call changed nothing. Then the parameter rules of the lifecycle actions."""

from __future__ import annotations

import base64
import calendar
import json
import time
import uuid

import pytest

from alikms.shared.crypto import blob as blob_format
from tests.keys.helpers import (
    DAY,
    STATES,
    all_aliases,
    b64,
    create_key,
    decrypt,
    describe,
    encrypt,
    err,
    key_in_state,
    ok,
    tag_json,
    tags,
    to_state,
    versions,
)

OK = None
SMF = ("Rejected.StateModifiedFailed", 409)
RD = ("Rejected.Disabled", 409)
RPD = ("Rejected.PendingDeletion", 409)
RPI = ("Rejected.PendingImport", 409)


def row(enabled, disabled, pending_deletion, pending_import):
    return dict(zip(STATES, (enabled, disabled, pending_deletion, pending_import), strict=True))


USE = row(OK, RD, RPD, RPI)
ALWAYS = row(OK, OK, OK, OK)
TABLE = {
    "EnableKey": row(OK, OK, SMF, SMF),
    "DisableKey": row(OK, OK, SMF, SMF),
    "ScheduleKeyDeletion": row(OK, OK, SMF, OK),
    "CancelKeyDeletion": row(SMF, SMF, OK, SMF),
    "UpdateKeyDescription": row(OK, OK, RPD, OK),
    "Encrypt": USE,
    "Decrypt": USE,
    "GenerateDataKey": USE,
    "GenerateDataKeyWithoutPlaintext": USE,
    "ReEncrypt": USE,  # the key under test is the destination
    "CreateKeyVersion": USE,
    "UpdateRotationPolicy": USE,
    "DescribeKey": ALWAYS,
    "ListKeys": ALWAYS,
    "DescribeKeyVersion": ALWAYS,
    "ListKeyVersions": ALWAYS,
    "CreateAlias": row(OK, OK, SMF, OK),
    "UpdateAlias": row(OK, OK, RPD, OK),
    "DeleteAlias": ALWAYS,
    "ListAliases": ALWAYS,
    "ListAliasesByKeyId": ALWAYS,
    "TagResource": row(OK, OK, RPD, OK),
    "UntagResource": row(OK, OK, RPD, OK),
    "ListResourceTags": ALWAYS,
}
CELLS = [(action, state) for action in TABLE for state in STATES]


class Subject:
    """A key in a given state, prepared while it could still be prepared: tagged `t1=v1`, aliased
    `alias/lc-<id>`, and (unless PendingImport) holding a blob encrypted while it was Enabled."""

    def __init__(self, kms, state: str) -> None:
        self.state = state
        external = {"Origin": "EXTERNAL"} if state == "PendingImport" else {}
        self.key_id = create_key(kms, Tags=tag_json({"t1": "v1"}), **external)
        self.alias = f"alias/lc-{self.key_id}"
        ok(kms, "CreateAlias", {"AliasName": self.alias, "KeyId": self.key_id})
        self.version = describe(kms, self.key_id).get("PrimaryKeyVersion")
        if state == "PendingImport":
            # No material exists, so no real blob can: a well-formed blob naming this key.
            head = blob_format.header(self.key_id, str(uuid.uuid4()))
            self.blob = b64(head + bytes(12) + b"data" + bytes(16))
        else:
            self.blob = encrypt(kms, self.key_id, b"cell")["CiphertextBlob"]
        self.other = create_key(kms)  # an unrelated Enabled key (source / previous alias target)
        self.other_alias = f"alias/other-{self.key_id}"
        ok(kms, "CreateAlias", {"AliasName": self.other_alias, "KeyId": self.other})
        self.other_blob = encrypt(kms, self.other, b"other")["CiphertextBlob"]
        to_state(kms, self.key_id, state)

    def params(self, action: str) -> dict:
        k = self.key_id
        return {
            "ScheduleKeyDeletion": {"KeyId": k, "PendingWindowInDays": "7"},
            "UpdateKeyDescription": {"KeyId": k, "Description": "changed"},
            "Encrypt": {"KeyId": k, "Plaintext": b64(b"hello")},
            "Decrypt": {"CiphertextBlob": self.blob},
            "ReEncrypt": {"CiphertextBlob": self.other_blob, "DestinationKeyId": k},
            "UpdateRotationPolicy": {"KeyId": k, "EnableAutomaticRotation": "true", "RotationInterval": "30d"},
            "ListKeys": {"PageSize": "100"},
            "DescribeKeyVersion": {"KeyId": k, "KeyVersionId": self.version or str(uuid.uuid4())},
            "CreateAlias": {"AliasName": f"alias/new-{k}", "KeyId": k},
            "UpdateAlias": {"AliasName": self.other_alias, "KeyId": k},
            "DeleteAlias": {"AliasName": self.alias},
            "ListAliases": {"PageSize": "100"},
            "TagResource": {"KeyId": k, "Tags": tag_json({"t2": "v2"})},
            "UntagResource": {"KeyId": k, "TagKeys": '["t1"]'},
        }.get(action, {"KeyId": k})


def snapshot(kms, subject: Subject) -> dict:
    return {"key": describe(kms, subject.key_id), "versions": versions(kms, subject.key_id),
            "tags": tags(kms, subject.key_id), "aliases": all_aliases(kms),
            "other": describe(kms, subject.other)}


def check_effect(kms, action: str, s: Subject, body: dict) -> None:
    """What an allowed call must have done."""
    md = describe(kms, s.key_id)
    if action == "EnableKey":
        assert md["KeyState"] == "Enabled"
    elif action == "DisableKey":
        assert md["KeyState"] == "Disabled"
    elif action == "ScheduleKeyDeletion":
        assert md["KeyState"] == "PendingDeletion"
        delete_at = calendar.timegm(time.strptime(md["DeleteDate"], "%Y-%m-%dT%H:%M:%SZ"))
        assert abs(delete_at - (time.time() + 7 * DAY)) < 120
    elif action == "CancelKeyDeletion":
        assert md["KeyState"] == "Enabled" and "DeleteDate" not in md
    elif action == "UpdateKeyDescription":
        assert md["Description"] == "changed"
    elif action in ("Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "ReEncrypt"):
        assert (body["KeyId"], body["KeyVersionId"]) == (s.key_id, md["PrimaryKeyVersion"])
        expected = {"Encrypt": b"hello", "ReEncrypt": b"other"}.get(action)
        got = decrypt(kms, body["CiphertextBlob"])["raw"]
        assert got == expected if expected else len(got) == 32
        if action == "GenerateDataKey":
            assert got == base64_plain(body)
    elif action == "Decrypt":
        assert (body["KeyId"], body["KeyVersionId"], base64_plain(body)) == (s.key_id, s.version, b"cell")
    elif action == "CreateKeyVersion":
        assert md["PrimaryKeyVersion"] == body["KeyVersion"]["KeyVersionId"] != s.version
        assert versions(kms, s.key_id) == [s.version, md["PrimaryKeyVersion"]]
    elif action == "UpdateRotationPolicy":
        assert (md["AutomaticRotation"], md["RotationInterval"]) == ("Enabled", f"{30 * DAY}s")
    elif action == "DescribeKey":
        assert body["KeyMetadata"]["KeyState"] == s.state and body["KeyMetadata"]["KeyId"] == s.key_id
    elif action == "ListKeys":
        assert s.key_id in {k["KeyId"] for k in body["Keys"]["Key"]}
    elif action == "DescribeKeyVersion":
        assert body["KeyVersion"]["KeyVersionId"] == s.version and body["KeyVersion"]["KeyId"] == s.key_id
    elif action == "ListKeyVersions":
        assert [v["KeyVersionId"] for v in body["KeyVersions"]["KeyVersion"]] == ([s.version] if s.version else [])
    elif action == "CreateAlias":
        assert all_aliases(kms)[f"alias/new-{s.key_id}"] == s.key_id
    elif action == "UpdateAlias":
        assert all_aliases(kms)[s.other_alias] == s.key_id
    elif action == "DeleteAlias":
        assert s.alias not in all_aliases(kms)
    elif action == "ListAliases":
        assert {a["AliasName"]: a["KeyId"] for a in body["Aliases"]["Alias"]}[s.alias] == s.key_id
    elif action == "ListAliasesByKeyId":
        assert [a["AliasName"] for a in body["Aliases"]["Alias"]] == [s.alias]
    elif action == "TagResource":
        assert tags(kms, s.key_id) == {"t1": "v1", "t2": "v2"}
    elif action == "UntagResource":
        assert tags(kms, s.key_id) == {}
    elif action == "ListResourceTags":
        assert body["Tags"]["Tag"] == [{"KeyId": s.key_id, "TagKey": "t1", "TagValue": "v1"}]
    changes_state = {"EnableKey", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion"}
    if action not in changes_state:
        assert md["KeyState"] == s.state


def base64_plain(body: dict) -> bytes:
    return base64.b64decode(body["Plaintext"])


@pytest.mark.parametrize("action,state", CELLS, ids=[f"{a}-{s}" for a, s in CELLS])
def test_key_state_table(kms, action, state):
    s = Subject(kms, state)
    expected = TABLE[action][state]
    if action == "DescribeKeyVersion" and state == "PendingImport":
        # Allowed in every state, but a key without material has no version to describe.
        expected = ("Forbidden.KeyVersionNotFound", 404)
    before = snapshot(kms, s)
    status, body = kms.call(action, s.params(action))
    if expected is OK:
        assert status == 200, body
        check_effect(kms, action, s, body)
    else:
        assert (status, body["Code"], body["HttpStatus"]) == (expected[1], expected[0], expected[1]), body
        assert snapshot(kms, s) == before  # a refused call changed nothing


def test_enable_and_disable_are_idempotent(kms):
    key = create_key(kms)
    ok(kms, "EnableKey", {"KeyId": key})
    ok(kms, "EnableKey", {"KeyId": key})
    assert describe(kms, key)["KeyState"] == "Enabled"
    ok(kms, "DisableKey", {"KeyId": key})
    ok(kms, "DisableKey", {"KeyId": key})
    assert describe(kms, key)["KeyState"] == "Disabled"
    ok(kms, "EnableKey", {"KeyId": key})
    assert encrypt(kms, key)["KeyId"] == key


def test_cancel_deletion_returns_to_enabled_not_to_previous_state(kms):
    key = key_in_state(kms, "Disabled")
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "30"})
    md = describe(kms, key)
    assert md["KeyState"] == "PendingDeletion" and md["DeleteDate"]
    ok(kms, "CancelKeyDeletion", {"KeyId": key})
    md = describe(kms, key)
    assert md["KeyState"] == "Enabled" and "DeleteDate" not in md
    err(kms, "CancelKeyDeletion", {"KeyId": key}, *SMF)


def test_material_less_key_after_cancelled_deletion_is_not_usable(kms):
    """An EXTERNAL key scheduled for deletion from PendingImport and cancelled still has no material: it
    returns to PendingImport, and using it is the key-state rejection, never a 404 on a version or a 500."""
    key = key_in_state(kms, "PendingImport")
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "7"})
    ok(kms, "CancelKeyDeletion", {"KeyId": key})
    assert describe(kms, key)["KeyState"] == "PendingImport"
    for action, params in (("Encrypt", {"KeyId": key, "Plaintext": b64(b"x")}),
                           ("GenerateDataKey", {"KeyId": key}),
                           ("GenerateDataKeyWithoutPlaintext", {"KeyId": key})):
        err(kms, action, params, *RPI)


@pytest.mark.parametrize("window", ["6", "31", "x", "", "7.5", "-7"])
def test_pending_window_out_of_range(kms, window):
    key = create_key(kms)
    before = describe(kms, key)
    err(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": window}, "InvalidParameter", 400,
        "PendingWindowInDays")
    assert describe(kms, key) == before


@pytest.mark.parametrize("window", [7, 30])
def test_pending_window_bounds_accepted(kms, window):
    key = create_key(kms)
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": str(window)})
    md = describe(kms, key)
    delete_at = calendar.timegm(time.strptime(md["DeleteDate"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(delete_at - (time.time() + window * DAY)) < 120


def test_pending_window_is_required(kms):
    key = create_key(kms)
    err(kms, "ScheduleKeyDeletion", {"KeyId": key}, "MissingParameter", 400, "PendingWindowInDays")
    assert describe(kms, key)["KeyState"] == "Enabled"


KEY_ACTIONS = ["EnableKey", "DisableKey", "ScheduleKeyDeletion", "CancelKeyDeletion", "UpdateKeyDescription",
               "DescribeKey", "Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "CreateKeyVersion",
               "UpdateRotationPolicy", "DescribeKeyVersion", "ListKeyVersions", "CreateAlias", "UpdateAlias",
               "ListAliasesByKeyId", "TagResource", "UntagResource", "ListResourceTags"]
EXTRA = {"ScheduleKeyDeletion": {"PendingWindowInDays": "7"}, "UpdateKeyDescription": {"Description": "d"},
         "Encrypt": {"Plaintext": b64(b"x")}, "UpdateRotationPolicy": {"EnableAutomaticRotation": "false"},
         "DescribeKeyVersion": {"KeyVersionId": str(uuid.uuid4())}, "CreateAlias": {"AliasName": "alias/nokey"},
         "UpdateAlias": {"AliasName": "alias/nokey"}, "TagResource": {"Tags": tag_json({"a": "b"})},
         "UntagResource": {"TagKeys": '["a"]'}}


@pytest.mark.parametrize("action", KEY_ACTIONS)
def test_unknown_key_and_missing_key_id(kms, action):
    if action == "UpdateAlias":  # the alias must exist for the target check to be reached
        ok(kms, "CreateAlias", {"AliasName": "alias/nokey", "KeyId": create_key(kms)})
    err(kms, action, {"KeyId": str(uuid.uuid4()), **EXTRA.get(action, {})}, "Forbidden.KeyNotFound", 404)
    arn = f"acs:kms:cn-hangzhou:1234567890123456:key/{uuid.uuid4()}"
    err(kms, action, {"KeyId": arn, **EXTRA.get(action, {})}, "Forbidden.KeyNotFound", 404)
    missing = "MissingParameter" if action not in ("TagResource", "UntagResource") else "InvalidParameter"
    err(kms, action, EXTRA.get(action, {}), missing, 400, "KeyId")


def test_reencrypt_refuses_an_unusable_source_key(kms):
    source = create_key(kms)
    blob = encrypt(kms, source, b"x")["CiphertextBlob"]
    dest = create_key(kms)
    ok(kms, "DisableKey", {"KeyId": source})
    err(kms, "ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": dest}, *RD)
    ok(kms, "EnableKey", {"KeyId": source})
    ok(kms, "ScheduleKeyDeletion", {"KeyId": source, "PendingWindowInDays": "7"})
    err(kms, "ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": dest}, *RPD)


def test_update_key_description(kms):
    key = create_key(kms, Description="first")
    ok(kms, "UpdateKeyDescription", {"KeyId": key, "Description": "x" * 8192})
    assert describe(kms, key)["Description"] == "x" * 8192
    err(kms, "UpdateKeyDescription", {"KeyId": key, "Description": "x" * 8193}, "InvalidParameter", 400,
        "Description")
    err(kms, "UpdateKeyDescription", {"KeyId": key}, "MissingParameter", 400, "Description")
    ok(kms, "UpdateKeyDescription", {"KeyId": key, "Description": ""})
    assert describe(kms, key)["Description"] == ""


def test_list_keys_shows_every_state_and_filters_by_state(kms):
    ids = {state: key_in_state(kms, state) for state in STATES}
    body = ok(kms, "ListKeys", {"PageSize": "100"})
    listed = {k["KeyId"]: k["KeyArn"] for k in body["Keys"]["Key"]}
    for key in ids.values():
        assert listed[key] == f"acs:kms:cn-hangzhou:1234567890123456:key/{key}"
    for state, key in ids.items():
        filters = json.dumps([{"Key": "KeyState", "Values": [state]}])
        body = ok(kms, "ListKeys", {"Filters": filters, "PageSize": "100"})
        assert [k["KeyId"] for k in body["Keys"]["Key"]] == [key]
