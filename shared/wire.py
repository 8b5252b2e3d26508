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
from urllib.parse import unquote

import orjson

from . import errors

FORM_TYPE = "application/x-www-form-urlencoded"
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
    try:
        ev = event if isinstance(event, dict) else orjson.loads(event)
    except orjson.JSONDecodeError as exc:
        raise errors.ParseRequestParameterException() from exc
    if not isinstance(ev, dict):
        raise errors.ParseRequestParameterException()
    headers = {k.lower(): v for k, v in (ev.get("headers") or {}).items()}
    ctx_http = (ev.get("requestContext") or {}).get("http") or {}
    method = str(ev.get("httpMethod") or ctx_http.get("method") or "GET").upper()
    path = str(ev.get("path") or ctx_http.get("path") or ev.get("rawPath") or "/")
    # A gateway appends the address it saw, so the last X-Forwarded-For entry is the one to trust;
    # earlier entries are whatever the client sent.
    source_ip = ctx_http.get("sourceIp") or headers.get("x-forwarded-for", "").split(",")[-1].strip()
    raw = ev.get("body") or ""
    if ev.get("isBase64Encoded") in (True, "true", "True"):
        try:
            body = base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise errors.ParseRequestParameterException() from exc
    else:
        body = raw.encode() if isinstance(raw, str) else bytes(raw)
    query = ev.get("queryParameters") or {}
    return HttpRequest(method, path, headers, dict(query), body, source_ip or "")


# A dict emptied when full rather than functools.lru_cache: the library cache keyed by the whole
# second measured slower per call (an extra call to turn a float into its key), and this runs several
# times per request.
_iso: dict[int, str] = {}


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
    most fields need no decoding at all."""
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
        raise errors.ParseRequestParameterException("The request body is too large.")
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
