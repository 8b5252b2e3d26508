"""The local runner's request path: HTTP request -> the function for its action -> HTTP response.

Each request becomes what the API Gateway event decodes to, the action's function runs in process on
it through the same wrapper as its FC handler (`handler.serve`), and the returned struct becomes the
HTTP response. `server.py` runs this app under uvicorn and fires the timers.

The runner plays the part of API Gateway in front of one-function-per-action: it reads the action
from `x-acs-action`, else `Action` in the query, else in the form body, and routes on the registry.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import os
import random
from types import SimpleNamespace

from alikms.shared import audit, auth, errors, registry, wire
from alikms.shared.config import get_config
from alikms.shared.store import get_store

_handlers: dict[str, object] = {}


def function_handler(module: str):
    """Import a function module on first use (a cold start) and keep its handler (a warm instance)."""
    handler = _handlers.get(module)
    if handler is None:
        handler = _handlers[module] = importlib.import_module(module).handler
    return handler


_functions: dict[str, SimpleNamespace] = {}


def fc_context(name: str, request_id: str | None = None) -> SimpleNamespace:
    """The context object FC passes a function (the fields of platform.md §1.2)."""
    function = _functions.get(name)
    if function is None:
        function = _functions[name] = SimpleNamespace(name=name, handler="index.handler", memory=256, timeout=10)
    cfg = get_config()
    return SimpleNamespace(request_id=request_id or new_request_id(), function=function, region=cfg.region,
                           account_id=cfg.account_id,
                           credentials=None)  # as on python3.12; functions read credentials from the environment


_ids: list[random.Random] = []  # this process's request-id generator, made on first use
_ids_forks: list = []  # the fork hook that drops it in a child, registered once


def new_request_id() -> str:
    """A random (version 4) UUID as text, without building a UUID object.

    Request ids must be unique, not secret, so they come from a per-process generator seeded from
    the OS (reseeded in a forked child) rather than os.urandom, a system call per request here."""
    if not _ids:
        if not _ids_forks:
            os.register_at_fork(after_in_child=_ids.clear)
            _ids_forks.append(True)
        _ids.append(random.Random(os.urandom(32)))
    h = f"{_ids[0].getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def build_request(method: str, path: str, raw_query: str, headers, body: bytes, client_ip: str) -> wire.HttpRequest:
    """What the function reads from one HTTP request (the decoded API Gateway event).

    Raises ParseRequestParameterException on a bad or oversized query (bounded before decoding)."""
    if len(raw_query) > wire.MAX_QUERY_BYTES:
        raise wire.too_large("query")
    query: dict[str, str | list[str]] = {}
    for name, value in wire.parse_form(raw_query) if raw_query else ():
        if name in query:  # keep every value so the function can refuse the duplicate
            prev = query[name]
            query[name] = (prev if isinstance(prev, list) else [prev]) + [value]
        else:
            query[name] = value
    hdrs: dict[str, str] = {}
    for name, value in headers:  # (bytes, bytes) pairs from the ASGI scope, or str pairs
        if type(name) is bytes:
            name, value = name.decode("latin-1"), value.decode("latin-1")
        key = name.lower()
        hdrs[key] = f"{hdrs[key]},{value}" if key in hdrs else value
    hdrs["x-forwarded-for"] = client_ip  # the gateway, not the client, says who connected
    return wire.HttpRequest(method, path, hdrs, query, body, client_ip)


def build_event(method: str, path: str, raw_query: str, headers, body: bytes, client_ip: str) -> dict:
    """The API Gateway event for one HTTP request, as FC would hand it to the function."""
    req = build_request(method, path, raw_query, headers, body, client_ip)
    try:
        text, is_b64 = req.body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_b64 = base64.b64encode(req.body).decode(), True
    return {"path": req.path, "httpMethod": req.method, "headers": req.headers, "queryParameters": req.query,
            "pathParameters": {}, "body": text, "isBase64Encoded": is_b64}


def refuse(exc: errors.KmsError, host: str, source_ip: str, action: str = "", access_key_id: str = "") -> dict:
    """The answer to a request refused before it reached a function (no such action, an unreadable
    or oversized request), with its record in the audit trail: every answered request has one."""
    request_id = new_request_id()
    audit.record(get_config(), audit.entry(request_id, action, "", access_key_id, source_ip, [], exc.code, exc.status))
    return wire.error_response(exc, request_id, host)


def route(req: wire.HttpRequest) -> str:
    """The action a request asks for (header, then query, then form body)."""
    name = req.headers.get("x-acs-action") or req.query.get("Action")
    if not name and req.body:
        try:
            name = dict(wire.parse_form(req.body.decode("utf-8"))).get("Action")
        except UnicodeDecodeError:  # a binary body names no action
            return ""
    return name if isinstance(name, str) else ""


def dispatch(req: wire.HttpRequest) -> dict:
    """Invoke the function for the request's action and return its response struct.

    The function gets the request already decoded (`handler.serve`): the same code path as its FC
    event, less a JSON round trip of the event (an Encrypt through runner.app in process: 61 -> 53 us).
    """
    name = ""
    try:
        name = route(req)
        spec = registry.action(name)
        if spec is None:
            raise errors.InvalidAction()
    except errors.KmsError as exc:
        return refuse(exc, req.headers.get("host", ""), req.source_ip, name, auth.claimed_access_key(req, req.query))
    return function_handler(spec.module).serve(req, new_request_id())


_idle = [False, False]  # [a check is scheduled, a request came since the last check]


def _release_store() -> None:
    """End this thread's open read snapshot before it waits (a SQLite store keeps one between reads)."""
    release = getattr(get_store(), "release", None)
    if release is not None:
        release()


def _release_when_idle(loop) -> None:
    """Once a second: if no request came, end the store's open read snapshot (store/sqlite.py)."""
    if _idle[1]:
        _idle[1] = False
        loop.call_later(1.0, _release_when_idle, loop)
        return
    _idle[0] = False
    _release_store()


_loop: list = []  # this worker's event loop: asyncio.get_running_loop() is a system call (getpid) on 3.11


async def app(scope, receive, send) -> None:
    """ASGI entry point: HTTP request -> API Gateway event -> function -> HTTP response."""
    if not _loop or not _loop[0].is_running():
        _loop[:] = [asyncio.get_running_loop()]
    loop = _loop[0]
    audit.hold_per_turn(loop)
    _idle[1] = True
    if not _idle[0]:
        _idle[0] = True
        loop.call_later(1.0, _release_when_idle, loop)
    limit = get_config().max_body
    headers = scope["headers"]
    chunks, size = [], 0
    while size <= limit:  # an over-long body is refused as soon as it passes the limit, unread beyond
        msg = await receive()
        if msg["type"] == "http.disconnect":
            return  # the client is gone (or the connection was refused mid-body): nobody to answer
        chunk = msg.get("body", b"")
        size += len(chunk)
        chunks.append(chunk)
        if not msg.get("more_body"):
            break
    if size > limit:
        host = next((v for k, v in headers if k == b"host"), b"").decode("latin-1")
        await _answer(send, refuse(wire.too_large("body"), host, (scope.get("client") or ("", 0))[0]), close=True)
        return
    try:
        req = build_request(scope["method"], scope["path"], scope["query_string"].decode("latin-1"),
                            scope["headers"], b"".join(chunks), (scope.get("client") or ("", 0))[0])
        result = dispatch(req)
    except errors.KmsError as exc:
        host = next((v for k, v in headers if k == b"host"), b"").decode("latin-1")
        result = refuse(exc, host, (scope.get("client") or ("", 0))[0])
    await _answer(send, result)


async def _answer(send, result: dict, close: bool = False) -> None:
    body = result["body"]
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    out = [(k.encode(), str(v).encode()) for k, v in (result.get("headers") or {}).items()]
    out.append((b"content-length", str(len(payload)).encode()))
    if close:  # the rest of an unread body would otherwise be taken for the next request
        out.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": result["statusCode"], "headers": out})
    await send({"type": "http.response.body", "body": payload})
