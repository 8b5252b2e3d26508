"""The two request-signature schemes the official SDKs use: RPC v1 (HMAC-SHA1) and ACS3-HMAC-SHA256.

Pure functions, no I/O: they rebuild the string-to-sign from what arrived and compute the
signature the caller should have sent (`docs/wire.md` §3, §4; vectors in
`tests/data/signature-vectors.json`). Comparison with the received signature happens in `auth`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from urllib.parse import quote

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


_UNRESERVED = re.compile(r"[A-Za-z0-9_.~-]*\Z")
_RESERVED = re.compile(r"[^A-Za-z0-9_.~-]")
_ASCII_ESCAPES = {chr(c): f"%{c:02X}" for c in range(128)}


def percent_encode(value: str) -> str:
    """RFC 3986: keep A-Z a-z 0-9 - _ . ~, everything else %XX (upper-case hex) of its UTF-8 bytes."""
    # quote() is most of the cost of checking a signature. Most values need no escaping at all, and
    # ASCII ones use few distinct reserved characters (base64 values: + / =), each replaced in one
    # pass; "%" goes first so the escapes made after it are left alone.
    if _UNRESERVED.match(value):
        return value
    if not value.isascii():
        return quote(value, safe="-_.~")
    reserved = set(_RESERVED.findall(value))
    if "%" in reserved:
        value = value.replace("%", "%25")
        reserved.discard("%")
    for char in reserved:
        value = value.replace(char, _ASCII_ESCAPES[char])
    return value


def rpc_v1_string_to_sign(method: str, params: dict[str, str]) -> str:
    canonical = "&".join(
        f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(params.items()) if k != "Signature"
    )
    # percent_encode(canonical), done cheaply: the canonical query holds only unreserved characters,
    # %XX escapes, '=' and '&', and of those only '%', '=' and '&' need encoding. Three replace()
    # passes, '%' first: str.translate with a mapping to strings costs tens of times more.
    return f"{method}&%2F&{canonical.replace('%', '%25').replace('=', '%3D').replace('&', '%26')}"


def rpc_v1_signature(secret: str, string_to_sign: str) -> str:
    digest = hmac.digest((secret + "&").encode(), string_to_sign.encode(), "sha1")
    return base64.b64encode(digest).decode()


def acs3_canonical_request(
    method: str,
    path: str,
    query: dict[str, str],
    headers: dict[str, str],
    signed_headers: list[str],
    payload_hash: str,
) -> str:
    """`headers` has lower-case names; every name in `signed_headers` must be present."""
    canonical_query = "&".join(f"{percent_encode(k)}={percent_encode(v)}" for k, v in sorted(query.items()))
    canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed_headers)
    return "\n".join(
        (method, path, canonical_query, canonical_headers, ";".join(signed_headers), payload_hash)
    )


def acs3_string_to_sign(canonical_request: str) -> str:
    return "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical_request.encode()).hexdigest()


def acs3_signature(secret: str, string_to_sign: str) -> str:
    # Unlike v1, the key is the bare secret and the output is hex. (One-shot hmac.digest runs in
    # OpenSSL alone: half the cost of an hmac.new object.)
    return hmac.digest(secret.encode(), string_to_sign.encode(), "sha256").hex()


def acs3_authorization(access_key_id: str, secret: str, method: str, path: str, query: dict[str, str],
                       headers: dict[str, str], signed_headers: list[str], payload_hash: str) -> str:
    """The `Authorization` header a client sends with an ACS3-HMAC-SHA256 request: the same
    computation as the check in `auth`, from the client's side (the test suite and the benchmark
    sign with it, so that there is one signer)."""
    canonical = acs3_canonical_request(method, path, query, headers, signed_headers, payload_hash)
    signature = acs3_signature(secret, acs3_string_to_sign(canonical))
    return (f"ACS3-HMAC-SHA256 Credential={access_key_id},SignedHeaders={';'.join(signed_headers)},"
            f"Signature={signature}")


def rpc_v1_sign(secret: str, method: str, params: dict[str, str]) -> str:
    """The `Signature` parameter a client sends with an RPC v1 request over `params` (query and form)."""
    return rpc_v1_signature(secret, rpc_v1_string_to_sign(method, params))
