"""AsymmetricEncrypt / AsymmetricDecrypt at and past each plaintext cap, interoperable both ways
(`cryptography` OAEP with MGF1 of the same hash; SM2 through our module and pysmx), tampered
ciphertexts, and ReEncrypt from an asymmetric ciphertext to a symmetric key."""

from __future__ import annotations

import json
import os
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from pysmx import SM2 as smx

from alikms.shared.crypto import sm2
from tests import support
from tests.asymmetric.helpers import (
    BAD_BLOB_MESSAGE,
    DAY,
    asym_key,
    b64,
    create_key,
    decrypt,
    edit_key,
    encrypt,
    err,
    now,
    ok,
    pem_to_der,
    public_pem,
    unb64,
    version_material,
)
from tests.der import pkcs8_sm2_scalar, sm2_ct_der_to_raw, sm2_ct_raw_to_der, spki_point

CAPS = {"RSA_2048": {"RSAES_OAEP_SHA_256": 190, "RSAES_OAEP_SHA_1": 214},
        "RSA_3072": {"RSAES_OAEP_SHA_256": 318, "RSAES_OAEP_SHA_1": 342},
        "EC_SM2": {"SM2PKE": 6047}}
HASHES = {"RSAES_OAEP_SHA_256": hashes.SHA256, "RSAES_OAEP_SHA_1": hashes.SHA1}


def _oaep(algorithm: str) -> padding.OAEP:
    h = HASHES[algorithm]()
    return padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)


def _outside_encryptions(pem: str, algorithm: str, plaintext: bytes) -> list[bytes]:
    """Ciphertexts made outside the service from the PEM alone."""
    if algorithm == "SM2PKE":
        der = pem_to_der(pem)
        raw = support.smx_encrypt(plaintext, spki_point(der))  # pysmx: raw x || y || C3 || C2
        return [sm2.PublicKey.from_der(der).encrypt(plaintext), sm2_ct_raw_to_der(raw)]
    return [serialization.load_pem_public_key(pem.encode()).encrypt(plaintext, _oaep(algorithm))]


def _outside_decryptions(pkcs8: bytes, algorithm: str, ciphertext: bytes) -> list[bytes]:
    """The service's ciphertext decrypted outside with the version's private key (from the store)."""
    if algorithm == "SM2PKE":
        by_smx = smx.Decrypt(sm2_ct_der_to_raw(ciphertext), pkcs8_sm2_scalar(pkcs8), 64)
        return [sm2.PrivateKey.from_der(pkcs8).decrypt(ciphertext), by_smx]
    return [serialization.load_der_private_key(pkcs8, None).decrypt(ciphertext, _oaep(algorithm))]


def _tampered(raw: bytes) -> list[bytes]:
    out = [raw[:-1], raw + b"\x00", raw[1:], b"\x00" * len(raw), os.urandom(len(raw)), b"\x01"]
    for i in sorted({0, 1, 5, len(raw) // 2, len(raw) - 1}):
        out.append(raw[:i] + bytes([raw[i] ^ 0x01]) + raw[i + 1:])
    return out


def _bad_blob(kms, params: dict, action: str = "AsymmetricDecrypt") -> None:
    body = err(kms, action, params, "InvalidParameter", 400, "CiphertextBlob")
    assert body["Message"] == BAD_BLOB_MESSAGE
    assert "Plaintext" not in body and "Detail" not in body


@pytest.mark.parametrize("spec", list(CAPS))
def test_encrypt_at_cap_and_interop_both_ways(kms, spec):
    key, vid = asym_key(kms, spec)  # ENCRYPT/DECRYPT is the default usage
    pem = public_pem(kms, key, vid)
    pkcs8 = version_material(kms.store, key, vid)
    for algorithm, cap in CAPS[spec].items():
        base = {"KeyId": key, "KeyVersionId": vid, "Algorithm": algorithm}
        for size in (1, cap):
            plaintext = os.urandom(size)
            ciphertext = encrypt(kms, key, vid, algorithm, plaintext)
            if spec.startswith("RSA"):
                assert len(ciphertext) == int(spec[4:]) // 8
            else:
                # GM/T 0009 DER, canonical; the raw 0x04 || C1 || C3 || C2 form is at most 6144 bytes
                # (the documented bound), the DER form up to 112 bytes more than the plaintext.
                raw = sm2_ct_der_to_raw(ciphertext)
                assert sm2_ct_raw_to_der(raw) == ciphertext
                assert len(raw) == 96 + size and 1 + len(raw) <= 6144 and len(ciphertext) <= size + 112
            assert decrypt(kms, key, vid, algorithm, ciphertext) == plaintext
            assert encrypt(kms, key, vid, algorithm, plaintext) != ciphertext  # randomised
            for outside in _outside_decryptions(pkcs8, algorithm, ciphertext):
                assert outside == plaintext
            for made_outside in _outside_encryptions(pem, algorithm, plaintext):
                assert decrypt(kms, key, vid, algorithm, made_outside) == plaintext
        err(kms, "AsymmetricEncrypt", {**base, "Plaintext": b64(os.urandom(cap + 1))}, "InvalidParameter", 400,
            "Plaintext")
        err(kms, "AsymmetricEncrypt", {**base, "Plaintext": "###"}, "InvalidParameter", 400, "Plaintext")
    if spec.startswith("RSA"):
        # OAEP-SHA-1 and OAEP-SHA-256 are different paddings: one's ciphertext is no good for the other.
        ciphertext = encrypt(kms, key, vid, "RSAES_OAEP_SHA_1", b"which hash")
        _bad_blob(kms, {"KeyId": key, "KeyVersionId": vid, "Algorithm": "RSAES_OAEP_SHA_256",
                        "CiphertextBlob": b64(ciphertext)})
        public = serialization.load_pem_public_key(pem.encode())
        mixed = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA256(), label=None)
        _bad_blob(kms, {"KeyId": key, "KeyVersionId": vid, "Algorithm": "RSAES_OAEP_SHA_256",
                        "CiphertextBlob": b64(public.encrypt(b"mgf1 must be sha-256", mixed))})
        pkcs1 = public.encrypt(b"not oaep", padding.PKCS1v15())
        for algorithm in CAPS[spec]:
            _bad_blob(kms, {"KeyId": key, "KeyVersionId": vid, "Algorithm": algorithm, "CiphertextBlob": b64(pkcs1)})


@pytest.mark.parametrize("spec", ["RSA_2048", "EC_SM2"])
def test_tampered_ciphertexts_get_one_detail_free_error(kms, spec):
    key, vid = asym_key(kms, spec, "ENCRYPT/DECRYPT")
    algorithm = next(iter(CAPS[spec]))
    base = {"KeyId": key, "KeyVersionId": vid, "Algorithm": algorithm}
    raw = encrypt(kms, key, vid, algorithm, b"tamper with me")
    for bad in _tampered(raw):
        _bad_blob(kms, {**base, "CiphertextBlob": b64(bad)})
    for text in ("not base64!", "", "QUJD="):
        _bad_blob(kms, {**base, "CiphertextBlob": text})
    # A ciphertext of another key, or of another version of the same key, does not decrypt either.
    other, other_vid = asym_key(kms, spec)
    _bad_blob(kms, {"KeyId": other, "KeyVersionId": other_vid, "Algorithm": algorithm, "CiphertextBlob": b64(raw)})
    edit_key(kms.store, key, last_rotation_date=now() - 8 * DAY)
    v2 = ok(kms, "CreateKeyVersion", {"KeyId": key})["KeyVersion"]["KeyVersionId"]
    _bad_blob(kms, {**base, "KeyVersionId": v2, "CiphertextBlob": b64(raw)})
    assert decrypt(kms, key, vid, algorithm, raw) == b"tamper with me"
    assert decrypt(kms, key, v2, algorithm, encrypt(kms, key, v2, algorithm, b"v2")) == b"v2"


def test_encrypt_decrypt_bad_input(kms):
    key, vid = asym_key(kms, "RSA_2048")
    sm2_key, sm2_vid = asym_key(kms, "EC_SM2")
    signer, signer_vid = asym_key(kms, "EC_SM2", "SIGN/VERIFY")
    sym = create_key(kms, "Aliyun_AES_256")
    ciphertext = encrypt(kms, key, vid, "RSAES_OAEP_SHA_256", b"abc")
    enc = {"KeyId": key, "KeyVersionId": vid, "Algorithm": "RSAES_OAEP_SHA_256", "Plaintext": b64(b"abc")}
    dec = {"KeyId": key, "KeyVersionId": vid, "Algorithm": "RSAES_OAEP_SHA_256", "CiphertextBlob": b64(ciphertext)}
    for action, params in (("AsymmetricEncrypt", enc), ("AsymmetricDecrypt", dec)):
        for algorithm in ("SM2PKE", "RSAES_PKCS1_V1_5", "RSA_PSS_SHA_256", "rsaes_oaep_sha_256", ""):
            err(kms, action, {**params, "Algorithm": algorithm}, "InvalidParameter", 400, "Algorithm")
        for algorithm in ("RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "SM2DSA"):
            err(kms, action, {**params, "KeyId": sm2_key, "KeyVersionId": sm2_vid, "Algorithm": algorithm},
                "InvalidParameter", 400, "Algorithm")
        err(kms, action, {**params, "KeyId": signer, "KeyVersionId": signer_vid, "Algorithm": "SM2PKE"},
            "Rejected.UnsupportedOperation", 400)
        err(kms, action, {**params, "KeyId": sym["KeyId"], "KeyVersionId": sym["PrimaryKeyVersion"]},
            "Rejected.UnsupportedOperation", 400)
        for name in params:
            err(kms, action, {k: v for k, v in params.items() if k != name}, "MissingParameter", 400, name)
        err(kms, action, {**params, "KeyVersionId": str(uuid.uuid4())}, "Forbidden.KeyVersionNotFound", 404)
        err(kms, action, {**params, "KeyVersionId": sm2_vid}, "Forbidden.KeyVersionNotFound", 404)
        err(kms, action, {**params, "KeyId": str(uuid.uuid4())}, "Forbidden.KeyNotFound", 404)
    err(kms, "AsymmetricEncrypt", {**enc, "Plaintext": ""}, "InvalidParameter", 400, "Plaintext")
    err(kms, "AsymmetricDecrypt", {**dec, "Recipient": "{}"}, "Rejected.UnsupportedOperation", 400)
    ok(kms, "DisableKey", {"KeyId": key})
    err(kms, "AsymmetricEncrypt", enc, "Rejected.Disabled", 409)
    err(kms, "AsymmetricDecrypt", dec, "Rejected.Disabled", 409)
    ok(kms, "EnableKey", {"KeyId": key})
    assert decrypt(kms, key, vid, "RSAES_OAEP_SHA_256", ciphertext) == b"abc"
    # Aliases name the key, the response names the key id.
    ok(kms, "CreateAlias", {"AliasName": "alias/rsa-enc", "KeyId": key})
    body = ok(kms, "AsymmetricDecrypt", {**dec, "KeyId": "alias/rsa-enc"})
    assert (body["KeyId"], unb64(body["Plaintext"])) == (key, b"abc")


@pytest.mark.parametrize("spec", ["RSA_2048", "EC_SM2"])
def test_reencrypt_from_an_asymmetric_ciphertext(kms, spec):
    key, vid = asym_key(kms, spec)
    dest = create_key(kms, "Aliyun_AES_256")
    pem = public_pem(kms, key, vid)
    context = {"purpose": "reencrypt"}
    for algorithm in CAPS[spec]:
        plaintext = f"moved with {algorithm}".encode()
        outside = _outside_encryptions(pem, algorithm, plaintext)
        for ciphertext in [encrypt(kms, key, vid, algorithm, plaintext), *outside]:
            params = {"CiphertextBlob": b64(ciphertext), "DestinationKeyId": dest["KeyId"], "SourceKeyId": key,
                      "SourceKeyVersionId": vid, "SourceEncryptionAlgorithm": algorithm,
                      "DestinationEncryptionContext": json.dumps(context)}
            body = ok(kms, "ReEncrypt", params)
            assert (body["KeyId"], body["KeyVersionId"]) == (dest["KeyId"], dest["PrimaryKeyVersion"])
            out = ok(kms, "Decrypt", {"CiphertextBlob": body["CiphertextBlob"],
                                      "EncryptionContext": json.dumps(context)})
            assert (unb64(out["Plaintext"]), out["KeyId"]) == (plaintext, dest["KeyId"])
    algorithm = next(iter(CAPS[spec]))
    ciphertext = encrypt(kms, key, vid, algorithm, b"abc")
    params = {"CiphertextBlob": b64(ciphertext), "DestinationKeyId": dest["KeyId"], "SourceKeyId": key,
              "SourceKeyVersionId": vid, "SourceEncryptionAlgorithm": algorithm}
    # The three Source* parameters go together.
    for name in ("SourceKeyId", "SourceKeyVersionId", "SourceEncryptionAlgorithm"):
        err(kms, "ReEncrypt", {k: v for k, v in params.items() if k != name}, "MissingParameter", 400, name)
    # Without any of them the blob is taken as a symmetric one, which this is not.
    _bad_blob(kms, {"CiphertextBlob": b64(ciphertext), "DestinationKeyId": dest["KeyId"]}, "ReEncrypt")
    for bad in _tampered(ciphertext)[:4]:
        _bad_blob(kms, {**params, "CiphertextBlob": b64(bad)}, "ReEncrypt")
    _bad_blob(kms, {**params, "CiphertextBlob": "%%%"}, "ReEncrypt")
    err(kms, "ReEncrypt", {**params, "SourceKeyVersionId": str(uuid.uuid4())}, "Forbidden.KeyVersionNotFound", 404)
    err(kms, "ReEncrypt", {**params, "SourceEncryptionAlgorithm": "RSAES_PKCS1_V1_5"}, "InvalidParameter", 400)
    err(kms, "ReEncrypt", {**params, "SourceEncryptionAlgorithm": "SM2DSA"}, "InvalidParameter", 400)
    err(kms, "ReEncrypt", {**params, "DestinationKeyId": key}, "UnsupportedOperation", 400)
    signer, signer_vid = asym_key(kms, "EC_P256")
    err(kms, "ReEncrypt", {**params, "SourceKeyId": signer, "SourceKeyVersionId": signer_vid},
        "Rejected.UnsupportedOperation", 400)
    ok(kms, "DisableKey", {"KeyId": key})
    err(kms, "ReEncrypt", params, "Rejected.Disabled", 409)
    ok(kms, "EnableKey", {"KeyId": key})
    ok(kms, "DisableKey", {"KeyId": dest["KeyId"]})
    err(kms, "ReEncrypt", params, "Rejected.Disabled", 409)


def test_reencrypt_bad_source_algorithm_names_its_own_parameter(kms):
    """ReEncrypt has no `Algorithm` parameter: a bad SourceEncryptionAlgorithm must be reported under its
    own name, as every other InvalidParameter is."""
    key, vid = asym_key(kms, "EC_SM2")
    dest = create_key(kms, "Aliyun_AES_256")
    params = {"CiphertextBlob": b64(encrypt(kms, key, vid, "SM2PKE", b"abc")), "DestinationKeyId": dest["KeyId"],
              "SourceKeyId": key, "SourceKeyVersionId": vid, "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256"}
    err(kms, "ReEncrypt", params, "InvalidParameter", 400, "SourceEncryptionAlgorithm")
