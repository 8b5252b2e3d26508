"""Every KMS action and timer job once, with a correct answer checked: what the loader test sends to the
functions of a built package (through API Gateway events, then through FC 3.0 HTTP-trigger events)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

from alikms.shared.crypto import sm2
from alikms.shared.registry import ACTIONS, JOBS
from tests.support import b64, unb64

Call = Callable[[str, dict], tuple[int, dict]]
DAY = 86400


class Run:
    """One pass over the API with `send` (action, params) -> (status, body); records what it called."""

    def __init__(self, send: Call, tag: str) -> None:
        self.send, self.tag, self.called = send, tag, set()

    def ok(self, action: str, **params) -> dict:
        status, body = self.send(action, params)
        assert status == 200, (action, status, body)
        assert body.get("RequestId"), (action, body)
        self.called.add(action)
        return body

    def fails(self, action: str, code: str, **params) -> dict:
        status, body = self.send(action, params)
        assert status >= 400 and body.get("Code") == code, (action, status, body)
        self.called.add(action)  # a documented refusal is a correct answer too
        return body


def api(run: Run) -> dict:
    """Every action, each checked for the answer it must give; returns ids the timer checks use."""
    t = run.tag
    assert any(r["RegionId"] == "cn-hangzhou" for r in run.ok("DescribeRegions")["Regions"]["Region"])
    if run.ok("DescribeAccountKmsStatus")["AccountStatus"] == "NotEnabled":  # the first pass opens it
        run.fails("CreateKey", "Forbidden.KmsServiceNotEnabled")
        run.ok("OpenKmsService")
    else:
        run.fails("OpenKmsService", "Forbidden.Opened")
    assert run.ok("DescribeAccountKmsStatus")["AccountStatus"] == "Enabled"

    # keys and versions
    key = run.ok("CreateKey", Description=f"loader {t}")["KeyMetadata"]
    k = key["KeyId"]
    assert key["KeyState"] == "Enabled" and key["KeySpec"] == "Aliyun_AES_256"
    assert run.ok("DescribeKey", KeyId=k)["KeyMetadata"]["Description"] == f"loader {t}"
    assert k in [x["KeyId"] for x in run.ok("ListKeys", PageSize=100)["Keys"]["Key"]]
    run.ok("UpdateKeyDescription", KeyId=k, Description="changed")
    assert run.ok("DescribeKey", KeyId=k)["KeyMetadata"]["Description"] == "changed"
    run.ok("DisableKey", KeyId=k)
    run.fails("Encrypt", "Rejected.Disabled", KeyId=k, Plaintext=b64(b"x"))
    run.ok("EnableKey", KeyId=k)
    v2 = run.ok("CreateKeyVersion", KeyId=k)["KeyVersion"]["KeyVersionId"]
    listed = run.ok("ListKeyVersions", KeyId=k)["KeyVersions"]["KeyVersion"]
    assert len(listed) == 2 and v2 in [v["KeyVersionId"] for v in listed]
    assert run.ok("DescribeKeyVersion", KeyId=k, KeyVersionId=v2)["KeyVersion"]["KeyVersionId"] == v2
    run.ok("UpdateRotationPolicy", KeyId=k, EnableAutomaticRotation="true", RotationInterval="7d")
    assert run.ok("DescribeKey", KeyId=k)["KeyMetadata"]["AutomaticRotation"] == "Enabled"

    # symmetric cryptography
    context = json.dumps({"purpose": "loader"})
    sealed = run.ok("Encrypt", KeyId=k, Plaintext=b64(b"hello"), EncryptionContext=context)
    assert sealed["KeyVersionId"] == v2
    assert unb64(run.ok("Decrypt", CiphertextBlob=sealed["CiphertextBlob"], EncryptionContext=context)["Plaintext"]) \
        == b"hello"
    other = run.ok("CreateKey")["KeyMetadata"]["KeyId"]
    moved = run.ok("ReEncrypt", CiphertextBlob=sealed["CiphertextBlob"], SourceEncryptionContext=context,
                   DestinationKeyId=other)
    assert moved["KeyId"] == other
    assert unb64(run.ok("Decrypt", CiphertextBlob=moved["CiphertextBlob"])["Plaintext"]) == b"hello"
    data_key = run.ok("GenerateDataKey", KeyId=k, NumberOfBytes=32)
    assert unb64(run.ok("Decrypt", CiphertextBlob=data_key["CiphertextBlob"])["Plaintext"]) \
        == unb64(data_key["Plaintext"])
    hidden = run.ok("GenerateDataKeyWithoutPlaintext", KeyId=k, KeySpec="AES_128")
    assert "Plaintext" not in hidden and len(unb64(run.ok("Decrypt", CiphertextBlob=hidden["CiphertextBlob"])
                                                    ["Plaintext"])) == 16
    holder = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrapping = {"PublicKeyBlob": b64(holder.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)),
        "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}
    oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
    exported = run.ok("ExportDataKey", CiphertextBlob=data_key["CiphertextBlob"], **wrapping)
    assert holder.decrypt(unb64(exported["ExportedDataKey"]), oaep) == unb64(data_key["Plaintext"])
    both = run.ok("GenerateAndExportDataKey", KeyId=k, NumberOfBytes=24, **wrapping)
    assert holder.decrypt(unb64(both["ExportedDataKey"]), oaep) \
        == unb64(run.ok("Decrypt", CiphertextBlob=both["CiphertextBlob"])["Plaintext"])

    # asymmetric keys, SM2 among them (the package's own libcrypto)
    digest = hashlib.sha256(b"message").digest()
    for spec, usage, algorithm in (("RSA_2048", "ENCRYPT/DECRYPT", "RSAES_OAEP_SHA_256"),
                                   ("EC_P256", "SIGN/VERIFY", "ECDSA_SHA_256"), ("EC_SM2", "SIGN/VERIFY", "SM2DSA")):
        a = run.ok("CreateKey", KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
        (vid,) = [v["KeyVersionId"] for v in run.ok("ListKeyVersions", KeyId=a["KeyId"])["KeyVersions"]["KeyVersion"]]
        pem = run.ok("GetPublicKey", KeyId=a["KeyId"], KeyVersionId=vid)["PublicKey"]
        ids = {"KeyId": a["KeyId"], "KeyVersionId": vid, "Algorithm": algorithm}
        if usage == "ENCRYPT/DECRYPT":
            blob = run.ok("AsymmetricEncrypt", Plaintext=b64(b"asym"), **ids)["CiphertextBlob"]
            assert unb64(run.ok("AsymmetricDecrypt", CiphertextBlob=blob, **ids)["Plaintext"]) == b"asym"
            continue
        signature = unb64(run.ok("AsymmetricSign", Digest=b64(digest), **ids)["Value"])
        assert run.ok("AsymmetricVerify", Digest=b64(digest), Value=b64(signature), **ids)["Value"] is True
        assert run.ok("AsymmetricVerify", Digest=b64(hashlib.sha256(b"other").digest()), Value=b64(signature),
                      **ids)["Value"] is False
        der = b"".join(unb64(line) for line in pem.strip().splitlines()[1:-1])
        if spec == "EC_SM2":  # checked again here, by this process's own OpenSSL
            assert sm2.PublicKey.from_der(der).verify_digest(digest, signature)
        else:
            serialization.load_der_public_key(der).verify(signature, b"message", ec.ECDSA(hashes.SHA256()))

    # imported key material (BYOK)
    ext = run.ok("CreateKey", Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
    params = run.ok("GetParametersForImport", KeyId=ext, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                    WrappingKeySpec="RSA_2048")
    public = serialization.load_der_public_key(unb64(params["PublicKey"]))
    run.ok("ImportKeyMaterial", KeyId=ext, ImportToken=params["ImportToken"],
           EncryptedKeyMaterial=b64(public.encrypt(os.urandom(32), oaep)))
    assert run.ok("DescribeKey", KeyId=ext)["KeyMetadata"]["KeyState"] == "Enabled"
    run.ok("DeleteKeyMaterial", KeyId=ext)
    assert run.ok("DescribeKey", KeyId=ext)["KeyMetadata"]["KeyState"] == "PendingImport"

    # aliases and tags
    alias = f"alias/loader-{t}"
    run.ok("CreateAlias", AliasName=alias, KeyId=k)
    run.ok("UpdateAlias", AliasName=alias, KeyId=other)
    assert alias in [a["AliasName"] for a in run.ok("ListAliases", PageSize=100)["Aliases"]["Alias"]]
    assert [a["AliasName"] for a in run.ok("ListAliasesByKeyId", KeyId=other)["Aliases"]["Alias"]] == [alias]
    assert run.ok("DescribeKey", KeyId=alias)["KeyMetadata"]["KeyId"] == other
    run.ok("DeleteAlias", AliasName=alias)
    run.ok("TagResource", KeyId=k, Tags=json.dumps([{"TagKey": "team", "TagValue": "kms"}]))
    assert [(t["TagKey"], t["TagValue"]) for t in run.ok("ListResourceTags", KeyId=k)["Tags"]["Tag"]] \
        == [("team", "kms")]
    run.ok("UntagResource", KeyId=k, TagKeys=json.dumps(["team"]))
    assert run.ok("ListResourceTags", KeyId=k)["Tags"]["Tag"] == []

    # deletion: one key scheduled and cancelled, one left for the timer
    run.ok("ScheduleKeyDeletion", KeyId=other, PendingWindowInDays=7)
    assert run.ok("DescribeKey", KeyId=other)["KeyMetadata"]["KeyState"] == "PendingDeletion"
    run.ok("CancelKeyDeletion", KeyId=other)
    doomed = run.ok("CreateKey")["KeyMetadata"]["KeyId"]
    run.ok("ScheduleKeyDeletion", KeyId=doomed, PendingWindowInDays=7)

    # secrets
    name = f"loader/{t}"
    run.ok("CreateSecret", SecretName=name, VersionId="v1", SecretData="pw 1")
    assert run.ok("GetSecretValue", SecretName=name)["SecretData"] == "pw 1"
    run.ok("PutSecretValue", SecretName=name, VersionId="v2", SecretData="pw 2")
    assert run.ok("GetSecretValue", SecretName=name)["SecretData"] == "pw 2"
    ids = [v["VersionId"] for v in run.ok("ListSecretVersionIds", SecretName=name)["VersionIds"]["VersionId"]]
    assert sorted(ids) == ["v1", "v2"]
    run.ok("UpdateSecretVersionStage", SecretName=name, VersionStage="ACSCurrent", RemoveFromVersion="v2",
           MoveToVersion="v1")
    assert run.ok("GetSecretValue", SecretName=name)["SecretData"] == "pw 1"
    run.ok("UpdateSecret", SecretName=name, Description="about")
    assert run.ok("DescribeSecret", SecretName=name)["Description"] == "about"
    assert name in [s["SecretName"] for s in run.ok("ListSecrets", PageSize=100)["SecretList"]["Secret"]]
    run.ok("DeleteSecret", SecretName=name, RecoveryWindowInDays=7)
    run.ok("RestoreSecret", SecretName=name)
    assert run.ok("GetSecretValue", SecretName=name)["SecretData"] == "pw 1"
    gone = f"loader/{t}-gone"
    run.ok("CreateSecret", SecretName=gone, VersionId="v1", SecretData="bye")
    run.ok("DeleteSecret", SecretName=gone, RecoveryWindowInDays=7)
    password = run.ok("GetRandomPassword", PasswordLength=20, ExcludePunctuation="true")["RandomPassword"]
    assert len(password) == 20 and password.isalnum()

    missing = {a.name for a in ACTIONS} - run.called
    assert not missing, f"the scenario did not call {sorted(missing)}"
    return {"rotating": k, "doomed": doomed, "gone": gone}


def timers(fire: Callable[[str, float], dict], run: Run, made: dict) -> None:
    """Every timer job, fired by a timer event at a time that gives it work; its effect is checked."""
    later = time.time() + 8 * DAY
    assert made["rotating"] in fire("RotateKeys", later)["Rotated"]
    assert len(run.ok("ListKeyVersions", KeyId=made["rotating"])["KeyVersions"]["KeyVersion"]) == 3
    assert made["doomed"] in fire("DeleteExpiredKeys", later)["Deleted"]
    run.fails("DescribeKey", "Forbidden.KeyNotFound", KeyId=made["doomed"])
    assert made["gone"] in fire("DeleteExpiredSecrets", later)["Deleted"]
    run.fails("GetSecretValue", "Forbidden.ResourceNotFound", SecretName=made["gone"])
    assert fire("ExpireKeyMaterial", later)["Failed"] == []
    assert {j.name for j in JOBS} == {"RotateKeys", "DeleteExpiredKeys", "DeleteExpiredSecrets", "ExpireKeyMaterial"}
