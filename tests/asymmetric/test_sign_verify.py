"""AsymmetricSign / AsymmetricVerify / GetPublicKey for every spec and algorithm, interoperable both
ways with `cryptography` (RSA, ECDSA) and with our SM2 module and pysmx (SM2DSA); CreateKey usage
defaults and refusals for asymmetric specs; the 2021 CreateKeyVersion rules for asymmetric keys."""

from __future__ import annotations

import calendar
import hashlib
import secrets
import time
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
from pysmx import SM2 as smx

from alikms.shared.crypto import sm2
from tests.asymmetric.helpers import (
    DAY,
    SM2_UID,
    asym_key,
    b64,
    create_key,
    describe,
    edit_key,
    err,
    now,
    ok,
    pem_to_der,
    public_pem,
    sha256,
    sign,
    smx_digest,
    smx_sign_digest,
    verify,
    version_material,
    versions,
)
from tests.der import pkcs8_sm2_scalar, sig_der_to_raw, sig_raw_to_der, spki_point

SIGN = "SIGN/VERIFY"
ALGORITHMS = {"RSA_2048": ("RSA_PSS_SHA_256", "RSA_PKCS1_SHA_256"),
              "RSA_3072": ("RSA_PSS_SHA_256", "RSA_PKCS1_SHA_256"),
              "EC_P256": ("ECDSA_SHA_256",), "EC_P256K": ("ECDSA_SHA_256",), "EC_SM2": ("SM2DSA",)}
ALL_ALGORITHMS = ("RSA_PSS_SHA_256", "RSA_PKCS1_SHA_256", "ECDSA_SHA_256", "SM2DSA", "RSAES_OAEP_SHA_256",
                  "SM2PKE", "rsa_pss_sha_256", "SHA256")
CURVES = {"EC_P256": ec.SECP256R1, "EC_P256K": ec.SECP256K1}
PSS32 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
PREHASHED = utils.Prehashed(hashes.SHA256())


def _padding(algorithm: str):
    return PSS32 if algorithm == "RSA_PSS_SHA_256" else padding.PKCS1v15()


def _flip(data: bytes, i: int = -1) -> bytes:
    i %= len(data)
    return data[:i] + bytes([data[i] ^ 0x01]) + data[i + 1:]


def _digest(spec: str, der: bytes, message: bytes) -> bytes:
    if spec != "EC_SM2":
        return sha256(message)
    ours = sm2.za_digest(sm2.PublicKey.from_der(der), message)
    assert ours == smx_digest(spki_point(der), message)  # two implementations of SM3(Z_A || M) agree
    assert ours != hashlib.new("sm3", message).digest()
    return ours


@pytest.mark.parametrize("spec", list(ALGORITHMS))
def test_service_signatures_verify_outside_from_the_pem_alone(kms, spec):
    key, vid = asym_key(kms, spec, SIGN)
    pem = public_pem(kms, key, vid)
    der = pem_to_der(pem)
    for n, algorithm in enumerate(ALGORITHMS[spec]):
        message = f"message {n} for {spec}".encode()
        digest = _digest(spec, der, message)
        signature = sign(kms, key, vid, algorithm, digest)
        if spec == "EC_SM2":
            public = sm2.PublicKey.from_der(der)
            assert public.verify_digest(digest, signature)
            raw = sig_der_to_raw(signature)  # the service's SM2 signature is DER SEQUENCE{r, s}
            assert sig_raw_to_der(raw) == signature
            point = spki_point(der)
            assert smx.Verify(raw, digest, point, 64)
            assert smx.Verify(raw, message, point, 64, uid=SM2_UID)  # pysmx computes Z_A itself
            assert not smx.Verify(raw, message + b"!", point, 64, uid=SM2_UID)
            assert not public.verify_digest(sha256(message), signature)
        else:
            public = serialization.load_pem_public_key(pem.encode())
            if spec.startswith("RSA"):
                assert isinstance(public, rsa.RSAPublicKey) and public.key_size == int(spec[4:])
                # PSS with exactly 32 bytes of salt: OpenSSL refuses any other length when told 32.
                public.verify(signature, digest, _padding(algorithm), PREHASHED)
                public.verify(signature, message, _padding(algorithm), hashes.SHA256())
                assert len(signature) == public.key_size // 8
            else:
                assert isinstance(public, ec.EllipticCurvePublicKey)
                assert isinstance(public.curve, CURVES[spec])
                utils.decode_dss_signature(signature)  # DER, not raw r || s
                public.verify(signature, message, ec.ECDSA(hashes.SHA256()))
        assert verify(kms, key, vid, algorithm, digest, signature) is True
        assert verify(kms, key, vid, algorithm, _flip(digest), signature) is False
        assert verify(kms, key, vid, algorithm, sha256(b"another message"), signature) is False
        for i in (0, len(signature) // 2, -1):
            assert verify(kms, key, vid, algorithm, digest, _flip(signature, i)) is False
        assert verify(kms, key, vid, algorithm, digest, b"") is False
        assert verify(kms, key, vid, algorithm, digest, b"\x30\x03garbage") is False


@pytest.mark.parametrize("spec", ["RSA_2048", "EC_P256", "EC_P256K", "EC_SM2"])
def test_outside_signatures_verify_in_the_service(kms, spec):
    """Signatures made outside with the version's private key (taken from the store) are accepted."""
    key, vid = asym_key(kms, spec, SIGN)
    pkcs8 = version_material(kms.store, key, vid)
    der = pem_to_der(public_pem(kms, key, vid))
    message = b"signed outside"
    digest = _digest(spec, der, message)
    if spec == "EC_SM2":
        ours = sm2.PrivateKey.from_der(pkcs8).sign_digest(digest)
        by_digest = sig_raw_to_der(smx_sign_digest(pkcs8_sm2_scalar(pkcs8), digest))
        d_hex = pkcs8_sm2_scalar(pkcs8).hex()
        by_message = sig_raw_to_der(smx.Sign(message, d_hex, f"{secrets.randbelow(smx.sm2_N - 1) + 1:064x}", 64,
                                             uid=SM2_UID))
        for signature in (ours, by_digest, by_message):
            assert verify(kms, key, vid, "SM2DSA", digest, signature) is True
            assert verify(kms, key, vid, "SM2DSA", sha256(message), signature) is False
        return
    private = serialization.load_der_private_key(pkcs8, None)
    assert private.public_key().public_bytes(serialization.Encoding.DER,
                                             serialization.PublicFormat.SubjectPublicKeyInfo) == der
    if spec == "RSA_2048":
        for algorithm, pad in (("RSA_PKCS1_SHA_256", padding.PKCS1v15()), ("RSA_PSS_SHA_256", PSS32),
                               ("RSA_PSS_SHA_256", padding.PSS(padding.MGF1(hashes.SHA256()), 0)),
                               ("RSA_PSS_SHA_256", padding.PSS(padding.MGF1(hashes.SHA256()),
                                                               padding.PSS.MAX_LENGTH))):
            signature = private.sign(digest, pad, PREHASHED)
            assert verify(kms, key, vid, algorithm, digest, signature) is True
        pkcs1 = private.sign(digest, padding.PKCS1v15(), PREHASHED)
        assert verify(kms, key, vid, "RSA_PSS_SHA_256", digest, pkcs1) is False  # scheme matters
    else:
        signature = private.sign(digest, ec.ECDSA(PREHASHED))
        assert verify(kms, key, vid, "ECDSA_SHA_256", digest, signature) is True
        r, s = utils.decode_dss_signature(signature)
        raw = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        assert verify(kms, key, vid, "ECDSA_SHA_256", digest, raw) is False  # DER is the wire form


def test_create_key_usage_defaults_and_refusals(kms):
    defaults = {"RSA_2048": "ENCRYPT/DECRYPT", "EC_SM2": "ENCRYPT/DECRYPT", "EC_P256": SIGN, "EC_P256K": SIGN}
    for spec, usage in defaults.items():
        md = create_key(kms, spec)
        assert (md["KeySpec"], md["KeyUsage"], md["KeyState"], md["Origin"]) == (spec, usage, "Enabled", "Aliyun_KMS")
        assert "PrimaryKeyVersion" not in md and md["LastRotationDate"] == md["CreationDate"]
        assert md["AutomaticRotation"] == "Disabled"
        assert "PrimaryKeyVersion" not in describe(kms, md["KeyId"])
        assert len(versions(kms, md["KeyId"])) == 1
    for spec in ("RSA_2048", "EC_SM2", "EC_P256", "EC_P256K"):
        assert create_key(kms, spec, SIGN)["KeyUsage"] == SIGN
    before = ok(kms, "ListKeys", {"PageSize": "100"})["TotalCount"]
    for spec in ("EC_P256", "EC_P256K"):
        err(kms, "CreateKey", {"KeySpec": spec, "KeyUsage": "ENCRYPT/DECRYPT"}, "InvalidParameter", 400, "KeyUsage")
    err(kms, "CreateKey", {"KeySpec": "Aliyun_AES_256", "KeyUsage": SIGN}, "InvalidParameter", 400, "KeyUsage")
    err(kms, "CreateKey", {"KeySpec": "RSA_2048", "KeyUsage": "SIGN"}, "InvalidParameter", 400, "KeyUsage")
    err(kms, "CreateKey", {"KeySpec": "RSA_4096"}, "InvalidParameter", 400, "KeySpec")
    err(kms, "CreateKey", {"KeySpec": "EC_P256", "Origin": "EXTERNAL"}, "InvalidParameter", 400, "Origin")
    err(kms, "CreateKey", {"KeySpec": "RSA_2048", "KeyUsage": SIGN, "EnableAutomaticRotation": "true",
                           "RotationInterval": "30d"}, "UnsupportedOperation", 400)
    assert ok(kms, "ListKeys", {"PageSize": "100"})["TotalCount"] == before


def test_sign_verify_bad_input(kms):
    key, vid = asym_key(kms, "EC_P256")
    rsa_key, rsa_vid = asym_key(kms, "RSA_2048", SIGN)
    sm2_key, sm2_vid = asym_key(kms, "EC_SM2", SIGN)
    enc_key, enc_vid = asym_key(kms, "EC_SM2")  # ENCRYPT/DECRYPT
    sym = create_key(kms, "Aliyun_AES_256")
    digest = sha256(b"x")
    good = {"KeyId": key, "KeyVersionId": vid, "Algorithm": "ECDSA_SHA_256", "Digest": b64(digest)}
    signature = sign(kms, key, vid, "ECDSA_SHA_256", digest)
    checked = {"AsymmetricSign": good, "AsymmetricVerify": {**good, "Value": b64(signature)}}
    for action, params in checked.items():
        for own_key, own_vid, own_algorithm in ((key, vid, "ECDSA_SHA_256"), (rsa_key, rsa_vid, "RSA_PSS_SHA_256"),
                                                (sm2_key, sm2_vid, "SM2DSA")):
            for algorithm in ALL_ALGORITHMS:
                if algorithm != own_algorithm and not (own_key == rsa_key and algorithm == "RSA_PKCS1_SHA_256"):
                    err(kms, action, {**params, "KeyId": own_key, "KeyVersionId": own_vid, "Algorithm": algorithm},
                        "InvalidParameter", 400, "Algorithm")
        for size in (0, 20, 31, 33, 48, 64):
            err(kms, action, {**params, "Digest": b64(b"d" * size)}, "InvalidParameter", 400, "Digest")
        err(kms, action, {**params, "Digest": "not base64!"}, "InvalidParameter", 400, "Digest")
        for name in ("KeyId", "KeyVersionId", "Algorithm", "Digest") + (("Value",) if "Value" in params else ()):
            err(kms, action, {k: v for k, v in params.items() if k != name}, "MissingParameter", 400, name)
        err(kms, action, {**params, "KeyVersionId": str(uuid.uuid4())}, "Forbidden.KeyVersionNotFound", 404)
        err(kms, action, {**params, "KeyVersionId": rsa_vid}, "Forbidden.KeyVersionNotFound", 404)  # another key's
        err(kms, action, {**params, "KeyId": str(uuid.uuid4())}, "Forbidden.KeyNotFound", 404)
        err(kms, action, {**params, "KeyId": enc_key, "KeyVersionId": enc_vid, "Algorithm": "SM2DSA"},
            "Rejected.UnsupportedOperation", 400)
        err(kms, action, {**params, "KeyId": sym["KeyId"], "KeyVersionId": sym["PrimaryKeyVersion"]},
            "Rejected.UnsupportedOperation", 400)
    err(kms, "AsymmetricVerify", {**checked["AsymmetricVerify"], "Value": "%%%"}, "InvalidParameter", 400, "Value")
    for action, params in checked.items():
        err(kms, action, {**params, "DryRun": "true"}, "DryRunOperationError", 400)
        err(kms, action, {**params, "DryRun": "true", "Algorithm": "SM2DSA"}, "ValidationError", 400)
    err(kms, "GetPublicKey", {"KeyId": sym["KeyId"], "KeyVersionId": sym["PrimaryKeyVersion"]},
        "Rejected.UnsupportedOperation", 400)
    err(kms, "GetPublicKey", {"KeyId": key, "KeyVersionId": str(uuid.uuid4())}, "Forbidden.KeyVersionNotFound", 404)
    err(kms, "GetPublicKey", {"KeyId": key}, "MissingParameter", 400, "KeyVersionId")
    # Symmetric actions refuse asymmetric keys.
    err(kms, "Encrypt", {"KeyId": enc_key, "Plaintext": b64(b"x")}, "UnsupportedOperation", 400)
    err(kms, "GenerateDataKey", {"KeyId": key}, "UnsupportedOperation", 400)
    # Key states: only Enabled keys sign, verify or give their public key.
    ok(kms, "DisableKey", {"KeyId": key})
    for action, params in (*checked.items(), ("GetPublicKey", {"KeyId": key, "KeyVersionId": vid})):
        err(kms, action, params, "Rejected.Disabled", 409)
    ok(kms, "EnableKey", {"KeyId": key})
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "7"})
    for action, params in checked.items():
        err(kms, action, params, "Rejected.PendingDeletion", 409)
    ok(kms, "CancelKeyDeletion", {"KeyId": key})
    assert verify(kms, key, vid, "ECDSA_SHA_256", digest, signature) is True
    # Aliases name asymmetric keys too.
    ok(kms, "CreateAlias", {"AliasName": "alias/signer", "KeyId": key})
    body = ok(kms, "AsymmetricVerify", {**checked["AsymmetricVerify"], "KeyId": "alias/signer"})
    assert (body["KeyId"], body["KeyVersionId"], body["Value"]) == (key, vid, True)  # the resolved key id


def test_create_key_version_rules_for_asymmetric_keys(kms):
    key, v1 = asym_key(kms, "EC_P256")
    created = describe(kms, key)["LastRotationDate"]
    # Within 7 days of the last version: refused, nothing changes.
    err(kms, "CreateKeyVersion", {"KeyId": key}, "Rejected.UnsupportedOperation", 400)
    edit_key(kms.store, key, last_rotation_date=now() - 6 * DAY)
    err(kms, "CreateKeyVersion", {"KeyId": key}, "Rejected.UnsupportedOperation", 400)
    assert versions(kms, key) == [v1]
    edit_key(kms.store, key, last_rotation_date=now() - 8 * DAY)
    body = ok(kms, "CreateKeyVersion", {"KeyId": key})["KeyVersion"]
    v2 = body["KeyVersionId"]
    assert body["KeyId"] == key and v2 != v1 and body["CreationDate"]
    assert sorted(versions(kms, key)) == sorted([v1, v2])
    md = describe(kms, key)
    assert md["LastRotationDate"] >= created and "PrimaryKeyVersion" not in md
    moved = calendar.timegm(time.strptime(md["LastRotationDate"], "%Y-%m-%dT%H:%M:%SZ"))
    assert abs(moved - now()) <= 5  # the new version restarted the clock (it was 8 days back)
    assert ok(kms, "DescribeKeyVersion", {"KeyId": key, "KeyVersionId": v2})["KeyVersion"]["KeyVersionId"] == v2
    err(kms, "CreateKeyVersion", {"KeyId": key}, "Rejected.UnsupportedOperation", 400)  # the clock restarted
    # Each version is its own key pair; both stay usable, each names its own version.
    pem1, pem2 = public_pem(kms, key, v1), public_pem(kms, key, v2)
    assert pem1 != pem2
    digest = sha256(b"versioned")
    s1, s2 = sign(kms, key, v1, "ECDSA_SHA_256", digest), sign(kms, key, v2, "ECDSA_SHA_256", digest)
    assert verify(kms, key, v1, "ECDSA_SHA_256", digest, s1) and verify(kms, key, v2, "ECDSA_SHA_256", digest, s2)
    assert not verify(kms, key, v1, "ECDSA_SHA_256", digest, s2)
    assert not verify(kms, key, v2, "ECDSA_SHA_256", digest, s1)
    serialization.load_pem_public_key(pem2.encode()).verify(s2, digest, ec.ECDSA(PREHASHED))
    # At most 50 versions.
    edit_key(kms.store, key, last_rotation_date=now() - 8 * DAY, version_count=49)
    ok(kms, "CreateKeyVersion", {"KeyId": key})
    edit_key(kms.store, key, last_rotation_date=now() - 8 * DAY)
    count = len(versions(kms, key))
    err(kms, "CreateKeyVersion", {"KeyId": key}, "Rejected.LimitExceeded", 400)
    assert len(versions(kms, key)) == count == 3
    # Key states come first.
    other, _ = asym_key(kms, "EC_SM2", SIGN)
    edit_key(kms.store, other, last_rotation_date=now() - 8 * DAY)
    ok(kms, "DisableKey", {"KeyId": other})
    err(kms, "CreateKeyVersion", {"KeyId": other}, "Rejected.Disabled", 409)
    ok(kms, "ScheduleKeyDeletion", {"KeyId": other, "PendingWindowInDays": "7"})
    err(kms, "CreateKeyVersion", {"KeyId": other}, "Rejected.PendingDeletion", 409)
    assert len(versions(kms, other)) == 1
    err(kms, "CreateKeyVersion", {}, "MissingParameter", 400, "KeyId")
    err(kms, "CreateKeyVersion", {"KeyId": str(uuid.uuid4())}, "Forbidden.KeyNotFound", 404)

