"""Where the Alibaba clients hand a finished HTTP request to the network, and the patches there.

Three places carry every KMS call the clients make (`docs/test-double.md`):
* `requests.adapters.HTTPAdapter.send`: the Tea SDK's sync calls (darabonba and the older Tea core),
  the secrets manager client and the shared-gateway path of `alibabacloud-kms-python-sdk`;
* `aliyunsdkcore.vendored.requests.adapters.HTTPAdapter.send`: the classic SDK's own copy of
  requests, which a patch of the top-level package does not reach;
* `aiohttp.ClientSession._request`: the Tea SDK's `*_async` methods.

By the time a request gets there the client has built, serialised and signed it, so everything the
client does runs for real and only the socket is skipped; the response goes back through the
library's own response type, so the client parses it and raises its own errors as it would from the
network. A request for any other host is handed to the original method untouched.

`install(serve)` patches whichever of these libraries are installed; `serve(method, url, headers,
body)` returns `(status, headers, body)` for a request it answers, or None to pass it through, and
raises `NotServed` for a KMS host it must not let through. `uninstall()` puts every original back.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import io
import json
from collections.abc import Callable
from http import HTTPStatus
from urllib.parse import urlencode

Answer = tuple[int, dict[str, str], bytes]
Serve = Callable[[str, str, object, bytes], "Answer | None"]

_REQUESTS_MODULES = ("requests", "aliyunsdkcore.vendored.requests")
_PING_MODULE = "alibabacloud_secretsmanager_client_v2.service.default_secret_manager_client_builder"
_originals: list[tuple[object, str, object]] = []  # (owner, attribute, original value) while installed


class NotServed(Exception):
    """A KMS host the double does not serve (a dedicated KMS instance): refuse rather than let it out."""


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def install(serve: Serve, is_kms_host: Callable[[str], bool]) -> None:
    """Patch every installed client transport so that `serve` sees each request first."""
    if _originals:
        raise RuntimeError("the transports are already patched")
    for name in _REQUESTS_MODULES:
        package = _optional(name)
        if package is not None:
            _patch(package.adapters.HTTPAdapter, "send", _requests_send(serve, package))
    aiohttp = _optional("aiohttp")
    if aiohttp is not None:
        _patch(aiohttp.ClientSession, "_request", _aiohttp_request(serve, aiohttp))
    # The secrets client pings each region's endpoint when it has several. Imported here (once per
    # process) so that a builder imported later still finds the patch in place.
    ping = _optional(_PING_MODULE)
    if ping is not None:
        _patch(ping, "ping_host", _ping(ping.ping_host, is_kms_host))


def uninstall() -> None:
    while _originals:
        owner, attribute, original = _originals.pop()
        setattr(owner, attribute, original)


def _patch(owner, attribute: str, replacement) -> None:
    _originals.append((owner, attribute, owner.__dict__[attribute]))
    setattr(owner, attribute, replacement)


def _optional(name: str):
    """The module if it is installed (imported on the first use of the double), else None."""
    try:
        return importlib.import_module(name)
    except ImportError:  # not installed (or broken beside this environment's other packages)
        return None


# --- requests (top-level and the classic SDK's vendored copy) --------------------------------------

def _requests_send(serve: Serve, package):
    original = package.adapters.HTTPAdapter.send
    models, structures, utils = package.models, package.structures, package.utils

    def send(self, request, stream=False, timeout=None, verify=True, cert=None, proxies=None):
        try:
            answer = serve(request.method, request.url, request.headers, _requests_body(request.body))
        except NotServed as exc:
            raise package.exceptions.ConnectionError(str(exc), request=request) from None
        if answer is None:
            return original(self, request, stream=stream, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        # What the adapter's build_response makes of a response off the wire, with the body already
        # read (a KMS answer is small JSON): going through urllib3's response object cost as much as
        # the service's own work for the call.
        status, headers, body = answer
        resp = models.Response()
        resp.status_code, resp.reason = status, reason(status)
        resp.headers = structures.CaseInsensitiveDict(headers)
        resp.encoding = utils.get_encoding_from_headers(resp.headers)
        resp.raw = io.BytesIO(body)
        resp._content, resp._content_consumed = body, True
        resp.url, resp.request, resp.connection = request.url, request, self
        return resp

    send.__wrapped__ = original  # type: ignore[attr-defined]
    return send


def _requests_body(body) -> bytes:
    if body is None:
        return b""
    if isinstance(body, str):
        return body.encode("utf-8")
    if isinstance(body, (bytes, bytearray)):
        return bytes(body)
    if hasattr(body, "read"):
        data = body.read()
        return data.encode("utf-8") if isinstance(data, str) else data
    return b"".join(c.encode("utf-8") if isinstance(c, str) else c for c in body)  # a chunked generator


# --- aiohttp ---------------------------------------------------------------------------------------

def _aiohttp_request(serve: Serve, aiohttp):
    original = aiohttp.ClientSession._request

    async def _request(self, method, str_or_url, *args, **kwargs):
        url = self._build_url(str_or_url) if hasattr(self, "_build_url") else aiohttp.client.URL(str_or_url)
        if kwargs.get("params"):
            url = url.extend_query(kwargs["params"])
        headers = self._prepare_headers(kwargs.get("headers"))
        body = _aiohttp_body(kwargs.get("data"), kwargs.get("json"), headers)
        try:
            answer = serve(method.upper(), str(url), headers, body)
        except NotServed as exc:
            raise aiohttp.ClientConnectionError(str(exc)) from None
        if answer is None:
            return await original(self, method, str_or_url, *args, **kwargs)
        resp = _aiohttp_response(aiohttp, self, method.upper(), url, headers, answer)
        check = kwargs.get("raise_for_status")
        check = self._raise_for_status if check is None else check
        if check is True:
            resp.raise_for_status()
        elif callable(check):
            await check(resp)
        return resp

    _request.__wrapped__ = original  # type: ignore[attr-defined]
    return _request


def _aiohttp_body(data, json_value, headers) -> bytes:
    if data is None and json_value is not None:
        headers.setdefault("Content-Type", "application/json")
        return json.dumps(json_value).encode("utf-8")
    if data is None:
        return b""
    if isinstance(data, (bytes, bytearray)):
        return bytes(data)
    if isinstance(data, str):
        return data.encode("utf-8")
    if isinstance(data, (dict, list, tuple)):
        headers.setdefault("Content-Type", "application/x-www-form-urlencoded")
        return urlencode(data).encode("ascii")
    # Every Alibaba client sends bytes; a stream or multipart body for a KMS host is not one of them.
    raise TypeError(f"mock_kms cannot read an aiohttp request body of type {type(data).__name__}")


def _aiohttp_response(aiohttp, session, method: str, url, request_headers, answer: Answer):
    """A genuine `aiohttp.ClientResponse` holding the answer, in the state `start()` leaves a response
    whose whole body has arrived: callers read, release and raise on it as on any other."""
    import asyncio

    from aiohttp.client_proto import ResponseHandler
    from aiohttp.helpers import TimerNoop
    from multidict import CIMultiDict, CIMultiDictProxy

    status, headers, body = answer
    loop = asyncio.get_running_loop()
    kwargs = {"writer": None, "continue100": None, "timer": TimerNoop(), "traces": [], "loop": loop,
              "session": session,
              "request_info": aiohttp.RequestInfo(url, method, CIMultiDictProxy(CIMultiDict(request_headers)), url),
              "stream_writer": _SentBody(len(body))}
    # Its keyword arguments differ across aiohttp 3.x releases: pass the ones this release takes.
    accepted = _response_parameters(aiohttp)
    resp = aiohttp.ClientResponse(method, url, **{k: v for k, v in kwargs.items() if k in accepted})
    resp.version = aiohttp.HttpVersion11
    resp.status, resp.reason = status, reason(status)
    resp._headers = CIMultiDictProxy(CIMultiDict(headers))
    resp._raw_headers = tuple((k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items())
    content = aiohttp.StreamReader(ResponseHandler(loop=loop), 2**16, loop=loop)
    content.feed_data(body)
    content.feed_eof()
    resp.content = content
    return resp


@functools.cache
def _response_parameters(aiohttp) -> frozenset[str]:
    return frozenset(inspect.signature(aiohttp.ClientResponse.__init__).parameters)


class _SentBody:
    """What a ClientResponse asks of the writer of a request that has already gone out."""

    def __init__(self, size: int) -> None:
        self.output_size = size


# --- the secrets manager client's reachability probe ----------------------------------------------

def _ping(original, is_kms_host: Callable[[str], bool]):
    def ping_host(hostname, timeout=2):
        return 0 if is_kms_host(hostname) else original(hostname, timeout)

    ping_host.__wrapped__ = original  # type: ignore[attr-defined]
    return ping_host
