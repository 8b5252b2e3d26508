"""Time the test controls: `advance` moves the service's clock and runs the timer jobs that fall due,
at the ticks of their own schedules, exactly as the deployed service would have by then."""

from __future__ import annotations

import base64
import calendar
import os
import time

import pytest
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from alikms.runner.cron import Schedule
from alikms.shared import registry
from alikms.testing import _timers, mock_kms
from tests.support import timestamp as iso

START = "2024-01-01T00:03:00Z"  # three minutes past a RotateKeys tick, two before a DeleteExpiredKeys tick
T0 = calendar.timegm(time.strptime(START, "%Y-%m-%dT%H:%M:%SZ"))
DAY = 86400


def client() -> Client:
    return Client(Config(access_key_id="LTAI5tClock", access_key_secret="x", region_id="cn-hangzhou"))


def rotating_key(kms) -> str:
    return client().create_key(models.CreateKeyRequest(enable_automatic_rotation=True,
                                                       rotation_interval="604800s")).body.key_metadata.key_id


def version_dates(key_id: str) -> list[str]:
    listed = client().list_key_versions(models.ListKeyVersionsRequest(key_id=key_id, page_size=100)).body
    return sorted(v.creation_date for v in listed.key_versions.key_version)


def test_rotation_makes_a_version_per_interval_at_the_jobs_ticks():
    with mock_kms(now=START) as kms:
        key_id = rotating_key(kms)
        blob = client().encrypt(models.EncryptRequest(key_id=key_id, plaintext="b2xk")).body.ciphertext_blob
        runs = kms.advance(days=30)
        assert [job for job, _, _ in runs] == ["RotateKeys"] * 4
        assert version_dates(key_id) == [START, "2024-01-08T00:10:00Z", "2024-01-15T00:10:00Z",
                                         "2024-01-22T00:10:00Z", "2024-01-29T00:10:00Z"]
        meta = client().describe_key(models.DescribeKeyRequest(key_id=key_id)).body.key_metadata
        assert meta.last_rotation_date == "2024-01-29T00:10:00Z"
        assert meta.next_rotation_date == "2024-02-05T00:10:00Z"
        assert client().decrypt(models.DecryptRequest(ciphertext_blob=blob)).body.plaintext == "b2xk"
        assert kms.now == T0 + 30 * DAY


def test_one_long_jump_equals_many_small_steps_and_every_tick():
    """The deadline-driven jump against two references: many small advances, and firing every job
    at every tick of its schedule, as the deployed timers do."""
    results = []
    for mode in ("jump", "steps", "every tick"):
        with mock_kms(now=START) as kms:
            rotating = rotating_key(kms)
            doomed = client().create_key(models.CreateKeyRequest()).body.key_metadata.key_id
            client().schedule_key_deletion(models.ScheduleKeyDeletionRequest(key_id=doomed, pending_window_in_days=7))
            if mode == "jump":
                kms.advance(days=16)
            elif mode == "steps":
                for _ in range(16 * 24):
                    kms.advance(hours=1)
            else:
                state = kms._live
                schedules = [(job, Schedule.parse(job.cron)) for job in registry.JOBS]
                for minute in range(T0 - T0 % 60 + 60, T0 + 16 * DAY + 1, 60):  # every job fires at second 0
                    for job, schedule in schedules:
                        if schedule.matches(minute):
                            state.run_job(job, minute)
                state.clock.offset += 16 * DAY
            results.append((version_dates(rotating), kms.store.get("keys", f"{kms.account_id}/cn-hangzhou", doomed)))
    assert results[0] == results[1] == results[2]
    assert results[0][0] == [START, "2024-01-08T00:10:00Z", "2024-01-15T00:10:00Z"]
    assert results[0][1] is None  # swept


def test_deletion_after_the_pending_window():
    with mock_kms(now=START) as kms:
        key_id = client().create_key(models.CreateKeyRequest()).body.key_metadata.key_id
        client().create_alias(models.CreateAliasRequest(alias_name="alias/doomed", key_id=key_id))
        client().schedule_key_deletion(models.ScheduleKeyDeletionRequest(key_id=key_id, pending_window_in_days=7))
        assert kms.advance(days=6) == []
        assert client().describe_key(models.DescribeKeyRequest(key_id=key_id)).body.key_metadata.key_state \
            == "PendingDeletion"
        assert kms.advance(days=1) == []  # the deadline has come, the hourly sweep (minute 5) not yet
        with pytest.raises(ClientException) as err:
            client().describe_key(models.DescribeKeyRequest(key_id=key_id))
        assert err.value.code == "Forbidden.KeyNotFound"  # already gone to callers
        assert kms.store.get("keys", f"{kms.account_id}/cn-hangzhou", key_id) is not None
        runs = kms.advance(minutes=2)
        assert [(job, iso(tick), result["Deleted"]) for job, tick, result in runs] == [
            ("DeleteExpiredKeys", "2024-01-08T00:05:00Z", [key_id])]
        assert kms.store.get("keys", f"{kms.account_id}/cn-hangzhou", key_id) is None
        assert client().list_aliases(models.ListAliasesRequest()).body.total_count == 0


def test_secret_recovery_window():
    with mock_kms(now=START) as kms:
        c = client()
        for name in ("kept", "dropped"):
            c.create_secret(models.CreateSecretRequest(secret_name=name, version_id="v1", secret_data=name))
            c.delete_secret(models.DeleteSecretRequest(secret_name=name, recovery_window_in_days=7))
        kms.advance(days=3)
        c.restore_secret(models.RestoreSecretRequest(secret_name="kept"))
        runs = kms.advance(days=5)
        assert [(job, result["Deleted"]) for job, _, result in runs] == [("DeleteExpiredSecrets", ["dropped"])]
        assert c.get_secret_value(models.GetSecretValueRequest(secret_name="kept")).body.secret_data == "kept"
        with pytest.raises(ClientException) as err:
            c.get_secret_value(models.GetSecretValueRequest(secret_name="dropped"))
        assert err.value.code == "Forbidden.ResourceNotFound"


def test_imported_material_expires():
    with mock_kms(now=START) as kms:
        c = client()
        key_id = c.create_key(models.CreateKeyRequest(origin="EXTERNAL")).body.key_metadata.key_id
        params = c.get_parameters_for_import(models.GetParametersForImportRequest(
            key_id=key_id, wrapping_algorithm="RSAES_OAEP_SHA_256", wrapping_key_spec="RSA_2048")).body
        public = serialization.load_der_public_key(base64.b64decode(params.public_key))
        wrapped = public.encrypt(os.urandom(32), padding.OAEP(mgf=padding.MGF1(hashes.SHA256()),
                                                             algorithm=hashes.SHA256(), label=None))
        c.import_key_material(models.ImportKeyMaterialRequest(
            key_id=key_id, import_token=params.import_token, encrypted_key_material=base64.b64encode(wrapped).decode(),
            key_material_expire_unix=T0 + DAY))
        blob = c.encrypt(models.EncryptRequest(key_id=key_id, plaintext="aGk=")).body.ciphertext_blob
        runs = kms.advance(days=1, minutes=5)
        assert ("ExpireKeyMaterial", T0 + DAY + 120) in [(job, tick) for job, tick, _ in runs]
        meta = c.describe_key(models.DescribeKeyRequest(key_id=key_id)).body.key_metadata
        assert meta.key_state == "PendingImport"
        with pytest.raises(ClientException) as err:
            c.decrypt(models.DecryptRequest(ciphertext_blob=blob))
        assert err.value.code == "Rejected.PendingImport"
        assert kms.store.count("key_versions", f"{kms.account_id}/cn-hangzhou/{key_id}") == 0
        # the import token (valid 24 hours) was swept by the same job
        assert kms.store.count("import_tokens", f"{kms.account_id}/cn-hangzhou/{key_id}") == 0


def test_the_clock_follows_wall_time_unless_frozen():
    with mock_kms() as kms:
        before = time.time()
        assert before - 1 <= kms.now <= time.time() + 1
        kms.advance(hours=2)
        assert kms.now >= before + 7200
    with mock_kms(now=START) as kms:
        assert kms.now == T0
        time.sleep(0.01)
        assert kms.now == T0


def test_travel_to_and_no_travel_back():
    with mock_kms(now=START) as kms:
        key_id = rotating_key(kms)
        runs = kms.travel_to("2024-01-08T00:10:00Z")
        assert [(job, iso(tick)) for job, tick, _ in runs] == [("RotateKeys", "2024-01-08T00:10:00Z")]
        assert len(version_dates(key_id)) == 2
        with pytest.raises(ValueError):
            kms.travel_to(START)
        with pytest.raises(ValueError):
            kms.advance(seconds=-1)
        assert kms.advance() == []


def test_a_job_that_cannot_finish_does_not_tick_forever(monkeypatch):
    with mock_kms(now=START) as kms:
        rotating_key(kms)
        from alikms.shared import versions

        monkeypatch.setattr(versions, "rotate", lambda *a, **k: None)  # every rotation loses its race
        runs = kms.advance(days=365)
        assert [job for job, _, _ in runs] == ["RotateKeys"]


@pytest.mark.parametrize("job", registry.JOBS, ids=lambda j: j.name)
def test_next_tick_matches_the_schedule(job):
    schedule = Schedule.parse(job.cron)
    for at in (T0, T0 + 1, T0 + 299, T0 + 3599, T0 + 7 * DAY + 17):
        tick = _timers.next_tick(schedule, at)
        assert tick >= at and schedule.matches(tick)
        assert not any(schedule.matches(t) for t in range(at, tick))
    assert _timers.next_tick(Schedule.parse("@every 90s"), 100) == 180
