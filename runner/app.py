"""The local runner's request path: HTTP request -> the function for its action -> HTTP response.

Each request becomes what the API Gateway event decodes to, the action's function runs in process on
it through the same wrapper as its FC handler (`handler.serve`), and the returned struct becomes the
HTTP response. `server.py` runs this app under uvicorn and fires the timers.

The runner plays the part of API Gateway in front of one-function-per-action: it reads the action
from `x-acs-action`, else `Action` in the query, else in the form body, and routes on the registry.

Where a call runs: on the worker's event loop when the store is the embedded SQLite file (its calls
return in microseconds, and handing a call to a thread and back would cost more than the call's
store work), else in the worker's thread pool (`CALL_THREADS`), so that a call waiting on a remote
store holds one thread and not the loop, and with it every other connection of the worker.
"""

from __future__ import annotations

import asyncio
import base64
import importlib
import os
import random
import types
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

from alikms.shared import audit, auth, errors, log, registry, telemetry, wire
from alikms.shared.config import get_config
from alikms.shared.store import get_store

from . import metrics, turns

# Calls one worker runs at once on a remote store. Each waits on the store most of its time, so the
# worker's throughput is this many divided by a call's store time; 64 covers as many clients as a
# worker can have connections before one worker process stops being the right size.
CALL_THREADS = 64

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


def audit_refusal(code: str, status: int, source_ip: str, action: str = "", access_key_id: str = "") -> str:
    """Record a request answered before it reached a function; returns the request id to answer with.
    (Its metrics count it under no action: the name it asked for is the client's to choose.)"""
    telemetry.sink.call("", code, 0.0)
    request_id = new_request_id()
    audit.record(get_config(), audit.entry(request_id, action, "", access_key_id, source_ip, [], code, status))
    return request_id


def refuse(exc: errors.KmsError, host: str, source_ip: str, action: str = "", access_key_id: str = "") -> dict:
    """The answer to a request refused before it reached a function (no such action, an unreadable
    or oversized request), with its record in the audit trail: every answered request has one."""
    return wire.error_response(exc, audit_refusal(exc.code, exc.status, source_ip, action, access_key_id), host)


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
    event, less a JSON round trip of the event (measurably cheaper: docs/measurements.md).
    """
    name = ""
    try:
        name = route(req)
        spec = registry.action(name)
        if spec is None:
            raise errors.InvalidAction()
    except errors.KmsError as exc:
        return refuse(exc, req.headers.get("host", ""), req.source_ip, name, auth.claimed_access_key(req, req.query))
    request_id = new_request_id()
    try:
        return function_handler(spec.module).serve(req, request_id)
    except errors.KmsError as exc:  # its record, written at once (not held), could not be: the refusal
        return wire.error_response(exc, request_id, req.headers.get("host", ""))


_in_flight: list = [()]  # this worker's request tasks (uvicorn's; set by http_protocol.py), () in process


def serving(tasks) -> None:
    """Where the protocol keeps the worker's requests in flight (see `dispatch_alone`)."""
    _in_flight[0] = tasks


def dispatch_alone(req: wire.HttpRequest, scope, turn: turns.TurnHolder) -> dict:
    """`dispatch` for the only request in flight: its record is written at once (`TurnHolder.alone`)."""
    try:
        return turn.alone(dispatch, req)
    except errors.KmsError as exc:  # its record could not be written: the answer is the refusal
        return wire.error_response(exc, new_request_id(), _host(scope))


@types.coroutine
def _next_turn():
    """Let the event loop run the callbacks already queued (the audit write of this turn) first."""
    yield


_pool: list[ThreadPoolExecutor] = []  # this process's call threads, made on first use
_pool_forks: list = []  # the fork hook that drops them in a child (which has not got the threads)


def call_pool() -> ThreadPoolExecutor | None:
    """The threads this worker runs calls in, or None to run them on the event loop (SQLite)."""
    try:
        if get_config().store == "sqlite":
            return None
        if not _pool:
            get_store()  # built once here, not by several call threads at once
            if not _pool_forks:
                os.register_at_fork(after_in_child=_pool.clear)
                _pool_forks.append(True)
            _pool.append(ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="kms-call"))
    except Exception:  # noqa: BLE001 - a configuration error: the call itself reports it
        return None
    return _pool[0]


def dispatch_in_thread(req: wire.HttpRequest) -> dict:
    """`dispatch` in a call thread, which then goes back to waiting: its store read snapshot, if the
    store keeps one per thread (store/sqlite.py), ends here rather than staying open while it waits."""
    try:
        return dispatch(req)
    finally:
        _release_store()


_idle = [False, False]  # [a check is scheduled, a request came since the last check]


def _release_store() -> None:
    """End this thread's open read snapshot before it waits (a SQLite store keeps one between reads)."""
    get_store().release()


def _release_when_idle(loop) -> None:
    """Once a second: if no request came, end the store's open read snapshot (store/sqlite.py)."""
    if _idle[1]:
        _idle[1] = False
        loop.call_later(1.0, _release_when_idle, loop)
        return
    _idle[0] = False
    _release_store()


def _host(scope) -> str:
    return dict(scope["headers"]).get(b"host", b"").decode("latin-1")


_loop: list = []  # this worker's event loop: asyncio.get_running_loop() is a system call (getpid) on 3.11


async def lifespan(receive, send) -> None:
    """A worker's start and end: its logs and metrics file first; at the end, after its last answer,
    the audit records still held and each chain's closing digest. (uvicorn ends a worker by re-raising
    the SIGTERM it caught, so nothing registered with atexit would run there.)"""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            metrics.start_process()
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            audit.close()
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope, receive, send) -> None:
    """ASGI entry point: HTTP request -> API Gateway event -> function -> HTTP response."""
    if scope["type"] != "http":
        return await lifespan(receive, send)
    if not _loop or not _loop[0].is_running():
        if not _loop:
            metrics.start_process()  # (driven without a lifespan, as in process)
        _loop[:] = [asyncio.get_running_loop()]
    loop = _loop[0]
    turn = turns.for_loop(loop)
    _idle[1] = True
    if not _idle[0]:
        _idle[0] = True
        loop.call_later(1.0, _release_when_idle, loop)
    limit = get_config().max_body
    chunks, size = [], 0
    while True:
        msg = await receive()
        if msg["type"] == "http.disconnect":  # the client left (or timed out) mid-body: nothing to run
            return
        chunk = msg.get("body", b"")
        size += len(chunk)
        if size > limit:  # answered at once; uvicorn reads the rest and drops it, and the connection goes on
            break
        chunks.append(chunk)
        if not msg.get("more_body"):
            break
    try:
        if size > limit:
            raise wire.too_large("body")
        req = build_request(scope["method"], scope["path"], scope["query_string"].decode("latin-1"),
                            scope["headers"], b"".join(chunks), (scope.get("client") or ("", 0))[0])
        pool = call_pool()
        if pool is not None:
            try:
                result = await loop.run_in_executor(pool, dispatch_in_thread, req)
            except errors.KmsError as exc:  # the call thread's record could not be written (fail-closed)
                result = wire.error_response(exc, new_request_id(), _host(scope))
        elif len(_in_flight[0]) > 1:  # other requests may finish in this turn: their records share a write
            result = dispatch(req)
        else:
            result = dispatch_alone(req, scope, turn)
    except errors.KmsError as exc:
        result = refuse(exc, _host(scope), (scope.get("client") or ("", 0))[0])
    except Exception as exc:  # noqa: BLE001 - the function catches everything; this is a last resort
        log.get("kms.request").error("a request failed outside the function", exc_info=exc,
                                     extra={"event": "request.internal_failure", "action": ""})
        result = refuse(errors.InternalFailure(), _host(scope), (scope.get("client") or ("", 0))[0])
    batch = turn.pending()
    if batch is not None:
        # Answer only once this turn's audit records are written (one write for the turn), and with
        # the refusal if they could not be (fail-closed): this answer's own record is missing.
        await _next_turn()
        if batch.refused:
            rid = (result.get("headers") or {}).get("x-acs-request-id") or new_request_id()
            result = wire.error_response(errors.ServiceUnavailableTemporary(audit.REFUSED), rid, _host(scope))
    await _answer(send, result)


async def _answer(send, result: dict) -> None:
    body = result["body"]
    payload = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode()
    out = [(k.encode(), str(v).encode()) for k, v in (result.get("headers") or {}).items()]
    out.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": result["statusCode"], "headers": out})
    await send({"type": "http.response.body", "body": payload})
