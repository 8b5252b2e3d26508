"""Policy corners found by the attack pass after issues 11/15/16 (alikms.shared.policy):

* Statement elements the evaluator does not implement (`NotResource`, `NotAction`, `Principal`, a
  misspelt `Resources`) were ignored: `{"Allow", "kms:*", "*", "NotResource": <key>}`, meant to keep one
  key out, granted it. Each is now refused when the policy is set, as unknown condition operators were.
* A condition block with no keys (`"IpAddress": {}`) constrained nothing: refused.
* A runner bound to `::` (dual stack) sees IPv4 callers as `::ffff:a.b.c.d`, which matched no IPv4
  network: an explicit Deny on an IPv4 range did not apply and IPv4 allow lists refused everyone.
  The mapped address is the IPv4 address it carries.
* A key whose stored policy no longer parses (stored by an older, laxer version) must deny, not fail
  every request with a 500."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from alikms.shared import policy
from alikms.shared.policy import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY
from tests import support
from tests.security.helpers import Tea, allow, create_access_key, deny

KEY = "acs:kms:cn-hangzhou:1234567890123456:key/k1"


def doc(*statements):
    return {"Version": "1", "Statement": list(statements)}


@pytest.mark.parametrize("extra", [
    {"NotResource": KEY}, {"NotAction": "kms:Decrypt"}, {"Principal": {"RAM": ["*"]}}, {"Resources": KEY},
    {"Conditions": {"IpAddress": {"acs:SourceIp": "10.0.0.0/8"}}}, {"effect": "Deny"},
])
def test_statement_elements_it_does_not_implement_are_refused(extra):
    with pytest.raises(policy.PolicyError, match="unsupported statement element"):
        policy.parse(doc({"Effect": "Allow", "Action": "kms:*", "Resource": "*", **extra}))


def test_a_statement_id_is_accepted():
    assert len(policy.parse(doc({"Sid": "one", "Effect": "Allow", "Action": "kms:*", "Resource": "*"}))) == 1


@pytest.mark.parametrize("operator", ["IpAddress", "NotIpAddress", "StringEquals"])
def test_an_empty_condition_block_is_refused(operator):
    with pytest.raises(policy.PolicyError):
        policy.parse(doc({"Effect": "Allow", "Action": "kms:*", "Resource": "*", "Condition": {operator: {}}}))


@pytest.mark.parametrize("ip", ["::ffff:203.0.113.9", "::FFFF:203.0.113.9", "0:0:0:0:0:ffff:cb00:7109"])
def test_an_ipv4_mapped_address_is_its_ipv4_address(ip):
    denied = [policy.parse(doc(allow("kms:*"), deny("kms:*", "*", {"IpAddress": {"acs:SourceIp": "203.0.113.0/24"}})))]
    assert policy.evaluate(denied, "kms:Encrypt", [KEY], {"acs:sourceip": ip}) == EXPLICIT_DENY
    allowed = [policy.parse(doc(allow("kms:*", "*", {"IpAddress": {"acs:SourceIp": "203.0.113.9"}})))]
    assert policy.evaluate(allowed, "kms:Encrypt", [KEY], {"acs:sourceip": ip}) == ALLOW
    exact = [policy.parse(doc(allow("kms:*", "*", {"StringEquals": {"acs:SourceIp": "203.0.113.9"}})))]
    assert policy.evaluate(exact, "kms:Encrypt", [KEY], {"acs:sourceip": ip}) == ALLOW
    outside = [policy.parse(doc(allow("kms:*"),
                                deny("kms:*", "*", {"NotIpAddress": {"acs:SourceIp": "203.0.113.0/24"}})))]
    assert policy.evaluate(outside, "kms:Encrypt", [KEY], {"acs:sourceip": ip}) == ALLOW
    assert policy.evaluate(outside, "kms:Encrypt", [KEY], {"acs:sourceip": "::ffff:198.51.100.1"}) == EXPLICIT_DENY


def test_a_dual_stack_runner_applies_ipv4_conditions(tmp_path):
    """`alikms serve --host ::` with workers (one shared dual-stack socket): an IPv4 caller (127.0.0.1)
    is seen as ::ffff:127.0.0.1."""
    port = support.free_port()
    env = {**os.environ, "KMS_ACCESS_KEY_ID": support.TEST_AK, "KMS_ACCESS_KEY_SECRET": support.TEST_SECRET,
           "KMS_ACCOUNT_ID": support.TEST_ACCOUNT, "KMS_METRICS_PORT": "0"}
    data = tmp_path / "data"
    proc = subprocess.Popen([sys.executable, "-m", "alikms.runner", "serve", "--host", "::", "--port", str(port),
                             "--data-dir", str(data), "--workers", "2", "--no-timers"],
                            cwd=support.ROOT, env=env, stdout=subprocess.DEVNULL, stderr=open(tmp_path / "err", "w"))
    try:
        deadline = time.time() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.time() < deadline and proc.poll() is None, "runner did not start"
                time.sleep(0.05)
        dual = support.Server(port, data, proc, env=env)
        fenced = Tea(dual, *create_access_key(dual, doc(allow("kms:*"), deny("kms:*", "*", {
            "IpAddress": {"acs:SourceIp": "127.0.0.0/8"}}))))
        err = fenced.fails("ListKeys")
        assert (err.code, err.denied["NoPermissionType"]) == ("Forbidden.NoPermission", "ExplicitDeny")
        local = Tea(dual, *create_access_key(dual, doc(allow("kms:*", "*",
                                                             {"IpAddress": {"acs:SourceIp": "127.0.0.1"}}))))
        assert local("ListKeys")["TotalCount"] == 0
    finally:
        dual_stop(proc)


def dual_stop(proc) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def test_a_stored_policy_that_no_longer_parses_denies_without_a_500(invoke, local_env):
    from alikms.shared import identity
    from alikms.shared.config import get_config
    from alikms.shared.records import AccessKeyRow
    from alikms.shared.store import get_store

    store, cfg = get_store(), get_config()
    ak, secret = identity.create(store, cfg, support.TEST_ACCOUNT, [doc(allow("kms:*"))], 0)
    row = AccessKeyRow.get(store, ak)
    row.policies = [doc({"Effect": "Allow", "Action": "kms:*", "Resource": "*", "NotResource": KEY})]
    row.save(store)  # as an older version, which ignored NotResource, would have stored it
    identity._cache.clear()
    from tests.security.helpers import handler_call

    status, body, _ = handler_call("ListKeys", ak=ak, secret=secret)
    assert (status, body["Code"]) == (403, "Forbidden.NoPermission"), body
    assert body["AccessDeniedDetail"]["NoPermissionType"] == IMPLICIT_DENY
