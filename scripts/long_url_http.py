"""uvicorn's httptools protocol, taught to accept request targets over 65,535 bytes.

httptools cannot parse a URL that long, but the classic SDK puts every parameter, a 30 KB
SecretData included, in the query string. For such requests only the path is parsed and the query
goes to the app untouched. Named by import string in the runner's uvicorn config.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_PARSER_LIMIT = 65535


class LongUrlProtocol(HttpToolsProtocol):
    def on_headers_complete(self) -> None:
        if len(self.url) <= _PARSER_LIMIT:
            return super().on_headers_complete()
        path, _, query = self.url.partition(b"?")
        self.url = path
        super().on_headers_complete()
        # The request cycle holds this same scope dict and has not run yet.
        self.scope["query_string"] = query
