"""One parse (issue 11 §1): an explicit Deny on a resource holds whatever the caller does with the
parameter that names it, and the audit record names the resource the call actually used.

For every registered action and every resource parameter the registry declares for it, a caller
allowed `kms:*` on everything but denied the parameter's RAM action on one resource sends that
resource under the wire name (both placements, both signature schemes, every spelling of the value:
id, ARN, alias, alias ARN) and is refused; under any other spelling of the name (the request model's
field name, other cases, near misses) the name is an unknown parameter and the resource is not used;
with the wire name naming an allowed resource and another spelling naming the denied one, the call
goes to the allowed one, and its audit record says so. The denied resources are unchanged at the end.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass, field

import pytest

from alikms.shared import registry
from tests import support
from tests.security.helpers import allow, deny, policy
from tests.security.inproc import Service

REGION = "cn-hangzhou"
ACCOUNT = support.TEST_ACCOUNT


def arn(kind: str, name: str) -> str:
    return f"acs:kms:{REGION}:{ACCOUNT}:{kind}/{name}"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class World:
    svc: Service
    v: dict = field(default_factory=dict)

    def fresh(self, prefix: str) -> str:
        return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def world(local_env, monkeypatch) -> World:
    monkeypatch.setenv("KMS_AUDIT_STDOUT", "false")
    w = World(Service(local_env))
    ok, v = w.svc.ok, w.v
    for name in ("k", "k2"):
        md = ok("CreateKey", {"Description": name})["KeyMetadata"]
        v[name], v[name + "_ver"] = md["KeyId"], md["PrimaryKeyVersion"]
        v[name + "_blob"] = ok("Encrypt", {"KeyId": v[name], "Plaintext": b64(b"plain")})["CiphertextBlob"]
    ok("CreateAlias", {"AliasName": "alias/one", "KeyId": v["k"]})
    ok("CreateAlias", {"AliasName": "alias/two", "KeyId": v["k2"]})
    for name in ("r", "r2"):
        v[name] = ok("CreateKey", {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT/DECRYPT"})["KeyMetadata"]["KeyId"]
        v[name + "_ver"] = ok("ListKeyVersions", {"KeyId": v[name]})["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
        v[name + "_ct"] = ok("AsymmetricEncrypt", {"KeyId": v[name], "KeyVersionId": v[name + "_ver"],
                                                   "Algorithm": "RSAES_OAEP_SHA_256",
                                                   "Plaintext": b64(b"x")})["CiphertextBlob"]
    for name in ("s", "s2"):
        v[name] = f"secret-{name}"
        ok("CreateSecret", {"SecretName": v[name], "VersionId": "v1", "SecretData": f"value of {name}"})
    return w


# What each resource parameter names in the world: (denied value, allowed value, kind, ARN name of each).
def values(w: World, action: str, param: str) -> tuple[str, str, str, str]:
    v = w.v
    if param == "CiphertextBlob":
        return v["k_blob"], v["k2_blob"], v["k"], v["k2"]
    if param == "SourceKeyId":
        return v["r"], v["r2"], v["r"], v["r2"]
    if param == "AliasName":
        if action == "CreateAlias":
            new = w.fresh("alias/new")
            return new, w.fresh("alias/other"), new[6:], "other"
        return "alias/one", "alias/two", "one", "two"
    if param == "SecretName":
        if action == "CreateSecret":
            new = w.fresh("new")
            return new, w.fresh("other"), new, "other"
        return v["s"], v["s2"], v["s"], v["s2"]
    return v["k"], v["k2"], v["k"], v["k2"]  # KeyId, DestinationKeyId, EncryptionKeyId


def other_params(w: World, action: str, param: str) -> dict:
    """Everything else the action needs for its request to pass validation and reach the policy check."""
    v = w.v
    asym = {"KeyVersionId": v["r_ver"], "Algorithm": "RSAES_OAEP_SHA_256"}
    wrap = {"PublicKeyBlob": b64(b"p" * 64), "WrappingKeySpec": "RSA_2048", "WrappingAlgorithm": "RSAES_OAEP_SHA_256"}
    tags = json.dumps([{"TagKey": "team", "TagValue": "x"}])
    params = {
        "UpdateKeyDescription": {"Description": "d"},
        "DescribeKeyVersion": {"KeyVersionId": v["k_ver"]},
        "Encrypt": {"Plaintext": b64(b"p")},
        "GenerateAndExportDataKey": wrap,
        "ExportDataKey": wrap,
        "UpdateRotationPolicy": {"EnableAutomaticRotation": "false"},
        "ScheduleKeyDeletion": {"PendingWindowInDays": "7"},
        "GetParametersForImport": {"WrappingAlgorithm": "RSAES_OAEP_SHA_256", "WrappingKeySpec": "RSA_2048"},
        "ImportKeyMaterial": {"EncryptedKeyMaterial": b64(b"m" * 256), "ImportToken": "t"},
        "AsymmetricSign": {**asym, "Digest": b64(bytes(32))},
        "AsymmetricVerify": {**asym, "Digest": b64(bytes(32)), "Value": b64(bytes(64))},
        "AsymmetricEncrypt": {**asym, "Plaintext": b64(b"p")},
        "AsymmetricDecrypt": {**asym, "CiphertextBlob": v["r_ct"]},
        "GetPublicKey": {"KeyVersionId": v["r_ver"]},
        "ReEncrypt": ({"CiphertextBlob": v["r_ct"], "DestinationKeyId": v["k2"], "SourceKeyVersionId": v["r_ver"],
                       "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256"} if param == "SourceKeyId" else
                      {"CiphertextBlob": v["k2_blob"], "DestinationKeyId": v["k2"]}),
        "CreateAlias": {"AliasName": w.fresh("alias/fresh"), "KeyId": v["k2"]},
        "UpdateAlias": {"AliasName": "alias/two", "KeyId": v["k2"]},
        "CreateSecret": {"SecretName": w.fresh("fresh"), "VersionId": "v1", "SecretData": "data"},
        "PutSecretValue": {"VersionId": w.fresh("v"), "SecretData": "data"},
        "UpdateSecret": {"Description": "d"},
        "UpdateSecretVersionStage": {"VersionStage": "Mine", "MoveToVersion": "v1"},
        "TagResource": {"Tags": tags},
        "UntagResource": {"TagKeys": '["team"]'},
    }.get(action, {})
    params.pop(param, None)  # the parameter under test is the caller's to place
    return params


def spellings(wire: str) -> list[str]:
    """Names that are not the wire name: the model's field name, case variants, near misses."""
    snake = registry.snake(wire)
    out = [snake, wire.lower(), wire.upper(), wire.swapcase(), wire[0].lower() + wire[1:], snake.upper(),
           wire + " ", " " + wire, wire + "\x00", snake.replace("_", "-"), wire + "[0]", wire + ".1"]
    return [n for n in dict.fromkeys(out) if n != wire]


def value_forms(w: World, action: str, param: str, denied: str) -> list[str]:
    """Other spellings of the denied value that name the same resource."""
    if param in ("KeyId", "DestinationKeyId", "EncryptionKeyId", "SourceKeyId"):
        forms = [arn("key", denied)]
        if denied == w.v["k"]:
            forms += ["alias/one", arn("alias", "one")]
        return forms
    if param == "SecretName" and action != "CreateSecret":
        return [arn("secret", denied)]
    return []  # an AliasName is only ever `alias/...`; a blob has one spelling


CASES = [(spec.name, entry[1], entry[2] if len(entry) > 2 else spec.ram_action, entry[0])
         for spec in registry.ACTIONS for entry in spec.resources if entry[1] is not None]


def test_every_resource_parameter_is_covered():
    assert len(CASES) == sum(1 for s in registry.ACTIONS for e in s.resources if e[1]) >= 45
    assert {param for _, param, _, _ in CASES} == {"KeyId", "CiphertextBlob", "DestinationKeyId", "SourceKeyId",
                                                   "AliasName", "SecretName", "EncryptionKeyId"}


def snapshot(w: World) -> dict:
    """What a root caller can read of every resource the tests deny: must be the same at the end."""
    ok, v = w.svc.ok, w.v

    def clean(body: dict) -> dict:
        return {k: val for k, val in body.items() if k != "RequestId"}

    return {
        "keys": [clean(ok("DescribeKey", {"KeyId": v[k]})) for k in ("k", "r")],
        "tags": [clean(ok("ListResourceTags", {"KeyId": v[k]})) for k in ("k", "r")],
        "versions": clean(ok("ListKeyVersions", {"KeyId": v["k"]})),
        "aliases": clean(ok("ListAliasesByKeyId", {"KeyId": v["k"], "PageSize": "100"})),
        "secret": clean(ok("DescribeSecret", {"SecretName": v["s"], "FetchTags": "true"})),
        "secret_versions": clean(ok("ListSecretVersionIds", {"SecretName": v["s"], "IncludeDeprecated": "true"})),
        "value": ok("GetSecretValue", {"SecretName": v["s"]})["SecretData"],
    }


def test_a_deny_holds_under_every_spelling_and_the_audit_names_what_was_used(world):
    w, svc = world, world.svc
    before = snapshot(w)
    svc.new_records()
    checked = 0

    def send(action, placed: dict, elsewhere: dict, *, ak, secret, scheme, in_body: bool):
        """Send `placed` in the query or the body (`in_body`), `elsewhere` in the query; return
        (status, body, the call's one audit record)."""
        query, body = (dict(elsewhere), dict(placed)) if in_body else ({**elsewhere, **placed}, {})
        status, answer = svc.call(action, query, body, ak=ak, secret=secret, scheme=scheme)
        records = svc.new_records()
        assert [r["RequestId"] for r in records] == [answer["RequestId"]], (action, records, answer)
        return status, answer, records[0]

    for action, param, ram_action, kind in CASES:
        for scheme in ("v1", "acs3"):
            denied, allowed, denied_name, allowed_name = values(w, action, param)
            denied_arn = arn(kind, denied_name)
            ak, secret = svc.access_key([policy(allow("kms:*"), deny(ram_action, denied_arn))])
            for in_body in (False, True):
                where = (action, param, scheme, "body" if in_body else "query")
                # The wire name, and every other spelling of the value: refused, and the record says so.
                for value in [denied] + value_forms(w, action, param, denied):
                    status, answer, rec = send(action, {param: value}, other_params(w, action, param), ak=ak,
                                               secret=secret, scheme=scheme, in_body=in_body)
                    assert (status, answer["Code"]) == (403, "Forbidden.NoPermission"), (where, value, answer)
                    assert answer["AccessDeniedDetail"]["AuthAction"] == ram_action
                    assert answer["AccessDeniedDetail"]["NoPermissionType"] == "ExplicitDeny"
                    assert denied_arn in rec["Resources"] and rec["ResultCode"] == "Forbidden.NoPermission", rec
                    checked += 1
                # Any other name is an unknown parameter: the denied resource is not used or named.
                for name in spellings(param):
                    others = other_params(w, action, param)
                    status, answer, rec = send(action, {name: denied}, others, ak=ak, secret=secret, scheme=scheme,
                                               in_body=in_body)
                    assert status != 403 and denied_arn not in rec["Resources"], (where, name, answer, rec)
                    if status == 200:  # only an optional parameter can be left out and the call still succeed
                        assert (action, param) == ("CreateSecret", "EncryptionKeyId"), (where, name, answer)
                        made = svc.ok("DescribeSecret", {"SecretName": others["SecretName"]})
                        assert made["EncryptionKeyId"] != denied
                        svc.new_records()  # the DescribeSecret's own
                    elif param in ("KeyId", "SecretName") and action in ("TagResource", "UntagResource"):
                        assert answer["Code"] == "InvalidParameter", (where, name, answer)  # none of the one-of
                    elif param != "SourceKeyId" and status != 200:
                        assert (status, answer["Code"]) == (400, "MissingParameter"), (where, name, answer)
                        assert f'"{param}"' in answer["Message"]
                    checked += 1
                # The wire name says one resource and another spelling the denied one: the call uses
                # the wire name's, and its record names that one only.
                for name in spellings(param)[:3]:
                    status, answer, rec = send(action, {param: allowed, name: denied}, other_params(w, action, param),
                                               ak=ak, secret=secret, scheme=scheme, in_body=in_body)
                    assert status != 403, (where, name, answer)
                    assert denied_arn not in rec["Resources"], (where, name, rec)
                    assert any(r.endswith(allowed_name) or allowed_name in r for r in rec["Resources"]), (where, rec)
                    checked += 1
    assert checked > 2000
    assert snapshot(w) == before


def test_a_repeated_name_is_refused_whatever_the_placement(world):
    """KeyId twice (query and query, query and body): refused before anything is resolved."""
    w, svc = world, world.svc
    ak, secret = svc.access_key([policy(allow("kms:*"), deny("kms:Encrypt", arn("key", w.v["k"])))])
    plain = ("Plaintext", b64(b"p"))
    for scheme in ("v1", "acs3"):
        for query, body in (([("KeyId", w.v["k2"]), ("KeyId", w.v["k"]), plain], []),
                            ([("KeyId", w.v["k2"]), plain], [("KeyId", w.v["k"])]),
                            ([("KeyId", w.v["k"]), plain], [("KeyId", w.v["k2"])])):
            svc.new_records()
            status, answer = svc.call("Encrypt", query, body, ak=ak, secret=secret, scheme=scheme)
            assert (status, answer["Code"]) == (400, "ParseRequestParameterException"), (query, body, answer)
            [rec] = svc.new_records()
            assert rec["RequestId"] == answer["RequestId"] and rec["Resources"] == []


def test_a_percent_encoded_wire_name_is_the_wire_name(world):
    """`%4BeyId` decodes to `KeyId`: it is the parameter, and the Deny applies to it."""
    from urllib.parse import quote

    from alikms.runner import app

    w, svc = world, world.svc
    ak, secret = svc.access_key([policy(allow("kms:*"), deny("kms:Encrypt", arn("key", w.v["k"])))])
    signed = svc.request("Encrypt", {"KeyId": w.v["k"], "Plaintext": b64(b"p")}, ak=ak, secret=secret)
    # The same request with the name escaped: the signature covers decoded names, so it still holds.
    raw = "&".join(f"{'%4BeyId' if k == 'KeyId' else quote(k, safe='')}={quote(v, safe='')}"
                   for k, v in signed.query.items())
    result = app.dispatch(app.build_request("POST", "/", raw, list(signed.headers.items()), b"", "127.0.0.1"))
    answer = json.loads(result["body"])
    assert (result["statusCode"], answer["Code"]) == (403, "Forbidden.NoPermission"), answer


def test_the_action_uses_the_key_the_check_resolved_an_alias_to(world, monkeypatch):
    """An alias is checked as its key, and the action runs on that key: an UpdateAlias landing between
    the check and the action (simulated: the alias reads differently the second time) changes nothing."""
    w, svc = world, world.svc
    ak, secret = svc.access_key([policy(allow("kms:*"), deny("kms:*", arn("key", w.v["k2"])))])
    real_get = svc.store.get
    reads = []

    def moving_alias(table, pk, sk=""):
        item = real_get(table, pk, sk)
        if table == "aliases" and sk == "alias/one":
            reads.append(sk)
            if len(reads) > 1:  # after the check: now pointing at the denied key
                return type(item)(item.pk, item.sk, {**item.data, "key_id": w.v["k2"]}, item.rev)
        return item

    monkeypatch.setattr(svc.store, "get", moving_alias)
    for scheme in ("v1", "acs3"):
        reads.clear()
        svc.new_records()
        status, answer = svc.call("Encrypt", {"KeyId": "alias/one", "Plaintext": b64(b"p")}, ak=ak, secret=secret,
                                  scheme=scheme)
        assert status == 200 and answer["KeyId"] == w.v["k"], answer
        [rec] = svc.new_records()
        assert rec["Resources"] == [arn("key", w.v["k"])]
