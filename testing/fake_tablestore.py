"""A wire-level fake of Alibaba Cloud Tablestore (OTS) that the real, unmodified `OTSClient` talks to.

The SDK's own encoding, PlainBuffer checksums, request signing (V2 and V4), response verification and
error mapping all stay in play: the fake checks signatures with a known secret, signs its answers,
and evaluates row existence and column conditions, so a failed conditional write really comes back
as 403 OTSConditionCheckFail. It covers table DDL, Put/Get/Update/DeleteRow and forward GetRange
with paging. Not modelled (answered with a 400): batch operations, more than one version per column,
BACKWARD ranges, transactions, indexes, auto-increment keys, time ranges, wide-row tokens. TTL is
recorded but never expires anything.

Server-side errors on demand: `backend.inject("OTSServerBusy", action="PutRow", count=1)` answers
the next PutRow with the error (nothing applied); `after_apply=True` applies the request first and
then answers the error, as a real OTSTimeout may after the write went through.

Transports: `fake_client(backend)` is an OTSClient calling the backend in process; `serve()` and
`python -m alikms.testing.fake_tablestore` put it behind a loopback HTTP server.
"""

from __future__ import annotations

import argparse
import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tablestore
from tablestore.retry import NoRetryPolicy

from ._ots_backend import ACCESS_KEY_ID, ACCESS_KEY_SECRET, INJECTABLE, INSTANCE, FakeTablestore, Injection

__all__ = ["ACCESS_KEY_ID", "ACCESS_KEY_SECRET", "INJECTABLE", "INSTANCE", "SDK_LOGGER", "FakeTablestore",
           "InProcessConnection", "Injection", "fake_client", "http_client", "main", "serve"]

SDK_LOGGER = "alikms.testing.fake_tablestore.sdk"
# The SDK logs every failed request at ERROR (expected conflicts too) and, while its logger's level
# is NOTSET, formats a debug dump of every request; a quiet logger of its own avoids both.
logging.getLogger(SDK_LOGGER).setLevel(logging.CRITICAL)


# --- transports -----------------------------------------------------------------------------------

class InProcessConnection:
    """Stands in for `OTSClient.connection`; the SDK calls `send_receive` with the path "/Action"."""

    def __init__(self, backend: FakeTablestore) -> None:
        self.backend = backend

    def send_receive(self, url: str, headers: dict, body: bytes):
        return self.backend.handle(url, headers, body)


def fake_client(backend: FakeTablestore, *, access_key_id: str | None = None, access_key_secret: str | None = None,
                instance: str | None = None, region: str | None = None, **kwargs) -> tablestore.OTSClient:
    """A real OTSClient wired to `backend` in process (no retries, quiet logger); region= signs V4."""
    kwargs.setdefault("retry_policy", NoRetryPolicy())
    kwargs.setdefault("logger_name", SDK_LOGGER)
    client = tablestore.OTSClient(
        "http://kmsfake.invalid", access_key_id or backend.access_key_id,
        access_key_secret or backend.access_key_secret, instance or backend.instance or INSTANCE,
        region=region, **kwargs)  # type: ignore[arg-type]  # (the SDK's hint says str; None, its default, signs V2)
    client.connection = InProcessConnection(backend)  # type: ignore[assignment]  # stands in for its pool
    return client


def http_client(url: str, backend: FakeTablestore | None = None, **kwargs) -> tablestore.OTSClient:
    """A real OTSClient talking HTTP to a fake served at `url` (by `serve()`, or through a proxy)."""
    kwargs.setdefault("logger_name", SDK_LOGGER)
    return tablestore.OTSClient(url, backend.access_key_id if backend else ACCESS_KEY_ID,
                                backend.access_key_secret if backend else ACCESS_KEY_SECRET,
                                (backend.instance if backend else None) or INSTANCE, **kwargs)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: urllib3 pools connections
    disable_nagle_algorithm = True  # headers and body are two writes; Nagle + delayed ACK stall ~40 ms

    def _send(self, status: int, reason: str, headers: dict, body: bytes) -> None:
        self.send_response(status, reason)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    server: _Server

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(*self.server.backend.handle(self.path, dict(self.headers.items()), body))

    def log_message(self, format: str, *args) -> None:
        pass


class _Server(ThreadingHTTPServer):
    backend: FakeTablestore  # set by _server()
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up server_close()
    request_queue_size = 128  # the default backlog of 5 drops bursts of connects (1 s SYN retry)


def _server(backend: FakeTablestore, host: str, port: int) -> _Server:
    server = _Server((host, port), _Handler)
    server.backend = backend
    return server


def serve(port: int = 0, backend: FakeTablestore | None = None, host: str = "127.0.0.1") -> tuple[_Server, str]:
    """Serve `backend` from a daemon thread; returns (server, "http://host:port").
    Stop it with `server.shutdown(); server.server_close()`."""
    server = _server(backend or FakeTablestore(), host, port)
    # A short poll interval keeps shutdown() (which waits for the next poll) fast in test teardown.
    threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-tablestore", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alikms.testing.fake_tablestore",
                                     description="Serve a fake Tablestore on loopback until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--access-key-id", default=ACCESS_KEY_ID)
    parser.add_argument("--access-key-secret", default=ACCESS_KEY_SECRET)
    parser.add_argument("--instance", default=INSTANCE, help="instance name to require ('' accepts any)")
    args = parser.parse_args(argv)
    backend = FakeTablestore(args.access_key_id, args.access_key_secret, args.instance or None)
    server = _server(backend, args.host, args.port)
    print(f"http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
