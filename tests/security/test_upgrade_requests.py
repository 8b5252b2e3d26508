"""Connection upgrades are requests like any other. Found by the attack pass after issues 11/15/16:
with a WebSocket library in the environment (`websockets`, which `uvicorn[standard]` installs), an
anonymous `Upgrade: websocket` request was handed to uvicorn's WebSocket protocol, reached the app as
a websocket scope that it took for lifespan events, and was never answered, never timed out and never
audited: an anonymous caller could hold any number of connections. The runner speaks HTTP only."""

from __future__ import annotations

import importlib.util
import json
import socket
import time

from alikms.shared import audit

UPGRADES = {
    "websocket": b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 b"Sec-WebSocket-Version: 13\r\n",
    "h2c": b"Upgrade: h2c\r\nConnection: Upgrade, HTTP2-Settings\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n",
}


def test_the_environment_has_a_websocket_implementation():
    # Otherwise the test below would pass however the runner is configured.
    assert importlib.util.find_spec("websockets") is not None


def test_an_upgrade_request_is_answered_and_audited(server):
    for name, headers in UPGRADES.items():
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"GET /?Action=DescribeRegions HTTP/1.1\r\nHost: kms.test\r\n" + headers + b"\r\n")
            data = b""
            while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1].rstrip().endswith(b"}"):
                chunk = sock.recv(65536)
                assert chunk, (name, data)
                data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        assert head.startswith(b"HTTP/1.1 400 "), (name, head)
        answer = json.loads(body)
        assert answer["Code"] == "IncompleteSignature", (name, answer)
        for _ in range(100):
            if any(r["RequestId"] == answer["RequestId"] for r in audit.events(server.data_dir)):
                break
            time.sleep(0.05)
        else:
            raise AssertionError(f"{name}: no audit record for {answer['RequestId']}")
