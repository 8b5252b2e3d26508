"""Asymmetric keys: generate, load, sign a digest, verify, public-key encryption, the public key.

The public face of `_asymmetric` (RSA and EC through `cryptography`, SM2 through `sm2`): what the
asymmetric actions, BYOK and the version cache use. Imported only by them, so that a function that
never touches an asymmetric key never loads these libraries (a cold start).
"""

from __future__ import annotations

from ._asymmetric import (
    CryptoFailure,
    decrypt,
    encrypt,
    generate,
    load_private,
    load_public,
    public_der,
    public_of,
    public_pem,
    sign,
    verify,
)

__all__ = ["CryptoFailure", "decrypt", "encrypt", "generate", "load_private", "load_public", "public_der",
           "public_of", "public_pem", "sign", "verify"]
