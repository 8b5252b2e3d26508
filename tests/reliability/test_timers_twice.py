"""Every timer job fired by two runners at the same second, on both stores: each piece of work is done
once (a key rotated once, deleted once...), neither run fails, and nothing else is touched.

Each "runner" is a process of its own firing every job for one trigger second through the runner's
own timer code (`server.fire`), as two runners' timer threads would when all four schedules match;
the in-process tests of each job (tests/keys, tests/secrets) force the interleavings one by one."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests import support
from tests.asymmetric.test_byok import imported
from tests.reliability.helpers import Remote, start_group, stop_group

DAY = 86400
JOBS = ("RotateKeys", "DeleteExpiredKeys", "DeleteExpiredSecrets", "ExpireKeyMaterial")


def ok(kms: Remote, action: str, params: dict) -> dict:
    status, body = kms.call(action, params)
    assert status == 200, (action, body)
    return body


def new_key(kms: Remote, **params) -> str:
    return ok(kms, "CreateKey", params)["KeyMetadata"]["KeyId"]


def versions(kms: Remote, key: str) -> list[str]:
    body = ok(kms, "ListKeyVersions", {"KeyId": key, "PageSize": "100"})
    return [v["KeyVersionId"] for v in body["KeyVersions"]["KeyVersion"]]


# What a runner's timer thread does at a second where every job's schedule matches.
TIMERS = ("import json, sys\n"
          "from alikms.shared import registry\n"
          "from alikms.runner.server import fire\n"
          "print(json.dumps({job.name: fire(job, int(sys.argv[1])) for job in registry.JOBS}))")


def timers(srv, second: int, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", TIMERS, str(second)], cwd=support.ROOT,
                            env={**srv.env, **env, "KMS_DATA_DIR": str(srv.data_dir)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def summaries(proc: subprocess.Popen) -> dict:
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    result = json.loads(out)  # a job that raised is None here, and named on stderr
    assert sorted(result) == sorted(JOBS), err
    assert all(r is not None and r["Failed"] == [] for r in result.values()), (result, err)
    return result


def test_every_job_fired_twice_at_once_does_its_work_once(tmp_path, store_env):
    srv = start_group(tmp_path / "data", store_env, workers=1)
    kms = Remote(srv)
    try:
        rotating = [new_key(kms, EnableAutomaticRotation="true", RotationInterval="7d") for _ in range(3)]
        first = {key: versions(kms, key) for key in rotating}
        doomed = [new_key(kms) for _ in range(3)]
        for key in doomed:
            ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "7"})
        deleted_secrets = [f"twice/{n}" for n in range(2)]
        for name in deleted_secrets:
            ok(kms, "CreateSecret", {"SecretName": name, "VersionId": "v1", "SecretData": "gone soon"})
            ok(kms, "DeleteSecret", {"SecretName": name, "RecoveryWindowInDays": "7"})
        expiring = [imported(kms, expire=int(time.time()) + 3600)[0] for _ in range(2)]
        keeper = new_key(kms)
        ok(kms, "CreateSecret", {"SecretName": "twice/keeper", "VersionId": "v1", "SecretData": "stays"})

        when = int(time.time()) + 8 * DAY  # everything above is due
        runs = [summaries(proc) for proc in [timers(srv, when, store_env) for _ in range(2)]]
        results = {job: [run[job] for run in runs] for job in JOBS}

        # Each key rotated by exactly one of the two runs, to exactly one new version.
        rotated = [key for out in results["RotateKeys"] for key in out["Rotated"]]
        assert sorted(rotated) == sorted(rotating)
        for key in rotating:
            now_versions = versions(kms, key)
            assert len(now_versions) == 2 and now_versions[0] == first[key][0]
            assert ok(kms, "DescribeKey", {"KeyId": key})["KeyMetadata"]["PrimaryKeyVersion"] == now_versions[1]
        # Deletions and expiries: nobody claims one twice; what a lost race left, one more run finishes.
        leftover = summaries(timers(srv, when, store_env))
        for job, done, field in (("DeleteExpiredKeys", doomed, "Deleted"),
                                 ("DeleteExpiredSecrets", deleted_secrets, "Deleted"),
                                 ("ExpireKeyMaterial", expiring, "Expired")):
            claimed = [item for out in results[job] for item in out[field]]
            assert len(claimed) == len(set(claimed)), (job, claimed)
            assert sorted(claimed + leftover[job][field]) == sorted(done), (job, leftover[job])
        assert leftover["RotateKeys"]["Rotated"] == []
        for key in doomed:
            status, body = kms.call("DescribeKey", {"KeyId": key})
            assert (status, body["Code"]) == (404, "Forbidden.KeyNotFound")
        for name in deleted_secrets:
            status, body = kms.call("DescribeSecret", {"SecretName": name})
            assert (status, body["Code"]) == (404, "Forbidden.ResourceNotFound")
        for key in expiring:
            assert ok(kms, "DescribeKey", {"KeyId": key})["KeyMetadata"]["KeyState"] == "PendingImport"
        # Nothing else was touched.
        assert len(versions(kms, keeper)) == 1
        assert ok(kms, "DescribeKey", {"KeyId": keeper})["KeyMetadata"]["KeyState"] == "Enabled"
        assert ok(kms, "GetSecretValue", {"SecretName": "twice/keeper"})["SecretData"] == "stays"
    finally:
        stop_group(srv)
