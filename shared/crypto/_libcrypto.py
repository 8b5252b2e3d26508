"""OpenSSL 3's libcrypto, bound by ctypes for the few EVP functions SM2 (and SM3) need: finding and
loading the library, prototypes, the error queue and DER helpers. `sm2` builds the key objects on top.
See `sm2` for the FFI rules followed here.

Which libcrypto, in order (the first that loads and is OpenSSL 3 or newer wins):
1. `KMS_LIBCRYPTO`, a path, when set: that library and no other (an operator's choice, and how a
   test hides the system's library).
2. The copy the deployment layer ships, `alikms_native/libcrypto.so.3` in a directory on sys.path
   (alikms.deploy.package puts it in the layer's python/, which Function Compute mounts at
   /opt/python): the Python runtimes of Function Compute have no OpenSSL 3 of their own.
3. The system's: `libcrypto.so.3`, then whatever ctypes.util.find_library("crypto") names.
Step 2 trusts the same directories Python imports code from (relative entries such as "" are skipped),
so it lets nobody plant a library who could not already plant a module.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading
from typing import TYPE_CHECKING, Any

DIGEST_SIZE = 32


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
    "EVP_MD_fetch": (_P, [_P, _STR, _STR]),
    "EVP_Digest": (_INT, [_BUF, _SZ, _BUF, ctypes.POINTER(ctypes.c_uint), _P, _P]),
}


class _Lib:
    """The bound functions. Built once and never mutated afterwards."""

    def __init__(self, cdll: ctypes.CDLL):
        for name, (restype, argtypes) in _PROTOTYPES.items():
            fn = getattr(cdll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name, fn)

    if TYPE_CHECKING:  # the functions of _PROTOTYPES, set above: ctypes function pointers
        def __getattr__(self, name: str) -> Any: ...


_lib: _Lib | None = None
_lib_name: str | None = None
_lib_error: str | None = None
_lib_lock = threading.Lock()
_sm3: int | None = None  # EVP_MD for SM3, fetched once and kept for the life of the process

ENV = "KMS_LIBCRYPTO"
BUNDLED = ("alikms_native", "libcrypto.so.3")


def _candidates() -> list[str]:
    explicit = os.environ.get(ENV)
    if explicit:
        return [explicit]
    names = [path for path in (os.path.join(entry, *BUNDLED) for entry in sys.path if entry)
             if os.path.isfile(path)]
    names.append("libcrypto.so.3")
    found = ctypes.util.find_library("crypto")
    if found and found not in names:
        names.append(found)
    names.append("libcrypto.3.dylib")
    return names


def library() -> str:
    """The libcrypto in use (a path, or the name the dynamic loader resolved); loads it if needed."""
    _load()
    assert _lib_name is not None
    return _lib_name


def _load() -> _Lib:
    global _lib, _lib_name, _lib_error
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
            _lib, _lib_name = lib, name
            return lib
        _lib_error = "no usable OpenSSL 3 libcrypto: " + "; ".join(problems)
        raise SM2Error(_lib_error)


def sm3(data: bytes) -> bytes:
    """SM3 (GB/T 32905) of `data`, by the same libcrypto: hashlib has SM3 only when Python's own
    OpenSSL does, and the runtimes that need the bundled libcrypto cannot be relied on for it."""
    global _sm3
    lib = _load()
    if _sm3 is None:
        with _lib_lock:
            if _sm3 is None:
                md = lib.EVP_MD_fetch(None, b"SM3", None)
                if not md:
                    raise _fail(lib, "SM3 is not available in this OpenSSL")
                _sm3 = md
    out = ctypes.create_string_buffer(DIGEST_SIZE)
    size = ctypes.c_uint(0)
    if lib.EVP_Digest(data, len(data), out, ctypes.byref(size), _sm3, None) != 1 or size.value != DIGEST_SIZE:
        raise _fail(lib, "EVP_Digest(SM3) failed")
    return out.raw


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
        return obj, (cursor.value or 0) - start  # (c_void_p reads a null pointer as None)
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
