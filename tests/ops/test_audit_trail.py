"""The audit trail's chain, digests and rotation, and `verify` finding exactly what was done to it.

Calls run in process (the FC handler), so one writer writes one chain; the runner's several writers
are covered in test_metrics.py. Each tampering test edits a closed trail the way an intruder with
write access to the files would, and expects exactly the findings for that edit.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import subprocess
import sys
import time

import pytest

from alikms.shared import audit, audit_trail
from alikms.shared.audit_verify import verify
from alikms.shared.config import get_config
from tests import support
from tests.ops.helpers import rewrite, trail_lines
from tests.security.helpers import admin


def ring() -> dict[str, bytes]:
    return dict(get_config().root_keys)


def found(data_dir, keys=None) -> list[tuple[str, str, int]]:
    report = verify(data_dir, keys or ring())
    return [(f.kind, f.file, f.line) for f in report.problems]


@pytest.fixture
def closed_trail(local_env, invoke, monkeypatch):
    """Twelve calls, a digest after every four records, the chain closed: (data dir, file, lines)."""
    monkeypatch.setenv("KMS_AUDIT_DIGEST_RECORDS", "4")
    for n in range(12):
        assert invoke("DescribeRegions" if n % 3 else "ListKeys")[0] == 200
    audit.close()
    (name, lines), = trail_lines(local_env).items()
    return local_env, local_env / audit_trail.DIR_NAME / name, lines


def test_every_line_is_chained_and_sealed_and_verifies(closed_trail):
    data_dir, path, lines = closed_trail
    recs = [json.loads(line) for line in lines]
    assert recs[0]["Type"] == "Start" and recs[-1]["Type"] == "Digest" and recs[-1]["End"] == "closed"
    assert [r["Seq"] for r in recs] == list(range(len(recs)))
    assert {r["Writer"] for r in recs} == {path.name.split("-", 2)[2].rsplit("-", 1)[0]}
    assert [r["Prev"] for r in recs[1:]] == [audit_trail.line_hash(line) for line in lines[:-1]]
    events = [r for r in recs if "EventTime" in r]
    assert len(events) == 12
    digests = [n for n, r in enumerate(recs) if r.get("Type") == "Digest"]
    assert digests[:3] == [5, 10, 15]  # Start + 4 records, then every 4 records and the digest itself
    key = get_config().root_keys["r1"]
    assert all(audit_trail.mac_ok(key, lines[n].rstrip(b"\n")) for n in [0, *digests])
    assert base64.b64encode(key) not in b"".join(lines)  # the digest key is derived, never the root key
    assert found(data_dir) == []
    assert list(audit.events(data_dir)) == [{k: v for k, v in r.items() if k not in audit.CHAIN_FIELDS}
                                            for r in events]


def test_an_edited_record_is_named(closed_trail):
    data_dir, path, lines = closed_trail
    assert b'"ResultCode":"OK"' in lines[6]
    rewrite(path, lines[:6] + [lines[6].replace(b'"ResultCode":"OK"', b'"ResultCode":"Rejected.Disabled"')]
            + lines[7:])
    assert found(data_dir) == [("edited", path.name, 7)]


def test_an_edit_that_breaks_the_json_is_named(closed_trail):
    data_dir, path, lines = closed_trail
    rewrite(path, lines[:3] + [lines[3][:40] + b"\n"] + lines[4:])
    assert found(data_dir) == [("malformed", path.name, 4)]


def test_a_removed_record_is_named_where_it_was(closed_trail):
    data_dir, path, lines = closed_trail
    rewrite(path, lines[:8] + lines[9:])
    assert found(data_dir) == [("removed", path.name, 9)]  # the record now at line 9 follows the gap


def test_reordered_records_are_named(closed_trail):
    data_dir, path, lines = closed_trail
    rewrite(path, lines[:2] + [lines[3], lines[2]] + lines[4:])
    assert found(data_dir) == [("reordered", path.name, 4)]


def test_a_file_cut_after_a_record_is_truncated(closed_trail):
    data_dir, path, lines = closed_trail
    rewrite(path, lines[:-3])
    assert found(data_dir) == [("truncated", path.name, len(lines) - 3)]


def test_a_file_cut_inside_a_record_is_truncated_there(closed_trail):
    data_dir, path, lines = closed_trail
    rewrite(path, lines[:9] + [lines[9][:50]])
    assert found(data_dir) == [("truncated", path.name, 10)]


def test_a_rewritten_chain_fails_at_every_digest_it_passes(closed_trail):
    """Someone without the root key edits a record and recomputes every hash after it."""
    data_dir, path, lines = closed_trail
    lines = list(lines)
    lines[7] = lines[7].replace(b'"ResultCode":"OK"', b'"ResultCode":"Forbidden.NoPermission"')
    for n in range(8, len(lines)):
        rec = json.loads(lines[n])
        old = rec["Prev"].encode()
        lines[n] = lines[n].replace(old, audit_trail.line_hash(lines[n - 1]).encode())
    rewrite(path, lines)
    digests = [n + 1 for n, line in enumerate(lines) if b'"Type":"Digest"' in line and n > 7]
    assert found(data_dir) == [("forged", path.name, n) for n in digests]


def test_digests_need_the_root_key_that_sealed_them(closed_trail):
    data_dir, path, lines = closed_trail
    sealed = [n + 1 for n, line in enumerate(lines) if b'"Mac"' in line]
    assert found(data_dir, {"r1": bytes(32)}) == [("forged", path.name, n) for n in sealed]
    # r1 rotated away: its digests cannot be authenticated (a forger would name an unknown key too)...
    assert found(data_dir, {"r2": bytes(32)}) == [("unverifiable", path.name, n) for n in sealed]
    # ...unless the rotation kept r1's digest key (test_audit_digest_keys.py).
    r1 = audit_trail.digest_key(get_config().root_keys["r1"])
    assert verify(data_dir, {"r2": bytes(32)}, retired={"r1": r1}).findings == []


def test_files_rotate_by_size_and_each_record_is_in_exactly_one(local_env, invoke, monkeypatch):
    monkeypatch.setenv("KMS_AUDIT_ROTATE_BYTES", "1500")
    ids = [invoke("DescribeRegions")[1]["RequestId"] for _ in range(20)]
    audit.close()
    files = trail_lines(local_env)
    assert len(files) >= 4
    names = list(files)
    for name, nxt in itertools.pairwise(names):
        last = json.loads(files[name][-1])
        assert (last["Type"], last["End"], last["Next"]) == ("Digest", "rotated", nxt)
        assert sum(map(len, files[name])) < 1500 + 1000  # past the limit by at most one write and its digest
    assert [r["RequestId"] for r in audit.events(local_env)] == ids
    assert found(local_env) == []
    # A file removed from between two others, then the last one: each named once.
    (local_env / "audit" / names[1]).unlink()
    assert found(local_env) == [("removed", names[2], 0)]
    (local_env / "audit" / names[-1]).unlink()
    assert found(local_env) == [("removed", names[2], 0), ("removed", names[-2], len(files[names[-2]]))]


def test_a_new_file_starts_at_each_utc_day(local_env, invoke):
    assert invoke("DescribeRegions")[0] == 200
    trail = audit.trail(get_config())
    file = trail.file
    midnight = time.time() + file.day_ends - time.monotonic()
    assert 0 < midnight - time.time() <= 86400 and abs(midnight - round(midnight / 86400) * 86400) < 1
    assert time.strftime("%Y%m%d", time.gmtime()) in file.path.name
    file.day_ends = time.monotonic()  # as if the day had just ended
    trail._steady_state()
    assert invoke("DescribeRegions")[0] == 200
    assert invoke("DescribeRegions")[0] == 200
    audit.close()
    first, second = trail_lines(local_env).values()
    assert json.loads(first[-1])["End"] == "rotated" and len(second) == 3  # two records and the closing digest
    assert found(local_env) == []


def test_a_file_removed_while_open_loses_no_record(local_env, invoke):
    ids = [invoke("DescribeRegions")[1]["RequestId"]]
    trail = audit.trail(get_config())
    file = trail.file
    removed = file.path
    removed.unlink()
    ids += [invoke("DescribeRegions")[1]["RequestId"] for _ in range(2)]  # written to the removed file
    file.check_at = 0.0  # the once-a-second check is due
    trail._steady_state()
    ids.append(invoke("DescribeRegions")[1]["RequestId"])
    audit.close()
    (name, lines), = trail_lines(local_env).items()
    assert name != removed.name and [r["RequestId"] for r in audit.events(local_env)] == ids
    assert found(local_env) == [("removed", name, 0)]  # the file is gone; its records are not


def test_a_live_writer_is_not_truncation(local_env, invoke):
    assert invoke("DescribeRegions")[0] == 200
    report = verify(local_env, ring())
    assert report.problems == [] and [f.kind for f in report.findings] == ["note"]
    assert "being written" in report.findings[0].message


def test_admin_audit_verify_reports_and_exits_nonzero(closed_trail):
    data_dir, path, lines = closed_trail
    out = admin(data_dir, "audit", "verify")
    assert out.stdout.strip().endswith("records: intact") and out.stderr == ""  # no progress off a terminal
    rewrite(path, lines[:6] + [lines[6].replace(b'"HttpStatus":200', b'"HttpStatus":201')] + lines[7:])
    bad = admin(data_dir, "audit", "verify", check=False)
    assert bad.returncode == 1
    assert bad.stdout.splitlines()[0] == (f"{path.name}:7: edited: record Seq 6 does not match the hash that "
                                          f"Seq 7 ({path.name}:8) keeps")
    report = json.loads(admin(data_dir, "audit", "verify", "--json", check=False).stdout)
    assert report["ok"] is False and [(f["kind"], f["line"]) for f in report["findings"]] == [("edited", 7)]


def test_verify_shows_progress_on_a_terminal_only(closed_trail):
    import pty

    data_dir, _, _ = closed_trail
    leader, follower = pty.openpty()
    try:
        proc = subprocess.run([sys.executable, "-m", "alikms.runner.admin", "--data-dir", str(data_dir), "audit",
                               "verify"], cwd=support.ROOT, stdout=subprocess.PIPE, stderr=follower, timeout=60)
        os.close(follower)
        shown = os.read(leader, 65536).decode(errors="replace")
    finally:
        os.close(leader)
    assert proc.returncode == 0 and proc.stdout.decode().strip().endswith("intact")
    assert "verifying the audit trail: " in shown and " bytes (100%)" in shown
