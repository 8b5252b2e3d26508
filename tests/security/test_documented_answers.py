"""Documented answers (issue 11 §6) and the catch-all as a safety net only (issue 16 §1).

Every action that takes a ciphertext answers a blob naming a key the caller cannot see (another
account's, or none at all) with the documented 404 Forbidden.KeyNotFound, exactly as a KeyId naming
it; a blob that does not parse or fails authentication keeps its one detail-free InvalidParameter.
"""

from __future__ import annotations

import base64
import uuid

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.security.inproc import Service

B_ACCOUNT = "2234567890123456"
BAD_BLOB = 'The specified parameter "CiphertextBlob" is not valid.'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture
def svc(local_env, monkeypatch) -> Service:
    monkeypatch.setenv("KMS_AUDIT_STDOUT", "false")
    return Service(local_env)


def test_a_blob_naming_a_key_the_caller_cannot_see_is_key_not_found(svc):
    ak_b, secret_b = svc.access_key(None, account=B_ACCOUNT)

    def as_b(action, params):
        return svc.call(action, params, ak=ak_b, secret=secret_b)

    assert as_b("OpenKmsService", {})[0] == 200
    key_a = svc.ok("CreateKey")["KeyMetadata"]["KeyId"]
    key_b = as_b("CreateKey", {})[1]["KeyMetadata"]["KeyId"]
    blob_a = svc.ok("Encrypt", {"KeyId": key_a, "Plaintext": b64(b"a's"), "EncryptionContext": '{"c":"1"}'})[
        "CiphertextBlob"]
    raw = base64.b64decode(blob_a)
    nobody = b64(raw[:2] + str(uuid.uuid4()).encode() + raw[2 + raw[1]:])  # a well-formed header, no such key
    tampered = b64(raw[:-1] + bytes([raw[-1] ^ 1]))
    public = b64(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))
    wrap = {"PublicKeyBlob": public, "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}
    for action, extra, context in (("Decrypt", {}, "EncryptionContext"), ("ExportDataKey", wrap, "EncryptionContext"),
                                   ("ReEncrypt", {"DestinationKeyId": key_b}, "SourceEncryptionContext")):
        for blob in (blob_a, nobody):  # B cannot see A's key; nobody can see a key that does not exist
            status, body = as_b(action, {"CiphertextBlob": blob, context: '{"c":"1"}', **extra})
            assert (status, body["Code"], body["Message"]) == (404, "Forbidden.KeyNotFound",
                                                               "The specified Key is not found."), (action, body)
            assert key_a not in str(body)
        for blob, ctx in ((b64(b"\x01garbage" * 8), '{"c":"1"}'), (tampered, '{"c":"1"}'), (blob_a, '{"c":"2"}')):
            own = blob in (tampered, blob_a)  # A's own key: authentication decides
            params = {"CiphertextBlob": blob, context: ctx, **extra}
            if action == "ReEncrypt":
                params["DestinationKeyId"] = key_a if own else key_b
            status, body = svc.call(action, params) if own else as_b(action, params)
            assert (status, body["Code"], body["Message"]) == (400, "InvalidParameter", BAD_BLOB), (action, body)


@pytest.mark.internal_failure_expected
def test_the_catch_all_is_watched(invoke, no_catch_all, monkeypatch):
    """The catch-all answers an unexpected exception with InternalFailure and nothing more, and the
    suite's watch (tests/conftest.py) sees it: without this test's marker, this test would fail."""
    from alikms.shared import runtime

    def store_down():
        raise RuntimeError("a fault injected by the test")

    monkeypatch.setattr(runtime, "get_store", store_down)
    status, body = invoke("DescribeRegions")
    assert (status, body["Code"], body["Message"]) == (500, "InternalFailure", "Internal Failure.")
    assert "fault" not in str(body) and "RuntimeError" not in str(body)
    assert len(no_catch_all.fired) == 1 and body["RequestId"] in no_catch_all.fired[0]
