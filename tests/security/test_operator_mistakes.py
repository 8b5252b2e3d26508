"""Operator mistakes: account ids that cannot exist, configuration that cannot work, and access-key
changes that must reach the very next request (alikms.shared.config, alikms.runner.admin,
alikms.shared.identity)."""

from __future__ import annotations

import base64
import json
import types

import pytest

from alikms.shared import identity
from alikms.shared.config import ConfigError, Settings, TablestoreSettings, get_config, read_settings
from tests import support
from tests.security.helpers import Tea, admin, allow, create_access_key, deny, policy, write_policy

BAD_ACCOUNTS = ["", "tenant-a", "../1234567890123456", "123456789012345", "12345678901234567",
                " 1234567890123456", "1234567890123456\n", "１２３４５６７８９０１２３４５６", "٠١٢٣٤٥٦٧٨٩٠١٢٣٤٥"]


def _keys(data_dir, env) -> dict:
    out = admin(data_dir, "access-key", "list", "--json", env=env).stdout
    return {row["AccessKeyId"]: row for row in map(json.loads, out.splitlines())}


@pytest.mark.parametrize("account", BAD_ACCOUNTS)
def test_admin_refuses_an_account_id_that_cannot_exist(tmp_path, account):
    env = {**support.os.environ, "KMS_ACCESS_KEY_ID": support.TEST_AK, "KMS_ACCESS_KEY_SECRET": support.TEST_SECRET,
           "KMS_ACCOUNT_ID": support.TEST_ACCOUNT}
    data = tmp_path / "data"
    proc = admin(data, "access-key", "create", "--account", account, "--json", env=env, check=False)
    assert proc.returncode == 2 and proc.stdout == ""  # no key printed
    assert "an account id is 16 digits" in proc.stderr and "Traceback" not in proc.stderr
    assert list(_keys(data, env)) == [support.TEST_AK]  # nothing was stored
    listed = admin(data, "access-key", "list", "--account", account, env=env, check=False)
    assert listed.returncode == 2 and "an account id is 16 digits" in listed.stderr


def test_admin_makes_keys_for_a_valid_account_and_the_default_one(tmp_path):
    env = {**support.os.environ, "KMS_ACCESS_KEY_ID": support.TEST_AK, "KMS_ACCESS_KEY_SECRET": support.TEST_SECRET,
           "KMS_ACCOUNT_ID": support.TEST_ACCOUNT}
    data = tmp_path / "data"
    other = json.loads(admin(data, "access-key", "create", "--account", "2222222222222222", "--json", env=env).stdout)
    default = json.loads(admin(data, "access-key", "create", "--json", env=env).stdout)
    assert (other["AccountId"], default["AccountId"]) == ("2222222222222222", support.TEST_ACCOUNT)


def test_identity_refuses_to_store_a_key_for_a_bad_account(local_env):
    from alikms.shared.store import get_store

    with pytest.raises(ValueError, match="16 digits"):
        identity.create(get_store(), get_config(), "", None, 0)


# --- configuration ---


@pytest.mark.parametrize("name, value, says", [
    ("KMS_ACCOUNT_ID", "tenant-a", "an account id is 16 digits"),
    ("KMS_CLOCK_SKEW", "abc", "Input should be a valid integer"),
    ("KMS_CLOCK_SKEW", "0", "greater than or equal to 1"),
    ("KMS_MAX_BODY", "-1", "greater than or equal to 1"),
    # test_config_bounds.py: values with no upper bound that could not work
    ("KMS_CLOCK_SKEW", "3000000000", "less than or equal to 86400"),
    ("KMS_CLOCK_SKEW", "86401", "less than or equal to 86400"),
    ("KMS_MAX_BODY", "1073741824", "less than or equal to 2097152"),
    ("KMS_KEY_QUOTA", "lots", "Input should be a valid integer"),
    ("KMS_NONCE_SLOTS", "10", "greater than or equal to 64"),
    ("KMS_STORE", "mysql", "'sqlite' or 'tablestore'"),
    ("KMS_AUTO_OPEN", "maybe", "valid boolean"),
    ("KMS_REGION", "cn hangzhou", "should match pattern"),
    ("KMS_ROOT_KEY", "r1:c2VjcmV0LXZhbHVl", "32 bytes"),
    ("KMS_ROOT_KEY", "r1:not base64!", "is not base64"),
])
def test_a_bad_variable_is_a_clear_error_naming_it(local_env, monkeypatch, name, value, says):
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        get_config()
    assert f"  {name}: " in str(info.value) and says in str(info.value)
    assert value not in str(info.value)  # a value may be a secret: never echoed


def test_a_key_pair_needs_both_halves(local_env, monkeypatch):
    monkeypatch.delenv("KMS_ACCESS_KEY_SECRET")
    with pytest.raises(ConfigError, match="set KMS_ACCESS_KEY_ID and KMS_ACCESS_KEY_SECRET together"):
        get_config()


def test_an_empty_variable_means_unset(local_env, monkeypatch):
    monkeypatch.setenv("KMS_STORE", "")
    monkeypatch.setenv("KMS_CLOCK_SKEW", "")
    cfg = get_config()
    assert (cfg.store, cfg.clock_skew) == ("sqlite", 900)


def test_configuration_is_read_once_until_cleared(local_env, monkeypatch):
    first = get_config()
    monkeypatch.setenv("KMS_CLOCK_SKEW", "60")
    assert get_config() is first and first.clock_skew == 900
    get_config.cache_clear()
    assert get_config().clock_skew == 60


def test_a_bad_account_in_credentials_json_is_refused(local_env, monkeypatch):
    from alikms.shared import localfiles

    for name in ("KMS_ACCESS_KEY_ID", "KMS_ACCESS_KEY_SECRET", "KMS_ACCOUNT_ID"):
        monkeypatch.delenv(name)
    local_env.mkdir()
    localfiles.write_private(local_env / "credentials.json", json.dumps(
        {"AccessKeyId": "LTAIx", "AccessKeySecret": "s", "AccountId": "tenant-a"}).encode())
    with pytest.raises(ConfigError, match="credentials.json: AccountId: an account id is 16 digits"):
        get_config()


@pytest.mark.parametrize("env, says", [
    ({"KMS_ACCOUNT_ID": "../1234567890123456"}, "KMS_ACCOUNT_ID: Value error, an account id is 16 digits"),
    ({"KMS_CLOCK_SKEW": "abc"}, "KMS_CLOCK_SKEW: Input should be a valid integer"),
])
def test_the_runner_and_admin_refuse_to_start_on_bad_configuration(tmp_path, env, says):
    with pytest.raises(RuntimeError) as info:
        support.start_server(tmp_path / "data", env)
    assert "alikms: invalid configuration:" in str(info.value) and says in str(info.value)
    assert "Traceback" not in str(info.value)
    proc = admin(tmp_path / "data", "access-key", "list", env={**support.os.environ, **env}, check=False)
    assert proc.returncode == 1 and says in proc.stderr and "Traceback" not in proc.stderr


def test_a_root_key_is_never_echoed_in_the_refusal(tmp_path):
    secret = base64.b64encode(b"s" * 31).decode()  # one byte short, and a secret all the same
    with pytest.raises(RuntimeError) as info:
        support.start_server(tmp_path / "data", {"KMS_ROOT_KEY": f"r1:{secret}"})
    assert "KMS_ROOT_KEY: Value error, each root key must be 32 bytes" in str(info.value)
    assert secret not in str(info.value)


def test_tablestore_settings_are_the_functions_and_create_tables_alike(monkeypatch):
    from alikms.deploy.tables import ots_settings

    for name in ("OTS_ENDPOINT", "OTS_INSTANCE", "OTS_ACCESS_KEY_ID", "OTS_ACCESS_KEY_SECRET", "OTS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTS_ENDPOINT", "https://inst.cn-hangzhou.ots.aliyuncs.com")
    monkeypatch.setenv("OTS_ACCESS_KEY_ID", "static-id")  # half a pair: the role's whole pair is used
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "role-id")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "role-secret")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "role-token")
    settings = read_settings(TablestoreSettings)
    assert settings.credentials() == ("role-id", "role-secret", "role-token")
    assert isinstance(read_settings(Settings), TablestoreSettings)
    made = ots_settings(instance="named")
    assert (made.ots_endpoint, made.ots_instance) == ("https://inst.cn-hangzhou.ots.aliyuncs.com", "named")
    assert (made.ots_access_key_id, made.ots_access_key_secret, made.ots_security_token) == settings.credentials()
    assert "role-secret" not in repr(settings)  # secrets stay out of a printed settings object


# --- access-key changes reach the next request ---


def test_a_change_to_an_access_key_reaches_the_very_next_request(server_factory):
    """Two workers, each holding the key in its cache; `alikms admin` changes it in another process;
    every request after the command returns sees the change, on whichever worker it lands (each
    call is a new connection, so the workers share them)."""
    srv = server_factory(workers=2)
    ak, secret = create_access_key(srv, policy(allow("kms:*", "*")))
    key_id = Tea(srv, ak, secret)("CreateKey")["KeyMetadata"]["KeyId"]

    def calls() -> list[tuple[int, str]]:
        answers = [support.call(srv, "DescribeKey", {"KeyId": key_id}, ak=ak, secret=secret) for _ in range(12)]
        return [(status, body.get("Code", body.get("KeyMetadata", {}).get("KeyId"))) for status, body in answers]

    assert calls() == [(200, key_id)] * 12  # both workers have looked the key up and cached it
    admin(srv.data_dir, "access-key", "disable", ak, env=srv.env)
    assert calls() == [(403, "Forbidden.AccessKey")] * 12
    admin(srv.data_dir, "access-key", "enable", ak, env=srv.env)
    assert calls() == [(200, key_id)] * 12
    denied = write_policy(srv.data_dir, policy(allow("kms:*", "*"), deny("kms:DescribeKey", "*")))
    admin(srv.data_dir, "policy", "set", ak, denied, env=srv.env)
    assert calls() == [(403, "Forbidden.NoPermission")] * 12
    admin(srv.data_dir, "policy", "set", ak, "--clear", env=srv.env)
    assert calls() == [(200, key_id)] * 12
    admin(srv.data_dir, "access-key", "delete", ak, env=srv.env)
    assert calls() == [(404, "InvalidAccessKeyId.NotFound")] * 12


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return self.now


def test_on_tablestore_a_change_applies_within_the_cache_window(local_env, tablestore_store, monkeypatch):
    """Tablestore keeps no shared change count (`changes` is None): a cached key is trusted for
    CACHE_SECONDS, the bound the README states, and not a moment longer."""
    clock = Clock()
    monkeypatch.setattr(identity, "time", types.SimpleNamespace(monotonic=clock.monotonic, time=clock.time))
    cfg = get_config()
    assert tablestore_store.changes("access_keys") is None
    ak, _ = identity.create(tablestore_store, cfg, support.TEST_ACCOUNT, None, clock.now)
    assert identity.lookup(tablestore_store, cfg, ak).enabled
    identity.update(tablestore_store, ak, status=identity.DISABLED)
    clock.now += identity.CACHE_SECONDS - 0.01
    assert identity.lookup(tablestore_store, cfg, ak).enabled  # still the cached copy
    clock.now += 0.02
    assert not identity.lookup(tablestore_store, cfg, ak).enabled


def test_on_sqlite_a_change_by_another_store_object_applies_at_once(local_env, monkeypatch):
    from alikms.shared.store.sqlite import SqliteStore

    clock = Clock()
    monkeypatch.setattr(identity, "time", types.SimpleNamespace(monotonic=clock.monotonic, time=clock.time))
    local_env.mkdir()
    cfg = get_config()
    mine, other = SqliteStore(local_env / "kms.sqlite3"), SqliteStore(local_env / "kms.sqlite3")  # two processes' worth
    ak, _ = identity.create(mine, cfg, support.TEST_ACCOUNT, None, clock.now)
    assert identity.lookup(mine, cfg, ak).enabled
    before = mine.changes("access_keys")
    other.put_new("keys", "scope", "k", {})  # a write to another table leaves the cache alone
    assert mine.changes("access_keys") == before
    identity.update(other, ak, status=identity.DISABLED)
    assert not identity.lookup(mine, cfg, ak).enabled  # no time passed
