"""No input produces a 500 (issue 16 §1): every registered action's every parameter, given hostile
values, gets a documented 4xx (or, for a value that happens to be legal, its normal answer); a
refused call writes nothing; nothing is logged at error level.

Each action starts from a request that would succeed (its own fresh resources, so one action's
legal-but-odd values cannot spoil another's), then one parameter at a time takes a hostile value:
first a fixed list of the values known to have broken something (deep nesting, lone surrogates in
JSON, integers past 64 bits, lists of lists, over-long text, ARNs of 60,000 ':'), then values
`hypothesis` generates (seeded and derandomized, so every run tries the same ones). Both stores.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alikms.shared import registry
from tests import support

WRITES = ("put_new", "update", "delete")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "[" else '{"a":' * depth + '"x"' + "}" * depth


# Over every documented maximum (the largest, Filters, is 65,536 characters), and each JSON parameter's.
FIXED = [
    "", " ", "\x00", "\u202e", "a" * 70_000, "\u00e9" * 500, "\U0001f600" * 300, ":" * 6000,
    "acs:kms:cn-hangzhou:1234567890123456:key/" + ":" * 600, "alias/" + "a" * 300, "*", "%ZZ",
    nested(1000, "["), nested(1000, "{"), "[" * 5000, nested(20, "["), nested(20, "{"),
    '{"a":"\\ud800"}', '["\\ud800"]', '"\\udfff"', '[{"TagKey":"\\ud800","TagValue":"v"}]',
    '{"VersionStage":["\\ud800"]}', '[{"Key":"KeyState","Values":["\\udc00"]}]', '{"Version":"1","a":"\\ud800"}',
    "[[]]", '[["ACSCurrent"]]', '[{"a":"b"}]', "[{}]", "{}", "null", "1.5",
    '{"a":18446744073709551616}', '{"a":-9223372036854775809}',
    str(2**64), str(2**70), str(-(2**63) - 1), "9" * 5000, "1e400", "-1", "NaN", " 7 ", "\u0663",
    "99999999999999999999d", "tRuE ", "A" * 16385, "====",
    json.dumps([{"TagKey": f"k{i}", "TagValue": "v"} for i in range(2000)]),
    json.dumps([{"Key": "KeyState", "Values": ["Enabled"] * 11}] * 11), '[{"Key":["KeyState"]}]', '[{"TagKey":["k"]}]',
    '{"VersionStage":[["ACSCurrent"]]}',
    json.dumps(["s"] * 5000),
]

_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False)
                     | st.text(max_size=8),
                     lambda inner: (st.lists(inner, max_size=4)
                                    | st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                     max_leaves=12)
HOSTILE = st.one_of(
    st.text(max_size=40),
    _json.map(json.dumps),
    st.builds(nested, st.integers(1, 3000), st.sampled_from("[{")),
    st.integers(-(2**80), 2**80).map(str),
    st.binary(max_size=80).map(b64),
    st.builds(lambda c, n: c * n,
              st.sampled_from(["a", "\u00e9", "\U0001f600", ":", "[", "{", "\\", "%", "\u202e", "*"]),
              st.integers(0, 70_000)),
)


class World:
    """Resources for each action's valid request, made with the service's own calls."""

    def __init__(self, kms) -> None:
        self.kms = kms
        self.n = 0
        self.rsa = self.key(KeySpec="RSA_2048", KeyUsage="ENCRYPT/DECRYPT")
        self.rsa_ver = self.first_version(self.rsa)
        self.ec = self.key(KeySpec="EC_P256", KeyUsage="SIGN/VERIFY")
        self.ec_ver = self.first_version(self.ec)
        self.rsa_ct = self.ok("AsymmetricEncrypt", KeyId=self.rsa, KeyVersionId=self.rsa_ver,
                              Algorithm="RSAES_OAEP_SHA_256", Plaintext=b64(b"x"))["CiphertextBlob"]
        self.digest = b64(bytes(32))
        self.sig = self.ok("AsymmetricSign", KeyId=self.ec, KeyVersionId=self.ec_ver, Algorithm="ECDSA_SHA_256",
                           Digest=self.digest)["Value"]
        self.public = b64(rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    def ok(self, action: str, **params) -> dict:
        status, body = self.kms.call(action, params)
        assert status == 200, (action, params, body)
        return body

    def key(self, **params) -> str:
        return self.ok("CreateKey", **params)["KeyMetadata"]["KeyId"]

    def first_version(self, key: str) -> str:
        return self.ok("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]

    def fresh(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}-{self.n}"

    def params(self, action: str) -> dict:
        """A request for `action` that succeeds, on resources of its own."""
        key = self.key()
        blob = self.ok("Encrypt", KeyId=key, Plaintext=b64(b"p"))["CiphertextBlob"]
        alias, secret = self.fresh("alias/h"), self.fresh("h")
        self.ok("CreateAlias", AliasName=alias, KeyId=key)
        self.ok("CreateSecret", SecretName=secret, VersionId="v1", SecretData="d",
                Tags='[{"TagKey":"t","TagValue":"v"}]')
        self.ok("TagResource", KeyId=key, Tags='[{"TagKey":"t","TagValue":"v"}]')
        version = self.ok("DescribeKey", KeyId=key)["KeyMetadata"]["PrimaryKeyVersion"]
        ctx = '{"a":"b"}'
        wrap = {"PublicKeyBlob": self.public, "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}
        if action in ("GetParametersForImport", "ImportKeyMaterial", "DeleteKeyMaterial"):
            ext = self.key(Origin="EXTERNAL")
            if action != "ImportKeyMaterial":
                return {"KeyId": ext, **({"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"}
                                         if action == "GetParametersForImport" else {})}
            got = self.ok("GetParametersForImport", KeyId=ext, WrappingAlgorithm="RSAES_OAEP_SHA_256",
                          WrappingKeySpec="RSA_2048")
            public = serialization.load_der_public_key(base64.b64decode(got["PublicKey"]))
            oaep = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)
            material = public.encrypt(os.urandom(32), oaep)
            return {"KeyId": ext, "ImportToken": got["ImportToken"], "EncryptedKeyMaterial": b64(material),
                    "KeyMaterialExpireUnix": str(int(time.time()) + 86400)}
        if action == "DeleteSecret":
            return {"SecretName": secret, "RecoveryWindowInDays": "7"}
        if action == "RestoreSecret":
            self.ok("DeleteSecret", SecretName=secret)
        blob_ctx = self.ok("Encrypt", KeyId=key, Plaintext=b64(b"p"), EncryptionContext=ctx)["CiphertextBlob"] \
            if action == "Decrypt" else None
        other = self.key() if action == "UpdateAlias" else None
        if action == "CancelKeyDeletion":
            self.ok("ScheduleKeyDeletion", KeyId=key, PendingWindowInDays="7")
        asym = {"KeyId": self.rsa, "KeyVersionId": self.rsa_ver, "Algorithm": "RSAES_OAEP_SHA_256"}
        sign = {"KeyId": self.ec, "KeyVersionId": self.ec_ver, "Algorithm": "ECDSA_SHA_256", "Digest": self.digest}
        return {
            "CreateKey": {"Description": "d", "KeySpec": "Aliyun_AES_256", "KeyUsage": "ENCRYPT/DECRYPT",
                          "Origin": "Aliyun_KMS", "ProtectionLevel": "SOFTWARE", "EnableAutomaticRotation": "true",
                          "RotationInterval": "30d", "Tags": '[{"TagKey":"a","TagValue":"b"}]',
                          "Policy": '{"Version":"1","Statement":[]}'},
            "ListKeys": {"PageNumber": "1", "PageSize": "10", "Filters": '[{"Key":"KeyState","Values":["Enabled"]}]'},
            "UpdateKeyDescription": {"KeyId": key, "Description": "d2"},
            "ScheduleKeyDeletion": {"KeyId": key, "PendingWindowInDays": "7"},
            "DescribeKeyVersion": {"KeyId": key, "KeyVersionId": version},
            "ListKeyVersions": {"KeyId": key, "PageNumber": "1", "PageSize": "10"},
            "UpdateRotationPolicy": {"KeyId": key, "EnableAutomaticRotation": "true", "RotationInterval": "30d"},
            "Encrypt": {"KeyId": key, "Plaintext": b64(b"p"), "EncryptionContext": ctx, "DryRun": "false"},
            "Decrypt": {"CiphertextBlob": blob_ctx, "EncryptionContext": ctx},
            "GenerateDataKey": {"KeyId": key, "KeySpec": "AES_256", "NumberOfBytes": "32", "EncryptionContext": ctx},
            "GenerateDataKeyWithoutPlaintext": {"KeyId": key, "KeySpec": "AES_128", "EncryptionContext": ctx},
            "ReEncrypt": {"CiphertextBlob": blob, "DestinationKeyId": alias, "SourceEncryptionContext": "{}",
                          "DestinationEncryptionContext": ctx},
            "AsymmetricSign": sign,
            "AsymmetricVerify": {**sign, "Value": self.sig},
            "AsymmetricEncrypt": {**asym, "Plaintext": b64(b"x")},
            "AsymmetricDecrypt": {**asym, "CiphertextBlob": self.rsa_ct},
            "GetPublicKey": {"KeyId": self.rsa, "KeyVersionId": self.rsa_ver},
            "ExportDataKey": {"CiphertextBlob": blob, **wrap},
            "GenerateAndExportDataKey": {"KeyId": key, "NumberOfBytes": "32", **wrap, "EncryptionContext": ctx},
            "CreateAlias": {"AliasName": self.fresh("alias/new"), "KeyId": key},
            "UpdateAlias": {"AliasName": alias, "KeyId": other},
            "DeleteAlias": {"AliasName": alias},
            "ListAliases": {"PageNumber": "1", "PageSize": "10"},
            "ListAliasesByKeyId": {"KeyId": key, "PageNumber": "1", "PageSize": "10"},
            "CreateSecret": {"SecretName": self.fresh("new"), "VersionId": "v1", "SecretData": "d",
                             "SecretDataType": "text", "EncryptionKeyId": key, "Description": "d",
                             "Tags": '[{"TagKey":"a","TagValue":"b"}]', "Policy": '{"Version":"1"}'},
            "ListSecrets": {"PageNumber": "1", "PageSize": "10", "FetchTags": "true",
                            "Filters": '[{"Key":"SecretName","Values":["h"]}]'},
            "DescribeSecret": {"SecretName": secret, "FetchTags": "true"},
            "GetSecretValue": {"SecretName": secret, "VersionStage": "ACSCurrent", "FetchExtendedConfig": "true"},
            "PutSecretValue": {"SecretName": secret, "VersionId": "v2", "SecretData": "d2",
                               "VersionStages": '["ACSCurrent","Mine"]'},
            "UpdateSecret": {"SecretName": secret, "Description": "d2"},
            "UpdateSecretVersionStage": {"SecretName": secret, "VersionStage": "Mine", "MoveToVersion": "v1"},
            "RestoreSecret": {"SecretName": secret},
            "ListSecretVersionIds": {"SecretName": secret, "IncludeDeprecated": "true", "PageSize": "20"},
            "GetRandomPassword": {"PasswordLength": "16", "ExcludeCharacters": "ab", "RequireEachIncludedType": "true"},
            "TagResource": {"KeyId": key, "Tags": '[{"TagKey":"x","TagValue":"y"}]'},
            "UntagResource": {"SecretName": secret, "TagKeys": '["t"]'},
            "ListResourceTags": {"KeyId": key},
        }.get(action, {"KeyId": key})


def snapshot(store) -> dict:
    from alikms.shared.store.base import TABLES

    return {table: sorted((i.pk, i.sk, i.rev, json.dumps(i.data, sort_keys=True)) for i in store.scan_all(table))
            for table in TABLES if table != "nonces"}


@pytest.fixture
def errors_logged():
    """Every record logged at ERROR or above, by any logger, during the test."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append  # type: ignore[method-assign]
    logging.getLogger().addHandler(handler)
    yield records
    logging.getLogger().removeHandler(handler)


def caller_with_policies(kms):
    """call(action, params) as an access key with RAM policies, so that every hostile value also goes
    through the policy check and the alias resolution it does (the account's own key skips both)."""
    import importlib

    from alikms.shared import identity
    from alikms.shared.config import get_config

    ak, secret = identity.create(kms.store, get_config(), support.TEST_ACCOUNT, [{"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:*", "Resource": ["acs:kms:*:*:key/*:*:*:*:never", "acs:kms:*:*:?ecret/*x?"]},
    ]}], time.time())

    def call(action: str, params: dict) -> tuple[int, dict]:
        query = support.sign_v1_params(action, params, ak, secret)
        event = json.dumps({"path": "/", "httpMethod": "POST", "headers": {"host": "kms.test", "x-acs-action": action},
                            "queryParameters": query, "pathParameters": {}, "body": "", "isBase64Encoded": False})
        result = importlib.import_module(registry.action(action).module).handler(event.encode(), None)
        return result["statusCode"], json.loads(result["body"])

    return call


def test_hostile_values_in_every_parameter(kms, monkeypatch, errors_logged):
    import importlib

    for quota in ("KMS_KEY_QUOTA", "KMS_ALIAS_QUOTA", "KMS_SECRET_QUOTA"):
        monkeypatch.setenv(quota, "100000")  # legal odd values create resources; never stop at a quota
    world = World(kms)
    as_restricted = caller_with_policies(kms)
    writes = [0]

    def counting(write):
        def counted(*args, **kwargs):
            result = write(*args, **kwargs)  # a conditional write that lost (Conflict) changed nothing
            if args[0] != "nonces":
                writes[0] += 1
            return result
        return counted

    for name in WRITES:  # count every write that took effect, outside the nonce table
        monkeypatch.setattr(kms.store, name, counting(getattr(kms.store, name)))

    from alikms.shared.store.sqlite import SqliteStore

    sqlite = isinstance(kms.store, SqliteStore)
    deadline = time.monotonic() + 40  # bounded in time on 2 shared cores, whatever the machine
    tried, refused = 0, 0

    def check(action: str, params: dict, name: str, value: str) -> None:
        nonlocal tried, refused
        before = writes[0]
        status, body = (as_restricted if tried % 2 else kms.call)(action, {**params, name: value})
        tried += 1
        assert status < 500, (action, name, value[:200], body)
        assert body.get("RequestId"), body
        if status >= 400:
            refused += 1
            assert writes[0] == before, ("a refused call wrote", action, name, value[:200], body)

    for spec in registry.ACTIONS:
        model = importlib.import_module(spec.module).handler.request_model
        names = [f.alias or n for n, f in model.model_fields.items()]
        params = world.params(spec.name)
        status, body = kms.call(spec.name, params)
        # The request the hostile values are put into is valid (an account opens its service once).
        assert status == 200 or body["Code"] == "Forbidden.Opened", (spec.name, body)
        params = world.params(spec.name)  # the first may have used its resources up
        state, start = snapshot(kms.store), writes[0]
        # A legal odd value (a Description of nothing but U+202E) succeeds and moves the state on;
        # the next values then meet that state, which is as good a place as any to be hostile.
        for i, name in enumerate(names):
            # The slower store takes every other value, alternating between parameters: both halves
            # of the list still meet every kind of parameter.
            for value in FIXED if sqlite else FIXED[i % 2::2]:
                check(spec.name, params, name, value)

        @settings(max_examples=8, derandomize=True, database=None, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(st.sampled_from(names + ["EncryptionContext.k", "Unknown"]), HOSTILE)
        def generated(name, value):
            if time.monotonic() < deadline:
                check(spec.name, params, name, value)  # noqa: B023 - run right here, in this iteration

        generated()
        if writes[0] == start:
            assert snapshot(kms.store) == state, spec.name  # nothing at all changed, nonces aside
    assert tried > (7_000 if sqlite else 3_500) and refused > tried * 0.8, (tried, refused)
    assert [r.getMessage() for r in errors_logged] == []


def test_the_issue_cases_answer_their_documented_error(kms, errors_logged):
    """The five 500s of issue 16 §1, one by one."""
    world = World(kms)
    cases = [
        ("ImportKeyMaterial", "KeyMaterialExpireUnix", str(2**64), "InvalidParameter"),
        ("ImportKeyMaterial", "KeyMaterialExpireUnix", str(2**70), "InvalidParameter"),
        ("PutSecretValue", "VersionStages", '[["ACSCurrent"]]', "InvalidParameter"),
        ("PutSecretValue", "VersionStages", '[{"a":"b"}]', "InvalidParameter"),
        ("CreateSecret", "Policy", '{"a":"\\ud800"}', "InvalidParameter"),
    ]
    for action in ("Encrypt", "Decrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext",
                   "GenerateAndExportDataKey", "ExportDataKey"):
        cases.append((action, "EncryptionContext", '{"a":"\\ud800"}', "InvalidParameter"))
    cases += [("ReEncrypt", p, '{"a":"\\ud800"}', "InvalidParameter")
              for p in ("SourceEncryptionContext", "DestinationEncryptionContext")]
    for action, param in (("CreateKey", "Tags"), ("CreateKey", "Policy"), ("CreateSecret", "Tags"),
                          ("CreateSecret", "Policy"), ("CreateSecret", "ExtendedConfig"), ("ListKeys", "Filters"),
                          ("ListSecrets", "Filters"), ("Encrypt", "EncryptionContext"),
                          ("PutSecretValue", "VersionStages"), ("UntagResource", "TagKeys"),
                          ("TagResource", "Tags"), ("ReEncrypt", "SourceEncryptionContext"),
                          ("ReEncrypt", "DestinationEncryptionContext")):
        for kind in "[{":
            cases.append((action, param, nested(1000, kind), "InvalidParameter"))
    for action, param, value, code in cases:
        params = world.params(action)
        state = snapshot(kms.store)
        status, body = kms.call(action, {**params, param: value})
        assert (status, body["Code"]) == (400, code), (action, param, value[:40], body)
        assert f'"{param}"' in body["Message"], body
        assert snapshot(kms.store) == state, (action, param)
    assert [r.getMessage() for r in errors_logged] == []
