"""Helpers of the reliability tests: runners in their own process group (to kill -9 as a whole), a
runner served in this process (to hold its store calls), raw sockets, and a `kms`-shaped view of a
runner for the key and secret helpers of the other test packages."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from tests import support

TABLESTORE_ENV = {"KMS_STORE": "tablestore", "OTS_INSTANCE": "kmsfake", "OTS_ACCESS_KEY_ID": "test-akid",
                  "OTS_ACCESS_KEY_SECRET": "test-secret"}


def start_group(data_dir: Path, env: dict | None = None, workers: int = 2,
                extra: tuple[str, ...] = ()) -> support.Server:
    """A runner whose processes (supervisor and workers) form a process group of their own."""
    port = support.free_port()
    full_env = {**os.environ, "KMS_ACCESS_KEY_ID": support.TEST_AK, "KMS_ACCESS_KEY_SECRET": support.TEST_SECRET,
                "KMS_ACCOUNT_ID": support.TEST_ACCOUNT, **(env or {})}
    argv = [sys.executable, "-m", "alikms.runner", "serve", "--port", str(port), "--data-dir", str(data_dir),
            "--workers", str(workers), "--no-timers", *extra]
    proc = subprocess.Popen(argv, cwd=support.ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    srv = support.Server(port, data_dir, proc, env=full_env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("runner exited: " + proc.stderr.read().decode(errors="replace"))
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            if workers == 1 or len(group_pids(proc.pid)) > workers:  # the supervisor listens first
                return srv
        time.sleep(0.05)
    kill_group(srv)
    raise RuntimeError("runner did not start")


def group_pids(pgid: int) -> list[int]:
    """The live processes of a process group (a killed one may stay a zombie until reaped)."""
    pids = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            with contextlib.suppress(OSError):
                stat = Path(f"/proc/{name}/stat").read_text()
                fields = stat[stat.rfind(")") + 2:].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    pids.append(int(name))
    return pids


def kill_group(srv: support.Server) -> None:
    """kill -9 every process of the runner's group, and wait until they are all gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(srv.proc.pid, signal.SIGKILL)
    srv.proc.wait(10)
    deadline = time.monotonic() + 10
    while group_pids(srv.proc.pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not group_pids(srv.proc.pid), "a process of the runner survived SIGKILL"


def stop_group(srv: support.Server) -> None:
    """SIGTERM to the group (a clean stop), SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(srv.proc.pid, signal.SIGTERM)
    try:
        srv.proc.wait(15)
    except subprocess.TimeoutExpired:
        pass
    kill_group(srv)


class Remote:
    """What the in-process `kms` fixture offers (`call`), over HTTP to a running runner."""

    def __init__(self, srv: support.Server) -> None:
        self.srv = srv

    def call(self, action: str, params: dict | None = None) -> tuple[int, dict]:
        return support.call(self.srv, action, {k: str(v) for k, v in (params or {}).items()})


@contextlib.contextmanager
def runner_in_process(data_dir: Path, timeout_keep_alive: float = 5.0, request_timeout: float = 30.0):
    """The runner's app and protocol under uvicorn on a thread of this process (one worker), so a
    test can patch what its calls see. The environment (store, credentials) is the caller's."""
    import uvicorn

    from alikms.runner import app as runner
    from alikms.runner.http_protocol import RunnerProtocol

    port = support.free_port()
    config = uvicorn.Config(runner.app, host="127.0.0.1", port=port, http=RunnerProtocol, loop="uvloop",
                            log_level="warning", access_log=False, lifespan="off",
                            timeout_keep_alive=timeout_keep_alive)
    config.request_timeout = request_timeout
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="runner-in-process", daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the in-process runner did not start"
        time.sleep(0.01)
    try:
        yield support.Server(port, data_dir, proc=None)  # type: ignore[arg-type]
    finally:
        server.should_exit = True
        thread.join(15)


class HeldStore:
    """A store whose `get` of chosen rows first runs a hold (on whatever thread runs the call): a store
    call as slow as the test wants, at the moment it wants. `hold(sk)` makes reads of key row `sk`
    wait until `release` is set; `holds[sk] = fn` runs any function instead."""

    def __init__(self, store, table: str) -> None:
        self._store, self._table = store, table
        self.holds: dict[str, object] = {}
        self.entered, self.release = threading.Event(), threading.Event()

    def hold(self, sk: str) -> None:
        self.holds[sk] = lambda: self.release.wait(20)

    def get(self, table: str, pk: str, sk: str = ""):
        hold = self.holds.get(sk) if table == self._table else None
        if hold is not None:
            self.entered.set()
            hold()
        return self._store.get(table, pk, sk)

    def __getattr__(self, name: str):
        return getattr(self._store, name)


# --- raw HTTP on sockets ---

def raw_request(srv: support.Server, action: str, params: dict | None = None, extra: str = "") -> bytes:
    """A signed v1 request, its parameters in the query."""
    from urllib.parse import quote

    full = support.sign_v1_params(action, params or {}, support.TEST_AK, support.TEST_SECRET)
    qs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in full.items())
    return (f"POST /?{qs} HTTP/1.1\r\nhost: {srv.endpoint}\r\nx-acs-action: {action}\r\ncontent-length: 0\r\n"
            f"{extra}\r\n").encode()


def read_response(f) -> tuple[int, dict]:
    """One response from a socket's file; (0, {}) if the server closed the connection first."""
    line = f.readline()
    if not line:
        return 0, {}
    status = int(line.split()[1])
    length = 0
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    body = f.read(length)
    return status, json.loads(body) if body.startswith(b"{") else {"raw": body.decode(errors="replace")}


def closed_by_peer(sock: socket.socket, deadline: float) -> bytes | None:
    """Everything the server sent until it closed the connection, or None if it still kept it open
    at `deadline` (time.monotonic())."""
    data = b""
    try:
        while True:
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    except TimeoutError:
        return None
    except ConnectionResetError:
        return data
