"""The metrics and health listener bounds what a connection can hold. Found by the attack pass after
issue 15: the listener (http.server, a thread per connection) had no timeout, so a local user who
opened connections and sent half a request line held a thread of the runner's supervisor each, for
ever (300 connections: 300 threads, all still open after 40 s). A connection now gets a few seconds
to send its request and a bounded number are served at once; the rest are closed at once."""

from __future__ import annotations

import os
import socket
import time

from alikms.runner import listener
from tests.ops.helpers import get, start


def _closed_within(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(seconds)
    try:
        while sock.recv(4096):
            pass
    except TimeoutError:
        return False
    except ConnectionError:
        pass
    return True


def test_silent_and_dripping_connections_are_dropped_and_scrapes_go_on(server_factory):
    srv, port = start(server_factory)
    threads_before = len(os.listdir(f"/proc/{srv.proc.pid}/task"))
    held = []
    for n in range(3 * listener.MAX_CONNECTIONS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        sock.sendall(b"GET /metr" if n % 2 else b"")
        held.append(sock)
    time.sleep(0.5)
    assert len(os.listdir(f"/proc/{srv.proc.pid}/task")) <= threads_before + listener.MAX_CONNECTIONS + 2
    # Beyond the bound a connection is closed at once; within it, after the deadline.
    started = time.monotonic()
    assert all(_closed_within(sock, listener.DEADLINE + 3) for sock in held)
    assert time.monotonic() - started < listener.DEADLINE + 3
    # A client that keeps sending a byte at a time is cut off at the deadline too.
    drip = socket.create_connection(("127.0.0.1", port), timeout=5)
    started = time.monotonic()
    for _ in range(int(listener.DEADLINE * 4) + 8):
        try:
            drip.sendall(b"X")
        except OSError:
            break
        time.sleep(0.25)
    assert time.monotonic() - started < listener.DEADLINE + 3
    drip.close()
    assert get(port, "/healthz")[0] == 200 and get(port, "/metrics")[0] == 200
    for sock in held:
        sock.close()
