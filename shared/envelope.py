"""Symmetric encryption under a key's primary version, and decryption of our blobs.

Shared by Encrypt, Decrypt, GenerateDataKey*, ReEncrypt and (later) secret values. A blob that names
a key this caller cannot see (another account's, or none at all) answers Forbidden.KeyNotFound, as a
KeyId naming it would (`kms-api.md` §9.6 lists it for Decrypt): the key id travels in the clear in
the blob's header, so this tells the caller nothing the blob did not. A blob that does not parse, names
a version its key does not have, or fails authentication (including a different EncryptionContext)
gets one detail-free error: InvalidParameter on CiphertextBlob.
"""

from __future__ import annotations

import base64
import binascii

from . import crypto, errors, keys, keyspecs, lifecycle, versions
from .context import Context
from .crypto import blob
from .records import Key

ENCRYPT_DECRYPT = keyspecs.ENCRYPT_DECRYPT
DATA_KEY_BYTES = {"AES_256": 32, "AES_128": 16}


def data_key_size(number_of_bytes: int | None, key_spec: str | None) -> int:
    """NumberOfBytes wins over KeySpec; neither means 32 bytes."""
    return number_of_bytes or DATA_KEY_BYTES[key_spec or "AES_256"]


def bad_ciphertext() -> errors.KmsError:
    return errors.InvalidParameter(name="CiphertextBlob")


def require_symmetric(key: Key) -> None:
    """Only symmetric ENCRYPT/DECRYPT keys take part in envelope encryption."""
    if key.key_spec not in keyspecs.SYMMETRIC or key.key_usage != ENCRYPT_DECRYPT:
        raise errors.UnsupportedOperation()


def encryption_key(ctx: Context, key_id_param: str) -> Key:
    """The key named by a KeyId parameter, checked usable for symmetric encryption."""
    key = keys.get_key(ctx, key_id_param)
    require_symmetric(key)
    lifecycle.require("use", key)
    return key


def encrypt(ctx: Context, key: Key, plaintext: bytes, context: dict[str, str] | None) -> tuple[str, str]:
    """(CiphertextBlob, the KeyVersionId that sealed it: the key's primary version)."""
    vid = key.primary_key_version
    assert vid is not None  # a usable symmetric key has a primary version
    material = versions.material(ctx, key, vid)
    raw = crypto.seal(key.key_spec, material, key.key_id, vid, plaintext, context)
    return base64.b64encode(raw).decode(), vid


def decrypt(ctx: Context, ciphertext_b64: str, context: dict[str, str] | None,
            key: Key | None = None) -> tuple[Key, str, bytes]:
    """(key, version id, plaintext) of one of our blobs. A caller that has just read and checked
    the key row may pass it (`key`) to save the second read; the blob must then name that key."""
    try:
        parsed = blob.parse(base64.b64decode(ciphertext_b64, validate=True))
    except (binascii.Error, ValueError, blob.InvalidBlob):
        raise bad_ciphertext() from None
    if key is None:
        key = Key.get(ctx.store, ctx.scope, parsed.key_id)
        if key is None or lifecycle.is_gone(key, ctx.now):
            raise errors.KeyNotFound()
        key = lifecycle.effective(key, ctx.now)
    elif key.key_id != parsed.key_id:
        raise bad_ciphertext()
    require_symmetric(key)
    lifecycle.require("use", key)
    try:
        material = versions.material(ctx, key, parsed.version_id)
        plaintext = crypto.open_blob(key.key_spec, material, parsed, context)
    except (errors.KeyVersionNotFound, crypto.DecryptError, crypto.UnwrapError):
        raise bad_ciphertext() from None
    return key, parsed.version_id, plaintext
