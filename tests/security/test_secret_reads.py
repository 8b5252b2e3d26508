"""A RAM user's GetSecretValue / PutSecretValue read the secret's row for the policy check (its
customer key) and again for the action. The action takes the row the check read, so that both see
one row and it is read once per call (a conditional write's retry still reads afresh)."""

from __future__ import annotations

import pytest

from alikms.shared import records
from tests.security.inproc import Service


@pytest.fixture
def service(local_env):
    return Service(local_env)


def test_a_ram_users_secret_value_call_reads_the_secret_once(service, monkeypatch):
    key = service.ok("CreateKey")["KeyMetadata"]["KeyId"]
    service.ok("CreateSecret", {"SecretName": "db", "VersionId": "v1", "SecretData": "one", "EncryptionKeyId": key})
    ak, secret = service.access_key([{"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": ["kms:*"], "Resource": ["*"]}]}])
    reads: list[str] = []
    real = records.Secret.get.__func__

    def counted(cls, store, scope, name):
        reads.append(name)
        return real(cls, store, scope, name)

    monkeypatch.setattr(records.Secret, "get", classmethod(counted))
    status, body = service.call("GetSecretValue", {"SecretName": "db"}, ak=ak, secret=secret)
    assert (status, body["SecretData"], reads) == (200, "one", ["db"])
    reads.clear()
    status, body = service.call("PutSecretValue", {"SecretName": "db", "VersionId": "v2", "SecretData": "two"},
                                ak=ak, secret=secret)
    assert status == 200 and reads == ["db", "db"]  # the check's read, then the conditional write's own
    reads.clear()
    status, body = service.call("GetSecretValue", {"SecretName": "db"}, ak=ak, secret=secret)
    assert (status, body["SecretData"], reads) == (200, "two", ["db"])
