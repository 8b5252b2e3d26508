"""An independent reference implementation of the two signature schemes, written from docs/wire.md
§3 and §4 and the Tea SDK's own `quote(safe='~')` rule rather than from alikms.shared.signing: the
tests that check the service's signature verification sign with it, so that a mistake shared by the
service's signer and its verifier cannot pass unnoticed. (Everything else signs with the service's
own signer: tests/support.py.)"""

from __future__ import annotations

import base64
import hashlib
import hmac
from urllib.parse import quote


def encode(value: str) -> str:
    return quote(value, safe="~")


def v1_string_to_sign(method: str, params: dict[str, str]) -> str:
    canonical = "&".join(f"{encode(k)}={encode(v)}" for k, v in sorted(params.items()) if k != "Signature")
    return f"{method}&%2F&{encode(canonical)}"


def v1_signature(secret: str, sts: str) -> str:
    return base64.b64encode(hmac.new((secret + "&").encode(), sts.encode(), hashlib.sha1).digest()).decode()


def acs3(method: str, query: dict, headers: dict, signed: list[str], body: bytes, secret: str) -> tuple[str, str]:
    """(string to sign, signature) of an ACS3-HMAC-SHA256 request."""
    canonical = "\n".join((
        method,
        "/",
        "&".join(f"{encode(k)}={encode(v)}" for k, v in sorted(query.items())),
        "".join(f"{h}:{headers.get(h, '').strip()}\n" for h in signed),
        ";".join(signed),
        hashlib.sha256(body).hexdigest(),
    ))
    sts = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
    return sts, hmac.new(secret.encode(), sts.encode(), hashlib.sha256).hexdigest()
