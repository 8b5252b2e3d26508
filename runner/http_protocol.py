"""The runner's HTTP protocol: uvicorn's httptools protocol with two changes.

* Request targets over 65,535 bytes are accepted. httptools cannot parse a URL that long, but the
  classic SDK puts every parameter, a 30 KB SecretData included, in the query string. For such
  requests only the path is parsed and the query goes to the app untouched.
* A response leaves in one write. uvicorn writes the status line and headers, then the body, each
  straight to the socket: two TCP segments and two wake-ups of the client per call, which measured
  as the largest kernel cost of a request here. Writes made in one turn of the event loop are held
  and sent together at the end of that turn, so nothing waits longer than the turn that made it
  (a `100 Continue` still goes out before the app waits for the body).

Named by import string in the runner's uvicorn config.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_PARSER_LIMIT = 65535


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
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = _OneWriteTransport(transport, self.loop)  # type: ignore[assignment]

    def on_headers_complete(self) -> None:
        if len(self.url) <= _PARSER_LIMIT:
            return super().on_headers_complete()
        path, _, query = self.url.partition(b"?")
        self.url = path
        super().on_headers_complete()
        # The request cycle holds this same scope dict and has not run yet.
        self.scope["query_string"] = query
