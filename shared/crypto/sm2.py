"""SM2 (GB/T 32918) through OpenSSL 3's libcrypto, by ctypes.

`cryptography` refuses the SM2 curve, so this module binds the few EVP functions of
`libcrypto.so.3` that SM2 needs (which library: `_libcrypto`; a deployment ships its own). All the
elliptic-curve work happens inside OpenSSL's own SM2 implementation; this module only moves
bytes in and out.

* Signatures are over a 32-byte digest e = SM3(Z_A || M), the shape KMS `AsymmetricSign`
  takes. They are DER `SEQUENCE { r INTEGER, s INTEGER }`. `za_digest` computes e.
* Ciphertexts are GM/T 0009 DER `SEQUENCE { x INTEGER, y INTEGER, C3 OCTET STRING(32),
  C2 OCTET STRING }` (C1C3C2 order), with SM3 as the KDF and C3 hash.
* Private keys are PKCS#8 DER and public keys SubjectPublicKeyInfo DER. Both use
  id-ecPublicKey with the named curve 1.2.156.10197.1.301.

FFI rules followed throughout:
* every function has `argtypes`/`restype` declared, and opaque pointers are `c_void_p`;
* every OpenSSL object is freed in a `finally`;
* each operation starts and ends with an empty OpenSSL error queue, and a failure becomes an
  `SM2Error` that carries the queue's text. The queue is per thread in OpenSSL.
* no ctypes object is shared between calls. `PrivateKey`/`PublicKey` hold only the EVP_PKEY
  pointer. Each operation takes its own reference (EVP_PKEY_up_ref) under a small lock, so a
  concurrent `close()` cannot free the key while it is in use. EVP_PKEY is safe for concurrent
  read-only use with one EVP_PKEY_CTX per operation.
"""

from __future__ import annotations

import base64
import ctypes
import threading

from . import _libcrypto
from ._libcrypto import (
    _SZ,
    DIGEST_SIZE,
    SM2Error,
    _as_bytes,
    _check_digest,
    _d2i,
    _der_length_ok,
    _fail,
    _i2d,
    _Lib,
    _Op,
    _require_sm2,
)

__all__ = ["SM2Error", "PrivateKey", "PublicKey", "available", "generate", "za_digest",
           "DEFAULT_UID", "DIGEST_SIZE"]

DEFAULT_UID = b"1234567812345678"

# SM2 recommended curve parameters (GB/T 32918.5 / GM/T 0003.5). Used only as hash input for Z_A.
_A = bytes.fromhex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC")
_B = bytes.fromhex("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93")
_GX = bytes.fromhex("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7")
_GY = bytes.fromhex("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0")
_COORD = 32


# --------------------------------------------------------------------------- key objects

class _Key:
    """Owns one EVP_PKEY reference. Freed by close() or when garbage collected."""

    __slots__ = ("_pkey", "_lock", "__weakref__")

    def __init__(self, pkey: int):
        self._pkey: int | None = pkey
        self._lock = threading.Lock()

    def _acquire(self, lib: _Lib) -> int:
        """A new reference to the EVP_PKEY for one operation; the caller frees it."""
        with self._lock:
            pkey = self._pkey
            if pkey is None:
                raise SM2Error("key is closed")
            if lib.EVP_PKEY_up_ref(pkey) != 1:
                raise _fail(lib, "EVP_PKEY_up_ref failed")
            return pkey

    def _ctx(self, lib: _Lib, pkey: int) -> int:
        ctx = lib.EVP_PKEY_CTX_new_from_pkey(None, pkey, None)
        if not ctx:
            raise _fail(lib, "EVP_PKEY_CTX_new_from_pkey failed")
        return ctx

    def close(self) -> None:
        """Release the EVP_PKEY now. Operations still running keep their own reference."""
        lock = getattr(self, "_lock", None)
        if lock is None:
            return
        with lock:
            pkey, self._pkey = getattr(self, "_pkey", None), None
        if pkey is not None and _libcrypto._lib is not None:
            _libcrypto._lib.EVP_PKEY_free(pkey)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # noqa: BLE001 - interpreter shutdown: nothing sensible left to do
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PublicKey(_Key):
    """An SM2 public key. Cache one per key version; all methods are thread-safe."""

    __slots__ = ("_xy",)

    def __init__(self, pkey: int):
        super().__init__(pkey)
        self._xy: bytes | None = None

    @classmethod
    def from_der(cls, spki_der) -> PublicKey:
        """Load a SubjectPublicKeyInfo DER. Raises SM2Error for bad DER or a key that is not SM2."""
        der = _as_bytes(spki_der, "spki_der")
        with _Op() as lib:
            pkey, used = _d2i(lib, lib.d2i_PUBKEY, der, "SubjectPublicKeyInfo")
            if used != len(der):
                lib.EVP_PKEY_free(pkey)
                raise SM2Error("SubjectPublicKeyInfo: trailing bytes after the DER")
            _require_sm2(lib, pkey, "SubjectPublicKeyInfo")
            return cls(pkey)

    def to_der(self) -> bytes:
        """SubjectPublicKeyInfo DER (id-ecPublicKey, named curve SM2, uncompressed point)."""
        with _Op() as lib:
            pkey = self._acquire(lib)
            try:
                return _i2d(lib, lib.i2d_PUBKEY, pkey, "SubjectPublicKeyInfo")
            finally:
                lib.EVP_PKEY_free(pkey)

    def to_pem(self) -> str:
        body = base64.b64encode(self.to_der()).decode("ascii")
        lines = [body[i:i + 64] for i in range(0, len(body), 64)]
        return "-----BEGIN PUBLIC KEY-----\n" + "\n".join(lines) + "\n-----END PUBLIC KEY-----\n"

    def point(self) -> bytes:
        """The public point as x || y, 32 bytes each (big-endian)."""
        if self._xy is None:
            with _Op() as lib:
                pkey = self._acquire(lib)
                try:
                    out = []
                    for name in (b"qx", b"qy"):
                        bn = ctypes.c_void_p()
                        if lib.EVP_PKEY_get_bn_param(pkey, name, ctypes.byref(bn)) != 1 or not bn.value:
                            raise _fail(lib, "reading the public point failed")
                        try:
                            buf = ctypes.create_string_buffer(_COORD)
                            if lib.BN_bn2binpad(bn, buf, _COORD) != _COORD:
                                raise _fail(lib, "public point coordinate too large")
                            out.append(buf.raw)
                        finally:
                            lib.BN_free(bn)
                finally:
                    lib.EVP_PKEY_free(pkey)
            self._xy = out[0] + out[1]
        return self._xy

    def verify_digest(self, digest, signature_der) -> bool:
        """True if `signature_der` (DER r, s) is valid for the 32-byte `digest`.

        False for any wrong or malformed signature; ValueError only for a digest that is not 32 bytes.
        """
        digest = _check_digest(digest)
        sig = _as_bytes(signature_der, "signature_der")
        if not sig:
            return False
        with _Op() as lib:
            pkey = self._acquire(lib)
            ctx = None
            try:
                ctx = self._ctx(lib, pkey)
                if lib.EVP_PKEY_verify_init(ctx) != 1:
                    raise _fail(lib, "EVP_PKEY_verify_init failed")
                # 1 = valid; 0 = wrong signature; <0 = malformed signature (or an internal error).
                return lib.EVP_PKEY_verify(ctx, sig, len(sig), digest, len(digest)) == 1
            finally:
                if ctx:
                    lib.EVP_PKEY_CTX_free(ctx)
                lib.EVP_PKEY_free(pkey)

    def encrypt(self, plaintext) -> bytes:
        """SM2 public-key encryption; returns GM/T 0009 DER (C1, C3, C2)."""
        data = _as_bytes(plaintext, "plaintext")
        if not data:
            raise ValueError("SM2 plaintext must not be empty")
        with _Op() as lib:
            pkey = self._acquire(lib)
            ctx = None
            try:
                ctx = self._ctx(lib, pkey)
                if lib.EVP_PKEY_encrypt_init(ctx) != 1:
                    raise _fail(lib, "EVP_PKEY_encrypt_init failed")
                size = _SZ(0)
                if lib.EVP_PKEY_encrypt(ctx, None, ctypes.byref(size), data, len(data)) != 1 or not size.value:
                    raise _fail(lib, "SM2 encryption failed")
                buf = ctypes.create_string_buffer(size.value)
                if lib.EVP_PKEY_encrypt(ctx, buf, ctypes.byref(size), data, len(data)) != 1:
                    raise _fail(lib, "SM2 encryption failed")
                return buf.raw[:size.value]
            finally:
                if ctx:
                    lib.EVP_PKEY_CTX_free(ctx)
                lib.EVP_PKEY_free(pkey)


class PrivateKey(_Key):
    """An SM2 private key. Cache one per key version; all methods are thread-safe."""

    __slots__ = ("_public",)

    def __init__(self, pkey: int):
        super().__init__(pkey)
        self._public: PublicKey | None = None

    @classmethod
    def from_der(cls, pkcs8_der) -> PrivateKey:
        """Load a PKCS#8 PrivateKeyInfo DER (unencrypted). Raises SM2Error for bad DER or a key that is not SM2."""
        der = _as_bytes(pkcs8_der, "pkcs8_der")
        with _Op() as lib:
            p8, used = _d2i(lib, lib.d2i_PKCS8_PRIV_KEY_INFO, der, "PKCS#8", secret=True)
            try:
                if used != len(der):
                    raise SM2Error("PKCS#8: trailing bytes after the DER")
                pkey = lib.EVP_PKCS82PKEY(p8)
                if not pkey:
                    raise _fail(lib, "PKCS#8: unsupported or invalid private key")
            finally:
                lib.PKCS8_PRIV_KEY_INFO_free(p8)
            _require_sm2(lib, pkey, "PKCS#8")
            return cls(pkey)

    def to_der(self) -> bytes:
        """PKCS#8 PrivateKeyInfo DER (id-ecPublicKey, named curve SM2; includes the public key)."""
        with _Op() as lib:
            pkey = self._acquire(lib)
            try:
                p8 = lib.EVP_PKEY2PKCS8(pkey)
                if not p8:
                    raise _fail(lib, "EVP_PKEY2PKCS8 failed")
                try:
                    return _i2d(lib, lib.i2d_PKCS8_PRIV_KEY_INFO, p8, "PKCS#8", secret=True)
                finally:
                    lib.PKCS8_PRIV_KEY_INFO_free(p8)
            finally:
                lib.EVP_PKEY_free(pkey)

    def public_key(self) -> PublicKey:
        """The matching public key (a separate EVP_PKEY, cached on this object)."""
        public = self._public
        if public is None:
            with _Op() as lib:
                pkey = self._acquire(lib)
                try:
                    der = _i2d(lib, lib.i2d_PUBKEY, pkey, "SubjectPublicKeyInfo")
                finally:
                    lib.EVP_PKEY_free(pkey)
            public = self._public = PublicKey.from_der(der)
        return public

    def sign_digest(self, digest) -> bytes:
        """Sign a 32-byte digest e = SM3(Z_A || M); returns the DER signature (r, s)."""
        digest = _check_digest(digest)
        with _Op() as lib:
            pkey = self._acquire(lib)
            ctx = None
            try:
                ctx = self._ctx(lib, pkey)
                if lib.EVP_PKEY_sign_init(ctx) != 1:
                    raise _fail(lib, "EVP_PKEY_sign_init failed")
                cap = lib.EVP_PKEY_get_size(pkey)
                if cap <= 0:
                    raise _fail(lib, "EVP_PKEY_get_size failed")
                buf = ctypes.create_string_buffer(cap)
                size = _SZ(cap)
                if lib.EVP_PKEY_sign(ctx, buf, ctypes.byref(size), digest, len(digest)) != 1:
                    raise _fail(lib, "SM2 signing failed")
                return buf.raw[:size.value]
            finally:
                if ctx:
                    lib.EVP_PKEY_CTX_free(ctx)
                lib.EVP_PKEY_free(pkey)

    def decrypt(self, ciphertext_der) -> bytes:
        """Decrypt a GM/T 0009 DER ciphertext.

        Any malformed, truncated, extended or tampered input (a C3 mismatch included) raises SM2Error.
        """
        data = _as_bytes(ciphertext_der, "ciphertext_der")
        # OpenSSL's parser stops at the end of the SEQUENCE and ignores what follows; we do not.
        if not _der_length_ok(data):
            raise SM2Error("SM2 decryption failed: not a single DER SEQUENCE")
        with _Op() as lib:
            pkey = self._acquire(lib)
            ctx = None
            buf = None
            try:
                ctx = self._ctx(lib, pkey)
                if lib.EVP_PKEY_decrypt_init(ctx) != 1:
                    raise _fail(lib, "EVP_PKEY_decrypt_init failed")
                size = _SZ(0)
                if lib.EVP_PKEY_decrypt(ctx, None, ctypes.byref(size), data, len(data)) != 1:
                    raise _fail(lib, "SM2 decryption failed")
                cap = max(size.value, 1)
                buf = ctypes.create_string_buffer(cap)
                size = _SZ(cap)
                if lib.EVP_PKEY_decrypt(ctx, buf, ctypes.byref(size), data, len(data)) != 1:
                    raise _fail(lib, "SM2 decryption failed")
                return buf.raw[:size.value]
            finally:
                if buf is not None:
                    ctypes.memset(buf, 0, len(buf))
                if ctx:
                    lib.EVP_PKEY_CTX_free(ctx)
                lib.EVP_PKEY_free(pkey)


# --------------------------------------------------------------------------- module API

_available: bool | None = None


def available() -> bool:
    """True if an OpenSSL 3 libcrypto with SM2 and SM3 can be used."""
    global _available
    if _available is None:
        ok = False
        try:
            with _Op() as lib:
                ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
                if ctx:
                    lib.EVP_PKEY_CTX_free(ctx)
                    _libcrypto.sm3(b"")
                    ok = True
        except (SM2Error, ValueError):
            ok = False
        _available = ok
    return _available


def generate() -> PrivateKey:
    """A new SM2 key pair from OpenSSL's CSPRNG."""
    with _Op() as lib:
        ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
        if not ctx:
            raise _fail(lib, "SM2 is not available in this OpenSSL")
        try:
            if lib.EVP_PKEY_keygen_init(ctx) != 1:
                raise _fail(lib, "EVP_PKEY_keygen_init failed")
            out = ctypes.c_void_p()
            if lib.EVP_PKEY_keygen(ctx, ctypes.byref(out)) != 1 or not out.value:
                raise _fail(lib, "SM2 key generation failed")
        finally:
            lib.EVP_PKEY_CTX_free(ctx)
        return PrivateKey(out.value)


def za_digest(public: PublicKey, message, uid: bytes = DEFAULT_UID) -> bytes:
    """e = SM3(Z_A || M), Z_A = SM3(ENTL || ID || a || b || xG || yG || xA || yA) (GB/T 32918.2).

    This is the 32-byte value `sign_digest`/`verify_digest` (and KMS AsymmetricSign for SM2DSA) take.
    """
    if not isinstance(public, PublicKey):
        raise TypeError("public must be a PublicKey")
    message = _as_bytes(message, "message")
    uid = _as_bytes(uid, "uid")
    bits = len(uid) * 8
    if bits > 0xFFFF:
        raise ValueError("uid is too long (ENTL is 16 bits)")
    z = _libcrypto.sm3(bits.to_bytes(2, "big") + uid + _A + _B + _GX + _GY + public.point())
    return _libcrypto.sm3(z + message)
