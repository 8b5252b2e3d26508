"""The whole service against "Tablestore": the loopback fake, tables made by scripts/create-tables,
two independent runners (two instances) sharing it, driven by the official SDK."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import support


@pytest.fixture
def ots_url():
    proc = subprocess.Popen([sys.executable, "-m", "alikms.testing.fake_tablestore", "--port", "0"], cwd=support.ROOT,
                            stdout=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    yield url
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def ots_env(ots_url):
    env = {"KMS_STORE": "tablestore", "OTS_ENDPOINT": ots_url, "OTS_INSTANCE": "kmsfake",
           "OTS_ACCESS_KEY_ID": "test-akid", "OTS_ACCESS_KEY_SECRET": "test-secret"}
    made = subprocess.run([sys.executable, "-m", "alikms.deploy.tables"], cwd=support.ROOT,
                          env={**support.os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert made.returncode == 0, made.stderr
    assert "created  kms_keys" in made.stdout
    return env


def test_two_instances_share_state_and_replay_protection(server_factory, ots_env):
    import base64
    import secrets

    # Two instances share nothing but the Tablestore instance and the root key, as in a deployment.
    env = {**ots_env, "KMS_ROOT_KEY": "r1:" + base64.b64encode(secrets.token_bytes(32)).decode()}
    first, second = server_factory(env), server_factory(env)
    assert first.data_dir != second.data_dir

    from alibabacloud_kms20160120 import models

    a, b = support.tea_client(first), support.tea_client(second)
    key_id = a.create_key(models.CreateKeyRequest(description="shared")).body.key_metadata.key_id
    blob = a.encrypt(models.EncryptRequest(key_id=key_id, plaintext="aGVsbG8=")).body.ciphertext_blob
    a.create_secret(models.CreateSecretRequest(secret_name="db/pw", version_id="v1", secret_data="pw 1"))

    assert b.describe_key(models.DescribeKeyRequest(key_id=key_id)).body.key_metadata.description == "shared"
    assert b.decrypt(models.DecryptRequest(ciphertext_blob=blob)).body.plaintext == "aGVsbG8="
    assert b.get_secret_value(models.GetSecretValueRequest(secret_name="db/pw")).body.secret_data == "pw 1"
    b.put_secret_value(models.PutSecretValueRequest(secret_name="db/pw", version_id="v2", secret_data="pw 2"))
    assert a.get_secret_value(models.GetSecretValueRequest(secret_name="db/pw")).body.secret_data == "pw 2"

    # A request replayed to the other instance is refused there too: the nonce lives in Tablestore.
    nonce, ts = secrets.token_hex(16), support.timestamp()
    status, body = support.call(first, "DescribeKey", {"KeyId": key_id}, nonce=nonce, ts=ts)
    assert status == 200, body
    status, body = support.call(second, "DescribeKey", {"KeyId": key_id}, nonce=nonce, ts=ts)
    assert (status, body["Code"]) == (400, "SignatureNonceUsed")

    # The rows in "Tablestore" hold no plaintext: the value and the data went in wrapped.
    from tablestore import INF_MAX, INF_MIN, Direction, OTSClient
    from tablestore.retry import NoRetryPolicy

    client = OTSClient(env["OTS_ENDPOINT"], "test-akid", "test-secret", "kmsfake", retry_policy=NoRetryPolicy())
    dump = ""
    for table in client.list_table():
        _, _, rows, _ = client.get_range(table, Direction.FORWARD, [("pk", INF_MIN), ("sk", INF_MIN)],
                                         [("pk", INF_MAX), ("sk", INF_MAX)])
        dump += repr([r.attribute_columns for r in rows])
    assert "kms_keys" in client.list_table() and key_id in dump  # the rows were really read
    assert "pw 1" not in dump and "pw 2" not in dump and "aGVsbG8=" not in dump
