"""Our symmetric ciphertext blob (base64 on the wire). API-compatible with Alibaba KMS, not byte-compatible:
clients treat the blob as opaque.

    format (1 byte, 0x01) | key id length (1) | key id | version id length (1) | version id |
    IV (12) | ciphertext | tag (16)

The blob names its key and version, so Decrypt needs no KeyId and old versions keep decrypting
after rotations. The AAD of the AEAD is the header (everything before the IV) followed by the
canonical encoding of the EncryptionContext, so changing any header byte or the context fails
authentication. Parsing checks every length before slicing.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

from ._primitives import NONCE_SIZE, TAG_SIZE

FORMAT = 0x01
MAX_ID = 64


class InvalidBlob(Exception):
    """Not one of our blobs, or damaged. Deliberately carries no detail."""


@dataclass(frozen=True)
class Blob:
    key_id: str
    version_id: str
    header: bytes
    iv: bytes
    sealed: bytes  # ciphertext followed by the tag


@lru_cache(maxsize=4096)  # the same few key versions encrypt again and again
def header(key_id: str, version_id: str) -> bytes:
    k, v = key_id.encode("ascii"), version_id.encode("ascii")
    return bytes([FORMAT, len(k)]) + k + bytes([len(v)]) + v


def parse(raw: bytes) -> Blob:
    if len(raw) < 3 or raw[0] != FORMAT:
        raise InvalidBlob()
    klen = raw[1]
    if not 0 < klen <= MAX_ID or len(raw) < 3 + klen:
        raise InvalidBlob()
    vlen = raw[2 + klen]
    end = 3 + klen + vlen
    if not 0 < vlen <= MAX_ID or len(raw) < end + NONCE_SIZE + TAG_SIZE:
        raise InvalidBlob()
    try:
        key_id = raw[2 : 2 + klen].decode("ascii")
        version_id = raw[3 + klen : end].decode("ascii")
    except UnicodeDecodeError as exc:
        raise InvalidBlob() from exc
    return Blob(key_id, version_id, raw[:end], raw[end : end + NONCE_SIZE], raw[end + NONCE_SIZE :])


def context_aad(context: dict[str, str] | None) -> bytes:
    """Canonical bytes of an EncryptionContext: sorted keys, no whitespace, UTF-8. Unambiguous, so
    {"ab":"c"} and {"a":"bc"} differ; key order and formatting of the caller's JSON do not matter."""
    if not context:
        return b""
    return json.dumps(context, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
