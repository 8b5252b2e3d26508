"""Bring your own key: import tokens with their wrapping key pairs, and unwrapping imported material.

GetParametersForImport makes a wrapping key pair and a token bound to one key (row
`import_tokens`, partition = account/region/key id, sort key = the token), valid 24 hours and
reusable in that time. The private half is wrapped under the root key like any key material.
A key stays bound to its first material forever: a wrapped SHA-256 of it is kept in the key row,
so even after DeleteKeyMaterial only the same material can come back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as csprng

from . import crypto, errors, keyspecs
from .crypto import _asymmetric
from .context import Context

TOKEN_LIFETIME = 24 * 3600


def _pk(ctx: Context, key_id: str) -> str:
    return f"{ctx.scope}/{key_id}"


def new_token(ctx: Context, key_id: str, spec: str, algorithm: str) -> tuple[str, bytes, int]:
    """(token, wrapping public key DER, expiry epoch)."""
    if algorithm not in keyspecs.IMPORT_WRAPPING.get(spec, ()):
        raise errors.InvalidParameter(name="WrappingAlgorithm")
    if not crypto.spec_supported(spec):
        raise errors.UnsupportedOperation()
    token = csprng.token_urlsafe(32)
    der = _asymmetric.generate(spec)
    expires = int(ctx.now) + TOKEN_LIFETIME
    ctx.store.put_new("import_tokens", _pk(ctx, key_id), token, {
        "spec": spec, "algorithm": algorithm, "expires": expires,
        "private": crypto.wrap(ctx.config, der, token_aad(key_id, token))})
    return token, _asymmetric.public_der(_asymmetric.load_private(spec, der)), expires


def unwrap_material(ctx: Context, key: dict, token: str, encrypted_b64: str) -> bytes:
    """The imported material, checked: token valid for this key, decrypts, right size, same as before."""
    item = ctx.store.get("import_tokens", _pk(ctx, key["key_id"]), token)
    if item is None:
        raise errors.InvalidImportToken()
    if item.data["expires"] <= ctx.now:
        raise errors.ExpiredImportToken()
    try:
        encrypted = base64.b64decode(encrypted_b64, validate=True)
        der = crypto.unwrap(ctx.config, item.data["private"], token_aad(key["key_id"], token))
        private = _asymmetric.load_private(item.data["spec"], der)
        material = _asymmetric.decrypt(private, item.data["algorithm"], encrypted)
    except (binascii.Error, ValueError, _asymmetric.CryptoFailure):
        raise errors.InvalidKeyMaterial() from None
    if len(material) != crypto.SYMMETRIC_SIZES[key["key_spec"]]:
        raise errors.InvalidKeyMaterial()
    if key.get("material_fingerprint"):
        seen = crypto.unwrap(ctx.config, key["material_fingerprint"], fingerprint_aad(key["key_id"]))
        if not hmac.compare_digest(seen, hashlib.sha256(material).digest()):
            raise errors.InvalidKeyMaterial()
    return material


def fingerprint(ctx: Context, key_id: str, material: bytes) -> str:
    return crypto.wrap(ctx.config, hashlib.sha256(material).digest(), fingerprint_aad(key_id))


def fingerprint_aad(key_id: str) -> bytes:
    return f"fingerprint/{key_id}".encode()


def token_aad(key_id: str, token: str) -> bytes:
    return f"import/{key_id}/{token}".encode()
