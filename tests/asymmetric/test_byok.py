"""Bring your own key: GetParametersForImport, ImportKeyMaterial, DeleteKeyMaterial and the
ExpireKeyMaterial timer, with material wrapped outside the service by `cryptography` (RSA PKCS#1 v1.5,
OAEP-SHA-1, OAEP-SHA-256 with MGF1-SHA-256) and pysmx / our SM2 module (SM2PKE)."""

from __future__ import annotations

import calendar
import os
import time
import uuid

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from alikms.shared.crypto import sm2
from tests import support
from tests.asymmetric.helpers import (
    DAY,
    SCOPE,
    asym_key,
    b64,
    create_key,
    describe,
    edit_key,
    err,
    key_row,
    now,
    ok,
    token_rows,
    unb64,
    version_material,
    versions,
)
from tests.der import sm2_ct_raw_to_der, spki_point

SIZES = {"Aliyun_AES_256": 32, "Aliyun_AES_128": 16, "Aliyun_AES_192": 24, "Aliyun_SM4": 16}
WRAPPINGS = [("RSA_2048", "RSAES_PKCS1_V1_5", "rsa"), ("RSA_2048", "RSAES_OAEP_SHA_1", "rsa"),
             ("RSA_2048", "RSAES_OAEP_SHA_256", "rsa"), ("EC_SM2", "SM2PKE", "pysmx"), ("EC_SM2", "SM2PKE", "sm2")]
ISO = "%Y-%m-%dT%H:%M:%SZ"


def _epoch(iso: str) -> int:
    return calendar.timegm(time.strptime(iso, ISO))


def wrap(params: dict, algorithm: str, material: bytes, flavour: str = "rsa") -> str:
    """EncryptedKeyMaterial made outside the service from GetParametersForImport's PublicKey (base64 DER)."""
    der = unb64(params["PublicKey"])
    if algorithm == "SM2PKE":
        if flavour == "sm2":
            return b64(sm2.PublicKey.from_der(der).encrypt(material))
        return b64(sm2_ct_raw_to_der(support.smx_encrypt(material, spki_point(der))))
    public = serialization.load_der_public_key(der)
    assert public.key_size == 2048
    if algorithm == "RSAES_PKCS1_V1_5":
        return b64(public.encrypt(material, padding.PKCS1v15()))
    h = hashes.SHA1() if algorithm == "RSAES_OAEP_SHA_1" else hashes.SHA256()
    return b64(public.encrypt(material, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=None)))


def external_key(kms, spec: str = "Aliyun_AES_256") -> str:
    md = create_key(kms, spec, Origin="EXTERNAL")
    assert (md["KeyState"], md["Origin"], md["LastRotationDate"]) == ("PendingImport", "EXTERNAL", "")
    assert "PrimaryKeyVersion" not in md
    return md["KeyId"]


def params_for(kms, key: str, spec: str = "RSA_2048", algorithm: str = "RSAES_OAEP_SHA_256") -> dict:
    body = ok(kms, "GetParametersForImport", {"KeyId": key, "WrappingKeySpec": spec, "WrappingAlgorithm": algorithm})
    assert body["KeyId"] == key and body["ImportToken"]
    assert abs(_epoch(body["TokenExpireTime"]) - (now() + DAY)) <= 5  # 24 hours
    return body


def import_(kms, key: str, params: dict, encrypted: str, expire: int | None = None) -> dict:
    request = {"KeyId": key, "ImportToken": params["ImportToken"], "EncryptedKeyMaterial": encrypted}
    if expire is not None:
        request["KeyMaterialExpireUnix"] = str(expire)
    return ok(kms, "ImportKeyMaterial", request)


def imported(kms, spec: str = "Aliyun_AES_256", expire: int | None = None) -> tuple[str, dict, bytes]:
    key = external_key(kms, spec)
    params = params_for(kms, key)
    material = os.urandom(SIZES[spec])
    import_(kms, key, params, wrap(params, "RSAES_OAEP_SHA_256", material), expire)
    return key, params, material


def round_trip(kms, key: str, data: bytes = b"byok data") -> str:
    blob = ok(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(data)})["CiphertextBlob"]
    assert unb64(ok(kms, "Decrypt", {"CiphertextBlob": blob})["Plaintext"]) == data
    return blob


def decrypts(kms, blob: str, data: bytes = b"byok data") -> None:
    assert unb64(ok(kms, "Decrypt", {"CiphertextBlob": blob})["Plaintext"]) == data


def unchanged_pending(kms, key: str) -> None:
    md = describe(kms, key)
    assert (md["KeyState"], md["MaterialExpireTime"]) == ("PendingImport", "") and "PrimaryKeyVersion" not in md
    assert versions(kms, key) == [] and key_row(kms.store, key).get("material_fingerprint") is None


@pytest.mark.parametrize("wrapping_spec,algorithm,flavour", WRAPPINGS)
def test_import_flow_for_every_wrapping_and_material_size(kms, wrapping_spec, algorithm, flavour):
    for spec, size in SIZES.items():
        key = external_key(kms, spec)
        assert versions(kms, key) == []
        err(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(b"x")}, "Rejected.PendingImport", 409)
        params = params_for(kms, key, wrapping_spec, algorithm)
        if wrapping_spec == "EC_SM2":
            assert len(spki_point(unb64(params["PublicKey"]))) == 64
            sm2.PublicKey.from_der(unb64(params["PublicKey"]))
        material = os.urandom(size)
        import_(kms, key, params, wrap(params, algorithm, material, flavour))
        md = describe(kms, key)
        assert (md["KeyState"], md["MaterialExpireTime"], md["Origin"]) == ("Enabled", "", "EXTERNAL")
        assert versions(kms, key) == [md["PrimaryKeyVersion"]]
        # The key now works with exactly the imported bytes.
        assert version_material(kms.store, key, md["PrimaryKeyVersion"]) == material
        blob = round_trip(kms, key)
        # The token is reusable within its lifetime: same material again, now with an expiry.
        expire = now() + 30 * DAY
        import_(kms, key, params, wrap(params, algorithm, material, flavour), expire)
        assert describe(kms, key)["MaterialExpireTime"] == time.strftime(ISO, time.gmtime(expire))
        decrypts(kms, blob)
        # Other material is refused forever, whatever its size, and changes nothing.
        for other in (os.urandom(size), material[:-1] + bytes([material[-1] ^ 1])):
            err(kms, "ImportKeyMaterial", {"KeyId": key, "ImportToken": params["ImportToken"],
                                           "EncryptedKeyMaterial": wrap(params, algorithm, other, flavour)},
                "InvalidKeyMaterial", 400)
        assert describe(kms, key)["KeyState"] == "Enabled"
        assert version_material(kms.store, key, md["PrimaryKeyVersion"]) == material
        decrypts(kms, blob)


def test_failed_imports_change_nothing(kms):
    key, other = external_key(kms), external_key(kms, "Aliyun_SM4")
    params, other_params = params_for(kms, key), params_for(kms, other)
    second = params_for(kms, key, "RSA_2048", "RSAES_OAEP_SHA_1")
    assert second["ImportToken"] != params["ImportToken"] and second["PublicKey"] != params["PublicKey"]
    material = os.urandom(32)
    base = {"KeyId": key, "ImportToken": params["ImportToken"]}
    bad_material = [wrap(params, "RSAES_OAEP_SHA_256", os.urandom(n)) for n in (31, 33, 16, 24, 64, 1)]
    bad_material += [
        wrap(params, "RSAES_OAEP_SHA_1", material),      # wrong padding for this token
        wrap(params, "RSAES_PKCS1_V1_5", material),
        wrap(second, "RSAES_OAEP_SHA_256", material),    # wrapped to the other token's public key
        b64(os.urandom(256)), b64(os.urandom(32)), b64(b"\x00" * 256), "not base64!"]
    for encrypted in bad_material:
        err(kms, "ImportKeyMaterial", {**base, "EncryptedKeyMaterial": encrypted}, "InvalidKeyMaterial", 400)
        unchanged_pending(kms, key)
    encrypted = wrap(params, "RSAES_OAEP_SHA_256", material)
    # A token of another key, or no token of ours at all.
    for token in (other_params["ImportToken"], "x" * 43, uuid.uuid4().hex):
        err(kms, "ImportKeyMaterial", {**base, "ImportToken": token, "EncryptedKeyMaterial": encrypted},
            "InvalidImportToken", 400)
    err(kms, "ImportKeyMaterial", {"KeyId": other, "ImportToken": params["ImportToken"],
                                   "EncryptedKeyMaterial": wrap(params, "RSAES_OAEP_SHA_256", os.urandom(16))},
        "InvalidImportToken", 400)
    for expire in (now() - 60, -1, "soon"):
        err(kms, "ImportKeyMaterial", {**base, "EncryptedKeyMaterial": encrypted, "KeyMaterialExpireUnix": str(expire)},
            "InvalidParameter", 400, "KeyMaterialExpireUnix")
    for name in ("KeyId", "ImportToken", "EncryptedKeyMaterial"):
        params = {**base, "EncryptedKeyMaterial": encrypted}
        err(kms, "ImportKeyMaterial", {k: v for k, v in params.items() if k != name},
            "MissingParameter", 400, name)
    err(kms, "ImportKeyMaterial", {**base, "KeyId": str(uuid.uuid4()), "EncryptedKeyMaterial": encrypted},
        "Forbidden.KeyNotFound", 404)
    unchanged_pending(kms, key)
    unchanged_pending(kms, other)
    # After all that, the first good import still binds the key; SM4 takes 16 bytes, not 32.
    import_(kms, key, params, encrypted, 0)
    assert describe(kms, key)["KeyState"] == "Enabled"
    err(kms, "ImportKeyMaterial", {"KeyId": other, "ImportToken": other_params["ImportToken"],
                                   "EncryptedKeyMaterial": wrap(other_params, "RSAES_OAEP_SHA_256", material)},
        "InvalidKeyMaterial", 400)
    import_(kms, other, other_params, wrap(other_params, "RSAES_OAEP_SHA_256", material[:16]))
    round_trip(kms, other)


def test_get_parameters_for_import_rules(kms):
    key = external_key(kms)
    sym = create_key(kms, "Aliyun_AES_256")["KeyId"]
    asym, _ = asym_key(kms, "RSA_2048")
    good = {"KeyId": key, "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}
    for spec, algorithm, name in (("RSA_2048", "SM2PKE", "WrappingAlgorithm"),
                                  ("EC_SM2", "RSAES_OAEP_SHA_256", "WrappingAlgorithm"),
                                  ("EC_SM2", "RSAES_PKCS1_V1_5", "WrappingAlgorithm"),
                                  ("RSA_2048", "RSAES_OAEP_SHA_512", "WrappingAlgorithm"),
                                  ("RSA_3072", "RSAES_OAEP_SHA_256", "WrappingKeySpec"),
                                  ("EC_P256", "SM2PKE", "WrappingKeySpec")):
        err(kms, "GetParametersForImport", {**good, "WrappingKeySpec": spec, "WrappingAlgorithm": algorithm},
            "InvalidParameter", 400, name)
    for name in good:
        err(kms, "GetParametersForImport", {k: v for k, v in good.items() if k != name}, "MissingParameter", 400, name)
    assert token_rows(kms.store, key) == []
    for other in (sym, asym):
        err(kms, "GetParametersForImport", {**good, "KeyId": other}, "Unsupported.Origin", 400)
        err(kms, "ImportKeyMaterial", {"KeyId": other, "ImportToken": "t", "EncryptedKeyMaterial": b64(b"m")},
            "Unsupported.Origin", 400)
        err(kms, "DeleteKeyMaterial", {"KeyId": other}, "Unsupported.Origin", 400)
    err(kms, "GetParametersForImport", {**good, "KeyId": str(uuid.uuid4())}, "Forbidden.KeyNotFound", 404)
    # Every call makes a new pair, bound to the key, valid 24 hours; allowed in every state.
    first = params_for(kms, key)
    rows = token_rows(kms.store, key)
    assert [r.sk for r in rows] == [first["ImportToken"]]
    assert abs(rows[0].data["expires"] - (now() + DAY)) <= 5
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "7"})
    later = params_for(kms, key, "EC_SM2", "SM2PKE")
    assert later["ImportToken"] != first["ImportToken"] and len(token_rows(kms.store, key)) == 2
    # ...but a key in PendingDeletion takes no material.
    err(kms, "ImportKeyMaterial", {"KeyId": key, "ImportToken": later["ImportToken"],
                                   "EncryptedKeyMaterial": wrap(later, "SM2PKE", os.urandom(32))},
        "Rejected.StateModifiedFailed", 409)
    assert describe(kms, key)["KeyState"] == "PendingDeletion" and versions(kms, key) == []


def test_expired_tokens(kms):
    key = external_key(kms)
    params = params_for(kms, key)
    material = os.urandom(32)
    encrypted = wrap(params, "RSAES_OAEP_SHA_256", material)
    request = {"KeyId": key, "ImportToken": params["ImportToken"], "EncryptedKeyMaterial": encrypted}
    (row,) = token_rows(kms.store, key)
    kms.store.update("import_tokens", f"{SCOPE}/{key}", row.sk, {**row.data, "expires": now() - 1}, row.rev)
    err(kms, "ImportKeyMaterial", request, "ExpiredImportToken", 400)
    unchanged_pending(kms, key)
    # The sweep deletes tokens that expired by its trigger time, and only those.
    fresh = params_for(kms, key)
    result = kms.fire("ExpireKeyMaterial", now())
    assert result["TokensDeleted"] == 1 and result["Failed"] == []
    assert [r.sk for r in token_rows(kms.store, key)] == [fresh["ImportToken"]]
    err(kms, "ImportKeyMaterial", request, "InvalidImportToken", 400)
    # A trigger time past the 24 hours removes the fresh one too; firing again finds nothing.
    assert kms.fire("ExpireKeyMaterial", now() + DAY + 60)["TokensDeleted"] == 1
    assert kms.fire("ExpireKeyMaterial", now() + DAY + 60)["TokensDeleted"] == 0
    err(kms, "ImportKeyMaterial", {**request, "ImportToken": fresh["ImportToken"],
                                   "EncryptedKeyMaterial": wrap(fresh, "RSAES_OAEP_SHA_256", material)},
        "InvalidImportToken", 400)
    unchanged_pending(kms, key)


def test_material_expiry_by_the_timer_and_reimport(kms):
    t0 = now()
    key, params, material = imported(kms, expire=t0 + 3600)
    keep, _, _ = imported(kms)  # never expires
    assert describe(kms, key)["MaterialExpireTime"] == time.strftime(ISO, time.gmtime(t0 + 3600))
    vid = describe(kms, key)["PrimaryKeyVersion"]
    blob, kept_blob = round_trip(kms, key), round_trip(kms, keep)
    assert kms.fire("ExpireKeyMaterial", t0 + 60)["Expired"] == []
    decrypts(kms, blob)
    result = kms.fire("ExpireKeyMaterial", t0 + 7200)
    assert (result["Expired"], result["TokensDeleted"], result["Failed"]) == ([key], 0, [])
    md = describe(kms, key)
    assert (md["KeyState"], md["MaterialExpireTime"]) == ("PendingImport", "") and "PrimaryKeyVersion" not in md
    assert versions(kms, key) == []
    err(kms, "Decrypt", {"CiphertextBlob": blob}, "Rejected.PendingImport", 409)
    err(kms, "Encrypt", {"KeyId": key, "Plaintext": b64(b"x")}, "Rejected.PendingImport", 409)
    err(kms, "GenerateDataKey", {"KeyId": key}, "Rejected.PendingImport", 409)
    decrypts(kms, kept_blob)
    assert kms.fire("ExpireKeyMaterial", t0 + 7300)["Expired"] == []  # idempotent
    # Only the same material brings the key back; the old ciphertext decrypts again.
    err(kms, "ImportKeyMaterial", {"KeyId": key, "ImportToken": params["ImportToken"],
                                   "EncryptedKeyMaterial": wrap(params, "RSAES_OAEP_SHA_256", os.urandom(32))},
        "InvalidKeyMaterial", 400)
    assert describe(kms, key)["KeyState"] == "PendingImport"
    import_(kms, key, params, wrap(params, "RSAES_OAEP_SHA_256", material))
    md = describe(kms, key)
    assert (md["KeyState"], md["PrimaryKeyVersion"], md["MaterialExpireTime"]) == ("Enabled", vid, "")
    decrypts(kms, blob)


def test_expired_material_is_pending_import_before_the_sweep(kms):
    key, params, material = imported(kms, expire=now() + 3600)
    blob = round_trip(kms, key)
    edit_key(kms.store, key, material_expire_time=now() - 1)  # expired a second ago; no sweep yet
    assert describe(kms, key)["KeyState"] == "PendingImport"
    assert key_row(kms.store, key)["state"] == "Enabled"
    err(kms, "Decrypt", {"CiphertextBlob": blob}, "Rejected.PendingImport", 409)
    err(kms, "CreateKeyVersion", {"KeyId": key}, "Rejected.PendingImport", 409)
    import_(kms, key, params, wrap(params, "RSAES_OAEP_SHA_256", material), now() + 7200)
    assert describe(kms, key)["KeyState"] == "Enabled"
    decrypts(kms, blob)


@pytest.mark.parametrize("state", ["Enabled", "Disabled", "PendingImport"])
def test_delete_key_material_returns_the_key_to_pending_import(kms, state):
    key, params, material = imported(kms, expire=now() + DAY)
    blob = round_trip(kms, key)
    if state == "Disabled":
        ok(kms, "DisableKey", {"KeyId": key})
    elif state == "PendingImport":
        ok(kms, "DeleteKeyMaterial", {"KeyId": key})
    assert describe(kms, key)["KeyState"] == state
    ok(kms, "DeleteKeyMaterial", {"KeyId": key})
    md = describe(kms, key)
    assert (md["KeyState"], md["MaterialExpireTime"]) == ("PendingImport", "") and "PrimaryKeyVersion" not in md
    assert versions(kms, key) == []
    err(kms, "Decrypt", {"CiphertextBlob": blob}, "Rejected.PendingImport", 409)
    err(kms, "EnableKey", {"KeyId": key}, "Rejected.StateModifiedFailed", 409)
    err(kms, "ImportKeyMaterial", {"KeyId": key, "ImportToken": params["ImportToken"],
                                   "EncryptedKeyMaterial": wrap(params, "RSAES_OAEP_SHA_256", os.urandom(32))},
        "InvalidKeyMaterial", 400)
    import_(kms, key, params, wrap(params, "RSAES_OAEP_SHA_256", material))
    assert describe(kms, key)["KeyState"] == "Enabled"
    decrypts(kms, blob)
    err(kms, "DeleteKeyMaterial", {}, "MissingParameter", 400, "KeyId")


def test_delete_key_material_leaves_pending_deletion_alone(kms):
    key, params, material = imported(kms)
    blob = round_trip(kms, key)
    ok(kms, "ScheduleKeyDeletion", {"KeyId": key, "PendingWindowInDays": "7"})
    before = describe(kms, key)
    ok(kms, "DeleteKeyMaterial", {"KeyId": key})
    after = describe(kms, key)
    assert (after["KeyState"], after["DeleteDate"]) == ("PendingDeletion", before["DeleteDate"])
    assert versions(kms, key) == []
    err(kms, "ImportKeyMaterial", {"KeyId": key, "ImportToken": params["ImportToken"],
                                   "EncryptedKeyMaterial": wrap(params, "RSAES_OAEP_SHA_256", material)},
        "Rejected.StateModifiedFailed", 409)
    # Cancelling the deletion of a key without material leaves it waiting for its material.
    ok(kms, "CancelKeyDeletion", {"KeyId": key})
    assert describe(kms, key)["KeyState"] == "PendingImport"
    import_(kms, key, params, wrap(params, "RSAES_OAEP_SHA_256", material))
    decrypts(kms, blob)


def test_rotation_is_refused_for_imported_keys(kms):
    err(kms, "CreateKey", {"Origin": "EXTERNAL", "EnableAutomaticRotation": "true", "RotationInterval": "30d"},
        "UnsupportedOperation", 400)
    err(kms, "CreateKey", {"Origin": "EXTERNAL", "KeySpec": "EC_SM2"}, "InvalidParameter", 400, "Origin")
    err(kms, "CreateKey", {"Origin": "external"}, "InvalidParameter", 400, "Origin")
    assert ok(kms, "ListKeys", {})["TotalCount"] == 0
    pending = external_key(kms)
    err(kms, "CreateKeyVersion", {"KeyId": pending}, "Rejected.PendingImport", 409)
    key, _, _ = imported(kms)
    edit_key(kms.store, key, last_rotation_date=now() - 400 * DAY)
    err(kms, "CreateKeyVersion", {"KeyId": key}, "Rejected.UnsupportedOperation", 400)
    err(kms, "UpdateRotationPolicy", {"KeyId": key, "EnableAutomaticRotation": "true", "RotationInterval": "30d"},
        "Rejected.UnsupportedOperation", 400)
    assert len(versions(kms, key)) == 1 and describe(kms, key)["AutomaticRotation"] == "Disabled"
