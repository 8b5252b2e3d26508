"""The whole envelope flow through the unmodified official SDKs against a running local runner: Tea in
its default ACS3 mode, Tea with signature_algorithm='v2' (RPC v1), and the classic SDK (RPC v1).
Each SDK encodes parameters its own way (Tea: EncryptionContext as a dict, booleans as True/False,
integers as numbers; classic: strings), and each surfaces errors with the code and HTTP status."""

from __future__ import annotations

import base64
import json
import uuid

import pytest

from tests.sdk_client import Sdk
from tests.support import b64

KINDS = ("tea", "tea_v2", "classic")


@pytest.fixture(params=KINDS)
def sdk(request, server):
    return Sdk(request.param, server)


def test_envelope_flow(sdk):
    tag = uuid.uuid4().hex[:10]
    alias = f"alias/sdk-{sdk.kind}-{tag}"
    context = {"app": "sdk", "kind": sdk.kind, "unicode": "é"}

    created = sdk("CreateKey", Description=f"flow {sdk.kind}")["KeyMetadata"]
    key, v1 = created["KeyId"], created["PrimaryKeyVersion"]
    assert created["KeyState"] == "Enabled" and created["KeySpec"] == "Aliyun_AES_256"
    sdk("CreateAlias", AliasName=alias, KeyId=key)
    sdk.fails("AliasAlreadyExists", 400, "CreateAlias", AliasName=alias, KeyId=key)

    # Encrypt by alias with a context; Tea sends the dict as one JSON parameter.
    enc = sdk("Encrypt", KeyId=alias, Plaintext=b64(b"payload"), EncryptionContext=context)
    assert (enc["KeyId"], enc["KeyVersionId"]) == (key, v1)
    blob = enc["CiphertextBlob"]
    data = sdk("GenerateDataKey", KeyId=alias, NumberOfBytes=24, EncryptionContext={"dk": "1"})
    assert len(base64.b64decode(data["Plaintext"])) == 24
    bare = sdk("GenerateDataKeyWithoutPlaintext", KeyId=key, KeySpec="AES_128")
    assert "Plaintext" not in bare

    dec = sdk("Decrypt", CiphertextBlob=blob, EncryptionContext=dict(reversed(list(context.items()))))
    assert (base64.b64decode(dec["Plaintext"]), dec["KeyId"], dec["KeyVersionId"]) == (b"payload", key, v1)
    assert sdk("Decrypt", CiphertextBlob=data["CiphertextBlob"], EncryptionContext={"dk": "1"})["Plaintext"] == \
        data["Plaintext"]
    assert len(base64.b64decode(sdk("Decrypt", CiphertextBlob=bare["CiphertextBlob"])["Plaintext"])) == 16
    wrong = sdk.fails("InvalidParameter", 400, "Decrypt", CiphertextBlob=blob, EncryptionContext={"app": "other"})
    assert "CiphertextBlob" in wrong.message
    sdk.fails("InvalidParameter", 400, "Decrypt", CiphertextBlob=blob[:-8])
    sdk.fails("DryRunOperationError", 400, "Encrypt", KeyId=key, Plaintext=b64(b"x"), DryRun="true")

    # ReEncrypt to a second key, with source and destination contexts.
    dest = sdk("CreateKey")["KeyMetadata"]["KeyId"]
    moved = sdk("ReEncrypt", CiphertextBlob=blob, DestinationKeyId=dest, SourceEncryptionContext=context,
                DestinationEncryptionContext={"moved": "yes"})
    assert moved["KeyId"] == dest
    out = sdk("Decrypt", CiphertextBlob=moved["CiphertextBlob"], EncryptionContext={"moved": "yes"})
    assert (base64.b64decode(out["Plaintext"]), out["KeyId"]) == (b"payload", dest)
    sdk.fails("InvalidParameter", 400, "ReEncrypt", CiphertextBlob=blob, DestinationKeyId=dest)

    # A new version becomes primary; the old blob still decrypts with its own version.
    v2 = sdk("CreateKeyVersion", KeyId=alias)["KeyVersion"]["KeyVersionId"]
    assert v2 != v1 and sdk("Encrypt", KeyId=key, Plaintext=b64(b"new"))["KeyVersionId"] == v2
    assert sdk("Decrypt", CiphertextBlob=blob, EncryptionContext=context)["KeyVersionId"] == v1
    listed = sdk("ListKeyVersions", KeyId=key)
    assert [v["KeyVersionId"] for v in listed["KeyVersions"]["KeyVersion"]] == [v1, v2]
    assert sdk("DescribeKeyVersion", KeyId=alias, KeyVersionId=v1)["KeyVersion"]["KeyId"] == key

    # Rotation policy: Tea sends the boolean as True/False.
    sdk("UpdateRotationPolicy", KeyId=key, EnableAutomaticRotation=True, RotationInterval="30d")
    md = sdk("DescribeKey", KeyId=alias)["KeyMetadata"]
    assert (md["AutomaticRotation"], md["RotationInterval"]) == ("Enabled", "2592000s") and md["NextRotationDate"]
    err = sdk.fails("InvalidParameter", 400, "UpdateRotationPolicy", KeyId=key, EnableAutomaticRotation=True,
                    RotationInterval="6d")
    assert "RotationInterval" in err.message

    # Disable: crypto refused with 409, rotation suspended; enable again.
    sdk("DisableKey", KeyId=key)
    sdk.fails("Rejected.Disabled", 409, "Encrypt", KeyId=alias, Plaintext=b64(b"x"), EncryptionContext=context)
    sdk.fails("Rejected.Disabled", 409, "Decrypt", CiphertextBlob=blob, EncryptionContext=context)
    assert sdk("DescribeKey", KeyId=key)["KeyMetadata"]["AutomaticRotation"] == "Suspended"
    sdk("EnableKey", KeyId=key)
    assert sdk("Encrypt", KeyId=alias, Plaintext=b64(b"x"))["KeyVersionId"] == v2

    # Deletion window, then cancel.
    sdk.fails("InvalidParameter", 400, "ScheduleKeyDeletion", KeyId=key, PendingWindowInDays=6)
    sdk("ScheduleKeyDeletion", KeyId=key, PendingWindowInDays=7)
    md = sdk("DescribeKey", KeyId=key)["KeyMetadata"]
    assert md["KeyState"] == "PendingDeletion" and md["DeleteDate"]
    sdk.fails("Rejected.PendingDeletion", 409, "Encrypt", KeyId=key, Plaintext=b64(b"x"))
    sdk.fails("Rejected.StateModifiedFailed", 409, "ScheduleKeyDeletion", KeyId=key, PendingWindowInDays=7)
    sdk.fails("Rejected.PendingDeletion", 409, "TagResource", KeyId=key, Tags='[{"TagKey":"a","TagValue":"b"}]')
    sdk("CancelKeyDeletion", KeyId=key)
    assert sdk("DescribeKey", KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"
    sdk.fails("Rejected.StateModifiedFailed", 409, "CancelKeyDeletion", KeyId=key)

    # Tags.
    sdk("TagResource", KeyId=alias, Tags=json.dumps([{"TagKey": "env", "TagValue": "test"},
                                                     {"TagKey": "team", "TagValue": sdk.kind}]))
    tags = sdk("ListResourceTags", KeyId=key)["Tags"]["Tag"]
    assert [(t["KeyId"], t["TagKey"], t["TagValue"]) for t in tags] == [(key, "env", "test"), (key, "team", sdk.kind)]
    sdk("UntagResource", KeyId=key, TagKeys='["env"]')
    assert [t["TagKey"] for t in sdk("ListResourceTags", KeyId=key)["Tags"]["Tag"]] == ["team"]
    sdk.fails("InvalidParameter", 400, "TagResource", KeyId=key, Tags='[{"TagKey":"acs:x","TagValue":"b"}]')
    sdk.fails("Unsupported.Alias", 400, "UntagResource", KeyId=alias, TagKeys="team")

    # Aliases of the key, then delete the alias.
    aliases = sdk("ListAliasesByKeyId", KeyId=key)
    assert [a["AliasName"] for a in aliases["Aliases"]["Alias"]] == [alias] and aliases["TotalCount"] == 1
    assert aliases["Aliases"]["Alias"][0]["AliasArn"] == \
        f"acs:kms:{sdk.server.region}:{sdk.server.account_id}:{alias}"
    sdk("DeleteAlias", AliasName=alias)
    sdk.fails("Forbidden.AliasNotFound", 404, "Encrypt", KeyId=alias, Plaintext=b64(b"x"))
    sdk.fails("Forbidden.AliasNotFound", 404, "DeleteAlias", AliasName=alias)
    assert sdk("DescribeKey", KeyId=key)["KeyMetadata"]["KeyState"] == "Enabled"


def test_errors_surface_with_code_and_status(sdk):
    missing = str(uuid.uuid4())
    sdk.fails("Forbidden.KeyNotFound", 404, "DescribeKey", KeyId=missing)
    sdk.fails("Forbidden.KeyNotFound", 404, "Encrypt", KeyId=missing, Plaintext=b64(b"x"))
    sdk.fails("Forbidden.AliasNotFound", 404, "GenerateDataKey", KeyId=f"alias/none-{missing}")
    sdk.fails("Unsupported.Alias", 400, "EnableKey", KeyId=f"alias/none-{missing}")
    key = sdk("CreateKey", KeySpec="Aliyun_SM4")["KeyMetadata"]["KeyId"]
    sdk.fails("InvalidParameter", 400, "Encrypt", KeyId=key, Plaintext="%%% not base64")
    sdk.fails("InvalidParameter", 400, "GenerateDataKey", KeyId=key, NumberOfBytes=1025)
    sdk.fails("InvalidParameter", 400, "Decrypt", CiphertextBlob=b64(b"\x01" + bytes(100)))
    sdk.fails("InvalidParameter", 400, "CreateAlias", AliasName="alias/acs-reserved", KeyId=key)
    sdk.fails("Rejected.StateModifiedFailed", 409, "CancelKeyDeletion", KeyId=key)
    ext = sdk("CreateKey", Origin="EXTERNAL")["KeyMetadata"]
    assert ext["KeyState"] == "PendingImport"
    sdk.fails("Rejected.PendingImport", 409, "Encrypt", KeyId=ext["KeyId"], Plaintext=b64(b"x"))
    sdk.fails("Rejected.StateModifiedFailed", 409, "EnableKey", KeyId=ext["KeyId"])
    blob = sdk("Encrypt", KeyId=key, Plaintext=b64(b"sm4"))["CiphertextBlob"]
    assert base64.b64decode(sdk("Decrypt", CiphertextBlob=blob)["Plaintext"]) == b"sm4"
