"""When an audit record cannot be written, calls are refused (503 ServiceUnavailableTemporary) until it
can be again; KMS_AUDIT_FAIL_OPEN serves on instead. Real failures: a full filesystem (a 256 KB tmpfs
mounted over the trail's directory; the tests run as root), a trail file made immutable (chattr +i,
which refuses writes even through an open descriptor), the trail's directory replaced by a file.
"""

from __future__ import annotations

import contextlib
import json
import subprocess

import pytest

from alikms.shared import audit, audit_trail
from alikms.shared.audit_verify import verify
from alikms.shared.config import get_config
from tests import support
from tests.ops.helpers import health, ring_of, scrape, start, stop, value

REFUSED = ("ServiceUnavailableTemporary", 503)


def refused(srv, action: str = "DescribeRegions", params: dict | None = None) -> dict:
    status, body = support.call(srv, action, params)
    assert (body.get("Code"), status) == REFUSED, body
    assert body["HttpStatus"] == 503 and body["RequestId"] and "audit trail" in body["Message"]
    return body


def live_files(data_dir):
    from alikms.shared.audit_verify import _live

    return [p for p in audit.files(data_dir) if _live(p)]


def chattr(flag: str, *paths) -> None:
    subprocess.run(["chattr", flag, *map(str, paths)], check=True, capture_output=True)


@pytest.fixture
def tmpfs(tmp_path):
    """A 256 KB tmpfs, unmounted afterwards."""
    mounted = []

    def mount(path):
        path.mkdir(parents=True, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(path)], check=True)
        mounted.append(path)
        return path

    yield mount
    for path in mounted:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(directory) -> object:
    """Fill the filesystem of `directory` to the last byte; the filler file's path."""
    filler = directory / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (bytes(4096), b"\0"):
            with contextlib.suppress(OSError):
                while True:
                    f.write(chunk)
    return filler


def test_a_full_filesystem_refuses_calls_until_there_is_room(server_factory, tmp_path, tmpfs):
    trail_dir = tmpfs(tmp_path / "data0" / audit_trail.DIR_NAME)  # the first runner's data directory
    srv, port = start(server_factory)
    assert srv.data_dir == tmp_path / "data0"
    ok = [support.call(srv, "DescribeRegions")[1]["RequestId"] for _ in range(4)]
    assert health(port)[0] == 200
    filler = fill(trail_dir)
    for _ in range(50):  # a record may still fit in the last page of the file
        status, first = support.call(srv, "DescribeRegions")
        if status != 200:
            break
        ok.append(first["RequestId"])
    assert (first["Code"], status) == REFUSED  # its record could not be written: the answer is the refusal
    for _ in range(3):
        refused(srv, "CreateKey")  # refused before running: no key is made
    status, body = health(port)
    assert (status, body["status"], body["audit"], body["audit_mode"], body["audit_blocked_workers"]) == \
        (503, "failing", "error: No space left on device", "fail-closed", 1)
    samples = scrape(port)
    assert value(samples, "alikms_audit_write_failures_total") >= 1
    assert value(samples, "alikms_audit_refused_calls_total") == 3
    assert value(samples, "alikms_audit_blocked") == 1

    filler.unlink()
    support.until(lambda: health(port)[0] == 200)  # the worker retries once a second without any call
    status, body = support.call(srv, "ListKeys")
    assert status == 200 and body["TotalCount"] == 0
    ok.append(body["RequestId"])
    logged = [e.get("event") for e in map(json.loads, stop(srv).splitlines())]
    assert "audit.write_failed" in logged and "audit.recovered" in logged

    records = {r["RequestId"]: r for r in audit.events(srv.data_dir)}
    assert set(ok) <= set(records)
    assert first["RequestId"] in records  # the call ran: its record was held, and written once there was room
    outages = [json.loads(line) for p in audit.files(srv.data_dir) for line in p.read_bytes().splitlines()
               if b'"Type":"Outage"' in line]
    assert [o["RefusedCalls"] for o in outages] == [3]
    assert verify(srv.data_dir, ring_of(srv.data_dir)).problems == []


def test_an_immutable_trail_file_refuses_calls_until_it_is_writable(server_factory):
    srv, port = start(server_factory)
    assert support.call(srv, "DescribeRegions")[0] == 200
    files = live_files(srv.data_dir)
    assert len(files) == 1
    chattr("+i", *files)
    try:
        refused(srv)
        refused(srv, "CreateKey")
        status, body = health(port)
        assert status == 503 and body["audit"].startswith("error: ")
    finally:
        chattr("-i", *files)
    support.until(lambda: health(port)[0] == 200)
    status, body = support.call(srv, "ListKeys")
    assert status == 200 and body["TotalCount"] == 0
    stop(srv)
    assert verify(srv.data_dir, ring_of(srv.data_dir)).problems == []


def test_fail_open_serves_on_and_writes_the_records_later(server_factory):
    srv, port = start(server_factory, {"KMS_AUDIT_FAIL_OPEN": "true"})
    assert support.call(srv, "DescribeRegions")[0] == 200
    files = live_files(srv.data_dir)
    chattr("+i", *files)
    try:
        ids = [support.call(srv, "DescribeRegions") for _ in range(3)]
        assert [status for status, _ in ids] == [200] * 3
        status, body = health(port)
        assert (status, body["audit_mode"], body["audit_blocked_workers"]) == (503, "fail-open", 0)
    finally:
        chattr("-i", *files)
    assert support.call(srv, "DescribeRegions")[0] == 200
    stop(srv)
    records = {r["RequestId"] for r in audit.events(srv.data_dir)}
    assert {body["RequestId"] for _, body in ids} <= records  # held while the file was immutable
    assert verify(srv.data_dir, ring_of(srv.data_dir)).problems == []


def test_the_trail_directory_gone_refuses_calls_until_it_can_be_made(server_factory):
    srv, port = start(server_factory)
    assert support.call(srv, "DescribeRegions")[0] == 200
    trail_dir = srv.data_dir / audit_trail.DIR_NAME
    for path in trail_dir.iterdir():
        path.unlink()
    trail_dir.rmdir()
    trail_dir.write_text("not a directory")  # nothing can be created there
    support.until(lambda: support.call(srv, "DescribeRegions")[0] == 503)  # noticed within a second
    refused(srv)
    assert health(port)[0] == 503
    trail_dir.unlink()
    support.until(lambda: health(port)[0] == 200)
    assert support.call(srv, "DescribeRegions")[0] == 200
    stop(srv)
    (name,) = [p.name for p in audit.files(srv.data_dir)]  # the first file went with the directory
    assert [(f.kind, f.file, f.line) for f in verify(srv.data_dir, ring_of(srv.data_dir)).problems] == \
        [("removed", name, 0)]


def test_in_process_a_failed_write_is_the_answer(local_env, invoke):
    """Outside the runner (Function Compute, `alikms invoke`) the record is written before the
    handler returns, so the handler answers the refusal itself."""
    local_env.mkdir(parents=True, exist_ok=True)
    (local_env / audit_trail.DIR_NAME).write_text("in the way")
    status, body = invoke("CreateKey")
    assert (body["Code"], status) == REFUSED  # it ran, and its record waits to be written
    status, body = invoke("CreateKey")
    assert (body["Code"], status) == REFUSED  # refused before running
    (local_env / audit_trail.DIR_NAME).unlink()
    status, body = invoke("ListKeys")
    assert status == 200 and body["TotalCount"] == 1
    audit.close()
    lines = [json.loads(line) for p in audit.files(local_env) for line in p.read_bytes().splitlines()]
    assert [r.get("Action") or r["Type"] for r in lines] == ["Start", "CreateKey", "Outage", "ListKeys", "Digest"]
    assert lines[2]["RefusedCalls"] == 1
    assert verify(local_env, dict(get_config().root_keys)).problems == []
