"""The runner's HTTP protocol: uvicorn's httptools protocol with these changes.

* Request targets over 65,535 bytes are accepted. httptools cannot parse a URL that long, but the
  classic SDK puts every parameter, a 30 KB SecretData included, in the query string. For such
  requests only the path is parsed and the query goes to the app untouched.
* A response leaves in one write. uvicorn writes the status line and headers, then the body, each
  straight to the socket: two TCP segments and two wake-ups of the client per call, which measured
  as the largest kernel cost of a request here (docs/measurements.md). Writes made in one turn of
  the event loop are held and sent together at the end of that turn, so nothing waits longer than
  the turn that made it (a `100 Continue` still goes out before the app waits for the body).
* An idle connection is closed only when it really is idle. uvicorn arms its keep-alive timer when
  a response is handed over, by the loop's clock, which was read when the turn began; a turn that
  lasted seconds, and a response that left only at the end of it, made the timer fire as the answer
  went out, resetting a connection whose next request was already waiting (and SDKs do not retry a
  POST after a reset). The timer now counts from when the last bytes actually left, and never closes
  a connection that has unread data: that is a request, and it gets its answer.
* A connection that sends nothing is closed after the keep-alive timeout, as one that went idle
  after a response is (uvicorn leaves a silent connection open forever). A request must arrive whole
  within `request_timeout` seconds of its first byte; one that stalls is answered 408 and closed.
  So neither idle sockets nor half-sent requests pile up until the worker runs out of descriptors.
  Requests are not given a timer each (arming and cancelling one measured as a visible cost per call):
  each notes when it began, and one sweep per worker looks over the open connections.
* The request line and the header block are bounded (`wire.MAX_QUERY_BYTES`, `MAX_HEADERS`,
  `MAX_HEADER_BYTES`) as they arrive, before anything in them is decoded (the app bounds the body:
  an over-long one is read and dropped). A request over a bound, and a request httptools cannot parse,
  gets the service's own error body and audit record (not uvicorn's plain-text 400), and its
  connection is closed gracefully: the answer, then end of stream, then whatever the client still
  sends is read and dropped for a moment. Closing at once, with unread data, would reset the
  connection and could destroy the answer on its way. A 408 has its audit record too.

Named by import string in the runner's uvicorn config, which carries `request_timeout`.
"""

from __future__ import annotations

import asyncio
import select
import time
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from alikms.shared import errors, wire

from .app import audit_refusal, refuse, serving

_PARSER_LIMIT = 65535
REQUEST_TIMEOUT = 30.0  # seconds from a request's first byte to its last, unless the config says
_TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
              b"content-length: 16\r\nconnection: close\r\nx-acs-request-id: %s\r\n\r\nRequest Timeout.")
_URL_LIMIT = wire.MAX_QUERY_BYTES + 1024  # the query and a path
# httptools buffers a header line itself until it ends, so the bytes of a head are counted as they
# arrive too (one read at most past the limit; the method and CRLFs are slack).
_HEAD_LIMIT = _URL_LIMIT + wire.MAX_HEADER_BYTES + 4096
_LINGER = 2.0  # seconds a refused connection keeps draining before it is closed


class _Refused(Exception):
    """A request over a bound; raised inside a parser callback, answered by `send_400_response`."""


class _Drop:
    """The parser of a refused connection: what the client still sends is read and dropped."""

    @staticmethod
    def feed_data(data: bytes) -> None:
        return None


class _OneWriteTransport:
    """A connection's transport whose writes within one event-loop turn go out as one."""

    __slots__ = ("_transport", "_loop", "_pending", "sent_at")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop = transport, loop
        self._pending: list[bytes] = []
        self.sent_at = time.monotonic()  # when bytes last left (or the connection came)

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def holding(self) -> bool:
        return bool(self._pending)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)
                self.sent_at = time.monotonic()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


def _has_unread_data(transport: asyncio.Transport) -> bool:
    """Whether the peer sent something the loop has not read yet (or closed its side)."""
    sock = transport.get_extra_info("socket")
    if sock is None:
        return False
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    return bool(poller.poll(0))


def _sweep(loop: asyncio.AbstractEventLoop, state, every: float) -> None:
    """Time out the requests of this worker's connections that began too long ago; runs every
    `every` seconds while the worker has connections."""
    now = time.monotonic()
    for conn in list(state.connections):
        began = getattr(conn, "began", None)
        if began is not None and now - began >= conn.request_timeout:
            conn.request_timed_out()
    if state.connections:
        loop.call_later(every, _sweep, loop, state, every)
    else:
        state.runner_sweep = False  # the next connection starts it again


class RunnerProtocol(HttpToolsProtocol):
    _why: errors.KmsError | None = None  # the bound a parser callback found exceeded
    _head: int | None = 0  # bytes of the current request head seen so far; None once it is complete

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.request_timeout = getattr(self.config, "request_timeout", REQUEST_TIMEOUT)
        self.began: float | None = None  # when the request being read began to arrive
        self._url_parts: list[bytes] = []
        serving(self.tasks)

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _OneWriteTransport(transport, self.loop)  # type: ignore[assignment]
        # A connection that never sends a byte is idle from the start; data_received disarms this.
        self.timeout_keep_alive_task = self.loop.call_later(self.timeout_keep_alive, self.timeout_keep_alive_handler)
        state = self.server_state
        if not getattr(state, "runner_sweep", False):
            state.runner_sweep = True  # type: ignore[attr-defined]  # our flag, kept on uvicorn's per-worker state
            every = min(1.0, self.request_timeout / 2)
            self.loop.call_later(every, _sweep, self.loop, state, every)

    def timeout_keep_alive_handler(self) -> None:
        self.timeout_keep_alive_task = None
        transport = self.transport
        if transport.is_closing():
            return
        left = self.timeout_keep_alive - (time.monotonic() - transport.sent_at)  # type: ignore[attr-defined]
        if transport.holding():  # type: ignore[attr-defined]  # the answer leaves at the end of this turn
            left = self.timeout_keep_alive
        if left > 0:
            self.timeout_keep_alive_task = self.loop.call_later(left, self.timeout_keep_alive_handler)
        elif not _has_unread_data(transport):  # unread data is a request the busy loop has not read yet
            transport.close()

    def data_received(self, data: bytes) -> None:
        head = self._head
        if head is not None:
            if head > _HEAD_LIMIT:
                self._refuse(wire.too_large("header block" if self.headers else "line"))
                return
            self._head = head + len(data)
        HttpToolsProtocol.data_received(self, data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.began = time.monotonic()

    def on_url(self, url: bytes) -> None:
        # Pieces are joined once the head is complete: `self.url += url` copies the whole URL again
        # for every piece, which a client sending it a few bytes at a time turns into seconds.
        self._url_parts.append(url)

    def on_message_complete(self) -> None:
        self.began = None
        self._head = 0
        super().on_message_complete()

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request httptools could not parse (or a callback refused)."""
        self._refuse(self._why or errors.ParseRequestParameterException())

    def _refuse(self, exc: errors.KmsError) -> None:
        if type(self.parser) is _Drop:
            return  # answered already
        self.began, self._head, self.parser = None, None, _Drop()  # type: ignore[assignment]
        host = dict(self.headers or ()).get(b"host", b"").decode("latin-1")
        result = refuse(exc, host, self.client[0] if self.client else "")
        body = result["body"].encode()
        head = [f"HTTP/1.1 {result['statusCode']} {HTTPStatus(result['statusCode']).phrase}"]
        head += [f"{k}: {v}" for k, v in result["headers"].items()]
        head += [f"content-length: {len(body)}", "connection: close"]
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:  # a request in flight gets no answer of its own
            cycle.disconnected = True
            cycle.message_event.set()
        transport = self.transport
        transport.write("\r\n".join(head).encode("latin-1") + b"\r\n\r\n" + body)
        if transport.can_write_eof():
            transport.write_eof()  # after the answer: the one-write transport flushes first
            self.loop.call_later(_LINGER, transport.close)
        else:
            transport.close()

    def request_timed_out(self) -> None:
        """The request being read began `request_timeout` seconds ago and has not arrived whole."""
        if self.transport.is_closing():
            return
        cycle = self.cycle
        if self.pipeline or (cycle is not None and not cycle.response_complete
                             and (cycle.response_started or not cycle.more_body)):
            # It is pipelined behind a request still being answered, and uvicorn may not be reading
            # it meanwhile: count again from now.
            self.began = time.monotonic()
            return
        self.began = None
        # Nothing is being answered, so the 408 is in order. If the stalled request's headers had
        # arrived, its app is waiting for the body and sees the disconnect.
        request_id = audit_refusal("RequestTimeout", 408, self.client[0] if self.client else "")
        self.transport.write(_TIMED_OUT % request_id.encode())
        self.transport.close()

    def on_headers_complete(self) -> None:
        headers, head, self._head = self.headers, self._head or 0, None
        parts = self._url_parts
        self.url = url = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        if len(url) > _URL_LIMIT:
            self._why = wire.too_large("line")
            raise _Refused()
        # The head's byte count may include body bytes that came in the same read: only then is
        # the exact size of the header block worth adding up.
        if len(headers) > wire.MAX_HEADERS or head - len(url) > wire.MAX_HEADER_BYTES and \
                sum(len(k) + len(v) for k, v in headers) > wire.MAX_HEADER_BYTES:
            self._why = wire.too_large("header block")
            raise _Refused()
        if len(self.url) <= _PARSER_LIMIT:
            return super().on_headers_complete()
        path, _, query = self.url.partition(b"?")
        self.url = path
        super().on_headers_complete()
        # The request cycle holds this same scope dict and has not run yet.
        self.scope["query_string"] = query
