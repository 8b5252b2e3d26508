"""The crypto layer the actions use. Primitives live in `_primitives` (the only hazmat importer).

Decryption failures of any kind surface as `DecryptError`, which carries no detail; the action
layer turns it into the one documented error for a bad ciphertext.
"""

from __future__ import annotations

from . import _primitives as _p
from . import blob
from .root import UnwrapError, root_key_id_of, unwrap, wrap

__all__ = ["DecryptError", "UnwrapError", "wrap", "unwrap", "root_key_id_of", "new_symmetric_material", "new_key_material",
           "random_bytes", "seal", "open_blob", "blob", "spec_supported"]

# Key material length per symmetric KeySpec.
SYMMETRIC_SIZES = {"Aliyun_AES_256": 32, "Aliyun_AES_192": 24, "Aliyun_AES_128": 16, "Aliyun_SM4": 16}


class DecryptError(Exception):
    """Any reason a ciphertext did not decrypt (format, key, version, tag, context)."""


def new_symmetric_material(key_spec: str) -> bytes:
    return _p.random_bytes(SYMMETRIC_SIZES[key_spec])


def new_key_material(key_spec: str) -> bytes:
    """Fresh material for a key version: random bytes (symmetric) or a PKCS#8 private key."""
    if key_spec in SYMMETRIC_SIZES:
        return new_symmetric_material(key_spec)
    from . import _asymmetric

    return _asymmetric.generate(key_spec)


def spec_supported(key_spec: str) -> bool:
    """SM2 needs the system's OpenSSL 3 libcrypto (see sm2.py); every other spec is always here."""
    if key_spec != "EC_SM2":
        return True
    from . import sm2

    return sm2.available()


def random_bytes(n: int) -> bytes:
    return _p.random_bytes(n)


def seal(key_spec: str, material: bytes, key_id: str, version_id: str, plaintext: bytes,
         context: dict[str, str] | None) -> bytes:
    """Encrypt under one key version; returns the raw blob."""
    head = blob.header(key_id, version_id)
    iv = _p.random_bytes(_p.NONCE_SIZE)
    aad = head + blob.context_aad(context)
    if key_spec == "Aliyun_SM4":
        sealed = _p.sm4_gcm_seal(material, iv, plaintext, aad)
    else:
        sealed = _p.aes_gcm_seal(material, iv, plaintext, aad)
    return head + iv + sealed


def open_blob(key_spec: str, material: bytes, parsed: blob.Blob, context: dict[str, str] | None) -> bytes:
    aad = parsed.header + blob.context_aad(context)
    try:
        if key_spec == "Aliyun_SM4":
            return _p.sm4_gcm_open(material, parsed.iv, parsed.sealed, aad)
        return _p.aes_gcm_open(material, parsed.iv, parsed.sealed, aad)
    except _p.InvalidTag as exc:
        raise DecryptError() from exc
