"""A secret's value is protected by its KMS key as well as by the secret (kms-api.md §11.0: "Needs
`kms:GenerateDataKey` on that key to write and `kms:Decrypt` to read"). Found by the attack pass after
issues 11/15/16: a caller whose policy allowed kms:* but explicitly denied kms:Decrypt on a key read the
value of a secret encrypted under that key (GetSecretValue), and one denied kms:GenerateDataKey wrote new
values under it (PutSecretValue). The secrets service's own key (no EncryptionKeyId) needs no grant, as on
Alibaba Cloud."""

from __future__ import annotations

import pytest

from tests.security.helpers import ApiError, Tea, allow, create_access_key, deny, key_arn, policy


@pytest.fixture
def world(server_factory):
    srv = server_factory()
    root = Tea(srv)
    key = root("CreateKey")["KeyMetadata"]["KeyId"]
    other = root("CreateKey")["KeyMetadata"]["KeyId"]
    root("CreateSecret", SecretName="under-key", VersionId="v1", SecretData="value one", EncryptionKeyId=key)
    root("CreateSecret", SecretName="under-other", VersionId="v1", SecretData="value two", EncryptionKeyId=other)
    root("CreateSecret", SecretName="service-key", VersionId="v1", SecretData="value three")
    return srv, root, key, other


def _as(srv, doc) -> Tea:
    return Tea(srv, *create_access_key(srv, doc))


def _denied(err: ApiError, action: str, kind: str = "ExplicitDeny") -> None:
    assert (err.status, err.code) == (403, "Forbidden.NoPermission"), err
    assert err.denied["AuthAction"] == action and err.denied["NoPermissionType"] == kind, err.denied


def test_reading_a_value_needs_decrypt_on_its_key(world):
    srv, root, key, other = world
    arn = key_arn(srv.account_id, key)
    user = _as(srv, policy(allow("kms:*"), deny("kms:Decrypt", arn)))
    for name in ("under-key", f"acs:kms:{srv.region}:{srv.account_id}:secret/under-key"):
        err = user.fails("GetSecretValue", SecretName=name)
        _denied(err, "kms:Decrypt")
        assert "value one" not in str(err.data)
    assert user("GetSecretValue", SecretName="under-other")["SecretData"] == "value two"
    assert user("GetSecretValue", SecretName="service-key")["SecretData"] == "value three"
    # An allow on the secret alone is not enough for a secret under a customer key...
    only_secret = _as(srv, policy(allow("kms:GetSecretValue", "acs:kms:*:*:secret/*")))
    _denied(only_secret.fails("GetSecretValue", SecretName="under-key"), "kms:Decrypt", "ImplicitDeny")
    assert only_secret("GetSecretValue", SecretName="service-key")["SecretData"] == "value three"
    # ...and with Decrypt on its key it is.
    both = _as(srv, policy(allow("kms:GetSecretValue", "acs:kms:*:*:secret/*"), allow("kms:Decrypt", arn)))
    assert both("GetSecretValue", SecretName="under-key")["SecretData"] == "value one"


def test_writing_a_value_needs_generate_data_key_on_its_key(world):
    srv, root, key, other = world
    user = _as(srv, policy(allow("kms:*"), deny("kms:GenerateDataKey", key_arn(srv.account_id, key))))
    _denied(user.fails("PutSecretValue", SecretName="under-key", VersionId="v2", SecretData="planted"),
            "kms:GenerateDataKey")
    assert root("GetSecretValue", SecretName="under-key")["VersionId"] == "v1"  # nothing was written
    assert user("PutSecretValue", SecretName="under-other", VersionId="v2", SecretData="fine")["VersionId"] == "v2"
    assert user("PutSecretValue", SecretName="service-key", VersionId="v2", SecretData="fine")["VersionId"] == "v2"


def test_the_audit_record_names_the_key_that_was_checked(world):
    from alikms.shared import audit

    srv, root, key, _ = world
    user = _as(srv, policy(allow("kms:*"), deny("kms:Decrypt", key_arn(srv.account_id, key))))
    rid = user.fails("GetSecretValue", SecretName="under-key").data["RequestId"]
    import time
    for _ in range(50):
        recs = [r for r in audit.events(srv.data_dir) if r["RequestId"] == rid]
        if recs:
            break
        time.sleep(0.1)
    assert recs[0]["Resources"] == [f"acs:kms:{srv.region}:{srv.account_id}:secret/under-key",
                                    key_arn(srv.account_id, key)]
