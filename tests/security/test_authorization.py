"""Authorization end to end: a local runner, RAM-style access keys made with `alikms.runner.admin`, and the
official Tea SDK calling as those keys. Per action and resource, aliases checked as their key,
ReEncrypt on both sides, the acs:SourceIp condition, Deny over Allow, AccessDeniedDetail, DryRun,
and access-key management (disable / enable / delete / policy set) taking effect."""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import dataclass

import pytest

from alikms.shared import audit
from tests import support
from tests.security.helpers import (
    REGION,
    ApiError,
    Tea,
    admin,
    allow,
    create_access_key,
    deny,
    key_arn,
    policy,
    write_policy,
)

ANY_KEY = "acs:kms:*:*:key/*"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@dataclass
class World:
    srv: support.Server
    root: Tea
    ka: str
    kb: str
    alias: str
    blob_a: str
    blob_b: str

    def as_key(self, doc: dict | None) -> Tea:
        ak, secret = create_access_key(self.srv, doc)
        return Tea(self.srv, ak, secret)

    def arn(self, key_id: str) -> str:
        return key_arn(self.srv.account_id, key_id)


@pytest.fixture
def world(server_factory) -> World:
    srv = server_factory()
    root = Tea(srv)
    ka = root("CreateKey", Description="a")["KeyMetadata"]["KeyId"]
    kb = root("CreateKey", Description="b")["KeyMetadata"]["KeyId"]
    alias = f"alias/authz-{uuid.uuid4().hex[:8]}"
    root("CreateAlias", AliasName=alias, KeyId=ka)
    blob_a = root("Encrypt", KeyId=ka, Plaintext=b64(b"data of a"))["CiphertextBlob"]
    blob_b = root("Encrypt", KeyId=kb, Plaintext=b64(b"data of b"))["CiphertextBlob"]
    for name in ("app-db", "ops-db"):
        root("CreateSecret", SecretName=name, VersionId="v1", SecretData=f"value-{name}")
    return World(srv, root, ka, kb, alias, blob_a, blob_b)


def denied(client: Tea, action: str, auth_action: str | None = None, kind: str = "ImplicitDeny", **params) -> ApiError:
    err = client.fails(action, **params)
    assert (err.code, err.status) == ("Forbidden.NoPermission", 403), err
    assert err.message == "This operation is forbidden by permission system."
    assert err.denied is not None and err.denied["AuthAction"] == (auth_action or f"kms:{action}"), err.denied
    assert err.denied["NoPermissionType"] == kind
    return err


def test_allowed_and_denied_per_action_and_resource(world):
    w = world
    user = w.as_key(policy(
        allow(["kms:Encrypt", "kms:Decrypt"], w.arn(w.ka)),
        allow("kms:DescribeKey", ANY_KEY),
        allow("kms:List*", "*"),
        allow("kms:GetSecretValue", "acs:kms:*:*:secret/app-*")))
    assert user("Encrypt", KeyId=w.ka, Plaintext=b64(b"x"))["KeyId"] == w.ka
    assert base64.b64decode(user("Decrypt", CiphertextBlob=w.blob_a)["Plaintext"]) == b"data of a"
    assert user("DescribeKey", KeyId=w.kb)["KeyMetadata"]["KeyId"] == w.kb
    assert {k["KeyId"] for k in user("ListKeys", PageSize=100)["Keys"]["Key"]} >= {w.ka, w.kb}
    assert user("GetSecretValue", SecretName="app-db")["SecretData"] == "value-app-db"

    denied(user, "Encrypt", KeyId=w.kb, Plaintext=b64(b"x"))
    denied(user, "Decrypt", CiphertextBlob=w.blob_b)
    denied(user, "GenerateDataKey", KeyId=w.ka)
    denied(user, "CreateKey")
    denied(user, "GetSecretValue", SecretName="ops-db")
    denied(user, "PutSecretValue", SecretName="app-db", VersionId="v2", SecretData="overwritten")
    denied(user, "ScheduleKeyDeletion", KeyId=w.ka, PendingWindowInDays=7)
    denied(user, "CreateAlias", AliasName="alias/not-mine", KeyId=w.ka)
    # Nothing the refused calls asked for happened.
    assert w.root("DescribeKey", KeyId=w.ka)["KeyMetadata"]["KeyState"] == "Enabled"
    assert w.root("GetSecretValue", SecretName="app-db")["VersionId"] == "v1"
    assert [a["AliasName"] for a in w.root("ListAliases", PageSize=100)["Aliases"]["Alias"]] == [w.alias]
    # A key ARN names the same resource as the id.
    assert user("Encrypt", KeyId=w.arn(w.ka), Plaintext=b64(b"x"))["KeyId"] == w.ka
    denied(user, "Encrypt", KeyId=w.arn(w.kb), Plaintext=b64(b"x"))


def test_alias_resolves_to_its_key_before_the_check(world):
    w = world
    on_key = w.as_key(policy(allow(["kms:Encrypt", "kms:DescribeKey"], w.arn(w.ka))))
    assert on_key("Encrypt", KeyId=w.alias, Plaintext=b64(b"x"))["KeyId"] == w.ka
    assert on_key("DescribeKey", KeyId=w.alias)["KeyMetadata"]["KeyId"] == w.ka
    on_alias = w.as_key(policy(allow("kms:Encrypt", f"acs:kms:*:*:{w.alias}")))
    denied(on_alias, "Encrypt", KeyId=w.alias, Plaintext=b64(b"x"))
    denied(on_alias, "Encrypt", KeyId=w.ka, Plaintext=b64(b"x"))


def test_alias_arn_resolves_to_its_key_like_the_alias_name(world):
    # Encrypt accepts the alias ARN as KeyId; it names the same alias, so the check is on the key.
    w = world
    alias_arn = f"acs:kms:{REGION}:{w.srv.account_id}:{w.alias}"
    assert w.root("Encrypt", KeyId=alias_arn, Plaintext=b64(b"x"))["KeyId"] == w.ka
    on_key = w.as_key(policy(allow("kms:Encrypt", w.arn(w.ka))))
    assert on_key("Encrypt", KeyId=alias_arn, Plaintext=b64(b"x"))["KeyId"] == w.ka


def test_alias_arn_cannot_bypass_key_policies(world):
    # A Deny on the key must hold whatever name the caller uses for it, and an Allow on the alias
    # alone must not grant use of the key behind it.
    w = world
    alias_arn = f"acs:kms:{REGION}:{w.srv.account_id}:{w.alias}"
    fenced = w.as_key(policy(allow("kms:*", "*"), deny("kms:Encrypt", w.arn(w.ka))))
    denied(fenced, "Encrypt", kind="ExplicitDeny", KeyId=w.alias, Plaintext=b64(b"x"))
    denied(fenced, "Encrypt", kind="ExplicitDeny", KeyId=alias_arn, Plaintext=b64(b"x"))
    on_alias = w.as_key(policy(allow("kms:Encrypt", f"acs:kms:*:*:{w.alias}")))
    denied(on_alias, "Encrypt", KeyId=alias_arn, Plaintext=b64(b"x"))


def test_alias_management_needs_both_key_and_alias(world):
    w = world
    name = "alias/authz-new"
    key_only = w.as_key(policy(allow("kms:CreateAlias", w.arn(w.kb))))
    denied(key_only, "CreateAlias", AliasName=name, KeyId=w.kb)
    alias_only = w.as_key(policy(allow("kms:CreateAlias", f"acs:kms:*:*:{name}")))
    denied(alias_only, "CreateAlias", AliasName=name, KeyId=w.kb)
    both = w.as_key(policy(allow(["kms:CreateAlias", "kms:DeleteAlias"], [w.arn(w.kb), f"acs:kms:*:*:{name}"])))
    both("CreateAlias", AliasName=name, KeyId=w.kb)
    denied(both, "DeleteAlias", AliasName=w.alias)
    both("DeleteAlias", AliasName=name)


def test_reencrypt_needs_from_on_source_and_to_on_destination(world):
    w = world
    good = w.as_key(policy(allow("kms:ReEncryptFrom", w.arn(w.ka)), allow("kms:ReEncryptTo", w.arn(w.kb))))
    moved = good("ReEncrypt", CiphertextBlob=w.blob_a, DestinationKeyId=w.kb)
    assert moved["KeyId"] == w.kb
    out = w.root("Decrypt", CiphertextBlob=moved["CiphertextBlob"])
    assert (base64.b64decode(out["Plaintext"]), out["KeyId"]) == (b"data of a", w.kb)

    from_only = w.as_key(policy(allow("kms:ReEncryptFrom", ANY_KEY)))
    denied(from_only, "ReEncrypt", "kms:ReEncryptTo", CiphertextBlob=w.blob_a, DestinationKeyId=w.kb)
    to_only = w.as_key(policy(allow("kms:ReEncryptTo", ANY_KEY)))
    denied(to_only, "ReEncrypt", "kms:ReEncryptFrom", CiphertextBlob=w.blob_a, DestinationKeyId=w.kb)
    swapped = w.as_key(policy(allow("kms:ReEncryptFrom", w.arn(w.kb)), allow("kms:ReEncryptTo", w.arn(w.ka))))
    denied(swapped, "ReEncrypt", "kms:ReEncryptFrom", CiphertextBlob=w.blob_a, DestinationKeyId=w.kb)
    plain_reencrypt = w.as_key(policy(allow(["kms:ReEncrypt", "kms:Decrypt", "kms:Encrypt"], ANY_KEY)))
    denied(plain_reencrypt, "ReEncrypt", "kms:ReEncryptFrom", CiphertextBlob=w.blob_a, DestinationKeyId=w.kb)
    # The destination is checked as its key when named by alias.
    to_alias = w.as_key(policy(allow("kms:ReEncryptFrom", ANY_KEY), allow("kms:ReEncryptTo", w.arn(w.ka))))
    assert to_alias("ReEncrypt", CiphertextBlob=w.blob_b, DestinationKeyId=w.alias)["KeyId"] == w.ka
    wildcard = w.as_key(policy(allow("kms:ReEncrypt*", ANY_KEY)))
    assert wildcard("ReEncrypt", CiphertextBlob=w.blob_b, DestinationKeyId=w.ka)["KeyId"] == w.ka


def test_source_ip_condition(world):
    w = world
    def on(cond):
        return w.as_key(policy(allow("kms:DescribeKey", ANY_KEY, cond)))

    assert on({"IpAddress": {"acs:SourceIp": "127.0.0.0/8"}})("DescribeKey", KeyId=w.ka)
    assert on({"IpAddress": {"acs:SourceIp": ["10.0.0.0/8", "127.0.0.1"]}})("DescribeKey", KeyId=w.ka)
    assert on({"NotIpAddress": {"acs:SourceIp": "192.168.0.0/16"}})("DescribeKey", KeyId=w.ka)
    denied(on({"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}}), "DescribeKey", KeyId=w.ka)
    denied(on({"NotIpAddress": {"acs:SourceIp": "127.0.0.1/32"}}), "DescribeKey", KeyId=w.ka)
    fenced = w.as_key(policy(allow("kms:*", "*"), deny("kms:*", "*", {"NotIpAddress": {"acs:SourceIp": "10.0.0.0/8"}})))
    denied(fenced, "DescribeKey", kind="ExplicitDeny", KeyId=w.ka)


def test_source_ip_is_the_connection_not_a_client_header(world):
    # The runner is the gateway: X-Forwarded-For from the client must not choose acs:SourceIp.
    w = world
    ak, secret = create_access_key(w.srv, policy(allow("kms:DescribeKey", ANY_KEY,
                                                       {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}})))
    status, body = support.call(w.srv, "DescribeKey", {"KeyId": w.ka}, ak=ak, secret=secret,
                                headers={"X-Forwarded-For": "10.1.2.3", "X-Real-IP": "10.1.2.3"})
    assert (status, body.get("Code")) == (403, "Forbidden.NoPermission"), body
    records = list(audit.events(w.srv.data_dir))
    assert [r["SourceIp"] for r in records if r["RequestId"] == body["RequestId"]] == ["127.0.0.1"]


def test_explicit_deny_overrides_allow(world):
    w = world
    user = w.as_key(policy(allow("kms:*", "*"), deny("kms:Decrypt", w.arn(w.ka)), deny("kms:*Secret*", "*")))
    assert user("Encrypt", KeyId=w.ka, Plaintext=b64(b"x"))
    assert base64.b64decode(user("Decrypt", CiphertextBlob=w.blob_b)["Plaintext"]) == b"data of b"
    err = denied(user, "Decrypt", kind="ExplicitDeny", CiphertextBlob=w.blob_a)
    assert err.denied["PolicyType"] == "AccountLevelIdentityBasedPolicy" and err.denied["AuthPrincipalType"]
    denied(user, "GetSecretValue", kind="ExplicitDeny", SecretName="app-db")
    denied(user, "ListSecrets", kind="ExplicitDeny")
    # The Deny names kms:Decrypt only: ReEncrypt checks kms:ReEncryptFrom, which the Allow still grants.
    assert user("ReEncrypt", CiphertextBlob=w.blob_a, DestinationKeyId=w.kb)["KeyId"] == w.kb


def test_access_denied_detail_and_dry_run(world):
    w = world
    user = w.as_key(policy(allow("kms:Encrypt", w.arn(w.ka))))
    err = denied(user, "GenerateDataKey", KeyId=w.ka)
    assert err.data["AccessDeniedDetail"] == err.denied
    assert set(err.denied) >= {"AuthAction", "NoPermissionType", "PolicyType", "AuthPrincipalType"}
    assert w.ka not in json.dumps(err.data)
    dry = user.fails("GenerateDataKey", KeyId=w.ka, DryRun="true")
    assert (dry.code, dry.status) == ("AccessDeniedError", 403), dry
    ok = user.fails("Encrypt", KeyId=w.ka, Plaintext=b64(b"x"), DryRun="true")
    assert (ok.code, ok.status) == ("DryRunOperationError", 400), ok


def test_certificate_tagging_is_checked_like_every_call(world):
    # A key allowed nothing but DescribeRegions must meet Forbidden.NoPermission, whatever it names.
    user = world.as_key(policy(allow("kms:DescribeRegions", "*")))
    assert user("DescribeRegions")["Regions"]
    err = user.fails("TagResource", CertificateId="cert-1", Tags='[{"TagKey":"a","TagValue":"b"}]')
    assert (err.code, err.status) == ("Forbidden.NoPermission", 403), err
    err = user.fails("UntagResource", CertificateId="cert-1", TagKeys='["a"]')
    assert (err.code, err.status) == ("Forbidden.NoPermission", 403), err


def test_access_key_management_takes_effect(world):
    w = world
    srv, everything = w.srv, policy(allow("kms:*", "*"))
    creds = {name: create_access_key(srv, doc) for name, doc in (
        ("disabled", everything), ("deleted", everything), ("widened", policy(allow("kms:Encrypt", ANY_KEY))),
        ("cleared", policy(allow("kms:Encrypt", ANY_KEY))), ("re-enabled", everything))}
    tea = {name: Tea(srv, *pair) for name, pair in creds.items()}

    # A key disabled before its first use is refused at once, then enabled again.
    admin(srv.data_dir, "access-key", "disable", creds["re-enabled"][0], env=srv.env)
    err = tea["re-enabled"].fails("DescribeKey", KeyId=w.ka)
    assert (err.code, err.status) == ("Forbidden.AccessKey", 403), err
    admin(srv.data_dir, "access-key", "enable", creds["re-enabled"][0], env=srv.env)

    for name in ("disabled", "deleted"):
        assert tea[name]("DescribeKey", KeyId=w.ka)["KeyMetadata"]["KeyId"] == w.ka
    denied(tea["widened"], "DescribeKey", KeyId=w.ka)
    denied(tea["cleared"], "DescribeKey", KeyId=w.ka)
    admin(srv.data_dir, "access-key", "disable", creds["disabled"][0], env=srv.env)
    admin(srv.data_dir, "access-key", "delete", creds["deleted"][0], env=srv.env)
    admin(srv.data_dir, "policy", "set", creds["widened"][0],
          write_policy(srv.data_dir, policy(allow(["kms:Encrypt", "kms:DescribeKey"], ANY_KEY))), env=srv.env)
    admin(srv.data_dir, "policy", "set", creds["cleared"][0], "--clear", env=srv.env)

    listed = {row["AccessKeyId"]: row for row in map(json.loads, admin(
        srv.data_dir, "access-key", "list", "--json", env=srv.env).stdout.splitlines())}
    assert creds["deleted"][0] not in listed
    assert listed[creds["disabled"][0]]["Status"] == "Disabled"
    assert listed[creds["re-enabled"][0]]["Status"] == "Enabled"
    assert listed[creds["widened"][0]]["Policies"] == 1 and listed[creds["cleared"][0]]["Policies"] == "account-key"
    # A deleted key cannot be brought back or given a policy.
    assert admin(srv.data_dir, "access-key", "enable", creds["deleted"][0], env=srv.env, check=False).returncode != 0
    assert admin(srv.data_dir, "policy", "set", creds["deleted"][0], "--clear", env=srv.env,
                 check=False).returncode != 0

    # No waiting: every change applies to the next request (the store's access-key change count).
    err = tea["disabled"].fails("DescribeKey", KeyId=w.ka)
    assert (err.code, err.status, err.message) == ("Forbidden.AccessKey", 403, "This AccessKey is not enabled.")
    err = tea["deleted"].fails("DescribeKey", KeyId=w.ka)
    assert (err.code, err.status) == ("InvalidAccessKeyId.NotFound", 404), err
    assert tea["widened"]("DescribeKey", KeyId=w.ka)["KeyMetadata"]["KeyId"] == w.ka
    denied(tea["widened"], "GenerateDataKey", KeyId=w.ka)
    assert tea["cleared"]("GenerateDataKey", KeyId=w.ka)["KeyId"] == w.ka
    assert tea["re-enabled"]("DescribeKey", KeyId=w.ka)["KeyMetadata"]["KeyId"] == w.ka


def test_bootstrap_key_is_listed_and_secrets_never_are(world):
    srv = world.srv
    ak, secret = create_access_key(srv, policy(allow("kms:Encrypt", ANY_KEY)))
    other, other_secret = create_access_key(srv, account="2222222222222222")
    out = admin(srv.data_dir, "access-key", "list", "--json", env=srv.env).stdout
    rows = {r["AccessKeyId"]: r for r in map(json.loads, out.splitlines())}
    assert rows[support.TEST_AK]["AccountId"] == support.TEST_ACCOUNT
    assert rows[support.TEST_AK]["Policies"] == "account-key" and rows[support.TEST_AK]["Status"] == "Enabled"
    assert rows[ak]["Policies"] == 1 and rows[other]["AccountId"] == "2222222222222222"
    for value in (support.TEST_SECRET, secret, other_secret):
        assert value not in out
    only_other = admin(srv.data_dir, "access-key", "list", "--account", "2222222222222222", env=srv.env).stdout
    assert other in only_other and ak not in only_other and support.TEST_AK not in only_other
    assert secret not in admin(srv.data_dir, "audit", env=srv.env).stdout


def test_invalid_policy_is_refused_by_admin(world):
    srv = world.srv
    before = admin(srv.data_dir, "access-key", "list", "--json", env=srv.env).stdout
    bad = write_policy(srv.data_dir, {"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*", "Condition": {"IpAddress": {"acs:SourceIp": "x"}}}]})
    proc = admin(srv.data_dir, "access-key", "create", "--policy", bad, env=srv.env, check=False)
    assert proc.returncode != 0 and "AccessKeySecret" not in proc.stdout
    assert admin(srv.data_dir, "access-key", "list", "--json", env=srv.env).stdout == before
    ak, _ = create_access_key(srv, policy(allow("kms:Encrypt", ANY_KEY)))
    assert admin(srv.data_dir, "policy", "set", ak, bad, env=srv.env, check=False).returncode != 0
    assert admin(srv.data_dir, "policy", "set", ak, env=srv.env, check=False).returncode != 0
    rows = {r["AccessKeyId"]: r for r in map(json.loads, admin(
        srv.data_dir, "access-key", "list", "--json", env=srv.env).stdout.splitlines())}
    assert rows[ak]["Policies"] == 1


def test_reencrypt_from_an_asymmetric_source_is_checked_on_that_key(world):
    # The source is named by SourceKeyId; the RSA ciphertext names no key, so it must not demand key/*.
    w = world
    rsa_key = w.root("CreateKey", KeySpec="RSA_2048", KeyUsage="ENCRYPT/DECRYPT")["KeyMetadata"]["KeyId"]
    ver = w.root("ListKeyVersions", KeyId=rsa_key)["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    ct = w.root("AsymmetricEncrypt", KeyId=rsa_key, KeyVersionId=ver, Algorithm="RSAES_OAEP_SHA_256",
                Plaintext=b64(b"exported"))["CiphertextBlob"]
    params = {"CiphertextBlob": ct, "SourceKeyId": rsa_key, "SourceKeyVersionId": ver,
              "SourceEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "DestinationKeyId": w.kb}
    assert w.root("ReEncrypt", **params)["KeyId"] == w.kb
    other = w.as_key(policy(allow("kms:ReEncryptFrom", w.arn(w.ka)), allow("kms:ReEncryptTo", w.arn(w.kb))))
    denied(other, "ReEncrypt", "kms:ReEncryptFrom", **params)
    user = w.as_key(policy(allow("kms:ReEncryptFrom", w.arn(rsa_key)), allow("kms:ReEncryptTo", w.arn(w.kb))))
    moved = user("ReEncrypt", **params)
    assert base64.b64decode(w.root("Decrypt", CiphertextBlob=moved["CiphertextBlob"])["Plaintext"]) == b"exported"


def replay(srv: support.Server, who: dict, copies: int = 8) -> list[str]:
    """Send the same signed request (same timestamp and nonce) `copies` times at once; the codes."""
    import threading

    ts, nonce = support.timestamp(), uuid.uuid4().hex
    gate, answers = threading.Barrier(copies), []

    def send():
        gate.wait(10)
        answers.append(support.call(srv, "CreateKey", {"Description": "replay"}, ts=ts, nonce=nonce, **who))

    threads = [threading.Thread(target=send) for _ in range(copies)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return sorted(body.get("Code", "OK") for _, body in answers)


def test_replayed_request_is_accepted_once_across_workers(server_factory):
    srv = server_factory(workers=2)
    ak, secret = create_access_key(srv, policy(allow("kms:*", "*")))
    for who in ({}, {"ak": ak, "secret": secret}):
        assert replay(srv, who) == ["OK"] + ["SignatureNonceUsed"] * 7
    listed = support.call(srv, "ListKeys", {"PageSize": "100"})[1]
    assert listed["TotalCount"] == 2  # one key per replayed request, not eight


def test_deleted_bootstrap_key_stays_deleted(world):
    srv = world.srv
    admin(srv.data_dir, "access-key", "delete", support.TEST_AK, env=srv.env)
    fresh = support.start_server(srv.data_dir)  # a new instance (no cache), same data and configuration
    try:
        status, body = support.call(fresh, "ListKeys")
        assert (status, body["Code"]) == (404, "InvalidAccessKeyId.NotFound"), body
        create_access_key(srv)  # admin commands do not bring it back either
        listed = admin(srv.data_dir, "access-key", "list", env=srv.env).stdout
        assert support.TEST_AK not in listed
        status, body = support.call(fresh, "ListKeys")
        assert (status, body["Code"]) == (404, "InvalidAccessKeyId.NotFound"), body
    finally:
        fresh.stop()
