"""Every Alibaba KMS client in this environment, configured exactly as for the real cloud, reaches the
in-process service under mock_kms: region only, the public and the VPC endpoint, https, sync and
async, both signature schemes, and its own error types from the service's documented errors.
(`alibabacloud-kms-python-sdk` cannot share this environment; test_install.py runs it in its own.)"""

from __future__ import annotations

import asyncio
import json

import pytest
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config
from aliyunsdkcore.acs_exception.exceptions import ServerException
from aliyunsdkcore.client import AcsClient
from aliyunsdkcore.request import CommonRequest
from aliyunsdkkms.request.v20160120.DecryptRequest import DecryptRequest
from aliyunsdkkms.request.v20160120.DescribeKeyRequest import DescribeKeyRequest
from aliyunsdkkms.request.v20160120.EncryptRequest import EncryptRequest

from alikms.testing import mock_kms

AK, SECRET = "LTAI5tAnyAccessKeyAtAll", "any-secret-at-all"

TEA_CONFIGS = {
    "region only": {"region_id": "cn-hangzhou"},
    "public endpoint": {"endpoint": "kms.cn-hangzhou.aliyuncs.com"},
    "vpc endpoint": {"endpoint": "kms-vpc.cn-hangzhou.aliyuncs.com"},
    "vpc network": {"region_id": "cn-hangzhou", "network": "vpc"},
    "rpc v1 signature": {"region_id": "cn-hangzhou", "signature_algorithm": "v2"},
}


def tea(**settings) -> Client:
    return Client(Config(access_key_id=AK, access_key_secret=SECRET, **settings))


@pytest.mark.parametrize("settings", TEA_CONFIGS.values(), ids=TEA_CONFIGS.keys())
def test_tea_sdk_as_configured_for_the_cloud(settings):
    client = tea(**settings)
    with mock_kms() as kms:
        key_id = client.create_key(models.CreateKeyRequest(description="app")).body.key_metadata.key_id
        blob = client.encrypt(models.EncryptRequest(key_id=key_id, plaintext="aGVsbG8=",
                                                    encryption_context={"app": "a b/é"})).body.ciphertext_blob
        plain = client.decrypt(models.DecryptRequest(ciphertext_blob=blob, encryption_context={"app": "a b/é"}))
        assert plain.body.plaintext == "aGVsbG8=" and plain.body.key_id == key_id
        client.create_secret(models.CreateSecretRequest(secret_name="db/pw", version_id="v1",
                                                        secret_data="p@ss w0rd!*~'()é"))
        value = client.get_secret_value(models.GetSecretValueRequest(secret_name="db/pw")).body
        assert value.secret_data == "p@ss w0rd!*~'()é"
        assert value.version_stages.version_stage == ["ACSCurrent"]
        with pytest.raises(ClientException) as err:
            client.describe_key(models.DescribeKeyRequest(key_id="alias/nothing"))
        assert (err.value.code, err.value.status_code) == ("Forbidden.AliasNotFound", 404)
        assert err.value.request_id
    assert [c.action for c in kms.calls] == ["CreateKey", "Encrypt", "Decrypt", "CreateSecret", "GetSecretValue",
                                             "DescribeKey"]
    assert kms.calls[-1].code == "Forbidden.AliasNotFound" and kms.calls[0].region == "cn-hangzhou"


def test_tea_sdk_async_methods():
    client = tea(region_id="cn-shanghai")

    async def scenario():
        key = await client.create_key_async(models.CreateKeyRequest())
        key_id = key.body.key_metadata.key_id
        out = await client.encrypt_async(models.EncryptRequest(key_id=key_id, plaintext="YXN5bmM="))
        back = await client.decrypt_async(models.DecryptRequest(ciphertext_blob=out.body.ciphertext_blob))
        with pytest.raises(ClientException) as err:
            await client.encrypt_async(models.EncryptRequest(key_id=key_id, plaintext="not base64!"))
        return back.body.plaintext, err.value

    with mock_kms() as kms:
        plain, error = asyncio.run(scenario())
    assert plain == "YXN5bmM="
    assert (error.code, error.status_code) == ("InvalidParameter", 400)
    assert {c.region for c in kms.calls} == {"cn-shanghai"}


def test_sync_and_async_calls_share_one_service():
    client = tea(region_id="cn-hangzhou")
    with mock_kms():
        key_id = client.create_key(models.CreateKeyRequest()).body.key_metadata.key_id
        blob = asyncio.run(client.encrypt_async(models.EncryptRequest(key_id=key_id, plaintext="eA=="))).body
        assert client.decrypt(models.DecryptRequest(ciphertext_blob=blob.ciphertext_blob)).body.plaintext == "eA=="


def classic_call(client: AcsClient, request) -> dict:
    return json.loads(client.do_action_with_exception(request))


def test_classic_sdk_region_only():
    client = AcsClient(AK, SECRET, "cn-beijing")
    with mock_kms() as kms:
        create = CommonRequest(domain="kms.cn-beijing.aliyuncs.com", version="2016-01-20", action_name="CreateKey")
        create.set_method("POST")
        key_id = classic_call(client, create)["KeyMetadata"]["KeyId"]
        enc = EncryptRequest()
        enc.set_KeyId(key_id)
        enc.set_Plaintext("aGk=")
        enc.set_EncryptionContext(json.dumps({"purpose": "unit test"}))
        blob = classic_call(client, enc)["CiphertextBlob"]
        dec = DecryptRequest()
        dec.set_CiphertextBlob(blob)
        dec.set_EncryptionContext(json.dumps({"purpose": "unit test"}))
        assert classic_call(client, dec)["Plaintext"] == "aGk="
        missing = DescribeKeyRequest()
        missing.set_KeyId("0b1c2d3e-0000-4000-8000-000000000000")
        with pytest.raises(ServerException) as err:
            client.do_action_with_exception(missing)
        assert (err.value.get_error_code(), err.value.get_http_status()) == ("Forbidden.KeyNotFound", 404)
    assert {c.region for c in kms.calls} == {"cn-beijing"}


def test_classic_sdk_vpc_endpoint():
    client = AcsClient(AK, SECRET, "cn-hangzhou")
    with mock_kms() as kms:
        req = CommonRequest(domain="kms-vpc.cn-hangzhou.aliyuncs.com", version="2016-01-20",
                            action_name="DescribeRegions")
        regions = classic_call(client, req)["Regions"]["Region"]
        assert {"RegionId": "cn-hangzhou"} in regions
    assert kms.calls[0].action == "DescribeRegions"


def test_each_region_is_served_as_itself():
    hangzhou, shanghai = tea(region_id="cn-hangzhou"), tea(region_id="cn-shanghai")
    with mock_kms():
        key = hangzhou.create_key(models.CreateKeyRequest()).body.key_metadata
        assert key.arn.startswith("acs:kms:cn-hangzhou:")
        with pytest.raises(ClientException) as err:
            shanghai.describe_key(models.DescribeKeyRequest(key_id=key.key_id))
        assert err.value.code == "Forbidden.KeyNotFound"
        assert shanghai.list_keys(models.ListKeysRequest()).body.total_count == 0
        assert hangzhou.list_keys(models.ListKeysRequest()).body.total_count == 1


def secrets_client(*regions: str):
    from alibabacloud_secretsmanager_client_v2.service.default_secret_manager_client_builder import (
        DefaultSecretManagerClientBuilder,
    )

    client = DefaultSecretManagerClientBuilder().with_access_key(AK, SECRET).with_region(*regions).build()
    client.init()
    return client


@pytest.mark.parametrize("regions", [("cn-hangzhou",), ("cn-hangzhou", "cn-shanghai")], ids=["one", "two"])
def test_secrets_manager_client_resolves_its_own_endpoints(regions, monkeypatch):
    # With several regions it probes each endpoint (ping) before choosing: answered by the double,
    # never by a ping of the real host.
    from alibabacloud_secretsmanager_client_v2.utils import ping_utils

    pings = []

    def no_ping(command, **kwargs):
        pings.append(command)
        raise OSError("no ping in this test")

    monkeypatch.setattr(ping_utils, "subprocess", type("NoPing", (), {"PIPE": -1, "Popen": staticmethod(no_ping)}))
    with mock_kms() as kms:
        for region in regions:
            tea(region_id=region).create_secret(models.CreateSecretRequest(
                secret_name="app/token", version_id="v1", secret_data=f"token-{region}"))
        client = secrets_client(*regions)
        try:
            value = client.get_secret_value(models.GetSecretValueRequest(secret_name="app/token")).body.secret_data
        finally:
            client.close()
    assert value in {f"token-{r}" for r in regions}
    assert pings == []
    assert kms.calls[-1].action == "GetSecretValue" and kms.calls[-1].region in regions


def test_secrets_manager_cache_client():
    from alibabacloud_secretsmanager_client_v2.secret_manager_cache_client_builder import (
        SecretManagerCacheClientBuilder,
    )

    with mock_kms() as kms:
        tea(region_id="cn-hangzhou").create_secret(models.CreateSecretRequest(
            secret_name="db/password", version_id="v1", secret_data="s3cret"))
        client = secrets_client("cn-hangzhou")
        cache = SecretManagerCacheClientBuilder.new_cache_client_builder(client).build()
        try:
            assert cache.get_secret_info("db/password").secret_value == "s3cret"
            assert cache.get_secret_info("db/password").secret_value == "s3cret"  # from its cache
        finally:
            cache.close()
    assert [c.action for c in kms.calls].count("GetSecretValue") == 1
