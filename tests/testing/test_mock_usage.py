"""How a test uses mock_kms: context manager, decorator (sync, async, class, bare), the pytest
fixture and its marker; fresh or kept state; strict mode with keys and policies the test creates."""

from __future__ import annotations

import asyncio
import os

import pytest
from alibabacloud_kms20160120 import models
from alibabacloud_kms20160120.client import Client
from alibabacloud_tea_openapi.exceptions import ClientException
from alibabacloud_tea_openapi.models import Config

from alikms.testing import MockKms, _service, mock_kms
from alikms.testing import mock as mock_module


def tea(ak: str = "LTAI5tWhatever", secret: str = "whatever", region: str = "cn-hangzhou") -> Client:
    return Client(Config(access_key_id=ak, access_key_secret=secret, region_id=region))


def key_count(client: Client | None = None) -> int:
    return (client or tea()).list_keys(models.ListKeysRequest()).body.total_count


def test_every_entry_starts_fresh():
    double = mock_kms()
    with double:
        tea().create_key(models.CreateKeyRequest())
        assert key_count() == 1
    assert double.calls[-1].action == "ListKeys"  # still readable after leaving
    with double:
        assert key_count() == 0


def test_keep_state_shares_one_state_across_entries():
    double = mock_kms(keep_state=True)
    with double:
        tea().create_key(models.CreateKeyRequest())
    with double:
        assert key_count() == 1
        double.reset()
        assert key_count() == 0


shared = mock_kms(keep_state=True)


@shared
def test_decorated_tests_can_share_one_double_first():
    tea().create_alias(models.CreateAliasRequest(
        alias_name="alias/shared", key_id=tea().create_key(models.CreateKeyRequest()).body.key_metadata.key_id))


@shared
def test_decorated_tests_can_share_one_double_second():
    assert tea().describe_key(models.DescribeKeyRequest(key_id="alias/shared")).body.key_metadata.key_state == "Enabled"


@mock_kms
def test_bare_decorator():
    assert key_count() == 0
    assert mock_module.active() is not None


def test_decorator_on_an_async_function():
    @mock_kms(region="cn-shenzhen")
    async def scenario():
        client = tea(region="cn-shenzhen")
        key = await client.create_key_async(models.CreateKeyRequest())
        return key.body.key_metadata.arn

    assert asyncio.run(scenario()).startswith("acs:kms:cn-shenzhen:1234567890123456:key/")
    assert mock_module.active() is None


@mock_kms
class TestDecoratedClass:
    def test_one(self):
        assert key_count() == 0
        tea().create_key(models.CreateKeyRequest())

    def test_two(self):
        assert key_count() == 0  # each test method gets its own state


def test_the_fixture(mock_kms):
    assert isinstance(mock_kms, MockKms)
    tea().create_key(models.CreateKeyRequest())
    assert [c.action for c in mock_kms.calls] == ["CreateKey"]


@pytest.mark.mock_kms(region="cn-beijing", account_id="9999888877776666", now="2024-03-01T00:00:00Z")
def test_the_fixture_takes_options_from_the_marker(mock_kms):
    key = tea(region="cn-beijing").create_key(models.CreateKeyRequest()).body.key_metadata
    assert key.arn.startswith("acs:kms:cn-beijing:9999888877776666:key/")
    assert key.creation_date == "2024-03-01T00:00:00Z"
    assert mock_kms.endpoint == "kms.cn-beijing.aliyuncs.com"


def test_nested_doubles_answer_innermost_first():
    with mock_kms() as outer:
        tea().create_key(models.CreateKeyRequest())
        with mock_kms() as inner:
            assert key_count() == 0
        assert key_count() == 1
    assert len(inner.calls) == 1 and [c.action for c in outer.calls] == ["CreateKey", "ListKeys"]
    with outer, pytest.raises(RuntimeError):
        with outer:
            pass


def test_sqlite_state_lives_in_a_temporary_file_removed_on_exit():
    double = mock_kms(store="sqlite")
    with double:
        tea().create_key(models.CreateKeyRequest())
        assert key_count() == 1
        tmp = double._state.tmp
        assert os.path.exists(os.path.join(tmp, "kms.sqlite3"))
    assert not os.path.exists(tmp)


def test_bad_options_are_refused_before_anything_is_patched():
    with pytest.raises(ValueError):
        with mock_kms(store="postgres"):
            pass
    assert mock_module.active() is None and not _service._patches and not _service.stack


def test_default_credential_variables_are_the_doubles_while_it_runs(monkeypatch):
    from alibabacloud_credentials.utils import auth_util

    # Should the chain get past the variables, it must fail here, not ask the ECS metadata service.
    monkeypatch.setattr(auth_util, "environment_ecs_metadata_disabled", "true")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "real-looking-key")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "sts-token")
    monkeypatch.delenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", raising=False)
    before = (auth_util.environment_access_key_id, auth_util.environment_security_token)
    with mock_kms(strict=True) as kms:
        assert os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"] == kms.access_key_id
        assert os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"] == kms.access_key_secret
        assert "ALIBABA_CLOUD_SECURITY_TOKEN" not in os.environ
        # A client on the default credential chain (no keys in its Config) signs with them.
        from alibabacloud_credentials.client import Client as Credentials

        client = Client(Config(credential=Credentials(), region_id="cn-hangzhou"))
        assert client.list_keys(models.ListKeysRequest()).body.total_count == 0
    assert os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"] == "real-looking-key"
    assert os.environ["ALIBABA_CLOUD_SECURITY_TOKEN"] == "sts-token"
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" not in os.environ
    assert (auth_util.environment_access_key_id, auth_util.environment_security_token) == before


# --- strict mode ----------------------------------------------------------------------------------

def test_any_key_works_by_default():
    with mock_kms() as kms:
        for ak in ("LTAI5tOne", "LTAI5tTwo"):
            tea(ak=ak, secret="no-one-checks").create_key(models.CreateKeyRequest())
        assert key_count(tea(ak="LTAI5tThree")) == 2  # all one account
        assert kms.calls[0].code == "OK"


def test_strict_mode_checks_signatures():
    with mock_kms(strict=True) as kms:
        assert key_count(tea(kms.access_key_id, kms.access_key_secret)) == 0
        with pytest.raises(ClientException) as err:
            key_count(tea(kms.access_key_id, "wrong secret"))
        assert err.value.code == "SignatureDoesNotMatch"
        with pytest.raises(ClientException) as err:
            key_count(tea("LTAI5tUnknownKey", "whatever"))
        assert err.value.code == "InvalidAccessKeyId.NotFound"


def test_strict_mode_checks_signatures_after_the_clock_moved():
    # Signatures carry the client's real time; the service's clock is the test's.
    with mock_kms(strict=True) as kms:
        kms.advance(days=400)
        assert key_count(tea(kms.access_key_id, kms.access_key_secret)) == 0


def test_strict_mode_enforces_the_policies_of_keys_the_test_creates():
    policy = {"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["kms:Encrypt", "kms:DescribeKey"],
                                             "Resource": "acs:kms:*:*:key/*"}]}
    with mock_kms(strict=True) as kms:
        admin = tea(kms.access_key_id, kms.access_key_secret)
        key_id = admin.create_key(models.CreateKeyRequest()).body.key_metadata.key_id
        app = tea(*kms.create_access_key(policy))
        blob = app.encrypt(models.EncryptRequest(key_id=key_id, plaintext="aGk=")).body.ciphertext_blob
        with pytest.raises(ClientException) as err:
            app.decrypt(models.DecryptRequest(ciphertext_blob=blob))
        assert (err.value.code, err.value.status_code) == ("Forbidden.NoPermission", 403)
        assert admin.decrypt(models.DecryptRequest(ciphertext_blob=blob)).body.plaintext == "aGk="


def test_strict_mode_keeps_accounts_apart():
    with mock_kms(strict=True) as kms:
        mine = tea(kms.access_key_id, kms.access_key_secret)
        key_id = mine.create_key(models.CreateKeyRequest()).body.key_metadata.key_id
        other = tea(*kms.create_access_key(account_id="5555666677778888"))
        assert key_count(other) == 0
        with pytest.raises(ClientException) as err:
            other.describe_key(models.DescribeKeyRequest(key_id=key_id))
        assert err.value.code == "Forbidden.KeyNotFound"
        theirs = other.create_key(models.CreateKeyRequest()).body.key_metadata
        assert theirs.arn.startswith("acs:kms:cn-hangzhou:5555666677778888:")


def test_strict_mode_source_ip_conditions():
    policy = {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "kms:*", "Resource": "*",
                                             "Condition": {"IpAddress": {"acs:SourceIp": ["10.0.0.0/8"]}}}]}
    with mock_kms(strict=True, source_ip="10.1.2.3") as kms:
        assert key_count(tea(*kms.create_access_key(policy))) == 0
    with mock_kms(strict=True, source_ip="192.0.2.1") as kms:
        with pytest.raises(ClientException) as err:
            key_count(tea(*kms.create_access_key(policy)))
        assert err.value.code == "Forbidden.NoPermission"
