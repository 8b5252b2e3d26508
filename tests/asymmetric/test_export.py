"""ExportDataKey and GenerateAndExportDataKey to public keys held outside the service (RSA_2048 with
OAEP-SHA-256 / OAEP-SHA-1, EC_SM2 with SM2PKE): the caller's private key recovers exactly the data key
the service protects; bad wrapping parameters and public keys are refused."""

from __future__ import annotations

import functools
import json

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pysmx import SM2 as smx

from alikms.shared.crypto import sm2
from tests.asymmetric.helpers import (
    asym_key,
    b64,
    create_key,
    err,
    ok,
    unb64,
)
from tests.der import der_seq, der_tlv, sm2_ct_der_to_raw, spki_point

CONTEXT = {"app": "export"}
OID_EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")
OID_SM2_CURVE = bytes.fromhex("06082a811ccf5501822d")  # 1.2.156.10197.1.301


def _spki(key) -> bytes:
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@functools.cache
def _rsa(bits: int):
    return rsa.generate_private_key(public_exponent=65537, key_size=bits)


def _smx_spki(point: bytes) -> bytes:
    """SubjectPublicKeyInfo of a pysmx public key, assembled here (not by any SM2 library)."""
    return der_seq(der_seq(OID_EC_PUBLIC_KEY, OID_SM2_CURVE), der_tlv(0x03, b"\x00\x04" + point))


class Holder:
    """A key pair outside the service: its public key blob and a way to open what was wrapped to it."""

    def __init__(self, spec: str, algorithm: str, flavour: str) -> None:
        self.spec, self.algorithm, self.flavour = spec, algorithm, flavour
        if flavour == "pysmx":
            pair = smx.generate_keypair()
            self.d, der = pair.privateKey, _smx_spki(pair.publicKey)
            assert sm2.PublicKey.from_der(der).point() == pair.publicKey == spki_point(der)
        elif flavour == "sm2":
            self.private = sm2.generate()
            der = self.private.public_key().to_der()
        else:
            self.private = _rsa(2048)
            der = _spki(self.private.public_key())
        self.blob = b64(der)

    def open(self, exported: str) -> bytes:
        raw = unb64(exported)
        if self.flavour == "pysmx":
            out = smx.Decrypt(sm2_ct_der_to_raw(raw), self.d, 64)
            assert out is not None
            return out
        if self.flavour == "sm2":
            return self.private.decrypt(raw)
        assert len(raw) == 256
        h = hashes.SHA256() if self.algorithm == "RSAES_OAEP_SHA_256" else hashes.SHA1()
        other = hashes.SHA1() if self.algorithm == "RSAES_OAEP_SHA_256" else hashes.SHA256()
        with pytest.raises(ValueError):  # the other OAEP hash does not open it
            self.private.decrypt(raw, padding.OAEP(padding.MGF1(other), other, None))
        return self.private.decrypt(raw, padding.OAEP(padding.MGF1(h), h, None))

    def params(self) -> dict:
        return {"PublicKeyBlob": self.blob, "WrappingKeySpec": self.spec, "WrappingAlgorithm": self.algorithm}


CASES = [("RSA_2048", "RSAES_OAEP_SHA_256", "rsa"), ("RSA_2048", "RSAES_OAEP_SHA_1", "rsa"),
         ("EC_SM2", "SM2PKE", "sm2"), ("EC_SM2", "SM2PKE", "pysmx")]


@pytest.mark.parametrize("spec,algorithm,flavour", CASES)
def test_exported_data_keys_open_outside_to_the_data_key(kms, spec, algorithm, flavour):
    holder = Holder(spec, algorithm, flavour)
    key = create_key(kms, "Aliyun_AES_256")
    key_id, vid = key["KeyId"], key["PrimaryKeyVersion"]
    ctx = json.dumps(CONTEXT)
    # ExportDataKey of a GenerateDataKey blob.
    generated = ok(kms, "GenerateDataKey", {"KeyId": key_id, "EncryptionContext": ctx})
    body = ok(kms, "ExportDataKey", {"CiphertextBlob": generated["CiphertextBlob"], "EncryptionContext": ctx,
                                     **holder.params()})
    assert (body["KeyId"], body["KeyVersionId"]) == (key_id, vid)
    assert holder.open(body["ExportedDataKey"]) == unb64(generated["Plaintext"])
    assert len(unb64(generated["Plaintext"])) == 32
    # The blob's context is still required.
    err(kms, "ExportDataKey", {"CiphertextBlob": generated["CiphertextBlob"], **holder.params()},
        "InvalidParameter", 400, "CiphertextBlob")
    # GenerateAndExportDataKey: the CiphertextBlob and the ExportedDataKey hold the same data key.
    for sizing, size in (({}, 32), ({"KeySpec": "AES_128"}, 16), ({"NumberOfBytes": "7"}, 7),
                         ({"NumberOfBytes": "64", "KeySpec": "AES_128"}, 64)):
        body = ok(kms, "GenerateAndExportDataKey", {"KeyId": key_id, "EncryptionContext": ctx, **sizing,
                                                    **holder.params()})
        assert (body["KeyId"], body["KeyVersionId"]) == (key_id, vid) and "Plaintext" not in body
        exported = holder.open(body["ExportedDataKey"])
        assert len(exported) == size
        decrypted = ok(kms, "Decrypt", {"CiphertextBlob": body["CiphertextBlob"], "EncryptionContext": ctx})
        assert unb64(decrypted["Plaintext"]) == exported
        # Exporting the blob again gives the same data key under a fresh wrapping.
        again = ok(kms, "ExportDataKey", {"CiphertextBlob": body["CiphertextBlob"], "EncryptionContext": ctx,
                                          **holder.params()})
        assert again["ExportedDataKey"] != body["ExportedDataKey"] and holder.open(again["ExportedDataKey"]) == exported


def test_export_refuses_mismatched_and_bad_public_keys(kms):
    key = create_key(kms, "Aliyun_AES_256")
    blob = ok(kms, "GenerateDataKey", {"KeyId": key["KeyId"]})["CiphertextBlob"]
    rsa2048, rsa3072 = b64(_spki(_rsa(2048).public_key())), b64(_spki(_rsa(3072).public_key()))
    p256 = b64(_spki(ec.generate_private_key(ec.SECP256R1()).public_key()))
    p256k = b64(_spki(ec.generate_private_key(ec.SECP256K1()).public_key()))
    sm2_pub = b64(sm2.generate().public_key().to_der())
    pem = _spki(_rsa(2048).public_key())
    pem_text = serialization.load_der_public_key(pem).public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    bad = [
        # (PublicKeyBlob, WrappingKeySpec, WrappingAlgorithm, parameter named)
        (rsa2048, "RSA_2048", "SM2PKE", "WrappingAlgorithm"),
        (sm2_pub, "EC_SM2", "RSAES_OAEP_SHA_256", "WrappingAlgorithm"),
        (sm2_pub, "EC_SM2", "RSAES_OAEP_SHA_1", "WrappingAlgorithm"),
        (rsa2048, "RSA_2048", "RSAES_PKCS1_V1_5", "WrappingAlgorithm"),
        (rsa2048, "RSA_3072", "RSAES_OAEP_SHA_256", "WrappingKeySpec"),
        (p256, "EC_P256", "RSAES_OAEP_SHA_256", "WrappingKeySpec"),
        (p256, "RSA_2048", "RSAES_OAEP_SHA_256", "PublicKeyBlob"),
        (rsa3072, "RSA_2048", "RSAES_OAEP_SHA_256", "PublicKeyBlob"),
        (rsa3072, "RSA_2048", "RSAES_OAEP_SHA_1", "PublicKeyBlob"),
        (rsa2048, "EC_SM2", "SM2PKE", "PublicKeyBlob"),
        (p256, "EC_SM2", "SM2PKE", "PublicKeyBlob"),
        (p256k, "EC_SM2", "SM2PKE", "PublicKeyBlob"),
        ("not base64!", "RSA_2048", "RSAES_OAEP_SHA_256", "PublicKeyBlob"),
        (b64(b"\x30\x03\x02\x01\x01"), "RSA_2048", "RSAES_OAEP_SHA_256", "PublicKeyBlob"),
        (b64(b"garbage" * 20), "EC_SM2", "SM2PKE", "PublicKeyBlob"),
        (rsa2048[:-8], "RSA_2048", "RSAES_OAEP_SHA_256", "PublicKeyBlob"),
        (b64(unb64(sm2_pub) + b"\x00"), "EC_SM2", "SM2PKE", "PublicKeyBlob"),
        (b64(pem_text.encode()), "RSA_2048", "RSAES_OAEP_SHA_256", "PublicKeyBlob"),
    ]
    for public, spec, algorithm, name in bad:
        wrapping = {"PublicKeyBlob": public, "WrappingKeySpec": spec, "WrappingAlgorithm": algorithm}
        err(kms, "ExportDataKey", {"CiphertextBlob": blob, **wrapping}, "InvalidParameter", 400, name)
        err(kms, "GenerateAndExportDataKey", {"KeyId": key["KeyId"], **wrapping}, "InvalidParameter", 400, name)
    good = {"PublicKeyBlob": rsa2048, "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}
    for name in good:
        partial = {k: v for k, v in good.items() if k != name}
        err(kms, "ExportDataKey", {"CiphertextBlob": blob, **partial}, "MissingParameter", 400, name)
        err(kms, "GenerateAndExportDataKey", {"KeyId": key["KeyId"], **partial}, "MissingParameter", 400, name)
    err(kms, "ExportDataKey", good, "MissingParameter", 400, "CiphertextBlob")
    err(kms, "ExportDataKey", {"CiphertextBlob": blob[:-8], **good}, "InvalidParameter", 400, "CiphertextBlob")
    # Only symmetric keys make data keys; asymmetric keys and key states are checked as for GenerateDataKey.
    asym, _ = asym_key(kms, "EC_SM2")
    err(kms, "GenerateAndExportDataKey", {"KeyId": asym, **good}, "UnsupportedOperation", 400)
    ok(kms, "DisableKey", {"KeyId": key["KeyId"]})
    err(kms, "GenerateAndExportDataKey", {"KeyId": key["KeyId"], **good}, "Rejected.Disabled", 409)
    err(kms, "ExportDataKey", {"CiphertextBlob": blob, **good}, "Rejected.Disabled", 409)
    ok(kms, "EnableKey", {"KeyId": key["KeyId"]})
    assert ok(kms, "ExportDataKey", {"CiphertextBlob": blob, **good})["KeyId"] == key["KeyId"]


def test_an_sm2_public_key_given_as_rsa_2048_is_invalid_parameter(kms):
    """A public key of a type `cryptography` cannot load (SM2) named as RSA_2048 is a bad PublicKeyBlob,
    like every other wrong key, not a 500 InternalFailure."""
    key = create_key(kms, "Aliyun_AES_256")["KeyId"]
    blob = ok(kms, "GenerateDataKey", {"KeyId": key})["CiphertextBlob"]
    wrapping = {"PublicKeyBlob": b64(sm2.generate().public_key().to_der()), "WrappingKeySpec": "RSA_2048",
                "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}
    err(kms, "ExportDataKey", {"CiphertextBlob": blob, **wrapping}, "InvalidParameter", 400, "PublicKeyBlob")
    err(kms, "GenerateAndExportDataKey", {"KeyId": key, **wrapping}, "InvalidParameter", 400, "PublicKeyBlob")


def test_data_keys_too_long_for_the_wrapping_are_a_client_error(kms):
    """RSA-2048 OAEP wraps at most 190 (SHA-256) / 214 (SHA-1) bytes. A longer data key (NumberOfBytes
    goes up to 1024) cannot be exported that way: that is the caller's parameter at fault, a 400, not a
    500 InternalFailure. SM2PKE (up to 6047 bytes) wraps every allowed size."""
    key = create_key(kms, "Aliyun_AES_256")["KeyId"]
    holder = Holder("EC_SM2", "SM2PKE", "sm2")
    body = ok(kms, "GenerateAndExportDataKey", {"KeyId": key, "NumberOfBytes": "1024", **holder.params()})
    assert len(holder.open(body["ExportedDataKey"])) == 1024
    for algorithm, cap in (("RSAES_OAEP_SHA_256", 190), ("RSAES_OAEP_SHA_1", 214)):
        holder = Holder("RSA_2048", algorithm, "rsa")
        body = ok(kms, "GenerateAndExportDataKey", {"KeyId": key, "NumberOfBytes": str(cap), **holder.params()})
        assert len(holder.open(body["ExportedDataKey"])) == cap
        blob = ok(kms, "GenerateDataKey", {"KeyId": key, "NumberOfBytes": str(cap + 1)})["CiphertextBlob"]
        for action, params in (("GenerateAndExportDataKey", {"KeyId": key, "NumberOfBytes": str(cap + 1)}),
                               ("ExportDataKey", {"CiphertextBlob": blob})):
            status, out = kms.call(action, {**params, **holder.params()})
            assert (status, out["Code"]) == (400, "InvalidParameter"), (action, algorithm, status, out)
