"""Key material and secret values at rest: wrapped under a root key with AES-256-GCM.

Wrapped form (then base64): format byte 0x01 | root key id length (1 byte) | root key id |
12-byte nonce | ciphertext | tag. The AAD names what is wrapped (for key material: the key id and
version id), so a wrapped blob moved to another row does not unwrap. The root key id inside the blob
lets the service read under old root keys while a root-key rotation re-wraps everything.
"""

from __future__ import annotations

import base64

from ..config import Config
from . import _primitives as p

FORMAT = 1


class UnwrapError(Exception):
    """A stored blob did not unwrap: wrong root key, corrupted row, or moved between rows."""


def wrap(cfg: Config, plaintext: bytes, aad: bytes) -> str:
    kid = cfg.primary_root_key_id.encode()
    nonce = p.random_bytes(p.NONCE_SIZE)
    sealed = p.aes_gcm_seal(cfg.root_keys[cfg.primary_root_key_id], nonce, plaintext, aad)
    return base64.b64encode(bytes([FORMAT, len(kid)]) + kid + nonce + sealed).decode()


def root_key_id_of(wrapped: str) -> str:
    raw = base64.b64decode(wrapped)
    return raw[2 : 2 + raw[1]].decode()


def unwrap(cfg: Config, wrapped: str, aad: bytes) -> bytes:
    raw = base64.b64decode(wrapped)
    if len(raw) < 2 or raw[0] != FORMAT or len(raw) < 2 + raw[1] + p.NONCE_SIZE + p.TAG_SIZE:
        raise UnwrapError()
    end = 2 + raw[1]
    key = cfg.root_keys.get(raw[2:end].decode(errors="replace"))
    if key is None:
        raise UnwrapError()
    try:
        return p.aes_gcm_open(key, raw[end : end + p.NONCE_SIZE], raw[end + p.NONCE_SIZE :], aad)
    except p.InvalidTag as exc:
        raise UnwrapError() from exc
