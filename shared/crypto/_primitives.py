"""Symmetric primitives from `cryptography.hazmat` (with `_asymmetric`, the only modules that import it).
Thin, named operations; no policy. Outside the crypto package, use its public functions."""

from __future__ import annotations

import os
from functools import lru_cache

from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, hmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

NONCE_SIZE = 12
TAG_SIZE = 16

__all__ = ["InvalidTag", "random_bytes", "aes_gcm_seal", "aes_gcm_open", "sm4_gcm_seal", "sm4_gcm_open",
           "hkdf_sha256", "hmac_sha256", "hmac_sha256_ok"]


def random_bytes(n: int) -> bytes:
    return os.urandom(n)


@lru_cache(maxsize=4096)
def _aesgcm(key: bytes) -> AESGCM:
    # A key version's cipher object, built once per warm instance (the material is already kept in
    # memory by the version cache; this only saves rebuilding the object on every call).
    return AESGCM(key)


def aes_gcm_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Ciphertext followed by the 16-byte tag."""
    return _aesgcm(key).encrypt(nonce, plaintext, aad)


def aes_gcm_open(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    """Raises InvalidTag on any mismatch."""
    return _aesgcm(key).decrypt(nonce, sealed, aad)


def sm4_gcm_seal(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    # cryptography has no SM4 AEAD class; GCM through the Cipher API gives the same construction.
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(aad)
    return enc.update(plaintext) + enc.finalize() + enc.tag


def sm4_gcm_open(key: bytes, nonce: bytes, sealed: bytes, aad: bytes) -> bytes:
    if len(sealed) < TAG_SIZE:
        raise InvalidTag()
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, sealed[-TAG_SIZE:])).decryptor()
    dec.authenticate_additional_data(aad)
    return dec.update(sealed[:-TAG_SIZE]) + dec.finalize()


def hkdf_sha256(key: bytes, info: bytes, length: int = 32, salt: bytes | None = None) -> bytes:
    """A subkey of `key` for one purpose, named by `info` (HKDF-SHA256)."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt, info=info).derive(key)


def hmac_sha256(key: bytes, data: bytes) -> bytes:
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


def hmac_sha256_ok(key: bytes, data: bytes, tag: bytes) -> bool:
    """Whether `tag` is the HMAC of `data` (compared in constant time)."""
    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    try:
        mac.verify(tag)
    except InvalidSignature:
        return False
    return True
