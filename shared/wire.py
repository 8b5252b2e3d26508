"""Function Compute events in, Function Compute response structs out; RPC parameters in between.

Two event shapes reach an action function (`docs/platform.md` §1.7, §1.8):
* API Gateway: `{path, httpMethod, headers, queryParameters, pathParameters, body, isBase64Encoded}`
* FC 3.0 HTTP trigger: `{version: "v1", rawPath, headers, queryParameters, body, isBase64Encoded,
  requestContext: {http: {method, sourceIp, ...}, ...}}`
Both are answered with `{statusCode, headers, isBase64Encoded, body}`.

Parameters come from the query and an `application/x-www-form-urlencoded` body, merged, blank
values kept (`docs/wire.md` §0). A name that arrives twice is refused rather than guessed at. A
gateway delivers one value per query name; the local runner passes a list when a name repeats so
the function can refuse it.
"""

from __future__ import annotations

import base64
import binascii
import re
import time
from dataclasses import dataclass
from typing import overload
from urllib.parse import unquote

import orjson

from . import errors

FORM_TYPE = "application/x-www-form-urlencoded"

# What one request may be, checked before anything in it is decoded. The largest legal request is a
# CreateSecret from the classic SDK, which puts every parameter in the query string: SecretData
# (30,720 bytes), Policy (32,768), Description (8,192 characters), 20 tags, ExtendedConfig, each
# percent-encoded (up to 3 bytes per byte): about 330 KB. The most parameters a legal request has
# are the old npm client's flattened EncryptionContext.<k> pairs: 8,192 characters of context hold
# at most ~1,200 one-character keys, twice in a ReEncrypt.
MAX_QUERY_BYTES = 512 * 1024
MAX_PARAMS = 4096
MAX_HEADERS = 128  # the SDKs send about 15
MAX_HEADER_BYTES = 32 * 1024  # names and values together (as nginx allows); the SDKs send about 1 KB
MAX_EVENT_BYTES = 2 * 1024 * 1024  # an FC event holding all of the above (and a body) as JSON


def too_large(what: str) -> errors.ParseRequestParameterException:
    return errors.ParseRequestParameterException(f"The request {what} is too large.")


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(slots=True)  # built on every request: slots, not frozen, make it several times cheaper
class HttpRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    query: dict[str, str | list[str]]  # decoded; a list means the name was repeated
    body: bytes
    source_ip: str


def decode_event(event: bytes | str | dict) -> HttpRequest:
    if not isinstance(event, dict) and len(event) > MAX_EVENT_BYTES:
        raise too_large("event")
    try:
        ev = event if isinstance(event, dict) else orjson.loads(event)
    except orjson.JSONDecodeError as exc:
        raise errors.ParseRequestParameterException() from exc
    if not isinstance(ev, dict):
        raise errors.ParseRequestParameterException()
    raw_headers, query, raw = ev.get("headers") or {}, ev.get("queryParameters") or {}, ev.get("body") or ""
    request_context = ev.get("requestContext") or {}
    ctx_http = (request_context.get("http") if isinstance(request_context, dict) else None) or {}
    if not (isinstance(raw_headers, dict) and isinstance(query, dict) and isinstance(request_context, dict)
            and isinstance(ctx_http, dict)
            and isinstance(raw, (str, bytes)) and all(isinstance(v, str) for v in raw_headers.values())
            and all(isinstance(v, str) or isinstance(v, list) and all(isinstance(i, str) for i in v)
                    for v in query.values())):
        raise errors.ParseRequestParameterException()  # not the shape a gateway sends
    # The gateway decoded the query already; the same bounds hold as for the runner's raw request.
    if len(raw_headers) > MAX_HEADERS or sum(len(k) + len(v) for k, v in raw_headers.items()) > MAX_HEADER_BYTES:
        raise too_large("header block")
    if len(query) > MAX_PARAMS or sum(len(k) + len(v) for k, v in query.items()) > MAX_QUERY_BYTES:
        raise too_large("query")
    headers = {k.lower(): v for k, v in raw_headers.items()}
    method = str(ev.get("httpMethod") or ctx_http.get("method") or "GET").upper()
    path = str(ev.get("path") or ctx_http.get("path") or ev.get("rawPath") or "/")
    # A gateway appends the address it saw, so the last X-Forwarded-For entry is the one to trust;
    # earlier entries are whatever the client sent.
    source_ip = str(ctx_http.get("sourceIp") or headers.get("x-forwarded-for", "").split(",")[-1].strip())
    if ev.get("isBase64Encoded") in (True, "true", "True"):
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise errors.ParseRequestParameterException() from exc
    else:
        body = raw.encode() if isinstance(raw, str) else bytes(raw)
    return HttpRequest(method, path, headers, dict(query), body, source_ip[:64])


# A dict emptied when full rather than functools.lru_cache: the library cache keyed by the whole
# second measured slower per call (an extra call to turn a float into its key; docs/measurements.md),
# and this runs several times per request.
_iso: dict[int, str] = {}


@overload
def iso(ts: float) -> str: ...
@overload
def iso(ts: float | None) -> str | None: ...
def iso(ts: float | None) -> str | None:
    """Epoch seconds as the API's `2024-03-25T10:42:40Z` (UTC, whole seconds)."""
    if ts is None:
        return None
    second = int(ts)
    found = _iso.get(second)
    if found is None:  # strftime is a measurable part of a request; the same seconds recur
        if len(_iso) > 4096:
            _iso.clear()
        found = _iso[second] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
    return found


def _unquote(part: str) -> str:
    if _BAD_ESCAPE.search(part):  # parse_qsl would keep "%ZZ" as literal text
        raise ValueError("invalid percent-encoding")
    return unquote(part, errors="strict")


def parse_form(raw: str | bytes) -> list[tuple[str, str]]:
    """Form-decode (`+` is space, %XX are UTF-8 bytes), keeping blank values; refuse garbage.

    The result is `parse_qsl(text, keep_blank_values=True, strict_parsing=True, errors="strict")`
    (a test holds the two equal), minus its per-field overhead: every request parses a query and
    most fields need no decoding at all. The number of fields is bounded before any is decoded; the
    caller bounds the size (`MAX_QUERY_BYTES`, the body limit)."""
    if (raw.count(b"&") if isinstance(raw, bytes) else raw.count("&")) >= MAX_PARAMS:
        raise errors.ParseRequestParameterException("The request has too many parameters.")
    try:
        text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        if not text:
            return []
        pairs = []
        for field in text.split("&"):
            name, eq, value = field.partition("=")
            if not eq:  # strict: an empty field or one without "=" is an error
                raise ValueError("bad query field")
            if "+" in field:
                name, value = name.replace("+", " "), value.replace("+", " ")
            if "%" in name:
                name = _unquote(name)
            if "%" in value:
                value = _unquote(value)
            pairs.append((name, value))
        return pairs
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.ParseRequestParameterException() from exc


def parse_params(req: HttpRequest, max_body: int) -> tuple[dict[str, str], dict[str, str]]:
    """Return (query parameters, all parameters). The query alone is what ACS3 signs."""
    if req.method not in ("GET", "POST"):
        raise errors.UnsupportedHTTPMethod()
    if len(req.body) > max_body:
        raise too_large("body")
    query: dict[str, str] = {}
    for name, value in req.query.items():
        if not isinstance(value, str):
            raise errors.ParseRequestParameterException(f'The parameter "{name}" is given more than once.')
        query[name] = value
    merged = dict(query)
    if req.body:
        ctype = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if ctype != FORM_TYPE:
            raise errors.ParseRequestParameterException("The request body must be application/x-www-form-urlencoded.")
        for name, value in parse_form(req.body):
            if name in merged:
                raise errors.ParseRequestParameterException(f'The parameter "{name}" is given more than once.')
            merged[name] = value
    return query, merged


def action_name(req: HttpRequest, params: dict[str, str]) -> str:
    return req.headers.get("x-acs-action") or params.get("Action", "")


def response(status: int, body: dict, request_id: str) -> dict:
    """The struct an FC HTTP trigger or API Gateway expects back from an event function."""
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json;charset=utf-8", "x-acs-request-id": request_id},
        "isBase64Encoded": False,
        "body": orjson.dumps(body).decode(),
    }


def error_response(exc: errors.KmsError, request_id: str, host: str) -> dict:
    return response(exc.status, exc.to_body(request_id, host), request_id)
