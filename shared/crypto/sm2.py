"""SM2 (GB/T 32918) through the system OpenSSL 3 libcrypto, by ctypes.

`cryptography` refuses the SM2 curve, so this module binds the few EVP functions of
`libcrypto.so.3` that SM2 needs. It is the same library Python's `hashlib` links. All the
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
import ctypes.util
import hashlib
import threading

__all__ = ["SM2Error", "PrivateKey", "PublicKey", "available", "generate", "za_digest",
           "DEFAULT_UID", "DIGEST_SIZE"]

DEFAULT_UID = b"1234567812345678"
DIGEST_SIZE = 32

# SM2 recommended curve parameters (GB/T 32918.5 / GM/T 0003.5). Used only as hash input for Z_A.
_A = bytes.fromhex("FFFFFFFEFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF00000000FFFFFFFFFFFFFFFC")
_B = bytes.fromhex("28E9FA9E9D9F5E344D5A9E4BCF6509A7F39789F515AB8F92DDBCBD414D940E93")
_GX = bytes.fromhex("32C4AE2C1F1981195F9904466A39C9948FE30BBFF2660BE1715A4589334C74C7")
_GY = bytes.fromhex("BC3736A2F4F6779C59BDCEE36B692153D0A9877CC62A474002DF32E52139F0A0")
_COORD = 32


class SM2Error(Exception):
    """An SM2 operation failed: bad DER, a key that is not SM2, failed decryption, or OpenSSL missing."""


# --------------------------------------------------------------------------- library binding

_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)
_SZ = ctypes.c_size_t
_PSZ = ctypes.POINTER(ctypes.c_size_t)
_BUF = ctypes.c_char_p  # bytes in, or a ctypes char array out
_INT = ctypes.c_int
_STR = ctypes.c_char_p

# name: (restype, argtypes)
_PROTOTYPES = {
    "OpenSSL_version_num": (ctypes.c_ulong, []),
    "ERR_get_error": (ctypes.c_ulong, []),
    "ERR_clear_error": (None, []),
    "ERR_error_string_n": (None, [ctypes.c_ulong, ctypes.c_char_p, _SZ]),
    "EVP_PKEY_CTX_new_from_name": (_P, [_P, _STR, _STR]),
    "EVP_PKEY_CTX_new_from_pkey": (_P, [_P, _P, _STR]),
    "EVP_PKEY_CTX_free": (None, [_P]),
    "EVP_PKEY_keygen_init": (_INT, [_P]),
    "EVP_PKEY_keygen": (_INT, [_P, _PP]),
    "EVP_PKEY_free": (None, [_P]),
    "EVP_PKEY_up_ref": (_INT, [_P]),
    "EVP_PKEY_is_a": (_INT, [_P, _STR]),
    "EVP_PKEY_get_size": (_INT, [_P]),
    "EVP_PKEY_get_bn_param": (_INT, [_P, _STR, _PP]),
    "BN_bn2binpad": (_INT, [_P, _BUF, _INT]),
    "BN_free": (None, [_P]),
    "EVP_PKEY_sign_init": (_INT, [_P]),
    "EVP_PKEY_sign": (_INT, [_P, _BUF, _PSZ, _BUF, _SZ]),
    "EVP_PKEY_verify_init": (_INT, [_P]),
    "EVP_PKEY_verify": (_INT, [_P, _BUF, _SZ, _BUF, _SZ]),
    "EVP_PKEY_encrypt_init": (_INT, [_P]),
    "EVP_PKEY_encrypt": (_INT, [_P, _BUF, _PSZ, _BUF, _SZ]),
    "EVP_PKEY_decrypt_init": (_INT, [_P]),
    "EVP_PKEY_decrypt": (_INT, [_P, _BUF, _PSZ, _BUF, _SZ]),
    "i2d_PUBKEY": (_INT, [_P, _PP]),
    "d2i_PUBKEY": (_P, [_PP, _PP, ctypes.c_long]),
    "EVP_PKEY2PKCS8": (_P, [_P]),
    "EVP_PKCS82PKEY": (_P, [_P]),
    "i2d_PKCS8_PRIV_KEY_INFO": (_INT, [_P, _PP]),
    "d2i_PKCS8_PRIV_KEY_INFO": (_P, [_PP, _PP, ctypes.c_long]),
    "PKCS8_PRIV_KEY_INFO_free": (None, [_P]),
}


class _Lib:
    """The bound functions. Built once and never mutated afterwards."""

    def __init__(self, cdll: ctypes.CDLL):
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(cdll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)


_lib: _Lib | None = None
_lib_error: str | None = None
_lib_lock = threading.Lock()
_available: bool | None = None


def _candidates() -> list[str]:
    names = ["libcrypto.so.3"]
    found = ctypes.util.find_library("crypto")
    if found and found not in names:
        names.append(found)
    names.append("libcrypto.3.dylib")
    return names


def _load() -> _Lib:
    global _lib, _lib_error
    if _lib is not None:
        return _lib
    with _lib_lock:
        if _lib is not None:
            return _lib
        if _lib_error is not None:
            raise SM2Error(_lib_error)
        problems = []
        for name in _candidates():
            try:
                cdll = ctypes.CDLL(name)
            except OSError as exc:
                problems.append(f"{name}: {exc}")
                continue
            try:
                version = cdll.OpenSSL_version_num
                version.restype = ctypes.c_ulong
                version.argtypes = []
                if version() < 0x30000000:
                    problems.append(f"{name}: OpenSSL older than 3.0")
                    continue
                lib = _Lib(cdll)
            except AttributeError as exc:
                problems.append(f"{name}: {exc}")
                continue
            _lib = lib
            return lib
        _lib_error = "no usable OpenSSL 3 libcrypto: " + "; ".join(problems)
        raise SM2Error(_lib_error)


# --------------------------------------------------------------------------- error queue

def _errors(lib: _Lib) -> str:
    """Drain the calling thread's OpenSSL error queue into one string."""
    parts = []
    buf = ctypes.create_string_buffer(256)
    while True:
        code = lib.ERR_get_error()
        if not code:
            break
        lib.ERR_error_string_n(code, buf, len(buf))
        parts.append(buf.value.decode("ascii", "replace"))
    return "; ".join(parts)


def _fail(lib: _Lib, what: str) -> SM2Error:
    detail = _errors(lib)
    return SM2Error(f"{what}: {detail}" if detail else what)


class _Op:
    """Bracket one public operation: empty error queue before and after."""

    __slots__ = ("lib",)

    def __init__(self) -> None:
        self.lib = _load()

    def __enter__(self) -> _Lib:
        self.lib.ERR_clear_error()
        return self.lib

    def __exit__(self, *exc) -> None:
        self.lib.ERR_clear_error()


# --------------------------------------------------------------------------- small helpers

def _as_bytes(value, what: str) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    raise TypeError(f"{what} must be bytes, not {type(value).__name__}")


def _i2d(lib: _Lib, fn, obj: int, what: str, secret: bool = False) -> bytes:
    """Run an i2d_* function: ask for the length, then encode into our own buffer."""
    size = fn(obj, None)
    if size <= 0:
        raise _fail(lib, f"{what}: encoding failed")
    buf = ctypes.create_string_buffer(size)
    cursor = ctypes.c_void_p(ctypes.addressof(buf))
    written = fn(obj, ctypes.byref(cursor))
    try:
        if written != size:
            raise _fail(lib, f"{what}: encoding failed")
        return buf.raw[:written]
    finally:
        if secret:
            ctypes.memset(buf, 0, size)


def _d2i(lib: _Lib, fn, der: bytes, what: str, secret: bool = False) -> tuple[int, int]:
    """Run a d2i_* function over `der`; returns (new object, bytes consumed) or raises."""
    if not der:
        raise SM2Error(f"{what}: empty input")
    buf = ctypes.create_string_buffer(der, len(der))
    start = ctypes.addressof(buf)
    cursor = ctypes.c_void_p(start)
    try:
        obj = fn(None, ctypes.byref(cursor), len(der))
        if not obj:
            raise _fail(lib, f"{what}: not valid DER")
        return obj, cursor.value - start
    finally:
        if secret:
            ctypes.memset(buf, 0, len(der))


def _require_sm2(lib: _Lib, pkey: int, what: str) -> None:
    if lib.EVP_PKEY_is_a(pkey, b"SM2") != 1:
        lib.EVP_PKEY_free(pkey)
        raise SM2Error(f"{what}: not an SM2 key (curve 1.2.156.10197.1.301)")


def _check_digest(digest) -> bytes:
    digest = _as_bytes(digest, "digest")
    if len(digest) != DIGEST_SIZE:
        raise ValueError(f"SM2 digest must be {DIGEST_SIZE} bytes, got {len(digest)}")
    return digest


def _der_length_ok(der: bytes) -> bool:
    """True if `der` is exactly one DER SEQUENCE (tag 0x30, definite length covering all bytes)."""
    if len(der) < 2 or der[0] != 0x30:
        return False
    first = der[1]
    if first < 0x80:
        return 2 + first == len(der)
    count = first & 0x7F
    if count == 0 or count > 4 or len(der) < 2 + count or der[2] == 0:
        return False
    length = int.from_bytes(der[2:2 + count], "big")
    if length < 0x80:  # must have used the short form
        return False
    return 2 + count + length == len(der)


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
        if pkey is not None and _lib is not None:
            _lib.EVP_PKEY_free(pkey)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: nothing sensible left to do
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

def available() -> bool:
    """True if an OpenSSL 3 libcrypto with SM2 (and hashlib's SM3) can be used."""
    global _available
    if _available is None:
        ok = False
        try:
            with _Op() as lib:
                ctx = lib.EVP_PKEY_CTX_new_from_name(None, b"SM2", None)
                if ctx:
                    lib.EVP_PKEY_CTX_free(ctx)
                    hashlib.new("sm3")
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
    z = hashlib.new("sm3")
    z.update(bits.to_bytes(2, "big") + uid + _A + _B + _GX + _GY + public.point())
    e = hashlib.new("sm3")
    e.update(z.digest() + message)
    return e.digest()
