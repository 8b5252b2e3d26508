"""The secret actions driven through the unmodified official SDKs against a local runner: Tea in its
default ACS3 mode (SecretData travels in a form body, wire.md §2.2), Tea with signature_algorithm='v2'
and the classic SDK (RPC v1, SecretData in the query). Values with spaces, `@ + & = % / ? # ~ *` and
non-ASCII characters must come back byte for byte; errors surface with their code and status.

Then Alibaba's caching client `alibabacloud-secretsmanager-client-v2` (2.0.0): its builder's
`add_config(open_api_models.Config)` hands a complete Tea Config (endpoint, protocol, AccessKey) to
the KMS client it builds, so it can read from the runner over plain http. Its other ways of naming a
region (add_region, add_region_info, RegionInfo(endpoint=...), the `cache_client_region_id`
environment variable or secretsmanager.properties) always build the client with
`const.DEFAULT_PROTOCOL` = "https" (DefaultSecretManagerClient.__build_kms_client)."""

from __future__ import annotations

import base64
import json
import os
import string
import uuid

import pytest

from tests.sdk_client import ApiError
from tests.sdk_client import Sdk as Client

CLIENTS = ("tea", "tea_v2", "classic")
TRICKY = "p@ss w0rd+&=%25/?#~*'()!\"$,;:[]{}<>|\\^` é中文😀 \t end"
OTHER = "second: a=b&c=d+e f%20g @home 你好"


@pytest.fixture(params=CLIENTS)
def client(request, server) -> Client:
    return Client(request.param, server)


def fails(client: Client, action: str, code: str, status: int, **params) -> ApiError:
    with pytest.raises(ApiError) as info:
        client(action, **params)
    assert (info.value.code, info.value.status) == (code, status), info.value
    return info.value


def test_secret_round_trip_through_each_sdk(client, server):
    name = f"sdk/{client.kind}/{uuid.uuid4().hex[:8]}"
    arn = f"acs:kms:{server.region}:{server.account_id}:secret/{name}"
    tags = json.dumps([{"TagKey": "team", "TagValue": "a b@c"}])
    body = client("CreateSecret", SecretName=name, VersionId="v1", SecretData=TRICKY, Description="d é", Tags=tags)
    assert (body["Arn"], body["SecretName"], body["VersionId"], body["SecretType"]) == (arn, name, "v1", "Generic")
    got = client("GetSecretValue", SecretName=name)
    assert got["SecretData"] == TRICKY and got["VersionId"] == "v1" and got["SecretDataType"] == "text"
    assert got["VersionStages"]["VersionStage"] == ["ACSCurrent"]
    body = client("PutSecretValue", SecretName=name, VersionId="v2", SecretData=OTHER,
                  VersionStages='["ACSCurrent","Extra"]')
    assert sorted(body["VersionStages"]["VersionStage"]) == ["ACSCurrent", "Extra"]
    assert client("GetSecretValue", SecretName=arn)["SecretData"] == OTHER
    assert client("GetSecretValue", SecretName=name, VersionStage="ACSPrevious")["SecretData"] == TRICKY
    assert client("GetSecretValue", SecretName=name, VersionId="v1")["SecretData"] == TRICKY
    listed = client("ListSecretVersionIds", SecretName=name, IncludeDeprecated="true", PageSize=10)
    assert listed["TotalCount"] == 2 and listed["PageSize"] == 10
    assert {v["VersionId"]: sorted(v["VersionStages"]["VersionStage"]) for v in listed["VersionIds"]["VersionId"]} == \
        {"v1": ["ACSPrevious"], "v2": ["ACSCurrent", "Extra"]}
    client("UpdateSecretVersionStage", SecretName=name, VersionStage="Extra", RemoveFromVersion="v2",
           MoveToVersion="v1")
    assert client("GetSecretValue", SecretName=name, VersionStage="Extra")["VersionId"] == "v1"
    desc = client("DescribeSecret", SecretName=name, FetchTags="true")
    assert (desc["Arn"], desc["Description"], desc["SecretType"]) == (arn, "d é", "Generic")
    assert desc["Tags"]["Tag"] == [{"TagKey": "team", "TagValue": "a b@c"}] and desc["EncryptionKeyId"]
    assert "SecretData" not in desc
    # The idempotent repeat and the refused rewrite of a version id.
    assert client("PutSecretValue", SecretName=name, VersionId="v2", SecretData=OTHER)["VersionId"] == "v2"
    fails(client, "PutSecretValue", "Rejected.ResourceExist", 409, SecretName=name, VersionId="v2", SecretData=TRICKY)
    # Deletion window, refusal inside it, restore.
    body = client("DeleteSecret", SecretName=name, RecoveryWindowInDays="7")
    assert body["SecretName"] == name and body["PlannedDeleteTime"].endswith("Z")
    assert client("DescribeSecret", SecretName=name)["PlannedDeleteTime"] == body["PlannedDeleteTime"]
    fails(client, "GetSecretValue", "Rejected.ResourceInDeleteWindow", 409, SecretName=name)
    assert client("RestoreSecret", SecretName=name)["SecretName"] == name
    fails(client, "RestoreSecret", "Rejected.ResourceInUse", 409, SecretName=name)
    assert client("GetSecretValue", SecretName=name)["SecretData"] == OTHER
    client("DeleteSecret", SecretName=name, ForceDeleteWithoutRecovery="true")
    fails(client, "DescribeSecret", "Forbidden.ResourceNotFound", 404, SecretName=name)


def test_binary_and_large_values_through_each_sdk(client):
    name = f"bin-{client.kind}-{uuid.uuid4().hex[:8]}"
    raw = bytes(range(256)) + os.urandom(64)
    data = base64.b64encode(raw).decode()
    assert "+" in data and "/" in data  # the characters form and query encodings must keep apart
    client("CreateSecret", SecretName=name, VersionId="b1", SecretData=data, SecretDataType="binary")
    got = client("GetSecretValue", SecretName=name)
    assert got["SecretDataType"] == "binary" and base64.b64decode(got["SecretData"]) == raw
    fails(client, "PutSecretValue", "InvalidParameter", 400, SecretName=name, VersionId="b2",
          SecretData="not base64!", SecretDataType="binary")
    client("PutSecretValue", SecretName=name, VersionId="b3", SecretData=base64.b64encode(raw[::-1]).decode(),
           SecretDataType="binary")
    assert base64.b64decode(client("GetSecretValue", SecretName=name)["SecretData"]) == raw[::-1]
    listed = client("ListSecretVersionIds", SecretName=name)
    assert [v["VersionId"] for v in listed["VersionIds"]["VersionId"]] == ["b1", "b3"]


@pytest.mark.parametrize("unit", ["x", "€"])
def test_largest_value_through_each_sdk(client, unit):
    """30720 bytes is the documented limit, whatever the characters. The classic SDK sends SecretData
    in the query, where 10240 x `€` becomes 92,160 percent-encoded characters."""
    name = f"big-{client.kind}-{uuid.uuid4().hex[:8]}"
    big = unit * (30720 // len(unit.encode()))
    assert len(big.encode()) == 30720
    client("CreateSecret", SecretName=name, VersionId="v1", SecretData=big)
    assert client("GetSecretValue", SecretName=name)["SecretData"] == big
    fails(client, "PutSecretValue", "InvalidParameter", 400, SecretName=name, VersionId="v2", SecretData=big + "x")
    client("PutSecretValue", SecretName=name, VersionId="v3", SecretData=big[::-1])
    assert client("GetSecretValue", SecretName=name)["VersionId"] == "v3"


def test_errors_surface_with_code_and_status(client):
    fails(client, "GetSecretValue", "Forbidden.ResourceNotFound", 404, SecretName="no-such-" + uuid.uuid4().hex)
    fails(client, "DescribeSecret", "Forbidden.ResourceNotFound", 404, SecretName="no-such-" + uuid.uuid4().hex)
    fails(client, "CreateSecret", "InvalidParameter", 400, SecretName="acs/reserved", VersionId="v", SecretData="d")
    name = f"dup-{client.kind}-{uuid.uuid4().hex[:8]}"
    client("CreateSecret", SecretName=name, VersionId="v", SecretData="d")
    fails(client, "CreateSecret", "Rejected.ResourceExist", 409, SecretName=name, VersionId="v", SecretData="d")
    fails(client, "GetSecretValue", "Forbidden.ResourceNotFound", 404, SecretName=name, VersionStage="Nope")
    fails(client, "DeleteSecret", "InvalidParameter", 400, SecretName=name, RecoveryWindowInDays="31")
    fails(client, "GetRandomPassword", "InvalidParameter", 400, PasswordLength="7")
    fails(client, "GetRandomPassword", "InvalidParameter", 400, ExcludeLowercase="true", ExcludeUppercase="true",
          ExcludeNumbers="true", ExcludePunctuation="true")


def test_random_password_through_each_sdk(client):
    assert len(client("GetRandomPassword")["RandomPassword"]) == 32
    got = client("GetRandomPassword", PasswordLength="40", ExcludePunctuation="true", ExcludeCharacters="abc",
                 RequireEachIncludedType="true")["RandomPassword"]
    assert len(got) == 40 and set(got) <= set(string.ascii_letters + string.digits) - set("abc")
    assert all(set(got) & set(kind) for kind in (string.ascii_lowercase, string.ascii_uppercase, string.digits))


# --- alibabacloud-secretsmanager-client-v2 ----------------------------------------------------------

@pytest.fixture
def no_secretsmanager_env(monkeypatch, tmp_path):
    """The caching client also reads its regions and credentials from the environment and from
    ./secretsmanager.properties: make sure neither is present."""
    for name in ("cache_client_region_id", "credentials_type", "credentials_access_key_id",
                 "credentials_access_secret"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)


def test_secretsmanager_caching_client_reads_through_the_runner(server, no_secretsmanager_env):
    from alibabacloud_secretsmanager_client_v2.secret_manager_cache_client_builder import (
        SecretManagerCacheClientBuilder,
    )
    from alibabacloud_secretsmanager_client_v2.service.default_secret_manager_client_builder import (
        BaseSecretManagerClientBuilder,
    )
    from alibabacloud_tea_openapi import models as open_api_models
    from alibabacloud_tea_openapi.exceptions import ClientException

    admin = Client("tea", server)
    name = f"cached/{uuid.uuid4().hex[:8]}"
    admin("CreateSecret", SecretName=name, VersionId="c1", SecretData=TRICKY)
    config = open_api_models.Config(access_key_id=server.access_key_id, access_key_secret=server.secret,
                                    endpoint=server.endpoint, protocol="http", region_id=server.region)
    secret_client = BaseSecretManagerClientBuilder.standard().add_config(config).build()
    cache = SecretManagerCacheClientBuilder.new_cache_client_builder(secret_client).build()
    try:
        info = cache.get_secret_info(name)
        assert (info.secret_name, info.version_id, info.secret_value, info.secret_data_type) \
            == (name, "c1", TRICKY, "text")
        assert cache.get_secret_value(name) == TRICKY
        admin("PutSecretValue", SecretName=name, VersionId="c2", SecretData=OTHER)
        assert cache.get_secret_value(name) == TRICKY  # served from the cache (TTL one hour)
        assert cache.refresh_now(name) is True
        assert cache.get_secret_value(name) == OTHER and cache.get_secret_info(name).version_id == "c2"
        with pytest.raises(ClientException) as info:
            cache.get_secret_value("no-such-" + uuid.uuid4().hex)
        assert (info.value.code, info.value.status_code) == ("Forbidden.ResourceNotFound", 404)
    finally:
        cache.close()


def test_secretsmanager_region_endpoint_route_is_https_only(server, no_secretsmanager_env, monkeypatch):
    """RegionInfo(endpoint=...) - here through the documented `cache_client_region_id` variable -
    reaches the runner's port, but always over https, which a plain-http endpoint cannot answer."""
    from alibabacloud_secretsmanager_client_v2.secret_manager_cache_client_builder import (
        SecretManagerCacheClientBuilder,
    )
    from alibabacloud_secretsmanager_client_v2.utils import const

    assert const.DEFAULT_PROTOCOL == "https"
    monkeypatch.setenv("cache_client_region_id", json.dumps([{"regionId": server.region, "endpoint": server.endpoint}]))
    monkeypatch.setenv("credentials_type", "ak")
    monkeypatch.setenv("credentials_access_key_id", server.access_key_id)
    monkeypatch.setenv("credentials_access_secret", server.secret)
    admin = Client("tea", server)
    name = f"https-only/{uuid.uuid4().hex[:8]}"
    admin("CreateSecret", SecretName=name, VersionId="h1", SecretData="unreachable over https")
    cache = SecretManagerCacheClientBuilder.new_client()
    try:
        with pytest.raises(Exception) as info:
            cache.get_secret_value(name)
        assert type(info.value).__name__ == "UnretryableException" and "SSLError" in str(info.value)
        assert f"HTTPSConnectionPool(host='127.0.0.1', port={server.port})" in str(info.value)
    finally:
        cache.close()
