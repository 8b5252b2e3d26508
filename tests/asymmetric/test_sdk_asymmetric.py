"""Asymmetric keys, data-key export and BYOK through the unmodified official SDKs against a running
local runner: Tea (ACS3 signatures), Tea with signature_algorithm='v2' (RPC v1) and the classic SDK.
Everything that leaves the service is checked outside it with `cryptography` / pysmx."""

from __future__ import annotations

import base64
import hashlib
import os
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from tests import support
from tests.asymmetric.helpers import (
    pem_to_der,
)
from tests.der import sm2_ct_raw_to_der, spki_point
from tests.sdk_client import Sdk as BaseSdk
from tests.support import b64

KINDS = ("tea", "tea_v2", "classic")
PREHASHED = utils.Prehashed(hashes.SHA256())
OAEP256 = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)


class Sdk(BaseSdk):
    def new_key(self, **params) -> tuple[str, str | None]:
        key = self("CreateKey", **params)["KeyMetadata"]["KeyId"]
        found = self("ListKeyVersions", KeyId=key, PageSize=10)["KeyVersions"].get("KeyVersion", [])
        return key, (found[0]["KeyVersionId"] if found else None)


@pytest.fixture(params=KINDS)
def sdk(request, server):
    return Sdk(request.param, server)


def test_sdk_rsa_sign_and_verify_outside(sdk):
    key, vid = sdk.new_key(KeySpec="RSA_2048", KeyUsage="SIGN/VERIFY")
    assert vid and len(sdk("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"]) == 1
    body = sdk("GetPublicKey", KeyId=key, KeyVersionId=vid)
    assert (body["KeyId"], body["KeyVersionId"]) == (key, vid)
    public = serialization.load_pem_public_key(body["PublicKey"].encode())
    assert isinstance(public, rsa.RSAPublicKey) and public.key_size == 2048
    message = f"signed through {sdk.kind}".encode()
    digest = hashlib.sha256(message).digest()
    for algorithm, pad in (("RSA_PSS_SHA_256", padding.PSS(padding.MGF1(hashes.SHA256()), 32)),
                           ("RSA_PKCS1_SHA_256", padding.PKCS1v15())):
        body = sdk("AsymmetricSign", KeyId=key, KeyVersionId=vid, Algorithm=algorithm, Digest=b64(digest))
        assert (body["KeyId"], body["KeyVersionId"]) == (key, vid)
        signature = base64.b64decode(body["Value"])
        public.verify(signature, message, pad, hashes.SHA256())
        good = sdk("AsymmetricVerify", KeyId=key, KeyVersionId=vid, Algorithm=algorithm, Digest=b64(digest),
                   Value=body["Value"])
        assert good["Value"] is True
        flipped = signature[:-1] + bytes([signature[-1] ^ 1])
        assert sdk("AsymmetricVerify", KeyId=key, KeyVersionId=vid, Algorithm=algorithm, Digest=b64(digest),
                   Value=b64(flipped))["Value"] is False
    sdk.fails("InvalidParameter", 400, "AsymmetricSign", KeyId=key, KeyVersionId=vid, Algorithm="ECDSA_SHA_256",
              Digest=b64(digest))
    sdk.fails("InvalidParameter", 400, "AsymmetricSign", KeyId=key, KeyVersionId=vid, Algorithm="RSA_PSS_SHA_256",
              Digest=b64(digest[:20]))
    sdk.fails("Forbidden.KeyVersionNotFound", 404, "AsymmetricSign", KeyId=key, KeyVersionId="no-such-version",
              Algorithm="RSA_PSS_SHA_256", Digest=b64(digest))
    sdk.fails("MissingParameter", 400, "AsymmetricSign", KeyId=key, Algorithm="RSA_PSS_SHA_256", Digest=b64(digest))
    sdk.fails("Rejected.UnsupportedOperation", 400, "AsymmetricEncrypt", KeyId=key, KeyVersionId=vid,
              Algorithm="RSAES_OAEP_SHA_256", Plaintext=b64(b"x"))
    sdk.fails("InvalidParameter", 400, "CreateKey", KeySpec="EC_P256", KeyUsage="ENCRYPT/DECRYPT")
    sdk.fails("Rejected.UnsupportedOperation", 400, "CreateKeyVersion", KeyId=key)  # within 7 days


def test_sdk_sm2_encrypt_decrypt(sdk):
    key, vid = sdk.new_key(KeySpec="EC_SM2", KeyUsage="ENCRYPT/DECRYPT")
    plaintext = os.urandom(100)
    body = sdk("AsymmetricEncrypt", KeyId=key, KeyVersionId=vid, Algorithm="SM2PKE", Plaintext=b64(plaintext))
    assert (body["KeyId"], body["KeyVersionId"]) == (key, vid)
    ciphertext = body["CiphertextBlob"]
    out = sdk("AsymmetricDecrypt", KeyId=key, KeyVersionId=vid, Algorithm="SM2PKE", CiphertextBlob=ciphertext)
    assert base64.b64decode(out["Plaintext"]) == plaintext
    # Encrypted outside (pysmx) with the PEM only.
    der = pem_to_der(sdk("GetPublicKey", KeyId=key, KeyVersionId=vid)["PublicKey"])
    outside = sm2_ct_raw_to_der(support.smx_encrypt(b"from outside", spki_point(der)))
    out = sdk("AsymmetricDecrypt", KeyId=key, KeyVersionId=vid, Algorithm="SM2PKE", CiphertextBlob=b64(outside))
    assert base64.b64decode(out["Plaintext"]) == b"from outside"
    raw = base64.b64decode(ciphertext)
    tampered = raw[:-1] + bytes([raw[-1] ^ 1])
    error = sdk.fails("InvalidParameter", 400, "AsymmetricDecrypt", KeyId=key, KeyVersionId=vid, Algorithm="SM2PKE",
                      CiphertextBlob=b64(tampered))
    assert "CiphertextBlob" in error.message
    sdk.fails("InvalidParameter", 400, "AsymmetricEncrypt", KeyId=key, KeyVersionId=vid, Algorithm="SM2PKE",
              Plaintext=b64(os.urandom(6048)))
    sdk.fails("InvalidParameter", 400, "AsymmetricEncrypt", KeyId=key, KeyVersionId=vid,
              Algorithm="RSAES_OAEP_SHA_256", Plaintext=b64(b"x"))
    # ReEncrypt the SM2 ciphertext under a symmetric key.
    dest, _ = sdk.new_key()
    moved = sdk("ReEncrypt", CiphertextBlob=ciphertext, DestinationKeyId=dest, SourceKeyId=key,
                SourceKeyVersionId=vid, SourceEncryptionAlgorithm="SM2PKE")
    assert moved["KeyId"] == dest
    assert base64.b64decode(sdk("Decrypt", CiphertextBlob=moved["CiphertextBlob"])["Plaintext"]) == plaintext
    sdk.fails("MissingParameter", 400, "ReEncrypt", CiphertextBlob=ciphertext, DestinationKeyId=dest, SourceKeyId=key,
              SourceEncryptionAlgorithm="SM2PKE")


def test_sdk_generate_and_export_data_key(sdk):
    holder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    blob = b64(holder.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo))
    key, vid = sdk.new_key()
    context = {"sdk": sdk.kind}
    body = sdk("GenerateAndExportDataKey", KeyId=key, NumberOfBytes=48, EncryptionContext=context, PublicKeyBlob=blob,
               WrappingKeySpec="RSA_2048", WrappingAlgorithm="RSAES_OAEP_SHA_256")
    assert (body["KeyId"], body["KeyVersionId"]) == (key, vid)
    data_key = holder.decrypt(base64.b64decode(body["ExportedDataKey"]), OAEP256)
    assert len(data_key) == 48
    decrypted = sdk("Decrypt", CiphertextBlob=body["CiphertextBlob"], EncryptionContext=context)
    assert base64.b64decode(decrypted["Plaintext"]) == data_key
    sha1 = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    again = sdk("ExportDataKey", CiphertextBlob=body["CiphertextBlob"], EncryptionContext=context, PublicKeyBlob=blob,
                WrappingKeySpec="RSA_2048", WrappingAlgorithm="RSAES_OAEP_SHA_1")
    assert holder.decrypt(base64.b64decode(again["ExportedDataKey"]), sha1) == data_key
    sdk.fails("InvalidParameter", 400, "GenerateAndExportDataKey", KeyId=key, PublicKeyBlob=blob,
              WrappingKeySpec="EC_SM2", WrappingAlgorithm="SM2PKE")
    sdk.fails("InvalidParameter", 400, "ExportDataKey", CiphertextBlob=body["CiphertextBlob"],
              EncryptionContext=context,
              PublicKeyBlob="bm90IGEga2V5", WrappingKeySpec="RSA_2048", WrappingAlgorithm="RSAES_OAEP_SHA_256")


def test_sdk_byok(sdk):
    key, vid = sdk.new_key(Origin="EXTERNAL")
    assert vid is None
    assert sdk("DescribeKey", KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    params = sdk("GetParametersForImport", KeyId=key, WrappingKeySpec="RSA_2048",
                 WrappingAlgorithm="RSAES_OAEP_SHA_256")
    assert params["KeyId"] == key and params["TokenExpireTime"]
    public = serialization.load_der_public_key(base64.b64decode(params["PublicKey"]))
    material = os.urandom(32)
    expire = int(time.time()) + 3600
    sdk("ImportKeyMaterial", KeyId=key, ImportToken=params["ImportToken"], KeyMaterialExpireUnix=expire,
        EncryptedKeyMaterial=b64(public.encrypt(material, OAEP256)))
    md = sdk("DescribeKey", KeyId=key)["KeyMetadata"]
    assert (md["KeyState"], md["MaterialExpireTime"]) == ("Enabled", time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                   time.gmtime(expire)))
    blob = sdk("Encrypt", KeyId=key, Plaintext=b64(b"imported"))["CiphertextBlob"]
    assert base64.b64decode(sdk("Decrypt", CiphertextBlob=blob)["Plaintext"]) == b"imported"
    sdk.fails("InvalidKeyMaterial", 400, "ImportKeyMaterial", KeyId=key, ImportToken=params["ImportToken"],
              EncryptedKeyMaterial=b64(public.encrypt(os.urandom(32), OAEP256)))
    # SM2PKE wrapping, through pysmx, for a second key; its token is no good for the first.
    other, _ = sdk.new_key(Origin="EXTERNAL", KeySpec="Aliyun_SM4")
    sm2_params = sdk("GetParametersForImport", KeyId=other, WrappingKeySpec="EC_SM2", WrappingAlgorithm="SM2PKE")
    point = spki_point(base64.b64decode(sm2_params["PublicKey"]))
    sdk.fails("InvalidImportToken", 400, "ImportKeyMaterial", KeyId=key, ImportToken=sm2_params["ImportToken"],
              EncryptedKeyMaterial=b64(public.encrypt(material, OAEP256)))
    sm4 = os.urandom(16)
    sdk("ImportKeyMaterial", KeyId=other, ImportToken=sm2_params["ImportToken"], KeyMaterialExpireUnix=0,
        EncryptedKeyMaterial=b64(sm2_ct_raw_to_der(support.smx_encrypt(sm4, point))))
    assert sdk("DescribeKey", KeyId=other)["KeyMetadata"]["KeyState"] == "Enabled"
    # DeleteKeyMaterial, then the same material brings the ciphertext back.
    sdk("DeleteKeyMaterial", KeyId=key)
    assert sdk("DescribeKey", KeyId=key)["KeyMetadata"]["KeyState"] == "PendingImport"
    sdk.fails("Rejected.PendingImport", 409, "Decrypt", CiphertextBlob=blob)
    sdk("ImportKeyMaterial", KeyId=key, ImportToken=params["ImportToken"], KeyMaterialExpireUnix=0,
        EncryptedKeyMaterial=b64(public.encrypt(material, OAEP256)))
    assert base64.b64decode(sdk("Decrypt", CiphertextBlob=blob)["Plaintext"]) == b"imported"
    sdk.fails("InvalidParameter", 400, "ImportKeyMaterial", KeyId=key, ImportToken=params["ImportToken"],
              KeyMaterialExpireUnix=int(time.time()) - 3600,
              EncryptedKeyMaterial=b64(public.encrypt(material, OAEP256)))
    plain, _ = sdk.new_key()
    sdk.fails("Unsupported.Origin", 400, "GetParametersForImport", KeyId=plain, WrappingKeySpec="RSA_2048",
              WrappingAlgorithm="RSAES_OAEP_SHA_256")
    sdk.fails("Unsupported.Origin", 400, "DeleteKeyMaterial", KeyId=plain)
