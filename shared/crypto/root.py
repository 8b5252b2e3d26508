"""Key material and secret values at rest: wrapped under a root key with AES-256-GCM.

Wrapped form (then base64): format byte 0x01 | root key id length (1 byte) | root key id |
12-byte nonce | ciphertext | tag. The AAD names what is wrapped (for key material: the key id and
version id), so a wrapped blob moved to another row does not unwrap. The root key id inside the blob
lets the service read under old root keys while a root-key rotation re-wraps everything.
"""

from __future__ import annotations

import base64
import os
import time

from ..config import Config, read_root_key_file
from . import _primitives as p

FORMAT = 1


class UnwrapError(Exception):
    """A stored blob did not unwrap: wrong root key, corrupted row, or moved between rows."""


# A local instance re-reads its root key file when it changes (checked at most every RECHECK_SECONDS,
# a stat() call), so a root-key rotation run by `scripts/admin rotate-root-key` reaches running
# workers: they read under both keys and wrap new data under the new one. A deployment rolls
# KMS_ROOT_KEY instead.
RECHECK_SECONDS = 1.0
_file_state: dict[str, tuple[float, int, dict[str, bytes]]] = {}


def keys(cfg: Config, force: bool = False) -> dict[str, bytes]:
    path = cfg.root_key_path
    if path is None:
        return cfg.root_keys
    checked, mtime, found = _file_state.get(str(path), (0.0, -1, cfg.root_keys))
    now = time.monotonic()
    if force or now - checked >= RECHECK_SECONDS:
        current = os.stat(path).st_mtime_ns
        if current != mtime:
            found = read_root_key_file(path)
        _file_state[str(path)] = (now, current, found)
    return found


def wrap(cfg: Config, plaintext: bytes, aad: bytes) -> str:
    ring = keys(cfg)
    primary = next(iter(ring))
    kid = primary.encode()
    nonce = p.random_bytes(p.NONCE_SIZE)
    sealed = p.aes_gcm_seal(ring[primary], nonce, plaintext, aad)
    return base64.b64encode(bytes([FORMAT, len(kid)]) + kid + nonce + sealed).decode()


def root_key_id_of(wrapped: str) -> str:
    raw = base64.b64decode(wrapped)
    return raw[2 : 2 + raw[1]].decode()


def unwrap(cfg: Config, wrapped: str, aad: bytes) -> bytes:
    raw = base64.b64decode(wrapped)
    if len(raw) < 2 or raw[0] != FORMAT or len(raw) < 2 + raw[1] + p.NONCE_SIZE + p.TAG_SIZE:
        raise UnwrapError()
    end = 2 + raw[1]
    kid = raw[2:end].decode(errors="replace")
    key = keys(cfg).get(kid) or keys(cfg, force=True).get(kid)
    if key is None:
        raise UnwrapError()
    try:
        return p.aes_gcm_open(key, raw[end : end + p.NONCE_SIZE], raw[end + p.NONCE_SIZE :], aad)
    except p.InvalidTag as exc:
        raise UnwrapError() from exc
