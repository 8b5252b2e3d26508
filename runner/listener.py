"""The local runner's metrics and health listener, on an address of its own.

KMS_METRICS_HOST:KMS_METRICS_PORT, 127.0.0.1:9464 by default (port 0: none), apart from the API: no
API path is taken, and nothing is reachable from another host unless the operator binds it so.
`GET /metrics` answers Prometheus text format 0.0.4 (what every process counted: metrics.py);
`GET /healthz` answers 200 when the store and the audit trail can be written, else 503, with a JSON
body saying what was checked. The supervisor also watches the nonce table's fill from here. Each
connection has DEADLINE seconds to send its request, and at most MAX_CONNECTIONS are served at once
(the rest are closed at once): the listener's threads live in the supervisor, which also fires the
timers, and any local user can connect.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from alikms.shared import audit, audit_trail, localfiles, log, ops
from alikms.shared.config import Config
from alikms.shared.store import Store

from .metrics import DIR_ENV, collect, exposition, still_running


def health(store: Store, cfg) -> tuple[bool, dict]:
    """Whether the store and the audit trail can be written, and what was found."""
    body: dict = {"audit_mode": "fail-open" if cfg.audit_fail_open else "fail-closed"}
    try:
        ops.probe_store(store)
        body["store"] = "ok"
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        body["store"] = f"error: {type(exc).__name__}"
    finally:
        store.release()  # this listener thread now waits
    body["audit"] = _audit_writable(cfg)
    directory = os.environ.get(DIR_ENV)
    blocked = collect(Path(directory)).get("alikms_audit_blocked", [0.0])[0] if directory else 0.0
    body["audit_blocked_workers"] = int(blocked)
    if blocked and body["audit"] == "ok":
        body["audit"] = "error: a worker cannot write its audit trail"
    ok = body["store"] == "ok" and body["audit"] == "ok"
    return ok, {"status": "ok" if ok else "failing", **body}


def _audit_writable(cfg) -> str:
    """Write a probe file where the trail is, and open each file being written for appending (a file
    made immutable, or the filesystem full, shows here before a call meets it)."""
    if cfg.data_dir is None:
        return "ok"
    directory = cfg.data_dir / audit_trail.DIR_NAME
    probe = directory / f".health-{os.getpid()}"
    try:
        localfiles.private_dir(directory)
        fd = localfiles.open_private(probe, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, bytes(4096))
        finally:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(probe)
        for path in audit.files(cfg.data_dir):
            if still_running(path):
                os.close(localfiles.open_private(path, os.O_WRONLY | os.O_APPEND, create=False))
    except (OSError, localfiles.UnsafeFile) as exc:
        return f"error: {audit_trail.errno_name(exc)}"
    return "ok"


def scrape_gauges(store: Store) -> dict[str, float]:
    usage = store.nonce_usage(int(time.time()))
    if usage is None:
        return {}
    live, slots = usage
    return {"alikms_nonce_table_live": float(live), "alikms_nonce_table_slots": float(slots)}


MAX_CONNECTIONS = 16  # scrapes and health checks served at once
DEADLINE = 5.0  # seconds a connection has to send its whole request


class _DeadlineReader(io.RawIOBase):
    """A connection's input that ends in a timeout DEADLINE seconds after it was accepted, however
    slowly the client sends (a timeout per read alone would let a byte every few seconds go on)."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock, self._deadline = sock, time.monotonic() + DEADLINE

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request took too long")
        self._sock.settimeout(left)
        return self._sock.recv_into(buffer)


class _Listener(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args) -> None:
        super().__init__(*args)
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)  # busy: closed at once rather than given a thread
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request, client_address) -> None:
        pass  # a client that went away or ran out of time: nothing to report


class _Handler(BaseHTTPRequestHandler):
    server_version = "alikms-metrics"
    # set on the subclass serve() makes
    store: Store
    cfg: Config
    directory: Path
    timeout = DEADLINE  # for writing the answer

    def setup(self) -> None:
        super().setup()
        self.rfile = io.BufferedReader(_DeadlineReader(self.connection))

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            text = exposition(collect(self.directory), scrape_gauges(self.store))
            self._send(200, "text/plain; version=0.0.4; charset=utf-8", text.encode())
        elif path == "/healthz":
            ok, body = health(self.store, self.cfg)
            self._send(200 if ok else 503, "application/json", json.dumps(body).encode())
        else:
            self._send(404, "text/plain", b"not found: /metrics and /healthz are served here\n")

    def _send(self, status: int, kind: str, payload: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args) -> None:  # scrapes are not events
        pass


def serve(store, cfg, directory: Path) -> ThreadingHTTPServer:
    """Start the listener on a thread of its own; raises OSError if the address is taken."""
    handler = type("Handler", (_Handler,), {"store": store, "cfg": cfg, "directory": directory})
    server = _Listener((cfg.metrics_host, cfg.metrics_port), handler)
    threading.Thread(target=server.serve_forever, daemon=True, name="metrics").start()
    return server


def watch_nonces(store: Store, stop: threading.Event, every: float = 30.0) -> None:
    """Warn when the nonce table passes half full (once per ten minutes): windows start to overflow
    past that, and a full window refuses requests (Throttling)."""
    if store.nonce_usage(int(time.time())) is None:
        return  # nonces are rows of the store: no table in this host's memory to watch
    warned = 0.0
    while not stop.wait(every):
        usage = store.nonce_usage(int(time.time()))
        if usage is None:
            return
        live, slots = usage
        if live * 2 >= slots and time.monotonic() - warned >= 600:
            warned = time.monotonic()
            log.get("kms.nonces").warning("nonce table more than half full: raise KMS_NONCE_SLOTS", extra={
                "event": "nonces.pressure", "live": live, "slots": slots, "fill": round(live / slots, 3)})
