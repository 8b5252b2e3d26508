"""The crypto layer the actions use. Primitives live in the private modules `_primitives` and
`_asymmetric` (the only importers of `cryptography.hazmat`) and `_libcrypto` (OpenSSL's SM2), reached
from outside this package only through its public functions and modules: this one (symmetric),
`keypairs` (asymmetric keys), `blob`, `root`, `sm2` and `derive` (tests/test_layering.py checks it).

Decryption failures of any kind surface as `DecryptError`, which carries no detail; the action
layer turns it into the one documented error for a bad ciphertext.
"""

from __future__ import annotations

from . import _primitives as _p
from . import blob
from .root import UnwrapError, root_key_id_of, unwrap, wrap

__all__ = ["DecryptError", "UnwrapError", "wrap", "unwrap", "root_key_id_of", "new_symmetric_material",
           "new_key_material",
           "random_bytes", "seal", "open_blob", "blob", "spec_supported", "aead_seal", "aead_open", "derive_key",
           "hmac_sha256", "hmac_sha256_ok"]

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


def aead_seal(key: bytes, plaintext: bytes, aad: bytes) -> tuple[bytes, bytes]:
    """AES-GCM under `key` with a fresh IV: (IV, ciphertext followed by the tag)."""
    iv = _p.random_bytes(_p.NONCE_SIZE)
    return iv, _p.aes_gcm_seal(key, iv, plaintext, aad)


def aead_open(key: bytes, iv: bytes, sealed: bytes, aad: bytes) -> bytes:
    """The plaintext `aead_seal` sealed; DecryptError if anything does not match."""
    try:
        return _p.aes_gcm_open(key, iv, sealed, aad)
    except _p.InvalidTag as exc:
        raise DecryptError() from exc


def derive_key(key: bytes, info: bytes, length: int = 32) -> bytes:
    """A subkey of `key` for one purpose, named by `info` (HKDF-SHA256, no salt: `key` is uniform)."""
    return _p.hkdf_sha256(key, info, length)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    return _p.hmac_sha256(key, data)


def hmac_sha256_ok(key: bytes, data: bytes, tag: bytes) -> bool:
    """Whether `tag` is the HMAC-SHA256 of `data` under `key` (compared in constant time)."""
    return _p.hmac_sha256_ok(key, data, tag)
