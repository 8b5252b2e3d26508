"""Asymmetric keys in use: which key, version and algorithm a call may use, and the export wrapping.

Rules (kms-api.md §3, §9.8-§9.12): the key must be asymmetric with the usage the call needs
(else Rejected.UnsupportedOperation), Enabled, and the algorithm one its spec supports (else
InvalidParameter on Algorithm); every call names its KeyVersionId (2021 model, no primary version).
"""

from __future__ import annotations

import base64
import binascii

from . import crypto, errors, keys, keyspecs, lifecycle, versions
from .context import Context
from .crypto import keypairs

CryptoFailure = keypairs.CryptoFailure


def usable(ctx: Context, key_id_param: str, version_id: str, usage: str, algorithm: str,
           algorithm_param: str = "Algorithm"):
    """(key, private key object) for a call needing `usage` with `algorithm` (named in the request
    by `algorithm_param`)."""
    key = keys.get_key(ctx, key_id_param)
    spec = keyspecs.SPECS[key.key_spec]
    if spec.symmetric or key.key_usage != usage:
        raise errors.RejectedUnsupportedOperation()
    allowed = spec.sign if usage == keyspecs.SIGN_VERIFY else spec.encrypt
    if algorithm not in allowed:
        raise errors.InvalidParameter(name=algorithm_param)
    lifecycle.require("use", key)
    # Forbidden.KeyVersionNotFound if unknown; versions never change, so a cached key is current.
    return key, versions.private_key(ctx, key, version_id)


def any_usage(ctx: Context, key_id_param: str, version_id: str):
    """(key, private key object) for GetPublicKey: any asymmetric key usable now."""
    key = keys.get_key(ctx, key_id_param)
    if keyspecs.SPECS[key.key_spec].symmetric:
        raise errors.RejectedUnsupportedOperation()
    lifecycle.require("use", key)
    return key, versions.private_key(ctx, key, version_id)


def digest(value: str) -> bytes:
    """A base64 SHA-256 / SM3 digest: exactly 32 bytes."""
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise errors.InvalidParameter(name="Digest") from None
    if len(raw) != 32:
        raise errors.InvalidParameter(name="Digest")
    return raw


def wrapping_public_key(public_key_blob: str, spec: str, algorithm: str, allowed: dict[str, tuple[str, ...]]):
    """A caller's public key (base64 DER SubjectPublicKeyInfo) checked against spec and algorithm."""
    if algorithm not in allowed.get(spec, ()):
        raise errors.InvalidParameter(name="WrappingAlgorithm")
    if not crypto.spec_supported(spec):
        raise errors.UnsupportedOperation()
    try:
        return keypairs.load_public(spec, base64.b64decode(public_key_blob, validate=True))
    except (binascii.Error, ValueError, TypeError):
        raise errors.InvalidParameter(name="PublicKeyBlob") from None


def export_cap(spec: str, algorithm: str) -> int:
    """The longest data key a wrapping spec and algorithm can carry (OAEP overhead, SM2's cap)."""
    return keyspecs.SPECS[spec].encrypt.get(algorithm, 0)


def export(public_key_blob: str, spec: str, algorithm: str, data_key: bytes, size_param: str) -> str:
    """ExportedDataKey: the data key encrypted under the caller's public key."""
    public = wrapping_public_key(public_key_blob, spec, algorithm, keyspecs.EXPORT_WRAPPING)
    if len(data_key) > export_cap(spec, algorithm):
        raise errors.InvalidParameter(name=size_param)
    return base64.b64encode(keypairs.encrypt(public, algorithm, data_key)).decode()


def sign(private, algorithm: str, digest_bytes: bytes) -> bytes:
    return keypairs.sign(private, algorithm, digest_bytes)


def verify(private, algorithm: str, digest_bytes: bytes, signature: bytes) -> bool:
    return keypairs.verify(keypairs.public_of(private), algorithm, digest_bytes, signature)


def encrypt(private, algorithm: str, plaintext: bytes) -> bytes:
    return keypairs.encrypt(keypairs.public_of(private), algorithm, plaintext)


def decrypt(private, algorithm: str, ciphertext: bytes) -> bytes:
    """Raises the detail-free ciphertext error on any failure."""
    try:
        return keypairs.decrypt(private, algorithm, ciphertext)
    except CryptoFailure:
        raise errors.InvalidParameter(name="CiphertextBlob") from None


def public_pem(private) -> str:
    return keypairs.public_pem(private)
