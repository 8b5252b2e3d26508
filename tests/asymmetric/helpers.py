"""Helpers of the asymmetric / BYOK tests: calls that assert their outcome, asymmetric keys with their
first version, store access (white box: a version's private key, key-row edits), and small DER codecs
so SM2 values can move between the service's DER forms and pysmx's raw forms."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time

from tests import support

REGION = "cn-hangzhou"
SCOPE = f"{support.TEST_ACCOUNT}/{REGION}"
DAY = 86400
SM2_UID = b"1234567812345678"
BAD_BLOB_MESSAGE = 'The specified parameter "CiphertextBlob" is not valid.'


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


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


def describe(kms, key_id: str) -> dict:
    return ok(kms, "DescribeKey", {"KeyId": key_id})["KeyMetadata"]


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


def edit_key(store, key_id: str, **fields) -> None:
    item = store.get("keys", SCOPE, key_id)
    store.update("keys", SCOPE, key_id, {**item.data, **fields}, item.rev)


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


# --- DER, just enough for SM2 values --------------------------------------------------------------

def der_read(data: bytes, pos: int = 0) -> tuple[int, bytes, int]:
    """(tag, content, next position) of the TLV at `pos`."""
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        n = length & 0x7F
        length = int.from_bytes(data[pos:pos + n], "big")
        pos += n
    assert pos + length <= len(data), "truncated DER"
    return tag, data[pos:pos + length], pos + length


def der_items(content: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(content):
        tag, value, pos = der_read(content, pos)
        out.append((tag, value))
    return out


def der_tlv(tag: int, value: bytes) -> bytes:
    n = len(value)
    if n < 0x80:
        return bytes([tag, n]) + value
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag, 0x80 | len(size)]) + size + value


def der_int(n: int) -> bytes:
    return der_tlv(0x02, n.to_bytes(n.bit_length() // 8 + 1, "big"))


def der_seq(*parts: bytes) -> bytes:
    return der_tlv(0x30, b"".join(parts))


def sig_der_to_raw(der: bytes) -> bytes:
    """DER SEQUENCE{r, s} -> r || s (32 bytes each)."""
    tag, content, end = der_read(der)
    assert tag == 0x30 and end == len(der)
    (t1, r), (t2, s) = der_items(content)
    assert t1 == t2 == 0x02
    return int.from_bytes(r, "big").to_bytes(32, "big") + int.from_bytes(s, "big").to_bytes(32, "big")


def sig_raw_to_der(raw: bytes) -> bytes:
    return der_seq(der_int(int.from_bytes(raw[:32], "big")), der_int(int.from_bytes(raw[32:], "big")))


def sm2_ct_der_to_raw(der: bytes) -> bytes:
    """GM/T 0009 DER SEQUENCE{x, y, C3, C2} -> pysmx's raw x || y || C3 || C2."""
    tag, content, end = der_read(der)
    assert tag == 0x30 and end == len(der)
    (tx, x), (ty, y), (t3, c3), (t2, c2) = der_items(content)
    assert (tx, ty, t3, t2) == (0x02, 0x02, 0x04, 0x04) and len(c3) == 32
    return (int.from_bytes(x, "big").to_bytes(32, "big") + int.from_bytes(y, "big").to_bytes(32, "big")
            + c3 + c2)


def sm2_ct_raw_to_der(raw: bytes) -> bytes:
    x, y, c3, c2 = raw[:32], raw[32:64], raw[64:96], raw[96:]
    return der_seq(der_int(int.from_bytes(x, "big")), der_int(int.from_bytes(y, "big")),
                   der_tlv(0x04, c3), der_tlv(0x04, c2))


def spki_point(spki: bytes) -> bytes:
    """x || y of an EC SubjectPublicKeyInfo (uncompressed point), parsed here rather than by a library."""
    _, content, _ = der_read(spki)
    (_, _alg), (tag, bits) = der_items(content)
    assert tag == 0x03 and bits[0] == 0 and bits[1] == 0x04 and len(bits) == 66
    return bits[2:]


def pkcs8_sm2_scalar(pkcs8: bytes) -> bytes:
    """The private scalar d (32 bytes) of an EC PKCS#8 PrivateKeyInfo."""
    _, content, _ = der_read(pkcs8)
    items = der_items(content)
    assert items[2][0] == 0x04
    _, ec_key, _ = der_read(items[2][1])
    (_, version), (tag, d) = der_items(ec_key)[:2]
    assert version == b"\x01" and tag == 0x04
    return d.rjust(32, b"\x00")


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
