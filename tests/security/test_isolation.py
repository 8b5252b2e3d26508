"""Two accounts on one runner. Account B (an access key made with `alikms.runner.admin access-key create
--account`) calls EVERY registered action with the ids, ARNs, alias names, secret names, versions,
tokens and ciphertexts of account A's resources, and gets exactly what an unknown resource gets (same
HTTP status, Code and Message, same body fields), nothing of A's in any response, and nothing of A's
changes (A's rows are compared, revision included, before and after)."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import os
import sqlite3
import uuid
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from alikms.shared import registry
from alikms.shared.store.base import TABLES
from tests import support
from tests.security.helpers import REGION, create_access_key
from tests.support import b64

B_ACCOUNT, C_ACCOUNT = "2222222222222222", "3333333333333333"
BAD_BLOB = 'The specified parameter "CiphertextBlob" is not valid.'


def arn(account: str, kind: str, name: str) -> str:
    return f"acs:kms:{REGION}:{account}:{kind}/{name}"


@dataclass
class World:
    srv: support.Server
    b_ak: str
    b_secret: str
    a: dict = field(default_factory=dict)
    b: dict = field(default_factory=dict)
    u: dict = field(default_factory=dict)

    def as_a(self, action: str, params: dict | None = None) -> dict:
        status, body = support.call(self.srv, action, {k: str(v) for k, v in (params or {}).items()})
        assert status == 200, (action, body)
        return body

    def as_b(self, action: str, params: dict | None = None) -> tuple[int, dict]:
        return support.call(self.srv, action, {k: str(v) for k, v in (params or {}).items()},
                            ak=self.b_ak, secret=self.b_secret)

    def ok_b(self, action: str, params: dict | None = None) -> dict:
        status, body = self.as_b(action, params)
        assert status == 200, (action, body)
        return body

    def a_rows(self) -> dict:
        """Every stored row of account A (pk = the account or under it), with its revision."""
        conn = sqlite3.connect(f"file:{self.srv.data_dir / 'kms.sqlite3'}?mode=ro", uri=True)
        try:
            account = self.srv.account_id
            return {(table, pk, sk): (rev, data) for table in TABLES.values() if table != "kms_nonces"
                    for pk, sk, rev, data in conn.execute(
                        f"SELECT pk, sk, rev, data FROM {table} WHERE pk = ? OR pk LIKE ?", (account, account + "/%"))}
        finally:
            conn.close()

    def a_identifiers(self) -> list[str]:
        a = self.a
        return [self.srv.account_id, a["key"], a["enc"], a["sign"], a["ext"], a["alias"][len("alias/"):], a["secret"],
                a["tag"], a["key_ver"], a["enc_ver"], a["sign_ver"], a["token"], a["secret_value"]]


def _first_version(world: World, key_id: str) -> str:
    return world.as_a("ListKeyVersions", {"KeyId": key_id})["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    srv = support.start_server(tmp_path_factory.mktemp("iso") / "data")
    try:
        b_ak, b_secret = create_access_key(srv, account=B_ACCOUNT)
        w = World(srv, b_ak, b_secret)
        tag = uuid.uuid4().hex[:8]
        a = w.a
        # --- account A (the bootstrap account) ---
        md = w.as_a("CreateKey", {"Description": "a"})["KeyMetadata"]
        a["key"], a["key_ver"] = md["KeyId"], md["PrimaryKeyVersion"]
        a["alias"], a["secret"], a["tag"], a["secret_value"] = f"alias/iso-a-{tag}", f"iso-a-{tag}", f"tag-a-{tag}", \
            f"value-a-{tag}"
        w.as_a("CreateAlias", {"AliasName": a["alias"], "KeyId": a["key"]})
        w.as_a("TagResource", {"KeyId": a["key"], "Tags": json.dumps([{"TagKey": "owner", "TagValue": a["tag"]}])})
        a["enc"] = w.as_a("CreateKey", {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT/DECRYPT"})["KeyMetadata"]["KeyId"]
        a["sign"] = w.as_a("CreateKey", {"KeySpec": "EC_P256", "KeyUsage": "SIGN/VERIFY"})["KeyMetadata"]["KeyId"]
        a["enc_ver"], a["sign_ver"] = _first_version(w, a["enc"]), _first_version(w, a["sign"])
        a["ext"] = w.as_a("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
        params = w.as_a("GetParametersForImport", {"KeyId": a["ext"], "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                                                   "WrappingKeySpec": "RSA_2048"})
        public = serialization.load_der_public_key(base64.b64decode(params["PublicKey"]))
        a["token"] = params["ImportToken"]
        a["material"] = b64(public.encrypt(os.urandom(32), padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(),
                                                                        None)))
        a["blob"] = w.as_a("Encrypt", {"KeyId": a["key"], "Plaintext": b64(b"plain of a")})["CiphertextBlob"]
        a["dk_blob"] = w.as_a("GenerateDataKey", {"KeyId": a["key"]})["CiphertextBlob"]
        a["asym_ct"] = w.as_a("AsymmetricEncrypt", {"KeyId": a["enc"], "KeyVersionId": a["enc_ver"],
                                                    "Algorithm": "RSAES_OAEP_SHA_256",
                                                    "Plaintext": b64(b"x")})["CiphertextBlob"]
        a["digest"] = b64(hashlib.sha256(b"message").digest())
        a["sig"] = w.as_a("AsymmetricSign", {"KeyId": a["sign"], "KeyVersionId": a["sign_ver"],
                                             "Algorithm": "ECDSA_SHA_256", "Digest": a["digest"]})["Value"]
        w.as_a("CreateSecret", {"SecretName": a["secret"], "VersionId": "v1", "SecretData": a["secret_value"],
                                "Tags": json.dumps([{"TagKey": "owner", "TagValue": a["tag"]}])})
        # --- account B ---
        w.ok_b("OpenKmsService")
        b = w.b
        b["key"] = w.ok_b("CreateKey", {"Description": "b"})["KeyMetadata"]["KeyId"]
        b["alias"], b["secret"] = f"alias/iso-b-{tag}", f"iso-b-{tag}"
        w.ok_b("CreateAlias", {"AliasName": b["alias"], "KeyId": b["key"]})
        b["ext"] = w.ok_b("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
        b["blob"] = w.ok_b("Encrypt", {"KeyId": b["key"], "Plaintext": b64(b"plain of b")})["CiphertextBlob"]
        w.ok_b("CreateSecret", {"SecretName": b["secret"], "VersionId": "v1", "SecretData": "value-b"})
        spki = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        b["public"] = b64(spki)
        # --- names that exist nowhere ---
        raw = base64.b64decode(a["blob"])
        forged = raw[:2] + str(uuid.uuid4()).encode() + raw[2 + raw[1]:]  # A's blob naming an unknown key
        w.u.update(key=str(uuid.uuid4()), ver=str(uuid.uuid4()), alias=f"alias/iso-none-{tag}",
                   secret=f"iso-none-{tag}", token=b64(os.urandom(32)), garbage=b64(os.urandom(90)),
                   forged=b64(forged))
        yield w
    finally:
        srv.stop()


# --- the cases: (label, params naming A's resource, the same params naming an unknown one) -------------

def key_forms(w: World, which: str = "key", param: str = "KeyId", alias: bool = True):
    """A's key `which` as id, A-ARN, B-ARN (B's own namespace) and, for A's aliased key, alias forms."""
    real, unknown, a_acct = w.a[which], w.u["key"], w.srv.account_id
    yield "id", {param: real}, {param: unknown}
    yield "arn", {param: arn(a_acct, "key", real)}, {param: arn(a_acct, "key", unknown)}
    yield "own-arn", {param: arn(B_ACCOUNT, "key", real)}, {param: arn(B_ACCOUNT, "key", unknown)}
    if which == "key" and alias:
        yield "alias", {param: w.a["alias"]}, {param: w.u["alias"]}
        yield "alias-arn", {param: arn(a_acct, "alias", w.a["alias"][6:])}, \
            {param: arn(a_acct, "alias", w.u["alias"][6:])}


def secret_forms(w: World):
    real, unknown, a_acct = w.a["secret"], w.u["secret"], w.srv.account_id
    yield "name", {"SecretName": real}, {"SecretName": unknown}
    yield "arn", {"SecretName": arn(a_acct, "secret", real)}, {"SecretName": arn(a_acct, "secret", unknown)}
    yield "own-arn", {"SecretName": arn(B_ACCOUNT, "secret", real)}, {"SecretName": arn(B_ACCOUNT, "secret", unknown)}


def with_extra(forms, extra: dict | None = None, **more):
    for label, pa, pu in forms:
        yield label, {**pa, **(extra or {}), **more}, {**pu, **(extra or {}), **more}


def fresh(prefix: str) -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def EXPORT(w: World) -> dict:  # a function of the world, named like the table entries that use it
    return {"PublicKeyBlob": w.b["public"], "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}
TAGS = json.dumps([{"TagKey": "owner", "TagValue": "b-was-here"}])


def _blob_cases(w: World, extra: dict):
    # Another account's blob answers as one naming no key at all (issue 11 §6).
    yield "blob-vs-forged", {"CiphertextBlob": w.a["blob"], **extra}, {"CiphertextBlob": w.u["forged"], **extra}
    yield "data-key-blob", {"CiphertextBlob": w.a["dk_blob"], **extra}, {"CiphertextBlob": w.u["forged"], **extra}


def _reencrypt(w: World):
    yield from _blob_cases(w, {"DestinationKeyId": w.b["key"]})
    yield from with_extra((("dest-" + label, pa, pu) for label, pa, pu in key_forms(w, param="DestinationKeyId")),
                          CiphertextBlob=w.b["blob"])
    asym = {"SourceKeyVersionId": w.a["enc_ver"], "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256",
            "CiphertextBlob": w.a["asym_ct"], "DestinationKeyId": w.b["key"]}
    yield "asym-source", {**asym, "SourceKeyId": w.a["enc"]}, \
        {**asym, "SourceKeyId": w.u["key"], "SourceKeyVersionId": w.u["ver"]}


def _alias_name_cases(w: World):
    yield "alias", {"AliasName": w.a["alias"]}, {"AliasName": w.u["alias"]}


def _import(w: World):
    extra = {"EncryptedKeyMaterial": w.a["material"]}
    for label, pa, pu in key_forms(w, "ext"):
        yield label, {**pa, **extra, "ImportToken": w.a["token"]}, {**pu, **extra, "ImportToken": w.u["token"]}
    yield "own-key-foreign-token", {"KeyId": w.b["ext"], "ImportToken": w.a["token"], **extra}, \
        {"KeyId": w.b["ext"], "ImportToken": w.u["token"], **extra}


def _describe_version(w: World):
    for label, pa, pu in key_forms(w):
        yield label, {**pa, "KeyVersionId": w.a["key_ver"]}, {**pu, "KeyVersionId": w.u["ver"]}
    yield "own-key-foreign-version", {"KeyId": w.b["key"], "KeyVersionId": w.a["key_ver"]}, \
        {"KeyId": w.b["key"], "KeyVersionId": w.u["ver"]}


def _asym(which: str, **extra):
    def cases(w: World):
        for label, pa, pu in key_forms(w, which):
            yield (label, {**pa, "KeyVersionId": w.a[f"{which}_ver"], **extra},
                   {**pu, "KeyVersionId": w.u["ver"], **extra})
            yield label + "-own-version", {**pa, "KeyVersionId": w.a[f"{which}_ver"], **extra}, \
                {**pu, "KeyVersionId": w.a[f"{which}_ver"], **extra}
    return cases


def _asym_with(which: str, build):
    def cases(w: World):
        yield from _asym(which, **build(w))(w)
    return cases


RESOURCE_CASES = {
    "DescribeKey": lambda w: key_forms(w),
    "EnableKey": lambda w: key_forms(w),
    "DisableKey": lambda w: key_forms(w),
    "ScheduleKeyDeletion": lambda w: with_extra(key_forms(w), PendingWindowInDays=7),
    "CancelKeyDeletion": lambda w: key_forms(w),
    "UpdateKeyDescription": lambda w: with_extra(key_forms(w), Description="written by b"),
    "GetParametersForImport": lambda w: with_extra(key_forms(w, "ext"), WrappingAlgorithm="RSAES_OAEP_SHA_256",
                                                   WrappingKeySpec="RSA_2048"),
    "ImportKeyMaterial": _import,
    "DeleteKeyMaterial": lambda w: key_forms(w, "ext"),
    "DescribeKeyVersion": _describe_version,
    "ListKeyVersions": lambda w: key_forms(w),
    "UpdateRotationPolicy": lambda w: with_extra(key_forms(w), EnableAutomaticRotation="true",
                                                 RotationInterval="604800s"),
    "CreateKeyVersion": lambda w: key_forms(w),
    "Encrypt": lambda w: with_extra(key_forms(w), Plaintext=b64(b"b's data")),
    "Decrypt": lambda w: _blob_cases(w, {}),
    "GenerateDataKey": lambda w: key_forms(w),
    "GenerateDataKeyWithoutPlaintext": lambda w: key_forms(w),
    "ReEncrypt": _reencrypt,
    "AsymmetricSign": _asym_with("sign", lambda w: {"Algorithm": "ECDSA_SHA_256", "Digest": w.a["digest"]}),
    "AsymmetricVerify": _asym_with("sign", lambda w: {"Algorithm": "ECDSA_SHA_256", "Digest": w.a["digest"],
                                                      "Value": w.a["sig"]}),
    "AsymmetricEncrypt": _asym("enc", Algorithm="RSAES_OAEP_SHA_256", Plaintext=b64(b"x")),
    "AsymmetricDecrypt": _asym_with("enc", lambda w: {"Algorithm": "RSAES_OAEP_SHA_256",
                                                      "CiphertextBlob": w.a["asym_ct"]}),
    "GetPublicKey": _asym("enc"),
    "ExportDataKey": lambda w: _blob_cases(w, EXPORT(w)),
    "GenerateAndExportDataKey": lambda w: with_extra(key_forms(w), EXPORT(w)),
    "CreateAlias": lambda w: ((label, {**pa, "AliasName": fresh("alias/iso-new-")},
                               {**pu, "AliasName": fresh("alias/iso-new-")})
                              for label, pa, pu in key_forms(w)),
    "UpdateAlias": lambda w: [*with_extra(_alias_name_cases(w), KeyId=w.b["key"]),
                              *with_extra(key_forms(w), AliasName=w.b["alias"])],
    "DeleteAlias": _alias_name_cases,
    "ListAliasesByKeyId": lambda w: key_forms(w),
    "CreateSecret": lambda w: ((label, {**pa, "SecretName": fresh("iso-new-"), "VersionId": "v1", "SecretData": "x"},
                                {**pu, "SecretName": fresh("iso-new-"), "VersionId": "v1", "SecretData": "x"})
                               for label, pa, pu in key_forms(w, param="EncryptionKeyId")),
    "DeleteSecret": lambda w: with_extra(secret_forms(w), RecoveryWindowInDays=7),
    "DescribeSecret": lambda w: with_extra(secret_forms(w), FetchTags="true"),
    "GetSecretValue": lambda w: secret_forms(w),
    "PutSecretValue": lambda w: with_extra(secret_forms(w), VersionId="v9", SecretData="from b"),
    "UpdateSecret": lambda w: with_extra(secret_forms(w), Description="from b"),
    "UpdateSecretVersionStage": lambda w: with_extra(secret_forms(w), VersionStage="b-stage", MoveToVersion="v1"),
    "RestoreSecret": lambda w: secret_forms(w),
    "ListSecretVersionIds": lambda w: secret_forms(w),
    "TagResource": lambda w: [*with_extra(key_forms(w), Tags=TAGS), *with_extra(secret_forms(w), Tags=TAGS)],
    "UntagResource": lambda w: [*with_extra(key_forms(w), TagKeys='["owner"]'),
                                *with_extra(secret_forms(w), TagKeys='["owner"]')],
    "ListResourceTags": lambda w: key_forms(w),
}

# Actions that name no resource: B calls them (A's names in filters where the action has filters) and
# nothing of A's may come back. (params, expected status, expected Code or None)
CALLER_CASES = {
    "CreateKey": lambda w: [({"Description": "another b key"}, 200, None)],
    "ListKeys": lambda w: [({"PageSize": 101}, 200, None),
                           ({"Filters": json.dumps([{"Key": "keyId", "Values": [w.a["key"], w.a["enc"]]}])}, 200, None),
                           ({"Filters": json.dumps([{"Key": "AliasName", "Values": [w.a["alias"]]}])}, 200, None),
                           ({"Filters": json.dumps([{"Key": "TagValue", "Values": [w.a["tag"]]}])}, 200, None)],
    "ListAliases": lambda w: [({"PageSize": 100}, 200, None)],
    "ListSecrets": lambda w: [({"PageSize": 100, "FetchTags": "true"}, 200, None),
                              ({"Filters": json.dumps([{"Key": "SecretName", "Values": [w.a["secret"]]}])}, 200, None),
                              ({"Filters": json.dumps([{"Key": "TagValue", "Values": [w.a["tag"]]}])}, 200, None)],
    "GetRandomPassword": lambda w: [({}, 200, None)],
    "DescribeRegions": lambda w: [({}, 200, None)],
    "OpenKmsService": lambda w: [({}, 400, "Forbidden.Opened")],  # B opened its own service in the fixture
    "DescribeAccountKmsStatus": lambda w: [({}, 200, None)],
}


def assert_same(action: str, label: str, got_a: tuple[int, dict], got_u: tuple[int, dict]) -> None:
    (sa, ba), (su, bu) = got_a, got_u
    where = (action, label, ba, bu)
    assert 400 <= sa < 500, where  # B never succeeds on A's resource, and nothing breaks
    assert sa == su and ba["HttpStatus"] == bu["HttpStatus"] == sa, where
    assert (ba["Code"], ba["Message"]) == (bu["Code"], bu["Message"]), where
    assert set(ba) == set(bu), where


def assert_nothing_of_a(w: World, action: str, body: dict) -> None:
    text = json.dumps(body)
    leaked = [v for v in w.a_identifiers() if v in text]
    assert not leaked, (action, leaked, body)


def _dry_run_capable(action: str) -> bool:
    spec = registry.action(action)
    return "dry_run" in importlib.import_module(spec.module).handler.request_model.model_fields


@pytest.mark.parametrize("action", [a.name for a in registry.ACTIONS])
def test_b_cannot_see_or_touch_a_through_any_action(world, action):
    w = world
    if action not in RESOURCE_CASES and action not in CALLER_CASES:
        pytest.fail(f"{action} is registered but has no isolation cases here: add them")
    before = w.a_rows()
    if action in CALLER_CASES:
        for params, status, code in CALLER_CASES[action](w):
            got_status, body = w.as_b(action, params)
            assert (got_status, body.get("Code")) == (status, code), (action, params, body)
            assert_nothing_of_a(w, action, body)
            if action.startswith("List") and "Filters" in params:
                assert body["TotalCount"] == 0, (action, params, body)
    else:
        cases = list(RESOURCE_CASES[action](w))
        assert cases
        if _dry_run_capable(action):
            label, pa, pu = cases[0]
            cases.append((label + "-dry-run", {**pa, "DryRun": "true"}, {**pu, "DryRun": "true"}))
        for label, params_a, params_u in cases:
            got_a, got_u = w.as_b(action, params_a), w.as_b(action, params_u)
            assert_same(action, label, got_a, got_u)
            assert_nothing_of_a(w, action, got_a[1])
            if "CiphertextBlob" in params_a and label.startswith(("blob", "data-key")):
                assert got_a[1]["Code"] == "Forbidden.KeyNotFound", got_a  # as for a key that does not exist
    assert w.a_rows() == before, f"{action} called by B changed a row of A"


def test_lists_of_each_account_show_only_its_own(world):
    w = world
    assert {"kms_keys", "kms_key_versions", "kms_aliases", "kms_secrets", "kms_secret_versions",
            "kms_import_tokens"} <= {table for table, _, _ in w.a_rows()}  # the snapshot sees A's rows
    keys_b = {k["KeyId"] for k in w.ok_b("ListKeys", {"PageSize": 101})["Keys"]["Key"]}
    keys_a = {k["KeyId"] for k in w.as_a("ListKeys", {"PageSize": 101})["Keys"]["Key"]}
    assert {w.b["key"], w.b["ext"]} <= keys_b and not keys_b & keys_a
    assert {w.a["key"], w.a["enc"], w.a["sign"], w.a["ext"]} <= keys_a
    aliases_b = w.ok_b("ListAliases", {"PageSize": 100})["Aliases"]["Alias"]
    assert w.b["alias"] in {x["AliasName"] for x in aliases_b}
    assert all(x["AliasArn"].startswith(f"acs:kms:{REGION}:{B_ACCOUNT}:") for x in aliases_b)
    assert w.a["alias"] not in {x["AliasName"] for x in aliases_b}
    secrets_b = {s["SecretName"] for s in w.ok_b("ListSecrets", {"PageSize": 100})["SecretList"]["Secret"]}
    secrets_a = {s["SecretName"] for s in w.as_a("ListSecrets", {"PageSize": 100})["SecretList"]["Secret"]}
    assert w.b["secret"] in secrets_b and w.a["secret"] not in secrets_b and w.b["secret"] not in secrets_a


def test_blob_of_a_decrypted_by_b_is_the_unknown_key_error(world):
    """A's blob, to B, names a key B cannot see: the documented 404, exactly as a blob naming no key.
    Garbage keeps its one detail-free InvalidParameter."""
    w = world
    answers = [w.as_b("Decrypt", {"CiphertextBlob": blob}) for blob in (w.a["blob"], w.u["forged"])]
    assert {(s, b["Code"], b["Message"]) for s, b in answers} == {
        (404, "Forbidden.KeyNotFound", "The specified Key is not found.")}
    status, body = w.as_b("Decrypt", {"CiphertextBlob": w.u["garbage"]})
    assert (status, body["Code"], body["Message"]) == (400, "InvalidParameter", BAD_BLOB)
    assert base64.b64decode(w.as_a("Decrypt", {"CiphertextBlob": w.a["blob"]})["Plaintext"]) == b"plain of a"


def test_same_names_in_two_accounts_are_independent(world):
    w = world
    try:
        w.ok_b("CreateAlias", {"AliasName": w.a["alias"], "KeyId": w.b["key"]})
        w.ok_b("CreateSecret", {"SecretName": w.a["secret"], "VersionId": "v1", "SecretData": "b's own value"})
        assert w.ok_b("DescribeKey", {"KeyId": w.a["alias"]})["KeyMetadata"]["KeyId"] == w.b["key"]
        assert w.as_a("DescribeKey", {"KeyId": w.a["alias"]})["KeyMetadata"]["KeyId"] == w.a["key"]
        assert w.ok_b("GetSecretValue", {"SecretName": w.a["secret"]})["SecretData"] == "b's own value"
        assert w.as_a("GetSecretValue", {"SecretName": w.a["secret"]})["SecretData"] == w.a["secret_value"]
    finally:
        w.as_b("DeleteAlias", {"AliasName": w.a["alias"]})
        w.as_b("DeleteSecret", {"SecretName": w.a["secret"], "ForceDeleteWithoutRecovery": "true"})
    assert w.as_a("DescribeKey", {"KeyId": w.a["alias"]})["KeyMetadata"]["KeyId"] == w.a["key"]
    assert w.as_a("GetSecretValue", {"SecretName": w.a["secret"]})["SecretData"] == w.a["secret_value"]
    assert w.as_b("DescribeKey", {"KeyId": w.a["alias"]})[1]["Code"] == "Forbidden.AliasNotFound"


def test_account_status_is_the_callers(world):
    w = world
    ak, secret = create_access_key(w.srv, account=C_ACCOUNT)

    def as_c(action, params=None):
        return support.call(w.srv, action, params or {}, ak=ak, secret=secret)

    assert as_c("DescribeAccountKmsStatus")[1]["AccountStatus"] == "NotEnabled"
    assert w.ok_b("DescribeAccountKmsStatus")["AccountStatus"] == "Enabled"
    assert w.as_a("DescribeAccountKmsStatus")["AccountStatus"] == "Enabled"
    status, body = as_c("ListKeys")
    assert (status, body["Code"]) == (403, "Forbidden.KmsServiceNotEnabled"), body
    assert as_c("OpenKmsService")[0] == 200
    assert as_c("DescribeAccountKmsStatus")[1]["AccountStatus"] == "Enabled"
    assert as_c("ListKeys")[1]["TotalCount"] == 0
    assert as_c("OpenKmsService")[1]["Code"] == "Forbidden.Opened"
    status, body = support.call(w.srv, "OpenKmsService")
    assert (status, body["Code"]) == (400, "Forbidden.Opened")
