"""The server fixture for clients outside this process, and the runner's `--seed FILE`."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.models import Config

from alikms.testing import mock_kms, start_server

SEED = Path(__file__).resolve().parents[2] / "examples" / "secure_files" / "seed.yaml"


def runner_client(server) -> Client:
    return Client(Config(access_key_id=server.access_key_id, access_key_secret=server.access_key_secret,
                         endpoint=server.endpoint, protocol="http", region_id=server.region))


def test_the_kms_server_fixture_serves_another_process(kms_server):
    assert runner_client(kms_server).list_keys(models.ListKeysRequest()).body.total_count >= 0
    child = textwrap.dedent("""
        import os
        from alibabacloud_kms20160120 import models
        from alibabacloud_kms20160120.client import Client
        from alibabacloud_tea_openapi.models import Config
        client = Client(Config(access_key_id=os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
                               access_key_secret=os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
                               endpoint=os.environ["KMS_ENDPOINT"].removeprefix("http://"), protocol="http",
                               region_id=os.environ["ALIBABA_CLOUD_REGION_ID"]))
        key = client.create_key(models.CreateKeyRequest(description="from a child process")).body.key_metadata
        print(key.key_id)
    """)
    out = subprocess.run([sys.executable, "-c", child], env={**os.environ, **kms_server.env()}, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    key_id = out.stdout.strip()
    described = runner_client(kms_server).describe_key(models.DescribeKeyRequest(key_id=key_id)).body.key_metadata
    assert described.description == "from a child process"
    assert described.arn == f"acs:kms:{kms_server.region}:{kms_server.account_id}:key/{key_id}"


def test_the_runner_loads_the_same_seed_as_the_double(tmp_path):
    with mock_kms(seed=SEED):
        tea = Client(Config(access_key_id="LTAI5tAny", access_key_secret="x", region_id="cn-hangzhou"))
        blob = tea.encrypt(models.EncryptRequest(key_id="alias/secure-files", plaintext="bW9jaw==")).body
    data = tmp_path / "data"
    for start in ("first start", "restart"):  # the second start finds everything there already
        with start_server(data, seed=SEED, timers=False) as server:
            client = runner_client(server)
            plain = client.decrypt(models.DecryptRequest(ciphertext_blob=blob.ciphertext_blob)).body
            assert (plain.plaintext, plain.key_id) == ("bW9jaw==", blob.key_id), start
            secret = client.get_secret_value(models.GetSecretValueRequest(secret_name="prod/db/password")).body
            assert secret.secret_data == "correct horse battery staple"
            assert "seeded from" in (data / "server.log").read_text()
        assert server.process.poll() is not None


def test_a_server_without_a_data_dir_cleans_up_after_itself():
    server = start_server(timers=False)
    data = server.data_dir
    assert runner_client(server).list_aliases(models.ListAliasesRequest()).body.total_count == 0
    server.stop()
    assert server.process.poll() is not None and not data.exists()


def test_a_bad_seed_stops_the_runner_with_the_reason(tmp_path):
    (tmp_path / "seed.yaml").write_text("keys:\n  - alias: alias/x\n    spec: AES_999\n")
    with pytest.raises(RuntimeError, match="unknown KeySpec"):
        start_server(tmp_path / "data", seed=tmp_path / "seed.yaml", timers=False)
