"""Key material that seed files fix (`alikms.shared.seed`): derived from a seed, or given as PEM.

Derived material is the same on every run from the same seed, so ciphertexts and signatures made in
one test run or local runner stay valid in the next. Symmetric material is HKDF-SHA256 output; an EC
private key takes its scalar from HKDF output reduced into [1, n-1] (48 bytes for a 32-byte order,
so the bias is below 2^-128). RSA and SM2 key generation cannot be made to follow a seed with the
libraries here, so a seed file gives those keys as PEM, checked against the KeySpec.
"""

from __future__ import annotations

import base64
import binascii

from . import SYMMETRIC_SIZES, _asymmetric, sm2
from ._primitives import hkdf_sha256

_SALT = b"alikms seed material v1"
_ORDERS = {
    "EC_P256": 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551,
    "EC_P256K": 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141,
}
DERIVABLE = tuple(SYMMETRIC_SIZES) + tuple(_ORDERS)


def _hkdf(seed: bytes, label: str, size: int) -> bytes:
    return hkdf_sha256(seed, label.encode(), size, salt=_SALT)


def material(spec: str, seed: bytes, label: str) -> bytes:
    """Version material for `spec` (raw bytes, or PKCS#8 DER for EC) from `seed`; `label` names the
    key version so each gets its own. ValueError for a spec that cannot be derived."""
    if spec in SYMMETRIC_SIZES:
        return _hkdf(seed, label, SYMMETRIC_SIZES[spec])
    if spec not in _ORDERS:
        raise ValueError(f"{spec} material cannot be derived from a seed; give the private key as PEM")
    order = _ORDERS[spec]
    scalar = int.from_bytes(_hkdf(seed, label, 48), "big") % (order - 1) + 1
    return _asymmetric.ec_private_from_scalar(spec, scalar)


def private_key_from_pem(spec: str, pem: str) -> bytes:
    """PKCS#8 DER of an unencrypted PEM private key, which must be a key of `spec`; ValueError if not."""
    if spec == "EC_SM2":
        der = _pem_body(pem)
        try:
            return sm2.PrivateKey.from_der(der).to_der()
        except sm2.SM2Error as exc:
            raise ValueError("not an SM2 private key (PKCS#8 PEM)") from exc
    return _asymmetric.private_der_from_pem(spec, pem)


def _pem_body(pem: str) -> bytes:
    lines = [line.strip() for line in pem.strip().splitlines()]
    if len(lines) < 3 or not lines[0].startswith("-----BEGIN") or not lines[-1].startswith("-----END"):
        raise ValueError("not a PEM block")
    try:
        return base64.b64decode("".join(lines[1:-1]), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("bad base64 in the PEM block") from exc
