"""Bring your own key: import tokens with their wrapping key pairs, and unwrapping imported material.

GetParametersForImport makes a wrapping key pair and a token bound to one key (`records.ImportToken`),
valid 24 hours and reusable in that time. A key keeps at most MAX_TOKENS live tokens (a new one
replaces the oldest): every call adds a row, and the ExpireKeyMaterial timer removes a token only
after its 24 hours, so a caller could otherwise pile up rows (and RSA private keys to re-wrap on a
root-key rotation) without end. The private half is wrapped under the root key like any
key material. A key stays bound to its first material forever: a wrapped SHA-256 of it is kept in
the key record, so even after DeleteKeyMaterial only the same material can come back.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as csprng
import time

from . import crypto, errors, keyspecs
from .context import Context
from .crypto import keypairs
from .records import ImportToken, Key

TOKEN_LIFETIME = 24 * 3600
MAX_TOKENS = 10


def new_token(ctx: Context, key_id: str, spec: str, algorithm: str) -> tuple[str, bytes, int]:
    """(token, wrapping public key DER, expiry epoch)."""
    if algorithm not in keyspecs.IMPORT_WRAPPING.get(spec, ()):
        raise errors.InvalidParameter(name="WrappingAlgorithm")
    if not crypto.spec_supported(spec):
        raise errors.UnsupportedOperation()
    _make_room(ctx, key_id)
    token = csprng.token_urlsafe(32)
    der = keypairs.generate(spec)
    expires = int(ctx.now) + TOKEN_LIFETIME
    ImportToken(scope=ctx.scope, key_id=key_id, token=token, spec=spec, algorithm=algorithm, expires=expires,
                private=crypto.wrap(ctx.config, der, token_aad(key_id, token)), created=time.time()).insert(ctx.store)
    return token, keypairs.public_der(keypairs.load_private(spec, der)), expires


def _make_room(ctx: Context, key_id: str) -> None:
    """Remove the key's oldest live tokens beyond MAX_TOKENS - 1 (expired ones are the timer's)."""
    rows = ctx.store.query_all(ImportToken.TABLE, f"{ctx.scope}/{key_id}")
    live = sorted((r for r in rows if r.data.get("expires", 0) > ctx.now),
                  key=lambda r: (r.data["expires"], r.data.get("created", 0.0)))
    for row in live[:max(0, len(live) - MAX_TOKENS + 1)]:
        ctx.store.delete(ImportToken.TABLE, row.pk, row.sk)


def unwrap_material(ctx: Context, key: Key, token: str, encrypted_b64: str) -> bytes:
    """The imported material, checked: token valid for this key, decrypts, right size, same as before."""
    found = ImportToken.get(ctx.store, ctx.scope, key.key_id, token)
    if found is None:
        raise errors.InvalidImportToken()
    if found.expires <= ctx.now:
        raise errors.ExpiredImportToken()
    try:
        encrypted = base64.b64decode(encrypted_b64, validate=True)
        der = crypto.unwrap(ctx.config, found.private, token_aad(key.key_id, token))
        private = keypairs.load_private(found.spec, der)
        material = keypairs.decrypt(private, found.algorithm, encrypted)
    except (binascii.Error, ValueError, keypairs.CryptoFailure):
        raise errors.InvalidKeyMaterial() from None
    if len(material) != crypto.SYMMETRIC_SIZES[key.key_spec]:
        raise errors.InvalidKeyMaterial()
    if key.material_fingerprint and not bound_to(ctx, key, material):
        raise errors.InvalidKeyMaterial()
    return material


def bound_to(ctx: Context, key: Key, material: bytes) -> bool:
    """Whether `key` is bound to `material` (False when it is bound to nothing yet)."""
    if not key.material_fingerprint:
        return False
    seen = crypto.unwrap(ctx.config, key.material_fingerprint, fingerprint_aad(key.key_id))
    return hmac.compare_digest(seen, hashlib.sha256(material).digest())


def fingerprint(ctx: Context, key_id: str, material: bytes) -> str:
    return crypto.wrap(ctx.config, hashlib.sha256(material).digest(), fingerprint_aad(key_id))


def fingerprint_aad(key_id: str) -> bytes:
    return f"fingerprint/{key_id}".encode()


def token_aad(key_id: str, token: str) -> bytes:
    return f"import/{key_id}/{token}".encode()
