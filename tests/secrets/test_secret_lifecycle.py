"""Secret deletion and the encryption key behind the values, on both stores (kms-api.md §11.0, §11.3,
§11.9, §16 item 6): recovery windows, what a secret in its window refuses, RestoreSecret, force
deletion, the DeleteExpiredSecrets timer ("now" = trigger time, idempotent), and reads failing while
the encryption key is disabled, pending deletion or past its deletion date."""

from __future__ import annotations

import base64
import json
import time

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.secrets.helpers import (
    ARN_PREFIX,
    DAY,
    SCOPE,
    create,
    create_key,
    describe,
    edit_key,
    edit_secret,
    err,
    ok,
    parse_iso,
    put,
    refused,
    secret_row,
    stages,
    unique,
    value,
    value_rows,
    versions,
)

WINDOW = ("Rejected.ResourceInDeleteWindow", 409)
NOT_FOUND = ("Forbidden.ResourceNotFound", 404)


def listed(kms) -> dict[str, dict]:
    return {s["SecretName"]: s for s in ok(kms, "ListSecrets", {"PageSize": "100"})["SecretList"]["Secret"]}


def test_delete_with_default_window_then_restore(kms):
    name, data = create(kms)
    put(kms, name, "v1", "d1")
    before = time.time()
    body = ok(kms, "DeleteSecret", {"SecretName": name})
    planned = parse_iso(body["PlannedDeleteTime"])
    assert body["SecretName"] == name and abs(planned - (before + 30 * DAY)) < 120
    assert describe(kms, name)["PlannedDeleteTime"] == body["PlannedDeleteTime"]
    assert listed(kms)[name]["PlannedDeleteTime"] == body["PlannedDeleteTime"]
    assert versions(kms, name) == {"v0": ["ACSPrevious"], "v1": ["ACSCurrent"]}  # still listable
    in_window = [
        ("UpdateSecret", {"Description": "x"}),
        ("UpdateSecretVersionStage", {"VersionStage": "ACSCurrent", "MoveToVersion": "v0"}),
        ("DeleteSecret", {}),
        ("DeleteSecret", {"RecoveryWindowInDays": "7"}),
        ("DeleteSecret", {"ForceDeleteWithoutRecovery": "true"}),
        ("PutSecretValue", {"VersionId": "v2", "SecretData": "d2"}),
        ("GetSecretValue", {}),
        ("GetSecretValue", {"VersionId": "v0"}),
    ]
    for action, params in in_window:
        refused(kms, name, action, {"SecretName": name, **params}, *WINDOW)
    refused(kms, name, "CreateSecret", {"SecretName": name, "VersionId": "n0", "SecretData": "new"}, *WINDOW)
    assert ok(kms, "RestoreSecret", {"SecretName": name})["SecretName"] == name
    assert "PlannedDeleteTime" not in describe(kms, name) and "PlannedDeleteTime" not in listed(kms)[name]
    assert value(kms, name)["SecretData"] == "d1" and value(kms, name, VersionId="v0")["SecretData"] == data
    refused(kms, name, "RestoreSecret", {"SecretName": name}, "Rejected.ResourceInUse", 409)
    err(kms, "RestoreSecret", {"SecretName": "no-such"}, *NOT_FOUND)
    err(kms, "DeleteSecret", {"SecretName": "no-such"}, *NOT_FOUND)
    # The ARN works for both.
    ok(kms, "DeleteSecret", {"SecretName": ARN_PREFIX + name, "RecoveryWindowInDays": "7"})
    ok(kms, "RestoreSecret", {"SecretName": ARN_PREFIX + name})
    put(kms, name, "v2", "d2")
    assert stages(kms, name) == {"ACSCurrent": "v2", "ACSPrevious": "v1"}


def test_recovery_window_rules(kms):
    for days in ("7", "30", "18"):
        name, _ = create(kms)
        before = time.time()
        body = ok(kms, "DeleteSecret", {"SecretName": name, "RecoveryWindowInDays": days})
        assert abs(parse_iso(body["PlannedDeleteTime"]) - (before + int(days) * DAY)) < 120
    name, _ = create(kms)
    for days in ("6", "31", "0", "-7", "abc", "7.5"):
        refused(kms, name, "DeleteSecret", {"SecretName": name, "RecoveryWindowInDays": days},
                "InvalidParameter", 400, "RecoveryWindowInDays")
    for force in ("true", "True"):  # a window and force deletion exclude each other
        refused(kms, name, "DeleteSecret", {"SecretName": name, "ForceDeleteWithoutRecovery": force,
                                            "RecoveryWindowInDays": "7"}, "InvalidParameter", 400)
    refused(kms, name, "DeleteSecret", {"SecretName": name, "ForceDeleteWithoutRecovery": "yes"},
            "InvalidParameter", 400, "ForceDeleteWithoutRecovery")
    # ForceDeleteWithoutRecovery=false is the same as leaving it out: a 30-day window.
    body = ok(kms, "DeleteSecret", {"SecretName": name, "ForceDeleteWithoutRecovery": "false"})
    assert abs(parse_iso(body["PlannedDeleteTime"]) - (time.time() + 30 * DAY)) < 120


def test_force_delete_is_immediate_and_final(kms):
    name, _ = create(kms)
    put(kms, name, "v1", "d1")
    body = ok(kms, "DeleteSecret", {"SecretName": name, "ForceDeleteWithoutRecovery": "True"})
    assert body["SecretName"] == name and abs(parse_iso(body["PlannedDeleteTime"]) - time.time()) < 120
    for action in ("DescribeSecret", "GetSecretValue", "ListSecretVersionIds", "RestoreSecret", "DeleteSecret"):
        err(kms, action, {"SecretName": name}, *NOT_FOUND)
    assert secret_row(kms.store, name) is None and value_rows(kms.store, name) == {}
    assert name not in listed(kms)
    create(kms, name, data="reborn", vid="n0")  # the name is free again at once, with nothing of the old
    assert versions(kms, name) == {"n0": ["ACSCurrent"]} and value(kms, name)["SecretData"] == "reborn"
    err(kms, "GetSecretValue", {"SecretName": name, "VersionId": "v1"}, *NOT_FOUND)


def test_timer_deletes_secrets_past_their_window(kms):
    now = time.time()
    week, month, live = unique("week"), unique("month"), unique("live")
    for name in (week, month, live):
        create(kms, name)
        put(kms, name, "v1", "d1")
    ok(kms, "DeleteSecret", {"SecretName": week, "RecoveryWindowInDays": "7"})
    ok(kms, "DeleteSecret", {"SecretName": month})
    result = kms.fire("DeleteExpiredSecrets", now + 6 * DAY)
    assert result["Deleted"] == [] and result["Failed"] == [] and result["Scanned"] == 3
    result = kms.fire("DeleteExpiredSecrets", now + 8 * DAY)
    assert result["Deleted"] == [week] and result["Failed"] == []
    assert secret_row(kms.store, week) is None and value_rows(kms.store, week) == {}
    assert secret_row(kms.store, month) is not None and len(value_rows(kms.store, month)) == 2
    assert kms.fire("DeleteExpiredSecrets", now + 8 * DAY)["Deleted"] == []  # idempotent
    err(kms, "DescribeSecret", {"SecretName": week}, *NOT_FOUND)
    assert describe(kms, month)["PlannedDeleteTime"]
    result = kms.fire("DeleteExpiredSecrets", now + 31 * DAY)
    assert result["Deleted"] == [month] and result["Failed"] == []
    assert secret_row(kms.store, month) is None and value_rows(kms.store, month) == {}
    assert set(listed(kms)) == {live} and value(kms, live)["SecretData"] == "d1"
    assert len(value_rows(kms.store, live)) == 2
    create(kms, week, data="again")
    assert value(kms, week)["SecretData"] == "again"


def test_secret_past_its_window_is_gone_before_the_timer_runs(kms):
    name, _ = create(kms)
    put(kms, name, "v1", "d1")
    ok(kms, "DeleteSecret", {"SecretName": name, "RecoveryWindowInDays": "7"})
    edit_secret(kms.store, name, planned_delete_time=int(time.time()) - 60)  # the window has passed
    for action in ("DescribeSecret", "GetSecretValue", "ListSecretVersionIds", "RestoreSecret"):
        err(kms, action, {"SecretName": name}, *NOT_FOUND)
    assert name not in listed(kms)
    create(kms, name, data="fresh", vid="n0")
    assert versions(kms, name) == {"n0": ["ACSCurrent"]} and set(value_rows(kms.store, name)) == {"n0"}
    assert kms.fire("DeleteExpiredSecrets", time.time())["Deleted"] == []  # the new secret is live
    assert value(kms, name)["SecretData"] == "fresh"


def test_reads_follow_the_encryption_key_state(kms):
    key = create_key(kms)
    name, data = create(kms, EncryptionKeyId=key)
    ok(kms, "DisableKey", {"KeyId": key})
    err(kms, "GetSecretValue", {"SecretName": name}, "Rejected.Disabled", 409)
    refused(kms, name, "PutSecretValue", {"SecretName": name, "VersionId": "v1", "SecretData": "d1"},
            "Rejected.Disabled", 409)
    assert describe(kms, name)["EncryptionKeyId"] == key  # metadata stays readable
    ok(kms, "EnableKey", {"KeyId": key})
    assert value(kms, name)["SecretData"] == data
    put(kms, name, "v1", "d1")
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "7"})
    err(kms, "GetSecretValue", {"SecretName": name}, "Rejected.PendingDeletion", 409)
    ok(kms, "CancelKeyDeletion", {"KeyId": key})
    assert value(kms, name)["SecretData"] == "d1" and value(kms, name, VersionId="v0")["SecretData"] == data
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "7"})
    edit_key(kms.store, key, delete_date=int(time.time()) - 60)  # past its deletion date
    err(kms, "GetSecretValue", {"SecretName": name}, "Forbidden.KeyNotFound", 404)
    err(kms, "GetSecretValue", {"SecretName": name, "VersionId": "v0"}, "Forbidden.KeyNotFound", 404)
    refused(kms, name, "PutSecretValue", {"SecretName": name, "VersionId": "v2", "SecretData": "d2"},
            "Forbidden.KeyNotFound", 404)


def test_service_key_cannot_be_turned_off(kms):
    """Every secret made without an EncryptionKeyId depends on the service's own key, so, like a
    service-managed key, it refuses DisableKey and ScheduleKeyDeletion and its secrets stay readable."""
    name, data = create(kms)
    service = describe(kms, name)["EncryptionKeyId"]
    err(kms, "DisableKey", {"KeyId": service}, "Rejected.UnsupportedOperation", 400)
    err(kms, "ScheduleKeyDeletion", {"KeyId": service, "PendingWindowInDays": "7"},
        "Rejected.UnsupportedOperation", 400)
    assert value(kms, name)["SecretData"] == data
    other, _ = create(kms)
    assert describe(kms, other)["EncryptionKeyId"] == service


def test_each_version_is_envelope_encrypted_under_the_secret_key(kms):
    """A value row holds the value under a fresh data key, and the data key encrypted by the
    secret's EncryptionKeyId (context: secret name and version id): Decrypt gives it back."""
    key = create_key(kms)
    name, data = create(kms, EncryptionKeyId=key)
    put(kms, name, "v1", "second value")
    rows = value_rows(kms.store, name)
    assert rows["v0"]["data_key"] != rows["v1"]["data_key"]
    for vid, plain in (("v0", data), ("v1", "second value")):
        row = rows[vid]
        assert row["key_id"] == key and plain not in json.dumps(row)
        ctx = json.dumps({"SecretName": name, "VersionId": vid})
        body = ok(kms, "Decrypt", {"CiphertextBlob": row["data_key"], "EncryptionContext": ctx})
        assert body["KeyId"] == key
        data_key = base64.b64decode(body["Plaintext"])
        opened = AESGCM(data_key).decrypt(base64.b64decode(row["iv"]), base64.b64decode(row["value"]),
                                          f"secret/{name}/{vid}".encode())
        assert opened.decode() == plain
        wrong = json.dumps({"SecretName": name, "VersionId": "other"})
        status, _ = kms.call("Decrypt", {"CiphertextBlob": row["data_key"], "EncryptionContext": wrong})
        assert status == 400
    assert kms.store.get("secrets", SCOPE, name).data["encryption_key_id"] == key


def test_a_secret_created_again_under_its_old_name_never_reads_the_old_value(kms):
    """This instance remembers values it decrypted; a new secret of the same name and version id
    (after a force delete) must not be served the old one."""
    name, first = create(kms, vid="v1")
    assert value(kms, name)["SecretData"] == first  # now in this instance's memory
    ok(kms, "DeleteSecret", {"SecretName": name, "ForceDeleteWithoutRecovery": "true"})
    _, second = create(kms, name=name, data="a different value", vid="v1")
    assert value(kms, name)["SecretData"] == "a different value" == second


def test_a_remembered_value_still_needs_a_usable_key(kms):
    key = create_key(kms)
    name, data = create(kms, EncryptionKeyId=key)
    assert value(kms, name)["SecretData"] == data
    ok(kms, "DisableKey", {"KeyId": key})
    err(kms, "GetSecretValue", {"SecretName": name}, "Rejected.Disabled", 409)
    ok(kms, "EnableKey", {"KeyId": key})
    assert value(kms, name)["SecretData"] == data
