"""The distribution installs beside each client it mocks, in a fresh environment, without Tablestore,
and the double answers that client there.

One virtual environment per client (made without pip, filled by this environment's pip with
`--python`, from pip's cache after the first run) with the wheel of this checkout, built once and
shared by the xdist workers. `alibabacloud-kms-python-sdk` 1.1.3 pins protobuf < 3.20, cryptography
< 42 and `alibabacloud-kms20160120` < 3, so it cannot share the suite's own environment: its
shared-gateway path is tested here, in its own.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

COMMON = """
import asyncio, importlib.util, json
from alikms.testing import mock_kms
assert importlib.util.find_spec("tablestore") is None, "tablestore came along"
"""

CLIENTS = {
    "alibabacloud-kms20160120": """
        from alibabacloud_kms20160120 import models
        from alibabacloud_kms20160120.client import Client
        from alibabacloud_tea_openapi.models import Config
        client = Client(Config(access_key_id="LTAI5tA", access_key_secret="x", region_id="cn-hangzhou"))
        with mock_kms():
            key_id = client.create_key(models.CreateKeyRequest()).body.key_metadata.key_id
            blob = client.encrypt(models.EncryptRequest(key_id=key_id, plaintext="aGk=")).body.ciphertext_blob
            out = asyncio.run(client.decrypt_async(models.DecryptRequest(ciphertext_blob=blob)))
            assert out.body.plaintext == "aGk="
    """,
    "aliyun-python-sdk-kms": """
        from aliyunsdkcore.client import AcsClient
        from aliyunsdkkms.request.v20160120.CreateKeyRequest import CreateKeyRequest
        from aliyunsdkkms.request.v20160120.DescribeKeyRequest import DescribeKeyRequest
        client = AcsClient("LTAI5tA", "x", "cn-hangzhou")
        with mock_kms():
            key_id = json.loads(client.do_action_with_exception(CreateKeyRequest()))["KeyMetadata"]["KeyId"]
            describe = DescribeKeyRequest()
            describe.set_KeyId(key_id)
            assert json.loads(client.do_action_with_exception(describe))["KeyMetadata"]["KeyState"] == "Enabled"
    """,
    "alibabacloud-secretsmanager-client-v2": """
        from alibabacloud_secretsmanager_client_v2.service.default_secret_manager_client_builder import (
            DefaultSecretManagerClientBuilder)
        from alibabacloud_kms20160120.models import GetSecretValueRequest
        with mock_kms(seed={"secrets": [{"name": "db/password", "value": "s3cret"}]}):
            client = DefaultSecretManagerClientBuilder().with_access_key("LTAI5tA", "x").with_region(
                "cn-hangzhou").build()
            client.init()
            value = client.get_secret_value(GetSecretValueRequest(secret_name="db/password")).body.secret_data
            client.close()
            assert value == "s3cret"
    """,
    "alibabacloud-kms-python-sdk==1.1.3": """
        from alibabacloud_kms_kms20160120.client import Client
        from alibabacloud_kms_kms20160120.transfer_client import TransferClient
        from alibabacloud_kms20160120 import models
        from alibabacloud_tea_openapi.models import Config
        import google.protobuf
        assert google.protobuf.__version__.startswith("3."), google.protobuf.__version__
        config = dict(access_key_id="LTAI5tA", access_key_secret="x", region_id="cn-hangzhou")
        with mock_kms(seed={"secrets": [{"name": "db/password", "value": "s3cret"}]}):
            # The KMS instance client sends everything that is not instance crypto to the shared gateway.
            client = Client(open_api_config=Config(**config))
            key_id = client.create_key(models.CreateKeyRequest()).body.key_metadata.key_id
            assert client.describe_key(models.DescribeKeyRequest(key_id=key_id)).body.key_metadata.key_id == key_id
            secret = client.get_secret_value_by_shared_endpoint(models.GetSecretValueRequest(secret_name="db/password"))
            assert secret.body.secret_data == "s3cret"
            # Without an instance config the transfer client uses the shared gateway for crypto too.
            transfer = TransferClient(config=Config(**config))
            blob = transfer.encrypt(models.EncryptRequest(key_id=key_id, plaintext="aGk=")).body.ciphertext_blob
            assert transfer.decrypt(models.DecryptRequest(ciphertext_blob=blob)).body.plaintext == "aGk="
    """,
}


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    """This checkout's wheel, built once for all xdist workers of the session."""
    shared = tmp_path_factory.getbasetemp().parent / "alikms-wheel"
    shared.mkdir(exist_ok=True)
    with open(shared / "lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = sorted(shared.glob("alikms-*.whl"))
        if not built:
            # Built from a copy: setuptools writes build/ and *.egg-info beside the sources it builds.
            source = shutil.copytree(ROOT, shared / "source", ignore=shutil.ignore_patterns(
                ".git", ".venv", "build", "*.egg-info", "__pycache__", "node_modules", ".kms-data", ".bench"))
            subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(shared), str(source)],
                           check=True, capture_output=True, timeout=300)
            built = sorted(shared.glob("alikms-*.whl"))
    return built[0]


@pytest.mark.parametrize("client", CLIENTS, ids=lambda c: c.split("==")[0])
def test_installs_beside_the_client_and_mocks_it(client, wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                              "--disable-pip-version-check", str(wheel), client],
                             capture_output=True, text=True, timeout=600)
    assert install.returncode == 0, install.stderr[-3000:]
    script = COMMON + textwrap.dedent(CLIENTS[client])
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ALIBABA_CLOUD_"))}
    run = subprocess.run([str(python), "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-3000:]
