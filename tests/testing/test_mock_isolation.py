"""What mock_kms leaves alone: hosts other than KMS (they pass through, here to a local listener that
stands in for the network), dedicated KMS instances (refused loudly), the process after the double
exits, even by an exception (every patch restored, the clients reach the network again), and the
tests of other xdist workers."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import aiohttp
import pytest
import requests
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.models import Config, OpenApiRequest, Params
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from aliyunsdkcore.vendored import requests as vendored_requests
from darabonba.exceptions import UnretryableException
from darabonba.runtime import RuntimeOptions

from alikms.shared import auth, clock, runtime
from alikms.testing import mock_kms

ANSWER = {"RequestId": "from-the-listener", "KeyId": "listener-key", "CiphertextBlob": "bGlzdGVuZXI=",
          "KeyVersionId": "v", "Plaintext": "bGlzdGVuZXI="}


@pytest.fixture
def listener():
    """A local HTTP server that answers everything with ANSWER and records (method, target, host);
    as an HTTP proxy it sees the absolute URL of the host the client meant."""
    seen: list[tuple[str, str, str]] = []

    class Handler(BaseHTTPRequestHandler):
        def _answer(self):
            length = int(self.headers.get("content-length") or 0)
            self.rfile.read(length)
            seen.append((self.command, self.path, self.headers.get("host", "")))
            body = json.dumps(ANSWER).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = _answer

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.seen = seen
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield server
    server.shutdown()
    server.server_close()


def tea(**settings) -> Client:
    return Client(Config(access_key_id="LTAI5tIso", access_key_secret="x", **settings))


def kms_through(listener) -> Client:
    """A client of the public KMS endpoint over plain HTTP, through the listener as its proxy: what
    reaches the listener would have gone to the network."""
    return tea(endpoint="kms.cn-hangzhou.aliyuncs.com", protocol="http", http_proxy=listener.url)


def test_other_products_pass_through(listener):
    ecs = tea(endpoint="ecs.cn-hangzhou.aliyuncs.com", protocol="http", http_proxy=listener.url)
    params = Params(action="DescribeInstances", version="2014-05-26", protocol="HTTP", pathname="/",
                    method="POST", auth_type="AK", style="RPC", req_body_type="formData", body_type="json")
    classic = AcsClient("LTAI5tIso", "x", "cn-hangzhou", proxy={"http": listener.url})
    ecs_request = CommonRequest(domain="ecs.cn-hangzhou.aliyuncs.com", version="2014-05-26",
                                action_name="DescribeRegions")
    ecs_request.set_protocol_type("http")
    with mock_kms() as kms:
        assert ecs.call_api(params, OpenApiRequest(), RuntimeOptions())["body"]["RequestId"] == "from-the-listener"
        oss = requests.get("http://my-bucket.oss-cn-hangzhou.aliyuncs.com/report.csv",
                           proxies={"http": listener.url}, timeout=10)
        assert oss.json()["RequestId"] == "from-the-listener"
        assert json.loads(classic.do_action_with_exception(ecs_request))["RequestId"] == "from-the-listener"
        local = tea(endpoint=listener.url.removeprefix("http://"), protocol="http")
        assert local.encrypt(models.EncryptRequest(key_id="k", plaintext="aGk=")).body.key_id == "listener-key"
        assert asyncio.run(local.encrypt_async(models.EncryptRequest(key_id="k", plaintext="aGk="))).body.key_id \
            == "listener-key"
        assert kms.calls == []
    hosts = [target.split("/")[2] if target.startswith("http") else host for _, target, host in listener.seen]
    assert hosts[:3] == ["ecs.cn-hangzhou.aliyuncs.com", "my-bucket.oss-cn-hangzhou.aliyuncs.com",
                         "ecs.cn-hangzhou.aliyuncs.com"]
    assert len(listener.seen) == 5


def test_a_dedicated_kms_instance_is_refused_not_let_out():
    instance = tea(endpoint="kst-hzz65f176a0ogplgq1234.cryptoservice.kms.aliyuncs.com")
    with mock_kms():
        with pytest.raises(UnretryableException, match="does not serve dedicated KMS instances"):
            instance.encrypt(models.EncryptRequest(key_id="k", plaintext="aGk="))
        with pytest.raises(vendored_requests.exceptions.ConnectionError):
            vendored_requests.get("https://kst-1.cryptoservice.kms.aliyuncs.com/")

        async def via_aiohttp():
            async with aiohttp.ClientSession() as session:
                await session.get("https://kst-1.cryptoservice.kms.aliyuncs.com/")

        with pytest.raises(aiohttp.ClientConnectionError):
            asyncio.run(via_aiohttp())


def originals() -> dict:
    from alibabacloud_secretsmanager_client_v2.service import default_secret_manager_client_builder as builder

    return {"requests": requests.adapters.HTTPAdapter.send, "vendored": vendored_requests.adapters.HTTPAdapter.send,
            "aiohttp": aiohttp.ClientSession._request, "ping": builder.ping_host, "config": runtime.get_config,
            "store": runtime.get_store, "clock": clock.now, "auth": auth.authenticate}


def test_an_exception_inside_leaves_no_patch_behind(listener):
    before = originals()
    client = kms_through(listener)
    with pytest.raises(ZeroDivisionError):
        with mock_kms():
            assert originals() != before
            key_id = client.create_key(models.CreateKeyRequest()).body.key_metadata.key_id
            client.encrypt(models.EncryptRequest(key_id=key_id, plaintext="aGk="))
            raise ZeroDivisionError  # the block leaves by an exception
    assert originals() == before
    assert listener.seen == []


def test_the_clients_reach_the_network_again_afterwards(listener):
    client = kms_through(listener)
    classic = AcsClient("LTAI5tIso", "x", "cn-hangzhou", proxy={"http": listener.url})
    request = CommonRequest(domain="kms.cn-hangzhou.aliyuncs.com", version="2016-01-20", action_name="ListKeys")
    request.set_protocol_type("http")

    @mock_kms
    def inside():
        assert client.list_keys(models.ListKeysRequest()).body.total_count == 0
        assert json.loads(classic.do_action_with_exception(request))["TotalCount"] == 0
        raise KeyError("the test failed inside the double")

    with pytest.raises(KeyError):
        inside()
    assert listener.seen == []
    assert client.encrypt(models.EncryptRequest(key_id="k", plaintext="aGk=")).body.key_id == "listener-key"
    out = asyncio.run(client.encrypt_async(models.EncryptRequest(key_id="k", plaintext="aGk=")))
    assert out.body.key_id == "listener-key"
    assert json.loads(classic.do_action_with_exception(request))["RequestId"] == "from-the-listener"
    assert [target.split("/")[2] for _, target, _ in listener.seen] == ["kms.cn-hangzhou.aliyuncs.com"] * 3


PARALLEL_TESTS = '''
import os, time
from pathlib import Path
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.models import Config

MEET = Path(os.environ["MEET_DIR"])


def wait_for(name):
    deadline = time.time() + 60
    while not (MEET / name).exists():
        assert time.time() < deadline, "the other worker never came"
        time.sleep(0.05)


def scenario(me, other, kms):
    client = Client(Config(access_key_id="LTAI5tX", access_key_secret="x", region_id="cn-hangzhou"))
    (MEET / f"{me}-in").touch()
    wait_for(f"{other}-in")  # both doubles are live now, in two worker processes
    key_id = client.create_key(models.CreateKeyRequest(description=me)).body.key_metadata.key_id
    client.create_alias(models.CreateAliasRequest(alias_name="alias/same-name", key_id=key_id))
    (MEET / f"{me}-made").touch()
    wait_for(f"{other}-made")
    assert client.list_keys(models.ListKeysRequest()).body.total_count == 1
    described = client.describe_key(models.DescribeKeyRequest(key_id="alias/same-name")).body.key_metadata
    assert described.description == me
    assert os.environ["PYTEST_XDIST_WORKER"] in ("gw0", "gw1")


def test_a(mock_kms):
    scenario("a", "b", mock_kms)


def test_b(mock_kms):
    scenario("b", "a", mock_kms)
'''


def test_parallel_xdist_workers_do_not_see_each_others_state(tmp_path):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "test_parallel.py").write_text(textwrap.dedent(PARALLEL_TESTS))
    (tmp_path / "meet").mkdir()
    import os

    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-n", "2", "-p", "no:cacheprovider",
                             "test_parallel.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "MEET_DIR": str(tmp_path / "meet")})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 passed" in result.stdout
