"""Table-driven tests of the RAM-style policy evaluator (alikms.shared.policy): parsing, Allow/Deny precedence,
action and resource wildcards, several resources in one decision, and the acs:SourceIp conditions."""

from __future__ import annotations

import json

import pytest

from alikms.shared import policy
from alikms.shared.policy import ALLOW, EXPLICIT_DENY, IMPLICIT_DENY

ACCOUNT = "1234567890123456"
KEY = f"acs:kms:cn-hangzhou:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
KEY2 = f"acs:kms:cn-hangzhou:{ACCOUNT}:key/99999999-0000-0000-0000-000000000000"
OTHER_REGION_KEY = f"acs:kms:cn-shanghai:{ACCOUNT}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
OTHER_ACCOUNT_KEY = "acs:kms:cn-hangzhou:2222222222222222:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALIAS = f"acs:kms:cn-hangzhou:{ACCOUNT}:alias/app"
SECRET = f"acs:kms:cn-hangzhou:{ACCOUNT}:secret/db/password"
LOCAL = "127.0.0.1"


def st(effect, action, resource, condition=None):
    out = {"Effect": effect, "Action": action, "Resource": resource}
    if condition is not None:
        out["Condition"] = condition
    return out


def doc(*statements):
    return {"Version": "1", "Statement": list(statements)}


def decide(docs, action, resources, ip=LOCAL):
    return policy.evaluate([policy.parse(d) for d in docs], action, list(resources), {"acs:sourceip": ip})


# --- parse errors ---------------------------------------------------------------------------------

BAD = {
    "not-an-object": [],
    "string-not-object": '["Version"]',
    "no-version": {"Statement": []},
    "version-2": {"Version": "2", "Statement": []},
    "version-int": {"Version": 1, "Statement": []},
    "statement-not-list": {"Version": "1", "Statement": {"Effect": "Allow"}},
    "statement-not-object": doc("Allow"),
    "effect-missing": doc({"Action": "kms:*", "Resource": "*"}),
    "effect-unknown": doc(st("Permit", "kms:*", "*")),
    "action-missing": doc({"Effect": "Allow", "Resource": "*"}),
    "action-empty-list": doc(st("Allow", [], "*")),
    "action-empty-string": doc(st("Allow", "", "*")),
    "action-not-string": doc(st("Allow", [1], "*")),
    "resource-missing": doc({"Effect": "Allow", "Action": "kms:*"}),
    "resource-empty-list": doc(st("Allow", "kms:*", [])),
    "resource-dict": doc(st("Allow", "kms:*", {"arn": "*"})),
    "operator-unknown": doc(st("Allow", "kms:*", "*", {"DateLessThan": {"acs:CurrentTime": "2030-01-01"}})),
    "condition-key-unknown": doc(st("Allow", "kms:*", "*", {"StringEquals": {"acs:UserAgent": "x"}})),
    "condition-block-not-object": doc(st("Allow", "kms:*", "*", {"IpAddress": ["127.0.0.1"]})),
    "ip-invalid": doc(st("Allow", "kms:*", "*", {"IpAddress": {"acs:SourceIp": "300.1.1.1"}})),
    "ip-garbage": doc(st("Allow", "kms:*", "*", {"NotIpAddress": {"acs:SourceIp": ["10.0.0.0/8", "nope"]}})),
    "cidr-prefix-too-long": doc(st("Allow", "kms:*", "*", {"IpAddress": {"acs:SourceIp": "10.0.0.0/33"}})),
    "condition-values-empty": doc(st("Allow", "kms:*", "*", {"StringLike": {"acs:SourceIp": []}})),
}


@pytest.mark.parametrize("document", BAD.values(), ids=BAD.keys())
def test_invalid_policy_is_refused(document):
    with pytest.raises(policy.PolicyError):
        policy.parse(document)


GOOD = {
    "empty-statement-list": doc(),
    "json-text": json.dumps(doc(st("Allow", "kms:Encrypt", KEY))),
    "lists": doc(st("Deny", ["kms:Encrypt", "kms:Decrypt"], [KEY, ALIAS])),
    "condition-key-any-case": doc(st("Allow", "kms:*", "*", {"IpAddress": {"ACS:SOURCEIP": "10.0.0.0/8"}})),
    "ipv6-and-host-bits": doc(st("Allow", "kms:*", "*",
                                 {"IpAddress": {"acs:SourceIp": ["2001:db8::/32", "10.1.2.3/8"]}})),
}


@pytest.mark.parametrize("document", GOOD.values(), ids=GOOD.keys())
def test_valid_policy_parses(document):
    statements = policy.parse(document)
    assert len(statements) == len((json.loads(document) if isinstance(document, str) else document)["Statement"])


# --- decisions --------------------------------------------------------------------------------------

ALLOW_ALL = doc(st("Allow", "kms:*", "*"))
IP = "acs:SourceIp"

# (id, policies, action, resources, source ip, expected)
CASES = [
    # no policy, nothing matching
    ("no-policies", [], "kms:Encrypt", [KEY], LOCAL, IMPLICIT_DENY),
    ("empty-statements", [doc()], "kms:Encrypt", [KEY], LOCAL, IMPLICIT_DENY),
    ("allow-exact", [doc(st("Allow", "kms:Encrypt", KEY))], "kms:Encrypt", [KEY], LOCAL, ALLOW),
    ("allow-other-action", [doc(st("Allow", "kms:Decrypt", KEY))], "kms:Encrypt", [KEY], LOCAL, IMPLICIT_DENY),
    ("allow-other-key", [doc(st("Allow", "kms:Encrypt", KEY2))], "kms:Encrypt", [KEY], LOCAL, IMPLICIT_DENY),
    # precedence
    ("deny-only", [doc(st("Deny", "kms:Encrypt", KEY))], "kms:Encrypt", [KEY], LOCAL, EXPLICIT_DENY),
    ("deny-beats-allow-same-policy", [doc(st("Allow", "kms:*", "*"), st("Deny", "kms:Encrypt", KEY))],
     "kms:Encrypt", [KEY], LOCAL, EXPLICIT_DENY),
    ("deny-before-allow-order-irrelevant", [doc(st("Deny", "kms:Encrypt", KEY), st("Allow", "kms:*", "*"))],
     "kms:Encrypt", [KEY], LOCAL, EXPLICIT_DENY),
    ("deny-in-other-policy", [ALLOW_ALL, doc(st("Deny", "kms:*", KEY))], "kms:Decrypt", [KEY], LOCAL, EXPLICIT_DENY),
    ("deny-other-key-keeps-allow", [ALLOW_ALL, doc(st("Deny", "kms:*", KEY2))], "kms:Decrypt", [KEY], LOCAL, ALLOW),
    ("deny-other-action-keeps-allow", [ALLOW_ALL, doc(st("Deny", "kms:Decrypt", "*"))], "kms:Encrypt", [KEY],
     LOCAL, ALLOW),
    # action patterns
    ("action-kms-star", [doc(st("Allow", "kms:*", "*"))], "kms:GetSecretValue", [SECRET], LOCAL, ALLOW),
    ("action-star", [doc(st("Allow", "*", "*"))], "kms:ScheduleKeyDeletion", [KEY], LOCAL, ALLOW),
    ("action-lower-case", [doc(st("Allow", "kms:encrypt", KEY))], "kms:Encrypt", [KEY], LOCAL, ALLOW),
    ("action-upper-case", [doc(st("Allow", "KMS:ENCRYPT", KEY))], "kms:Encrypt", [KEY], LOCAL, ALLOW),
    ("action-deny-any-case", [ALLOW_ALL, doc(st("Deny", "KMS:decrypt", "*"))], "kms:Decrypt", [KEY], LOCAL,
     EXPLICIT_DENY),
    ("action-reencrypt-star-from", [doc(st("Allow", "kms:ReEncrypt*", "*"))], "kms:ReEncryptFrom", [KEY], LOCAL, ALLOW),
    ("action-reencrypt-star-to", [doc(st("Allow", "kms:ReEncrypt*", "*"))], "kms:ReEncryptTo", [KEY], LOCAL, ALLOW),
    ("action-reencrypt-star-not-encrypt", [doc(st("Allow", "kms:ReEncrypt*", "*"))], "kms:Encrypt", [KEY], LOCAL,
     IMPLICIT_DENY),
    ("action-prefix-star", [doc(st("Allow", "kms:Get*", "*"))], "kms:GetPublicKey", [KEY], LOCAL, ALLOW),
    ("action-prefix-star-miss", [doc(st("Allow", "kms:Get*", "*"))], "kms:GenerateDataKey", [KEY], LOCAL,
     IMPLICIT_DENY),
    ("action-question-mark", [doc(st("Allow", "kms:?ncrypt", KEY))], "kms:Encrypt", [KEY], LOCAL, ALLOW),
    ("action-anchored-no-suffix", [doc(st("Allow", "kms:Encrypt", KEY))], "kms:EncryptX", [KEY], LOCAL,
     IMPLICIT_DENY),
    ("action-anchored-no-prefix", [doc(st("Allow", "Encrypt", KEY))], "kms:Encrypt", [KEY], LOCAL, IMPLICIT_DENY),
    ("action-other-service", [doc(st("Allow", "ecs:*", "*"))], "kms:Encrypt", [KEY], LOCAL, IMPLICIT_DENY),
    ("action-list-second", [doc(st("Allow", ["kms:Decrypt", "kms:Encrypt"], KEY))], "kms:Encrypt", [KEY], LOCAL,
     ALLOW),
    ("action-regex-meta-is-literal", [doc(st("Allow", "kms:.*", "*"))], "kms:Encrypt", [KEY], LOCAL, IMPLICIT_DENY),
    # resource patterns
    ("resource-any-key", [doc(st("Allow", "kms:*", "acs:kms:*:*:key/*"))], "kms:Encrypt", [KEY], LOCAL, ALLOW),
    ("resource-key-pattern-not-alias", [doc(st("Allow", "kms:*", "acs:kms:*:*:key/*"))], "kms:DeleteAlias", [ALIAS],
     LOCAL, IMPLICIT_DENY),
    ("resource-key-pattern-not-secret", [doc(st("Allow", "kms:*", "acs:kms:*:*:key/*"))], "kms:GetSecretValue",
     [SECRET], LOCAL, IMPLICIT_DENY),
    ("resource-alias-exact", [doc(st("Allow", "kms:*", f"acs:kms:cn-hangzhou:{ACCOUNT}:alias/app"))],
     "kms:DeleteAlias", [ALIAS], LOCAL, ALLOW),
    ("resource-alias-not-prefix", [doc(st("Allow", "kms:*", f"acs:kms:cn-hangzhou:{ACCOUNT}:alias/ap"))],
     "kms:DeleteAlias", [ALIAS], LOCAL, IMPLICIT_DENY),
    ("resource-secret-with-slash", [doc(st("Allow", "kms:*", "acs:kms:*:*:secret/db/*"))], "kms:GetSecretValue",
     [SECRET], LOCAL, ALLOW),
    ("resource-region-pinned", [doc(st("Allow", "kms:*", "acs:kms:cn-shanghai:*:key/*"))], "kms:Encrypt", [KEY],
     LOCAL, IMPLICIT_DENY),
    ("resource-region-pinned-match", [doc(st("Allow", "kms:*", "acs:kms:cn-shanghai:*:key/*"))], "kms:Encrypt",
     [OTHER_REGION_KEY], LOCAL, ALLOW),
    ("resource-account-pinned", [doc(st("Allow", "kms:*", f"acs:kms:*:{ACCOUNT}:key/*"))], "kms:Encrypt",
     [OTHER_ACCOUNT_KEY], LOCAL, IMPLICIT_DENY),
    ("resource-case-sensitive", [doc(st("Allow", "kms:*", "acs:kms:*:*:KEY/*"))], "kms:Encrypt", [KEY], LOCAL,
     IMPLICIT_DENY),
    ("resource-question-mark", [doc(st("Allow", "kms:*", "acs:kms:*:*:alias/a?p"))], "kms:DeleteAlias", [ALIAS],
     LOCAL, ALLOW),
    ("resource-dot-is-literal", [doc(st("Allow", "kms:*", "acs:kms:*:*:alias/a.p"))], "kms:DeleteAlias", [ALIAS],
     LOCAL, IMPLICIT_DENY),
    ("resource-list", [doc(st("Allow", "kms:*", [KEY2, ALIAS]))], "kms:DeleteAlias", [ALIAS], LOCAL, ALLOW),
    # several resources in one decision
    ("multi-all-allowed", [doc(st("Allow", "kms:CreateAlias", [KEY, ALIAS]))], "kms:CreateAlias", [KEY, ALIAS],
     LOCAL, ALLOW),
    ("multi-one-missing", [doc(st("Allow", "kms:CreateAlias", KEY))], "kms:CreateAlias", [KEY, ALIAS], LOCAL,
     IMPLICIT_DENY),
    ("multi-one-denied", [ALLOW_ALL, doc(st("Deny", "kms:*", ALIAS))], "kms:CreateAlias", [KEY, ALIAS], LOCAL,
     EXPLICIT_DENY),
    ("multi-deny-wins-over-missing", [doc(st("Allow", "kms:*", KEY2), st("Deny", "kms:*", KEY))], "kms:Encrypt",
     [KEY2, KEY, ALIAS], LOCAL, EXPLICIT_DENY),
    # conditions
    ("ip-exact", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "127.0.0.1"}}))], "kms:Encrypt", [KEY], LOCAL,
     ALLOW),
    ("ip-cidr-in", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "127.0.0.0/8"}}))], "kms:Encrypt", [KEY],
     "127.9.8.7", ALLOW),
    ("ip-cidr-out", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "10.0.0.0/8"}}))], "kms:Encrypt", [KEY],
     LOCAL, IMPLICIT_DENY),
    ("ip-one-of-list", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: ["10.0.0.0/8", "192.168.1.0/24"]}}))],
     "kms:Encrypt", [KEY], "192.168.1.77", ALLOW),
    ("ip-host-bits-normalised", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "10.1.2.3/8"}}))], "kms:Encrypt",
     [KEY], "10.200.0.1", ALLOW),
    ("ip-key-case-insensitive", [doc(st("Allow", "kms:*", "*", {"IpAddress": {"ACS:SourceIP": "127.0.0.1"}}))],
     "kms:Encrypt", [KEY], LOCAL, ALLOW),
    ("ipv6-in", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "2001:db8::/32"}}))], "kms:Encrypt", [KEY],
     "2001:db8:1::5", ALLOW),
    ("ipv6-out", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "2001:db8::/32"}}))], "kms:Encrypt", [KEY],
     "2001:db9::5", IMPLICIT_DENY),
    ("ipv4-caller-ipv6-network", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "::/0"}}))], "kms:Encrypt", [KEY],
     LOCAL, IMPLICIT_DENY),
    ("ip-invalid-caller-not-allowed", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "0.0.0.0/0"}}))],
     "kms:Encrypt", [KEY], "not-an-ip", IMPLICIT_DENY),
    ("ip-empty-caller-not-allowed", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "0.0.0.0/0"}}))],
     "kms:Encrypt", [KEY], "", IMPLICIT_DENY),
    ("not-ip-out", [doc(st("Allow", "kms:*", "*", {"NotIpAddress": {IP: "10.0.0.0/8"}}))], "kms:Encrypt", [KEY],
     LOCAL, ALLOW),
    ("not-ip-in", [doc(st("Allow", "kms:*", "*", {"NotIpAddress": {IP: "127.0.0.0/8"}}))], "kms:Encrypt", [KEY],
     LOCAL, IMPLICIT_DENY),
    ("deny-outside-network", [ALLOW_ALL, doc(st("Deny", "kms:*", "*", {"NotIpAddress": {IP: "10.0.0.0/8"}}))],
     "kms:Encrypt", [KEY], LOCAL, EXPLICIT_DENY),
    ("deny-outside-network-invalid-caller", [ALLOW_ALL, doc(st("Deny", "kms:*", "*",
                                                               {"NotIpAddress": {IP: "10.0.0.0/8"}}))],
     "kms:Encrypt", [KEY], "garbage", EXPLICIT_DENY),
    ("deny-inside-network-not-matching", [ALLOW_ALL, doc(st("Deny", "kms:*", "*", {"IpAddress": {IP: "10.0.0.0/8"}}))],
     "kms:Encrypt", [KEY], LOCAL, ALLOW),
    ("conditions-and-both-hold", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "127.0.0.0/8"},
                                                                 "NotIpAddress": {IP: "127.0.0.2"}}))],
     "kms:Encrypt", [KEY], LOCAL, ALLOW),
    ("conditions-and-one-fails", [doc(st("Allow", "kms:*", "*", {"IpAddress": {IP: "127.0.0.0/8"},
                                                                 "NotIpAddress": {IP: "127.0.0.1"}}))],
     "kms:Encrypt", [KEY], LOCAL, IMPLICIT_DENY),
    ("string-like-match", [doc(st("Allow", "kms:*", "*", {"StringLike": {IP: "127.0.0.*"}}))], "kms:Encrypt", [KEY],
     LOCAL, ALLOW),
    ("string-like-miss", [doc(st("Allow", "kms:*", "*", {"StringLike": {IP: "10.*"}}))], "kms:Encrypt", [KEY], LOCAL,
     IMPLICIT_DENY),
    ("string-like-dot-literal", [doc(st("Allow", "kms:*", "*", {"StringLike": {IP: "127?0?0?1"}}))], "kms:Encrypt",
     [KEY], LOCAL, ALLOW),
    ("string-equals", [doc(st("Allow", "kms:*", "*", {"StringEquals": {IP: ["10.0.0.1", "127.0.0.1"]}}))],
     "kms:Encrypt", [KEY], LOCAL, ALLOW),
    ("string-equals-no-wildcards", [doc(st("Allow", "kms:*", "*", {"StringEquals": {IP: "127.0.0.*"}}))],
     "kms:Encrypt", [KEY], LOCAL, IMPLICIT_DENY),
    ("string-not-equals", [doc(st("Allow", "kms:*", "*", {"StringNotEquals": {IP: "127.0.0.1"}}))], "kms:Encrypt",
     [KEY], LOCAL, IMPLICIT_DENY),
    ("condition-only-on-deny", [doc(st("Allow", "kms:*", "*"),
                                    st("Deny", "kms:Decrypt", "*", {"IpAddress": {IP: "127.0.0.1"}}))],
     "kms:Decrypt", [KEY], "127.0.0.2", ALLOW),
]


@pytest.mark.parametrize("docs,action,resources,ip,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_decision(docs, action, resources, ip, expected):
    assert decide(docs, action, resources, ip) == expected


def test_table_is_large_enough_and_ids_unique():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)
    assert {c[-1] for c in CASES} == {ALLOW, EXPLICIT_DENY, IMPLICIT_DENY}


def test_parsed_policy_is_reusable_and_pure():
    parsed = policy.parse(doc(st("Allow", "kms:Encrypt", KEY), st("Deny", "kms:Encrypt", KEY2)))
    for _ in range(3):
        assert policy.evaluate([parsed], "kms:Encrypt", [KEY], {"acs:sourceip": LOCAL}) == ALLOW
        assert policy.evaluate([parsed], "kms:Encrypt", [KEY2], {"acs:sourceip": LOCAL}) == EXPLICIT_DENY


def test_every_valid_request_is_checked_against_at_least_one_resource():
    """evaluate() over an empty resource list is vacuously allowed, so authz must never ask that for a
    request that passes validation: with only the request model's required parameters present, every
    action still names at least one resource (`kind/*` when no parameter names it)."""
    import importlib

    from alikms.shared import authz, registry

    empty = []
    for spec in registry.ACTIONS:
        model = importlib.import_module(spec.module).handler.request_model
        # The required fields set, every optional one absent (None), as a parsed request would be.
        request = model.model_construct(**{name: "x" if f.is_required() else None
                                           for name, f in model.model_fields.items()})
        found = authz.resources(spec, request, ACCOUNT, "cn-hangzhou")
        for action, arn in found:
            assert action.startswith("kms:") and arn.startswith(f"acs:kms:cn-hangzhou:{ACCOUNT}:"), (spec.name, arn)
        if not found:
            empty.append(spec.name)
    assert empty == []
