"""Helpers of the asymmetric / BYOK tests: calls that assert their outcome, asymmetric keys with their
first version, store access (white box: a version's private key, key-row edits), and small DER codecs
(tests/der.py) so SM2 values can move between the service's DER forms and pysmx's raw forms."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

from tests import support

REGION, SCOPE, DAY = support.REGION, support.SCOPE, support.DAY
SM2_UID = b"1234567812345678"
BAD_BLOB_MESSAGE = 'The specified parameter "CiphertextBlob" is not valid.'


b64, unb64 = support.b64, support.unb64  # shared by every area's tests


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- calls ---------------------------------------------------------------------------------------

ok, err = support.ok, support.err  # checked calls, shared by every area's tests


def create_key(kms, spec: str, usage: str | None = None, **params) -> dict:
    """CreateKey; returns KeyMetadata."""
    params = {"KeySpec": spec, **params}
    if usage is not None:
        params["KeyUsage"] = usage
    return ok(kms, "CreateKey", params)["KeyMetadata"]


def versions(kms, key_id: str) -> list[str]:
    body = ok(kms, "ListKeyVersions", {"KeyId": key_id, "PageSize": "101"})
    assert body["TotalCount"] == len(body["KeyVersions"]["KeyVersion"])
    return [v["KeyVersionId"] for v in body["KeyVersions"]["KeyVersion"]]


def asym_key(kms, spec: str, usage: str | None = None) -> tuple[str, str]:
    """(key id, id of its only version) of a new asymmetric key."""
    md = create_key(kms, spec, usage)
    found = versions(kms, md["KeyId"])
    assert len(found) == 1
    return md["KeyId"], found[0]


describe = support.describe_key


def public_pem(kms, key_id: str, vid: str) -> str:
    body = ok(kms, "GetPublicKey", {"KeyId": key_id, "KeyVersionId": vid})
    assert (body["KeyId"], body["KeyVersionId"]) == (key_id, vid)
    return body["PublicKey"]


def pem_to_der(pem: str) -> bytes:
    lines = pem.strip().splitlines()
    assert lines[0] == "-----BEGIN PUBLIC KEY-----" and lines[-1] == "-----END PUBLIC KEY-----", pem
    assert all(len(line) <= 64 for line in lines[1:-1]) and pem.endswith("\n")
    return base64.b64decode("".join(lines[1:-1]))


def sign(kms, key_id: str, vid: str, algorithm: str, digest: bytes) -> bytes:
    body = ok(kms, "AsymmetricSign", {"KeyId": key_id, "KeyVersionId": vid, "Algorithm": algorithm,
                                      "Digest": b64(digest)})
    assert (body["KeyId"], body["KeyVersionId"]) == (key_id, vid)
    return unb64(body["Value"])


def verify(kms, key_id: str, vid: str, algorithm: str, digest: bytes, signature: bytes) -> bool:
    body = ok(kms, "AsymmetricVerify", {"KeyId": key_id, "KeyVersionId": vid, "Algorithm": algorithm,
                                        "Digest": b64(digest), "Value": b64(signature)})
    assert (body["KeyId"], body["KeyVersionId"]) == (key_id, vid)
    assert isinstance(body["Value"], bool)
    return body["Value"]


def encrypt(kms, key_id: str, vid: str, algorithm: str, plaintext: bytes) -> bytes:
    body = ok(kms, "AsymmetricEncrypt", {"KeyId": key_id, "KeyVersionId": vid, "Algorithm": algorithm,
                                         "Plaintext": b64(plaintext)})
    assert (body["KeyId"], body["KeyVersionId"]) == (key_id, vid)
    return unb64(body["CiphertextBlob"])


def decrypt(kms, key_id: str, vid: str, algorithm: str, ciphertext: bytes) -> bytes:
    body = ok(kms, "AsymmetricDecrypt", {"KeyId": key_id, "KeyVersionId": vid, "Algorithm": algorithm,
                                         "CiphertextBlob": b64(ciphertext)})
    assert (body["KeyId"], body["KeyVersionId"]) == (key_id, vid)
    return unb64(body["Plaintext"])


# --- the store underneath (white box) ------------------------------------------------------------

def key_row(store, key_id: str) -> dict:
    return store.get("keys", SCOPE, key_id).data


edit_key = support.edit_key


def version_material(store, key_id: str, vid: str) -> bytes:
    """A version's material as the service stores it (PKCS#8 DER private key, or symmetric key bytes),
    unwrapped with the root key."""
    from alikms.shared.config import get_config
    from alikms.shared.crypto import unwrap
    from alikms.shared.versions import material_aad

    key = store.get("keys", SCOPE, key_id)
    if key is not None and key.data.get("imported_material") and key.data["primary_key_version"] == vid:
        wrapped = key.data["imported_material"]  # imported material lives in the key record
    else:
        row = store.get("key_versions", f"{SCOPE}/{key_id}", vid)
        assert row is not None
        wrapped = row.data["material"]
    return unwrap(get_config(), wrapped, material_aad(key_id, vid))


def token_rows(store, key_id: str) -> list:
    return list(store.query_all("import_tokens", f"{SCOPE}/{key_id}"))


def now() -> int:
    return int(time.time())


# --- pysmx, the independent SM2 implementation ------------------------------------------------------

def smx_digest(point: bytes, message: bytes) -> bytes:
    """e = SM3(Z_A || M) computed with pysmx's get_za and SM3 only."""
    from pysmx.crypto import hashlib as smx_hashlib
    from pysmx.SM2 import get_za

    za = bytes.fromhex(get_za(SM2_UID, point.hex()))
    return smx_hashlib.sm3(za + message).digest()


def smx_sign_digest(d: bytes, digest: bytes) -> bytes:
    """A pysmx SM2 signature over a 32-byte digest, as raw r || s."""
    from pysmx.SM2 import Sign, sm2_N

    while True:
        k = f"{secrets.randbelow(sm2_N - 1) + 1:064x}"
        raw = Sign(digest, d.hex(), k, 64)
        if raw is not None:
            return raw
