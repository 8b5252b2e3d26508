"""Versions and rotation (kms-api.md §5, §8) and the two timer jobs: RotateKeys and DeleteExpiredKeys.
"Now" of a job is its trigger time, so the tests fire them at future dates; races are run with
threads that each hold their own store object on the same data."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest

from tests.keys.helpers import (
    DAY,
    SCOPE,
    Rendezvous,
    alias_rows,
    all_aliases,
    create_key,
    decrypt,
    describe,
    edit_key,
    encrypt,
    err,
    job_context,
    key_row,
    make_overdue,
    ok,
    run_together,
    tag_json,
    tags,
    version_rows,
    versions,
)
from tests.support import epoch
from tests.support import timestamp as iso


def rotating_key(kms, interval: str = "7d", **params) -> str:
    return create_key(kms, EnableAutomaticRotation="true", RotationInterval=interval, **params)


def test_old_blobs_decrypt_after_three_rotations(kms):
    key = rotating_key(kms)
    now = time.time()
    blobs = {}
    v1 = describe(kms, key)["PrimaryKeyVersion"]
    blobs[v1] = encrypt(kms, key, b"one", {"v": "1"})["CiphertextBlob"]
    v2 = ok(kms, "CreateKeyVersion", {"KeyId": key})["KeyVersion"]["KeyVersionId"]
    blobs[v2] = encrypt(kms, key, b"two", {"v": "2"})["CiphertextBlob"]
    assert kms.fire("RotateKeys", now + 8 * DAY)["Rotated"] == [key]
    v3 = describe(kms, key)["PrimaryKeyVersion"]
    blobs[v3] = encrypt(kms, key, b"three", {"v": "3"})["CiphertextBlob"]
    result = kms.fire("RotateKeys", now + 16 * DAY)
    assert (result["Rotated"], result["Failed"]) == ([key], [])
    v4 = describe(kms, key)["PrimaryKeyVersion"]
    assert len({v1, v2, v3, v4}) == 4
    assert kms.fire("RotateKeys", now + 16 * DAY)["Rotated"] == []  # idempotent
    assert versions(kms, key) == [v1, v2, v3, v4]  # oldest first
    for (vid, blob), (plain, n) in zip(blobs.items(), ((b"one", "1"), (b"two", "2"), (b"three", "3")), strict=True):
        out = decrypt(kms, blob, {"v": n})
        assert (out["raw"], out["KeyVersionId"], out["KeyId"]) == (plain, vid, key)
    newest = encrypt(kms, key, b"four")
    assert newest["KeyVersionId"] == v4 and decrypt(kms, newest["CiphertextBlob"])["KeyVersionId"] == v4
    md = describe(kms, key)
    assert md["LastRotationDate"] == iso(now + 16 * DAY)
    assert md["NextRotationDate"] == iso(int(now + 16 * DAY) + 7 * DAY)
    described = ok(kms, "DescribeKeyVersion", {"KeyId": key, "KeyVersionId": v3})["KeyVersion"]
    assert described == {"KeyId": key, "KeyVersionId": v3, "CreationDate": iso(now + 8 * DAY)}
    err(kms, "DescribeKeyVersion", {"KeyId": key, "KeyVersionId": str(uuid.uuid4())},
        "Forbidden.KeyVersionNotFound", 404)
    page = ok(kms, "ListKeyVersions", {"KeyId": key, "PageSize": "3", "PageNumber": "2"})
    assert page["TotalCount"] == 4 and [v["KeyVersionId"] for v in page["KeyVersions"]["KeyVersion"]] == [v4]


def test_rotation_fields_follow_key_state(kms):
    plain = describe(kms, create_key(kms))
    assert plain["AutomaticRotation"] == "Disabled" and plain["LastRotationDate"] == plain["CreationDate"]
    assert "NextRotationDate" not in plain and "RotationInterval" not in plain

    key = rotating_key(kms, "30d")
    md = describe(kms, key)
    assert (md["AutomaticRotation"], md["RotationInterval"]) == ("Enabled", f"{30 * DAY}s")
    assert epoch(md["NextRotationDate"]) == epoch(md["LastRotationDate"]) + 30 * DAY
    ok(kms, "DisableKey", {"KeyId": key})
    suspended = describe(kms, key)
    assert suspended["AutomaticRotation"] == "Suspended"
    assert (suspended["RotationInterval"], suspended["NextRotationDate"]) == (md["RotationInterval"],
                                                                              md["NextRotationDate"])
    later = time.time() + 31 * DAY
    assert kms.fire("RotateKeys", later)["Rotated"] == []  # no rotation while Disabled
    assert len(versions(kms, key)) == 1
    ok(kms, "EnableKey", {"KeyId": key})
    assert describe(kms, key)["AutomaticRotation"] == "Enabled"
    assert kms.fire("RotateKeys", later)["Rotated"] == [key]  # resumes once enabled
    assert len(versions(kms, key)) == 2 and describe(kms, key)["LastRotationDate"] == iso(later)
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "30"})
    assert describe(kms, key)["AutomaticRotation"] == "Suspended"
    assert kms.fire("RotateKeys", later + 31 * DAY)["Rotated"] == []
    ok(kms, "CancelKeyDeletion", {"KeyId": key})
    ok(kms, "UpdateRotationPolicy", {"KeyId": key, "EnableAutomaticRotation": "false"})
    off = describe(kms, key)
    assert off["AutomaticRotation"] == "Disabled" and "NextRotationDate" not in off and "RotationInterval" not in off
    assert kms.fire("RotateKeys", later + 400 * DAY)["Rotated"] == []


@pytest.mark.parametrize("interval,seconds", [("7d", 7 * DAY), ("168h", 7 * DAY), ("10080m", 7 * DAY),
                                              ("604800s", 7 * DAY), ("604800", 7 * DAY), ("730d", 730 * DAY),
                                              ("17520h", 730 * DAY)])
def test_rotation_interval_units(kms, interval, seconds):
    key = create_key(kms)
    ok(kms, "UpdateRotationPolicy", {"KeyId": key, "EnableAutomaticRotation": "True", "RotationInterval": interval})
    md = describe(kms, key)
    assert (md["AutomaticRotation"], md["RotationInterval"]) == ("Enabled", f"{seconds}s")
    assert epoch(md["NextRotationDate"]) == epoch(md["LastRotationDate"]) + seconds
    created = describe(kms, rotating_key(kms, interval))
    assert created["RotationInterval"] == f"{seconds}s"


@pytest.mark.parametrize("interval", ["6d", "731d", "abc", "7x", "-7d", "1.5d", "604799s", "604799", "d", "",
                                      "10079m", "63072001s"])
def test_rotation_interval_rejected(kms, interval):
    key = create_key(kms)
    before = describe(kms, key)
    err(kms, "UpdateRotationPolicy", {"KeyId": key, "EnableAutomaticRotation": "true", "RotationInterval": interval},
        "InvalidParameter", 400, "RotationInterval")
    assert describe(kms, key) == before
    err(kms, "CreateKey", {"EnableAutomaticRotation": "true", "RotationInterval": interval}, "InvalidParameter", 400,
        "RotationInterval")


def test_rotation_policy_parameters(kms):
    key = create_key(kms)
    err(kms, "UpdateRotationPolicy", {"KeyId": key, "EnableAutomaticRotation": "true"}, "MissingParameter", 400,
        "RotationInterval")
    err(kms, "UpdateRotationPolicy", {"KeyId": key, "RotationInterval": "7d"}, "MissingParameter", 400,
        "EnableAutomaticRotation")
    err(kms, "UpdateRotationPolicy", {"KeyId": key, "EnableAutomaticRotation": "yes", "RotationInterval": "7d"},
        "InvalidParameter", 400, "EnableAutomaticRotation")
    err(kms, "CreateKey", {"EnableAutomaticRotation": "true"}, "MissingParameter", 400, "RotationInterval")
    assert describe(kms, key)["AutomaticRotation"] == "Disabled"


def test_rotation_refused_for_external_keys(kms):
    err(kms, "CreateKey", {"Origin": "EXTERNAL", "EnableAutomaticRotation": "true", "RotationInterval": "7d"},
        "UnsupportedOperation", 400)
    key = create_key(kms, Origin="EXTERNAL")
    edit_key(kms.store, key, state="Enabled")  # as if its material had been imported
    before = describe(kms, key)
    err(kms, "UpdateRotationPolicy", {"KeyId": key, "EnableAutomaticRotation": "true", "RotationInterval": "7d"},
        "Rejected.UnsupportedOperation", 400)
    err(kms, "CreateKeyVersion", {"KeyId": key}, "Rejected.UnsupportedOperation", 400)
    assert describe(kms, key) == before and versions(kms, key) == []


def test_past_next_rotation_date_rotates_immediately(kms):
    key = create_key(kms)
    v1 = describe(kms, key)["PrimaryKeyVersion"]
    edit_key(kms.store, key, last_rotation_date=int(time.time()) - 40 * DAY)
    ok(kms, "UpdateRotationPolicy", {"KeyId": key, "EnableAutomaticRotation": "true", "RotationInterval": "60d"})
    assert versions(kms, key) == [v1]  # next date (now + 20 days) still ahead
    ok(kms, "UpdateRotationPolicy", {"KeyId": key, "EnableAutomaticRotation": "true", "RotationInterval": "30d"})
    md = describe(kms, key)
    assert md["PrimaryKeyVersion"] != v1 and versions(kms, key) == [v1, md["PrimaryKeyVersion"]]
    assert abs(epoch(md["LastRotationDate"]) - time.time()) < 120
    assert epoch(md["NextRotationDate"]) == epoch(md["LastRotationDate"]) + 30 * DAY


@pytest.mark.parametrize("forced", [True, False], ids=["rendezvous", "free"])
def test_concurrent_rotation_makes_exactly_one_version(kms, new_store, forced):
    from alikms.functions.jobs.rotate_keys import rotate_keys

    keys = [rotating_key(kms) for _ in range(3)]
    originals = {k: describe(kms, k)["PrimaryKeyVersion"] for k in keys}
    when = time.time() + 8 * DAY
    n = 4
    barrier = threading.Barrier(n)
    stores = [Rendezvous(new_store(), barrier, "put_new", "key_versions") if forced else new_store()
              for _ in range(n)]
    results = run_together([lambda s=s: rotate_keys(job_context(s, when), {}) for s in stores])
    for r in results:
        assert not isinstance(r, BaseException), r
        assert r["Failed"] == []
    rotated = sorted(k for r in results for k in r["Rotated"])
    assert rotated == sorted(keys)  # each key rotated by exactly one instance
    for k in keys:
        ids = versions(kms, k)
        assert len(ids) == 2 and ids[0] == originals[k]
        assert describe(kms, k)["PrimaryKeyVersion"] == ids[1]
        assert len(version_rows(kms.store, k)) == 2
    assert all(r["Rotated"] == [] for r in run_together([lambda s=s: rotate_keys(job_context(s, when), {})
                                                         for s in stores[:2]]))


def test_concurrent_create_key_version_calls_each_get_a_version(kms, new_store, per_thread_store):
    key = create_key(kms)
    stores = [new_store() for _ in range(3)]

    def one(store):
        per_thread_store(store)
        return kms.call("CreateKeyVersion", {"KeyId": key})

    results = run_together([lambda s=s: one(s) for s in stores])
    assert all(status == 200 for status, _ in results), results
    made = {body["KeyVersion"]["KeyVersionId"] for _, body in results}
    assert len(made) == 3 and len(versions(kms, key)) == 4
    assert describe(kms, key)["PrimaryKeyVersion"] == versions(kms, key)[-1]


def doomed_key(kms) -> tuple[str, str]:
    """A key with 2 versions, 2 aliases and tags, scheduled for deletion in 7 days; and a blob."""
    key = create_key(kms, Tags=tag_json({"env": "doomed"}))
    blob = encrypt(kms, key, b"bye")["CiphertextBlob"]
    ok(kms, "CreateKeyVersion", {"KeyId": key})
    for name in ("a", "b"):
        ok(kms, "CreateAlias", {"AliasName": f"alias/{name}-{key}", "KeyId": key})
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "7"})
    return key, blob


def assert_deleted(kms, key: str, blob: str) -> None:
    assert key_row(kms.store, key) is None and version_rows(kms.store, key) == []
    assert key not in alias_rows(kms.store).values()
    err(kms, "DescribeKey", {"KeyId": key}, "Forbidden.KeyNotFound", 404)
    err(kms, "Decrypt", {"CiphertextBlob": blob}, "Forbidden.KeyNotFound", 404)  # as for any unknown key


def test_deletion_sweep_removes_key_versions_aliases_tags(kms):
    key, blob = doomed_key(kms)
    keeper = create_key(kms, Tags=tag_json({"env": "keep"}))
    ok(kms, "CreateAlias", {"AliasName": "alias/keeper", "KeyId": keeper})
    later = create_key(kms)
    ok(kms, "ScheduleKeyDeletion", {"KeyId": later, "PendingWindowInDays": "30"})
    assert kms.fire("DeleteExpiredKeys", time.time() + 6 * DAY)["Deleted"] == []
    assert describe(kms, key)["KeyState"] == "PendingDeletion"
    result = kms.fire("DeleteExpiredKeys", time.time() + 8 * DAY)
    assert (result["Deleted"], result["Failed"]) == ([key], [])
    assert_deleted(kms, key, blob)
    assert alias_rows(kms.store) == {"alias/keeper": keeper}
    assert tags(kms, keeper) == {"env": "keep"} and describe(kms, later)["KeyState"] == "PendingDeletion"
    by_tag = ok(kms, "ListKeys", {"Filters": json.dumps([{"Key": "TagValue", "Values": ["doomed"]}])})
    assert by_tag["TotalCount"] == 0
    # The alias names are free again.
    ok(kms, "CreateAlias", {"AliasName": f"alias/a-{key}", "KeyId": keeper})
    again = kms.fire("DeleteExpiredKeys", time.time() + 8 * DAY)  # idempotent
    assert (again["Deleted"], again["Failed"]) == ([], [])
    assert all_aliases(kms)[f"alias/a-{key}"] == keeper


def test_overdue_key_is_gone_before_the_sweep(kms):
    key, blob = doomed_key(kms)
    other = create_key(kms)
    make_overdue(kms.store, key)
    for action, params in (("DescribeKey", {"KeyId": key}), ("CancelKeyDeletion", {"KeyId": key}),
                           ("Encrypt", {"KeyId": key, "Plaintext": "eA=="}), ("ListKeyVersions", {"KeyId": key}),
                           ("ListResourceTags", {"KeyId": key}), ("ListAliasesByKeyId", {"KeyId": key}),
                           ("ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "7"})):
        err(kms, action, params, "Forbidden.KeyNotFound", 404)
    err(kms, "Decrypt", {"CiphertextBlob": blob}, "Forbidden.KeyNotFound", 404)
    assert key not in {k["KeyId"] for k in ok(kms, "ListKeys", {"PageSize": "100"})["Keys"]["Key"]}
    assert key not in all_aliases(kms).values()
    # Its aliases are gone with it: the names can be taken.
    ok(kms, "CreateAlias", {"AliasName": f"alias/b-{key}", "KeyId": other})
    assert all_aliases(kms)[f"alias/b-{key}"] == other
    result = kms.fire("DeleteExpiredKeys", time.time())
    assert (result["Deleted"], result["Failed"]) == ([key], [])
    assert key_row(kms.store, key) is None and version_rows(kms.store, key) == []
    assert alias_rows(kms.store) == {f"alias/b-{key}": other}


def test_two_sweeps_at_once(kms, new_store):
    from alikms.functions.jobs.delete_expired_keys import delete_expired_keys

    doomed = [doomed_key(kms) for _ in range(4)]
    survivor = create_key(kms)
    when = time.time() + 8 * DAY
    barrier = threading.Barrier(2)
    stores = [Rendezvous(new_store(), barrier, "scan_all", "keys") for _ in range(2)]
    results = run_together([lambda s=s: delete_expired_keys(job_context(s, when), {}) for s in stores])
    for r in results:
        assert not isinstance(r, BaseException), r
        assert r["Failed"] == []
    deleted = [k for r in results for k in r["Deleted"]]
    assert len(deleted) == len(set(deleted))  # nobody claims a key twice
    leftover = kms.fire("DeleteExpiredKeys", when)  # whatever a lost race left, the next run finishes
    assert leftover["Failed"] == [] and sorted(deleted + leftover["Deleted"]) == sorted(k for k, _ in doomed)
    for key, blob in doomed:
        assert_deleted(kms, key, blob)
    assert describe(kms, survivor)["KeyState"] == "Enabled"


CORRUPT = "00000000-0000-4000-8000-000000000000"  # sorts first in the sweep


def test_a_failing_key_does_not_stop_the_deletion_sweep(kms):
    doomed = [doomed_key(kms) for _ in range(2)]
    kms.store.put_new("keys", SCOPE, CORRUPT, {"key_id": CORRUPT, "state": "PendingDeletion",
                                               "delete_date": "not-a-date"})
    result = kms.fire("DeleteExpiredKeys", time.time() + 8 * DAY)
    assert sorted(result["Deleted"]) == sorted(k for k, _ in doomed)
    assert [f["KeyId"] for f in result["Failed"]] == [CORRUPT]
    for key, blob in doomed:
        assert_deleted(kms, key, blob)


def test_a_failing_key_does_not_stop_the_rotation_sweep(kms):
    keys = [rotating_key(kms) for _ in range(2)]
    kms.store.put_new("keys", SCOPE, CORRUPT, {"key_id": CORRUPT, "state": "Enabled", "automatic_rotation": True,
                                               "last_rotation_date": "not-a-date", "rotation_interval": 604800})
    result = kms.fire("RotateKeys", time.time() + 8 * DAY)
    assert sorted(result["Rotated"]) == sorted(keys)
    assert [f["KeyId"] for f in result["Failed"]] == [CORRUPT]
    assert all(len(versions(kms, k)) == 2 for k in keys)


def test_a_store_failure_on_one_key_is_reported_and_the_sweep_goes_on(kms, monkeypatch):
    doomed = [doomed_key(kms) for _ in range(3)]
    victim = sorted(k for k, _ in doomed)[0]
    real_delete = type(kms.store).delete

    def flaky(self, table, pk, sk="", expected_rev=None):
        if table == "key_versions" and pk.endswith(victim):
            raise RuntimeError("store down")
        return real_delete(self, table, pk, sk, expected_rev)

    monkeypatch.setattr(type(kms.store), "delete", flaky)
    result = kms.fire("DeleteExpiredKeys", time.time() + 8 * DAY)
    assert result["Failed"] == [{"KeyId": victim, "Error": "RuntimeError"}]
    assert sorted(result["Deleted"]) == sorted(k for k, _ in doomed if k != victim)
    monkeypatch.setattr(type(kms.store), "delete", real_delete)
    assert kms.fire("DeleteExpiredKeys", time.time() + 8 * DAY)["Deleted"] == [victim]
    for key, blob in doomed:
        assert_deleted(kms, key, blob)
