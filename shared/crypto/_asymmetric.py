"""RSA and EC (through `cryptography.hazmat`) and SM2 (through `sm2`, OpenSSL's own implementation):
key generation, loading, signing a digest, public-key encryption. No policy, no API names beyond
the algorithm identifiers; callers choose which algorithm a key spec allows.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils

from . import sm2

RSA_BITS = {"RSA_2048": 2048, "RSA_3072": 3072}
EC_CURVES = {"EC_P256": ec.SECP256R1, "EC_P256K": ec.SECP256K1}
# RSA-PSS salt length: the digest length (32 bytes for SHA-256). It is what AWS KMS, Java's
# "RSASSA-PSS" with SHA-256 parameters and most HSMs use, so signatures verify there without extra
# options; verification accepts any salt length, since every one is a valid RSASSA-PSS signature.
PSS_SALT = 32


class CryptoFailure(Exception):
    """Decryption or unwrapping failed. Carries no detail."""


def generate(spec: str) -> bytes:
    """A new private key of `spec` as PKCS#8 DER."""
    if spec == "EC_SM2":
        return sm2.generate().to_der()
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if spec in RSA_BITS:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS[spec])
    else:
        key = ec.generate_private_key(EC_CURVES[spec]())
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ec_private_from_scalar(spec: str, scalar: int) -> bytes:
    """The EC private key of `spec` with the given scalar, as PKCS#8 DER."""
    key = ec.derive_private_key(scalar, EC_CURVES[spec]())
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def private_der_from_pem(spec: str, pem: str) -> bytes:
    """PKCS#8 DER of an unencrypted PEM RSA or EC private key, which must be a key of `spec`;
    ValueError if not."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError) as exc:
        raise ValueError("not an unencrypted PEM private key") from exc
    if spec in RSA_BITS:
        ok = isinstance(key, rsa.RSAPrivateKey) and key.key_size == RSA_BITS[spec]
    else:
        ok = isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, EC_CURVES[spec])
    if not ok:
        raise ValueError(f"the private key is not a {spec} key")
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def load_private(spec: str, der: bytes):
    if spec == "EC_SM2":
        return sm2.PrivateKey.from_der(der)
    # The material was generated here and is authenticated by the root-key wrap, so the RSA
    # consistency check (tens of milliseconds per load: docs/measurements.md) buys nothing.
    return serialization.load_der_private_key(der, password=None, unsafe_skip_rsa_key_validation=True)


def public_der(private) -> bytes:
    if isinstance(private, sm2.PrivateKey):
        return private.public_key().to_der()
    return private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo)


def public_pem(private) -> str:
    if isinstance(private, sm2.PrivateKey):
        return private.public_key().to_pem()
    return private.public_key().public_bytes(serialization.Encoding.PEM,
                                             serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public(spec: str, der: bytes):
    """A caller-supplied public key (SubjectPublicKeyInfo DER) that must match `spec`."""
    if spec == "EC_SM2":
        try:
            return sm2.PublicKey.from_der(der)
        except sm2.SM2Error as exc:
            raise ValueError("not an SM2 public key") from exc
    try:
        key = serialization.load_der_public_key(der)
    except UnsupportedAlgorithm as exc:  # e.g. an SM2 key offered as RSA: cryptography has no SM2
        raise ValueError("unsupported public key") from exc
    if spec in RSA_BITS and not (isinstance(key, rsa.RSAPublicKey) and key.key_size == RSA_BITS[spec]):
        raise ValueError("wrong key type")
    return key


def _oaep(algorithm: str) -> padding.OAEP:
    h = hashes.SHA256() if algorithm == "RSAES_OAEP_SHA_256" else hashes.SHA1()
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def _encryption_padding(algorithm: str):
    return padding.PKCS1v15() if algorithm == "RSAES_PKCS1_V1_5" else _oaep(algorithm)


# Padding and hash parameter objects are immutable: built once, not on every call (each costs about
# as much as a small call's own work: docs/measurements.md).
_PREHASHED = utils.Prehashed(hashes.SHA256())
_ECDSA = ec.ECDSA(_PREHASHED)
_PKCS1 = padding.PKCS1v15()
_PSS_SIGN = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=PSS_SALT)
_PSS_VERIFY = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.AUTO)


def sign(private, algorithm: str, digest: bytes) -> bytes:
    if algorithm == "SM2DSA":
        return private.sign_digest(digest)
    if algorithm == "ECDSA_SHA_256":
        return private.sign(digest, _ECDSA)
    return private.sign(digest, _PSS_SIGN if algorithm == "RSA_PSS_SHA_256" else _PKCS1, _PREHASHED)


def verify(public, algorithm: str, digest: bytes, signature: bytes) -> bool:
    if algorithm == "SM2DSA":
        return public.verify_digest(digest, signature)
    try:
        if algorithm == "ECDSA_SHA_256":
            public.verify(signature, digest, _ECDSA)
        else:
            public.verify(signature, digest, _PSS_VERIFY if algorithm == "RSA_PSS_SHA_256" else _PKCS1, _PREHASHED)
        return True
    except (InvalidSignature, ValueError):
        return False


def encrypt(public, algorithm: str, plaintext: bytes) -> bytes:
    if algorithm == "SM2PKE":
        return public.encrypt(plaintext)
    return public.encrypt(plaintext, _encryption_padding(algorithm))


def decrypt(private, algorithm: str, ciphertext: bytes) -> bytes:
    try:
        if algorithm == "SM2PKE":
            return private.decrypt(ciphertext)
        return private.decrypt(ciphertext, _encryption_padding(algorithm))
    except (ValueError, sm2.SM2Error) as exc:
        raise CryptoFailure() from exc


def public_of(private):
    return private.public_key()
