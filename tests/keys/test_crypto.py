"""Symmetric envelope crypto (kms-api.md §9.1-§9.3, §9.6, §9.7): round trips, DryRun, the
EncryptionContext as canonical AAD, parameter limits, ReEncrypt, and one detail-free error for
every damaged or foreign ciphertext."""

from __future__ import annotations

import base64
import json
import uuid
from collections import OrderedDict

import pytest

from tests.keys.helpers import (
    BAD_BLOB_MESSAGE,
    b64,
    create_key,
    decrypt,
    describe,
    encrypt,
    err,
    ok,
    unb64,
)

SPECS = ("Aliyun_AES_256", "Aliyun_AES_128", "Aliyun_AES_192", "Aliyun_SM4")
CTX = {"purpose": "test", "tenant": "t-1"}


def bad_blob(kms, blob: str, context: dict | None = None) -> None:
    """The one error for a ciphertext that is not ours, damaged, or paired with the wrong context."""
    params = {"CiphertextBlob": blob}
    if context is not None:
        params["EncryptionContext"] = json.dumps(context, separators=(",", ":"))
    status, body = kms.call("Decrypt", params)
    assert (status, body["Code"], body["Message"]) == (400, "InvalidParameter", BAD_BLOB_MESSAGE), (blob, body)


def unknown_key_blob(kms, blob: str, context: dict | None = None) -> None:
    """A well-formed blob naming a key this caller does not have: the documented 404, as for a KeyId."""
    params = {"CiphertextBlob": blob}
    if context is not None:
        params["EncryptionContext"] = json.dumps(context, separators=(",", ":"))
    status, body = kms.call("Decrypt", params)
    assert (status, body["Code"]) == (404, "Forbidden.KeyNotFound"), (blob, body)


def names_another_key(raw: bytes, key: str) -> bool:
    """Whether `raw` parses as one of our blobs naming a key other than `key`."""
    from alikms.shared.crypto import blob

    try:
        return blob.parse(raw).key_id != key
    except blob.InvalidBlob:
        return False


@pytest.mark.parametrize("spec", SPECS)
def test_round_trip_per_spec(kms, spec):
    key = create_key(kms, KeySpec=spec)
    md = describe(kms, key)
    assert md["KeySpec"] == spec and md["KeyUsage"] == "ENCRYPT/DECRYPT"
    for plaintext in (b"\x00", b"hello world", bytes(range(256)) * 24):
        body = encrypt(kms, key, plaintext, CTX)
        assert (body["KeyId"], body["KeyVersionId"]) == (key, md["PrimaryKeyVersion"])
        out = decrypt(kms, body["CiphertextBlob"], CTX)
        assert (out["raw"], out["KeyId"], out["KeyVersionId"]) == (plaintext, key, md["PrimaryKeyVersion"])
    # Two encryptions of the same plaintext differ (fresh IV).
    assert encrypt(kms, key, b"same")["CiphertextBlob"] != encrypt(kms, key, b"same")["CiphertextBlob"]

    data = ok(kms, "GenerateDataKey", {"KeyId": key, "EncryptionContext": json.dumps(CTX)})
    assert len(unb64(data["Plaintext"])) == 32 and data["KeyId"] == key
    assert decrypt(kms, data["CiphertextBlob"], CTX)["raw"] == unb64(data["Plaintext"])
    bare = ok(kms, "GenerateDataKeyWithoutPlaintext", {"KeyId": key, "KeySpec": "AES_128"})
    assert "Plaintext" not in bare and bare["KeyVersionId"] == md["PrimaryKeyVersion"]
    assert len(decrypt(kms, bare["CiphertextBlob"])["raw"]) == 16


@pytest.mark.parametrize("action", ["Encrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext", "Decrypt",
                                    "ReEncrypt"])
def test_dry_run_outcomes(kms, action):
    key = create_key(kms)
    blob = encrypt(kms, key, b"dry")["CiphertextBlob"]
    good = {"Encrypt": {"KeyId": key, "Plaintext": b64(b"x")}, "Decrypt": {"CiphertextBlob": blob},
            "ReEncrypt": {"CiphertextBlob": blob, "DestinationKeyId": key}}.get(action, {"KeyId": key})
    bad = {"Encrypt": {"KeyId": key, "Plaintext": "not base64!"}, "Decrypt": {"CiphertextBlob": "AAAA"},
           "ReEncrypt": {"CiphertextBlob": blob}}.get(action, {"KeyId": key, "NumberOfBytes": "0"})
    before = describe(kms, key)
    for flag in ("true", "True", "TRUE"):
        body = err(kms, action, {**good, "DryRun": flag}, "DryRunOperationError", 400)
        assert "Plaintext" not in body and "CiphertextBlob" not in body
    err(kms, action, {**bad, "DryRun": "true"}, "ValidationError", 400)
    err(kms, action, {"DryRun": "true"}, "ValidationError", 400)  # required parameters missing
    assert ok(kms, action, {**good, "DryRun": "false"})
    err(kms, action, {**good, "DryRun": "maybe"}, "InvalidParameter", 400, "DryRun")
    ok(kms, "DisableKey", {"KeyId": key})
    err(kms, action, {**good, "DryRun": "true"}, "Rejected.Disabled", 409)
    ok(kms, "EnableKey", {"KeyId": key})
    assert describe(kms, key) == before  # a dry run changes nothing (no version, no state)


def test_context_is_canonical(kms):
    key = create_key(kms)
    blob = ok(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(b"c"),
                               "EncryptionContext": '{"b": "2", "a": "1"}'})["CiphertextBlob"]
    for same in ('{"a":"1","b":"2"}', '{ "b" : "2" ,\n "a" : "1" }', '{"a":"1","b":"2","a":"1"}'):
        body = ok(kms, "Decrypt", {"CiphertextBlob": blob, "EncryptionContext": same})
        assert unb64(body["Plaintext"]) == b"c"
    for other in ({"a": "1"}, {"a": "1", "b": "3"}, {"a": "1", "b": "2", "c": "3"}, {"A": "1", "b": "2"}):
        bad_blob(kms, blob, other)
    bad_blob(kms, blob)  # context used, none given


def test_context_cannot_be_shifted_between_keys_and_values(kms):
    key = create_key(kms)
    blob = encrypt(kms, key, b"s", {"ab": "c"})["CiphertextBlob"]
    bad_blob(kms, blob, {"a": "bc"})
    bad_blob(kms, blob, {"ab": "c", "": ""})
    assert decrypt(kms, blob, {"ab": "c"})["raw"] == b"s"
    plain = encrypt(kms, key, b"n")["CiphertextBlob"]
    bad_blob(kms, plain, {"x": "y"})  # no context used, one given
    assert decrypt(kms, plain, {})["raw"] == b"n"  # an empty context is no context


def test_unicode_context(kms):
    key = create_key(kms)
    raw_context = json.dumps({"名前": "値", "e": "é"}, ensure_ascii=False)
    blob = ok(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(b"u"),
                               "EncryptionContext": raw_context})["CiphertextBlob"]
    escaped = '{"e":"\\u00e9","\\u540d\\u524d":"\\u5024"}'
    assert unb64(ok(kms, "Decrypt", {"CiphertextBlob": blob, "EncryptionContext": escaped})["Plaintext"]) == b"u"


def test_flattened_context_form(kms):
    key = create_key(kms)
    body = ok(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(b"npm"), "EncryptionContext.tenant": "t-1",
                               "EncryptionContext.purpose": "test"})
    assert decrypt(kms, body["CiphertextBlob"], CTX)["raw"] == b"npm"
    flat = ok(kms, "Decrypt", {"CiphertextBlob": body["CiphertextBlob"], "EncryptionContext.purpose": "test",
                               "EncryptionContext.tenant": "t-1"})
    assert unb64(flat["Plaintext"]) == b"npm"
    err(kms, "Decrypt", {"CiphertextBlob": body["CiphertextBlob"], "EncryptionContext.purpose": "test"},
        "InvalidParameter", 400, "CiphertextBlob")
    err(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(b"x"), "EncryptionContext": '{"a":"b"}',
                         "EncryptionContext.a": "b"}, "InvalidParameter", 400, "EncryptionContext")
    data = ok(kms, "GenerateDataKey", {"KeyId": key, "EncryptionContext.k": "v"})
    assert decrypt(kms, data["CiphertextBlob"], {"k": "v"})["raw"] == unb64(data["Plaintext"])


@pytest.mark.parametrize("context", ['["a","b"]', '"text"', "42", "null", '{"a":1}', '{"a":["x"]}', '{"a":{"b":"c"}}',
                                     '{"a":null}', '{"a":true}', "{not json"])
@pytest.mark.parametrize("action", ["Encrypt", "GenerateDataKey", "Decrypt"])
def test_context_must_be_object_of_strings(kms, context, action):
    key = create_key(kms)
    params = {"Encrypt": {"KeyId": key, "Plaintext": b64(b"x")}, "GenerateDataKey": {"KeyId": key},
              "Decrypt": {"CiphertextBlob": encrypt(kms, key)["CiphertextBlob"]}}[action]
    err(kms, action, {**params, "EncryptionContext": context}, "InvalidParameter", 400, "EncryptionContext")


def test_context_size_limit(kms):
    key = create_key(kms)
    at_limit = json.dumps({"k": "v" * 8184}, separators=(",", ":"))
    assert len(at_limit) == 8192
    blob = ok(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(b"big"), "EncryptionContext": at_limit})["CiphertextBlob"]
    assert decrypt(kms, blob, {"k": "v" * 8184})["raw"] == b"big"
    over = json.dumps({"k": "v" * 8185}, separators=(",", ":"))
    err(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(b"x"), "EncryptionContext": over}, "InvalidParameter", 400,
        "EncryptionContext")
    err(kms, "GenerateDataKey", {"KeyId": key, "EncryptionContext": over}, "InvalidParameter", 400,
        "EncryptionContext")
    # The flattened form counts too.
    err(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(b"x"), "EncryptionContext.k": "v" * 8200},
        "InvalidParameter", 400, "EncryptionContext")


def test_plaintext_rules(kms):
    key = create_key(kms)
    for bad in ("not base64!", "QQ", "QUJ", " ", "QU JD"):
        err(kms, "Encrypt", {"KeyId": key, "Plaintext": bad}, "InvalidParameter", 400, "Plaintext")
    err(kms, "Encrypt", {"KeyId": key, "Plaintext": ""}, "InvalidParameter", 400, "Plaintext")
    err(kms, "Encrypt", {"KeyId": key}, "MissingParameter", 400, "Plaintext")
    big = bytes(range(256)) * 24
    assert len(big) == 6144
    assert decrypt(kms, encrypt(kms, key, big)["CiphertextBlob"])["raw"] == big
    err(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(big + b"!")}, "InvalidParameter", 400, "Plaintext")


@pytest.mark.parametrize("action", ["GenerateDataKey", "GenerateDataKeyWithoutPlaintext"])
def test_data_key_sizes(kms, action):
    key = create_key(kms)

    def size(**params) -> int:
        body = ok(kms, action, {"KeyId": key, **params})
        raw = decrypt(kms, body["CiphertextBlob"])["raw"]
        if "Plaintext" in body:
            assert unb64(body["Plaintext"]) == raw
        return len(raw)

    assert size() == 32
    assert size(KeySpec="AES_256") == 32
    assert size(KeySpec="AES_128") == 16
    assert size(NumberOfBytes="1") == 1
    assert size(NumberOfBytes="1024") == 1024
    assert size(NumberOfBytes="7", KeySpec="AES_128") == 7  # NumberOfBytes wins
    for bad in ("0", "1025", "-1", "x", "1.5"):
        err(kms, action, {"KeyId": key, "NumberOfBytes": bad}, "InvalidParameter", 400, "NumberOfBytes")
    for bad in ("AES_512", "aes_256", "Aliyun_AES_256", ""):
        err(kms, action, {"KeyId": key, "KeySpec": bad}, "InvalidParameter", 400, "KeySpec")


def test_reencrypt_to_another_key(kms):
    source, dest = create_key(kms), create_key(kms)
    blob = encrypt(kms, source, b"move me", CTX)["CiphertextBlob"]
    body = ok(kms, "ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": dest,
                                 "SourceEncryptionContext": json.dumps(CTX),
                                 "DestinationEncryptionContext": '{"new":"ctx"}'})
    assert (body["KeyId"], body["KeyVersionId"]) == (dest, describe(kms, dest)["PrimaryKeyVersion"])
    out = decrypt(kms, body["CiphertextBlob"], {"new": "ctx"})
    assert (out["raw"], out["KeyId"]) == (b"move me", dest)
    bad_blob(kms, body["CiphertextBlob"], CTX)  # the destination context replaced the source one
    # The source context is required when one was used, and must match.
    err(kms, "ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": dest}, "InvalidParameter", 400,
        "CiphertextBlob")
    err(kms, "ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": dest,
                           "SourceEncryptionContext": '{"purpose":"other"}'}, "InvalidParameter", 400, "CiphertextBlob")
    err(kms, "ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": str(uuid.uuid4()),
                           "SourceEncryptionContext": json.dumps(CTX)}, "Forbidden.KeyNotFound", 404)
    err(kms, "ReEncrypt", {"CiphertextBlob": blob}, "MissingParameter", 400, "DestinationKeyId")


def test_reencrypt_same_key_after_rotation_moves_to_new_version(kms):
    key = create_key(kms)
    v1 = describe(kms, key)["PrimaryKeyVersion"]
    blob = encrypt(kms, key, b"old")["CiphertextBlob"]
    v2 = ok(kms, "CreateKeyVersion", {"KeyId": key})["KeyVersion"]["KeyVersionId"]
    assert v2 != v1
    body = ok(kms, "ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": key})
    assert (body["KeyId"], body["KeyVersionId"]) == (key, v2)
    assert decrypt(kms, body["CiphertextBlob"])["KeyVersionId"] == v2
    assert decrypt(kms, blob)["KeyVersionId"] == v1


def test_reencrypt_asymmetric_source_params_refused_for_symmetric_ciphertext(kms):
    """SourceKeyId / SourceKeyVersionId / SourceEncryptionAlgorithm describe an asymmetric source; naming a
    symmetric key with them is an unsupported operation, and nothing is re-encrypted."""
    key = create_key(kms)
    version = describe(kms, key)["PrimaryKeyVersion"]
    blob = encrypt(kms, key)["CiphertextBlob"]
    status, body = kms.call("ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": key, "SourceKeyId": key,
                                          "SourceKeyVersionId": version,
                                          "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256"})
    assert status == 400 and body["Code"] in ("UnsupportedOperation", "Rejected.UnsupportedOperation"), body
    assert "CiphertextBlob" not in body


def test_every_single_byte_flip_is_the_same_error(kms):
    """A flip in the key id names another key (the documented 404, as for any unknown key); every
    other flip is the one detail-free error."""
    key = create_key(kms)
    raw = unb64(encrypt(kms, key, b"tamper", CTX)["CiphertextBlob"])
    assert decrypt(kms, b64(raw), CTX)["raw"] == b"tamper"
    for i in range(len(raw)):
        for mask in (0x01, 0x80):
            flipped = raw[:i] + bytes([raw[i] ^ mask]) + raw[i + 1:]
            (unknown_key_blob if names_another_key(flipped, key) else bad_blob)(kms, b64(flipped), CTX)


def test_every_truncation_and_extension_is_the_same_error(kms):
    key = create_key(kms)
    raw = unb64(encrypt(kms, key, b"truncate me")["CiphertextBlob"])
    for n in range(len(raw)):
        bad_blob(kms, b64(raw[:n]) if n else "")
        bad_blob(kms, b64(raw[n + 1:]))  # prefixes cut off too
    bad_blob(kms, b64(raw + b"\x00"))


@pytest.mark.parametrize("garbage", ["not base64 at all", "!!!!", "QUJD", "QUJD=", "====", "\u00e9\u00e9\u00e9\u00e9",
                                     "A" * 16384, "AQ==", "AUFB", b64(bytes(200)), b64(b"\x01" + bytes(199)),
                                     b64(b"\x01\x40" + b"a" * 64 + b"\x40" + b"b" * 64 + bytes(28)),
                                     b64(b"\x01\xff" + bytes(300)), b64(str(uuid.uuid4()).encode() + bytes(64))])
def test_garbage_blobs_are_the_same_error(kms, garbage):
    create_key(kms)
    status, body = kms.call("ReEncrypt", {"CiphertextBlob": garbage, "DestinationKeyId": create_key(kms)})
    try:
        well_formed = names_another_key(base64.b64decode(garbage, validate=True), "")
    except ValueError:
        well_formed = False
    if well_formed:  # a header naming a key that does not exist
        unknown_key_blob(kms, garbage)
        assert (status, body["Code"]) == (404, "Forbidden.KeyNotFound")
    else:
        bad_blob(kms, garbage)
        assert (status, body["Code"], body["Message"]) == (400, "InvalidParameter", BAD_BLOB_MESSAGE)


def test_too_long_blob_rejected(kms):
    status, body = kms.call("Decrypt", {"CiphertextBlob": "A" * 16388})
    assert (status, body["Code"], body["Message"]) == (400, "InvalidParameter", BAD_BLOB_MESSAGE)
    err(kms, "Decrypt", {}, "MissingParameter", 400, "CiphertextBlob")


def test_blob_from_another_deployment_fails_the_same_way(kms, tmp_path, monkeypatch):
    """A second environment (its own data dir, root key and store) makes a blob; this one refuses it.
    Also with the other environment's key rows copied in (same key id and version, material wrapped
    under a root key this deployment does not have)."""
    from alikms.shared import versions as versions_mod
    from alikms.shared.store.sqlite import SqliteStore
    from tests.conftest import reset_caches
    from tests.keys.helpers import SCOPE

    mine = create_key(kms)
    assert decrypt(kms, encrypt(kms, mine)["CiphertextBlob"])["KeyId"] == mine
    home_dir = str(tmp_path / "data")
    monkeypatch.setenv("KMS_DATA_DIR", str(tmp_path / "elsewhere"))
    reset_caches()
    (tmp_path / "elsewhere").mkdir()
    other_store = SqliteStore(tmp_path / "elsewhere" / "kms.sqlite3")
    monkeypatch.setattr("alikms.shared.runtime.get_store", lambda: other_store)
    theirs = create_key(kms)
    foreign = encrypt(kms, theirs, b"foreign", CTX)["CiphertextBlob"]
    key_item = other_store.get("keys", SCOPE, theirs)
    version_items = list(other_store.query_all("key_versions", f"{SCOPE}/{theirs}"))

    monkeypatch.setenv("KMS_DATA_DIR", home_dir)
    reset_caches()
    monkeypatch.setattr("alikms.shared.runtime.get_store", lambda: kms.store)
    monkeypatch.setattr(versions_mod, "_material", OrderedDict())  # a fresh instance: nothing cached
    unknown_key_blob(kms, foreign, CTX)  # no such key here
    kms.store.put_new("keys", SCOPE, theirs, key_item.data)
    for item in version_items:
        kms.store.put_new("key_versions", item.pk, item.sk, item.data)
    assert describe(kms, theirs)["KeyState"] == "Enabled"
    bad_blob(kms, foreign, CTX)
    assert decrypt(kms, encrypt(kms, mine)["CiphertextBlob"])["KeyId"] == mine


def test_blob_of_a_deleted_or_unknown_key_or_version(kms):
    key = create_key(kms)
    blob = unb64(encrypt(kms, key, b"v")["CiphertextBlob"])
    version = describe(kms, key)["PrimaryKeyVersion"].encode()
    other_version = str(uuid.uuid4()).encode()
    bad_blob(kms, b64(blob.replace(version, other_version)))
    unknown_key_blob(kms, b64(blob.replace(key.encode(), str(uuid.uuid4()).encode())))
