"""`alikms admin status`: the store, counts per account, the root-key ring by id, the nonce table, each
timer's last run and the audit trail; and progress on a terminal for root-key rotation."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

from tests import support
from tests.ops.helpers import stop
from tests.security.helpers import admin, create_access_key

B = "2222222222222222"


def on_terminal(data_dir, *args: str, env: dict) -> tuple[subprocess.CompletedProcess, str]:
    """Run the admin tool with stderr on a pseudo-terminal: (result, what the terminal showed)."""
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "alikms.runner.admin", "--data-dir", str(data_dir), *args],
                              cwd=support.ROOT, env=env, stdout=subprocess.PIPE, stderr=follower, timeout=120)
        os.close(follower)
        shown = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all read
                break
            if not chunk:
                break
            shown += chunk
    finally:
        os.close(leader)
    return proc, shown.decode(errors="replace")


def test_status_shows_counts_ring_nonces_timers_and_trail(server_factory):
    srv = server_factory()
    a_keys = [support.call(srv, "CreateKey")[1]["KeyMetadata"]["KeyId"] for _ in range(3)]
    assert support.call(srv, "ScheduleKeyDeletion", {"KeyId": a_keys[0], "PendingWindowInDays": "7"})[0] == 200
    assert support.call(srv, "CreateAlias", {"AliasName": "alias/app", "KeyId": a_keys[1]})[0] == 200
    assert support.call(srv, "CreateSecret", {"SecretName": "db", "VersionId": "v1", "SecretData": "pw"})[0] == 200
    a_total = support.call(srv, "ListKeys", {"PageSize": "100"})[1]["TotalCount"]
    ak, secret = create_access_key(srv, account=B)
    assert support.call(srv, "OpenKmsService", ak=ak, secret=secret)[0] == 200
    assert support.call(srv, "CreateKey", ak=ak, secret=secret)[0] == 200
    invoked = subprocess.run([sys.executable, "-m", "alikms.runner", "invoke", "ExpireKeyMaterial", "--data-dir",
                              str(srv.data_dir)], cwd=support.ROOT, env=srv.env, capture_output=True, timeout=60)
    assert invoked.returncode == 0, invoked.stderr

    report = json.loads(admin(srv.data_dir, "status", "--json", env=srv.env).stdout)
    assert report["Store"] == {"Kind": "sqlite", "Path": str(srv.data_dir / "kms.sqlite3")}
    assert report["RootKeys"] == {"Primary": "r1", "Ids": ["r1"]}
    a = report["Accounts"][support.TEST_ACCOUNT]
    region = a["Regions"]["cn-hangzhou"]
    assert (a["AccessKeys"], region["Keys"], region["Aliases"], region["Secrets"]) == (1, a_total, 1, 1)
    assert region["KeyStates"] == {"Enabled": a_total - 1, "PendingDeletion": 1}
    b = report["Accounts"][B]
    assert (b["Status"], b["AccessKeys"], b["Regions"]["cn-hangzhou"]["Keys"]) == ("Enabled", 1, 1)
    assert report["NonceTable"]["Slots"] == int(os.environ["KMS_NONCE_SLOTS"])
    assert report["NonceTable"]["Live"] == 3 + 1 + 1 + 1 + 1 + 2  # each signed call's nonce
    runs = report["Timers"]
    assert runs["ExpireKeyMaterial"]["ok"] is True and runs["ExpireKeyMaterial"]["summary"]
    assert [job for job, run in runs.items() if run is None] == ["RotateKeys", "DeleteExpiredKeys",
                                                                  "DeleteExpiredSecrets"]
    assert report["AuditTrail"]["Files"] >= 1 and report["AuditTrail"]["Writers"] >= 1

    text = admin(srv.data_dir, "status", env=srv.env).stdout
    assert "root keys    r1 (primary)" in text and f"  {B}  Enabled  access keys 1" in text
    assert f"keys {a_total} (Enabled {a_total - 1}, PendingDeletion 1), aliases 1, secrets 1" in text
    assert "RotateKeys             never run" in text and "ExpireKeyMaterial" in text
    root = (srv.data_dir / "root.key").read_text().split(":", 1)[1]
    assert root not in text and root not in json.dumps(report)
    stop(srv)


def test_root_key_rotation_shows_progress_on_a_terminal_only(server_factory):
    srv = server_factory()
    for _ in range(5):
        assert support.call(srv, "CreateKey")[0] == 200
    proc, shown = on_terminal(srv.data_dir, "rotate-root-key", "--stop-after", "3", env=srv.env)
    assert proc.returncode == 0, shown
    assert "re-wrapping under the new root key: " in shown and " rows" in shown
    ring = json.loads(admin(srv.data_dir, "status", "--json", env=srv.env).stdout)["RootKeys"]
    assert ring == {"Primary": "r2", "Ids": ["r2", "r1"]}
    done = admin(srv.data_dir, "rotate-root-key", env=srv.env)  # stderr is a pipe here
    assert "re-wrapping" not in done.stderr and "\r" not in done.stderr
    assert json.loads(admin(srv.data_dir, "status", "--json", env=srv.env).stdout)["RootKeys"] == \
        {"Primary": "r2", "Ids": ["r2"]}
    stop(srv)
