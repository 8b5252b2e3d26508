"""A fault-injecting proxy for Tablestore traffic: latency, held requests and dropped connections.

It sits on 127.0.0.1 in front of the Tablestore fake (or any HTTP/1.1 server that frames bodies with
Content-Length) and reads each request whole before deciding what to do with it, so a fault hits
one request, not a random byte of a stream. What it can do to a request, per the rules a test sets:

* `delay`        forward it after `seconds` (a slow region, or a request held for seconds);
* `drop_before`  close the client's connection without forwarding: the server never saw the
                 request, the client sees its connection reset with no answer;
* `drop_after`   forward it, let the server apply it and answer, then close the client's connection
                 without passing the answer on: the write happened, the client cannot know.

`latency` is added to every request on top of the rules. Rules match an action ("PutRow", taken from
the request path) or every request, may let the first `skip` matching requests pass, fire with a
probability drawn from one seeded generator and at most `count` times, and the first rule that fires
decides the request's fault. Everything can be changed while traffic flows. Typical use, with the `ots_proxy` fixture of
tests/fakes/tablestore_fixtures.py:

    proxy.latency = 0.010                                # 10 ms per request
    proxy.delay(6.0, probability=0.03)                   # hold 3% of requests for 6 s
    proxy.drop_after(action="PutRow", count=1)           # lose the answer of the next PutRow
    proxy.drop_before(action="PutRow", skip=1, count=1)  # lose the second PutRow itself
    proxy.clear()

Each connection gets a thread and its own upstream connection, as a real network path would.
"""

from __future__ import annotations

import random
import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlparse

FAULTS = ("delay", "drop_before", "drop_after")
_MAX_HEAD = 64 * 1024


class _Closed(Exception):
    """The peer closed its side (or the proxy is stopping)."""


@dataclass
class Rule:
    fault: str
    action: str | None = None  # the Tablestore action ("PutRow", "GetRange"...); None matches all
    probability: float = 1.0
    count: int | None = None  # fire at most this many times; None = no limit
    seconds: float = 0.0  # for "delay"
    skip: int = 0  # let this many matching requests pass before firing ("the second PutRow")
    fired: int = 0
    seen: int = 0

    def __post_init__(self) -> None:
        if self.fault not in FAULTS:
            raise ValueError(f"unknown fault {self.fault!r}; one of {FAULTS}")
        if not 0.0 <= self.probability <= 1.0 or self.seconds < 0 or self.skip < 0 or (
                self.count is not None and self.count < 0):
            raise ValueError("probability must be in [0, 1]; seconds, skip and count not negative")


def _read_head(sock: socket.socket, buf: bytearray) -> bytes:
    """Bytes up to and including the blank line after the headers; the rest stays in `buf`."""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = bytes(buf[:end + 4])
            del buf[:end + 4]
            return head
        if len(buf) > _MAX_HEAD:
            raise _Closed("header block too large")
        chunk = sock.recv(65536)
        if not chunk:
            raise _Closed("peer closed")
        buf += chunk


def _read_exact(sock: socket.socket, buf: bytearray, n: int) -> bytes:
    while len(buf) < n:
        chunk = sock.recv(max(65536, n - len(buf)))
        if not chunk:
            raise _Closed("peer closed mid-body")
        buf += chunk
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _header(head: bytes, name: bytes) -> bytes | None:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip()
    return None


def _message(sock: socket.socket, buf: bytearray) -> tuple[bytes, bytes]:
    """One HTTP/1.1 message (head, body) framed by Content-Length (no length: no body)."""
    head = _read_head(sock, buf)
    if (_header(head, b"transfer-encoding") or b"").lower() not in (b"", b"identity"):
        raise _Closed("chunked bodies are not supported")
    length = int(_header(head, b"content-length") or 0)
    return head, _read_exact(sock, buf, length)


def _reset(sock: socket.socket) -> None:
    """Close with a TCP reset (what a dropped path or a crashed middlebox looks like to the client)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


class OtsProxy:
    """The proxy. `start()` returns its URL ("http://127.0.0.1:port"); `stop()` closes everything."""

    def __init__(self, upstream: str, *, seed: int = 0, host: str = "127.0.0.1", port: int = 0) -> None:
        parsed = urlparse(upstream)
        self.upstream = (parsed.hostname or "127.0.0.1", parsed.port or 80)
        self.host, self.port = host, port
        self.latency = 0.0  # seconds added to every request
        self.rules: list[Rule] = []
        self.stats: Counter = Counter()  # "requests", each fault name, and "<fault>:<action>"
        self.log: list[tuple[str, str | None]] = []  # (action, fault or None) per request, in order
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._listener: socket.socket | None = None
        self._conns: set[socket.socket] = set()
        self._clients: set[socket.socket] = set()
        self.url = ""

    # --- control (from tests) ---------------------------------------------------------------------

    def add(self, fault: str, *, action: str | None = None, probability: float = 1.0, count: int | None = None,
            seconds: float = 0.0, skip: int = 0) -> Rule:
        rule = Rule(fault, action, probability, count, seconds, skip)
        with self._lock:
            self.rules.append(rule)
        return rule

    def delay(self, seconds: float, **match) -> Rule:
        """Hold matching requests for `seconds` before forwarding them."""
        return self.add("delay", seconds=seconds, **match)

    def drop_before(self, **match) -> Rule:
        """Reset the client's connection instead of forwarding matching requests."""
        return self.add("drop_before", **match)

    def drop_after(self, **match) -> Rule:
        """Forward matching requests, then reset the client's connection instead of answering."""
        return self.add("drop_after", **match)

    def clear(self) -> None:
        """Remove every rule and the added latency (statistics stay)."""
        with self._lock:
            self.rules.clear()
            self.latency = 0.0

    def reseed(self, seed: int) -> None:
        with self._lock:
            self._rng = random.Random(seed)

    def _decide(self, action: str) -> Rule | None:
        with self._lock:
            self.stats["requests"] += 1
            chosen = None
            for rule in self.rules:
                if rule.action not in (None, action) or (rule.count is not None and rule.fired >= rule.count):
                    continue
                rule.seen += 1
                if rule.seen <= rule.skip:
                    continue
                if rule.probability >= 1.0 or self._rng.random() < rule.probability:
                    rule.fired += 1
                    chosen = rule
                    break
            fault = chosen.fault if chosen else None
            if fault:
                self.stats[fault] += 1
                self.stats[f"{fault}:{action}"] += 1
            self.log.append((action, fault))
            return chosen

    # --- lifecycle --------------------------------------------------------------------------------

    def start(self) -> str:
        listener = socket.create_server((self.host, self.port), backlog=128)
        self._listener = listener
        self.url = f"http://{self.host}:{listener.getsockname()[1]}"
        threading.Thread(target=self._accept, name="ots-proxy", daemon=True).start()
        return self.url

    def stop(self) -> None:
        self._stopping.set()
        if self._listener is not None:
            try:
                self._listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._listener.close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for sock in conns:  # clients see a reset; the server sees its connections closed
            if sock in self._clients:
                _reset(sock)
            else:
                sock.close()

    def __enter__(self) -> OtsProxy:
        if not self.url:
            self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept(self) -> None:
        listener = self._listener
        assert listener is not None  # started before this thread
        while not self._stopping.is_set():
            try:
                client, _ = listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._conns.add(client)
                self._clients.add(client)
            threading.Thread(target=self._serve, args=(client,), name="ots-proxy-conn", daemon=True).start()

    def _forget(self, *socks: socket.socket | None) -> None:
        with self._lock:
            for sock in socks:
                if sock is not None:
                    self._conns.discard(sock)
                    self._clients.discard(sock)

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        cbuf, ubuf = bytearray(), bytearray()
        dropped = False
        try:
            while not self._stopping.is_set():
                head, body = _message(client, cbuf)
                path = head.split(b" ", 2)[1].decode("latin-1") if head.count(b" ") >= 2 else "/"
                action = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
                rule = self._decide(action)
                wait = self.latency + (rule.seconds if rule is not None and rule.fault == "delay" else 0.0)
                if wait and self._stopping.wait(wait):
                    break
                if rule is not None and rule.fault == "drop_before":
                    dropped = True
                    break
                if upstream is None:
                    upstream = socket.create_connection(self.upstream)
                    upstream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    with self._lock:
                        self._conns.add(upstream)
                upstream.sendall(head + body)
                rhead, rbody = _message(upstream, ubuf)
                if rule is not None and rule.fault == "drop_after":
                    dropped = True
                    break
                client.sendall(rhead + rbody)
                if (_header(rhead, b"connection") or b"").lower() == b"close":
                    break
        except (_Closed, OSError, ValueError):
            pass
        finally:
            self._forget(client, upstream)
            if dropped:
                _reset(client)
            else:
                client.close()
            if upstream is not None:
                upstream.close()
