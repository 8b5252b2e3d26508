"""The runner's HTTP protocol: uvicorn's httptools protocol with two changes.

* Request targets over 65,535 bytes are accepted. httptools cannot parse a URL that long, but the
  classic SDK puts every parameter, a 30 KB SecretData included, in the query string. For such
  requests only the path is parsed and the query goes to the app untouched.
* The request line and the header block are bounded (`wire.MAX_QUERY_BYTES`, `MAX_HEADERS`,
  `MAX_HEADER_BYTES`) as they arrive, before anything in them is decoded, and so is the body (the
  configured limit), as it arrives. A request over a bound, and a request httptools cannot
  parse, gets the service's own error body and audit record (not uvicorn's plain-text 400), and
  its connection is closed gracefully: the answer, then end of stream, then whatever the client
  still sends is read and dropped for a moment. Closing at once, with unread data, would reset the
  connection and could destroy the answer on its way.
* A response leaves in one write. uvicorn writes the status line and headers, then the body, each
  straight to the socket: two TCP segments and two wake-ups of the client per call, which measured
  as the largest kernel cost of a request here. Writes made in one turn of the event loop are held
  and sent together at the end of that turn, so nothing waits longer than the turn that made it
  (a `100 Continue` still goes out before the app waits for the body).

Named by import string in the runner's uvicorn config.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from alikms.shared import errors, wire
from alikms.shared.config import get_config

from .app import refuse

_PARSER_LIMIT = 65535
_URL_LIMIT = wire.MAX_QUERY_BYTES + 1024  # the query and a path
# httptools buffers a header line itself until it ends, so the bytes of a head past its request line
# are counted as they arrive too (one read at most past the limit; the method and CRLFs are slack).
_HEADER_LIMIT = wire.MAX_HEADER_BYTES + 4096
_LINGER = 2.0  # seconds a refused connection keeps draining before it is closed


class _Refused(Exception):
    """A request over a bound; raised inside a parser callback, answered by `send_400_response`."""


class _OneWriteTransport:
    """A connection's transport whose writes within one event-loop turn go out as one."""

    __slots__ = ("_transport", "_loop", "_pending")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport, self._loop, self._pending = transport, loop, []

    def write(self, data: bytes) -> None:
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class RunnerProtocol(HttpToolsProtocol):
    _refused: errors.KmsError | None = None
    _head = 0  # bytes of the current request head seen so far; None once it is complete
    _url_size = 0
    _max_body = 0  # the configured body limit, read once per connection
    _body_size = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _OneWriteTransport(transport, self.loop)  # type: ignore[assignment]
        self._url_parts: list[bytes] = []
        self._max_body = get_config().max_body

    def data_received(self, data: bytes) -> None:
        if self._refused is not None:
            return  # answered and closing: nothing more is read
        if self._head is not None:
            if self._head - self._url_size > _HEADER_LIMIT:
                self._refuse(wire.too_large("header block"))
                return
            self._head += len(data)
        super().data_received(data)

    def on_url(self, url: bytes) -> None:
        # Pieces are joined once the head is complete: `self.url += url` copies the whole URL again
        # for every piece, which a client sending it a few bytes at a time turns into seconds.
        self._url_parts.append(url)
        self._url_size += len(url)
        if self._url_size > _URL_LIMIT:
            self._refused = wire.too_large("line")
            raise _Refused()

    def on_body(self, body: bytes) -> None:
        # Counted here rather than by the app: only requests with a body pay for it, and one over
        # the limit is refused (and drained, below) as soon as it passes it.
        self._body_size += len(body)
        if self._body_size > self._max_body:
            self._refused = wire.too_large("body")
            raise _Refused()
        super().on_body(body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._head = self._body_size = 0

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request httptools could not parse (or a callback refused)."""
        self._refuse(self._refused or errors.ParseRequestParameterException())

    def _refuse(self, exc: errors.KmsError) -> None:
        self._refused = exc
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
        transport.flush()
        if transport.can_write_eof():
            transport.write_eof()
            self.loop.call_later(_LINGER, transport.close)
        else:
            transport.close()

    def on_headers_complete(self) -> None:
        headers, head, self._head = self.headers, self._head or 0, None
        parts, url_size, self._url_size = self._url_parts, self._url_size, 0
        self.url = parts[0] if len(parts) == 1 else b"".join(parts)
        parts.clear()
        # The head's byte count may include body bytes that came in the same read: only then is
        # the exact size of the header block worth adding up.
        if len(headers) > wire.MAX_HEADERS or head - url_size > wire.MAX_HEADER_BYTES and \
                sum(len(k) + len(v) for k, v in headers) > wire.MAX_HEADER_BYTES:
            self._refused = wire.too_large("header block")
            raise _Refused()
        if len(self.url) <= _PARSER_LIMIT:
            return super().on_headers_complete()
        path, _, query = self.url.partition(b"?")
        self.url = path
        super().on_headers_complete()
        # The request cycle holds this same scope dict and has not run yet.
        self.scope["query_string"] = query
