"""Configuration: one settings model, read from the environment once per warm instance (never at
import time).

Function Compute hands a function its configuration as environment variables, and the local runner
does the same. `Settings` declares every variable once, with its type and bounds, and is the only
reader of the environment, with one deliberate exception: the Tablestore credentials, which Function
Compute rotates under a warm instance, are read again on each Tablestore request
(`ots_credentials`, used by the store's credentials provider). A value that does not validate
stops the service at start with a `ConfigError` naming the variable, never echoing the value (it
may be a secret). `alikms create-tables` reads only the Tablestore part (`TablestoreSettings`).

`Config` is what an instance runs with: the settings resolved against its data directory. In local
mode (a data directory is set) missing secrets are generated into the data directory with mode
0600, so one command gives a working service; a deployment sets them explicitly.

Why a plain pydantic model and not pydantic-settings: reading a dozen variables needs no more than
`model_validate` over the ones that are set, and pydantic-settings' import is not small: its main
module imports asyncio, argparse, dotenv and its cloud secret sources at module level, all of it paid
by every Function Compute cold start (the configuration is read on each instance's first event) for
features alikms never uses. `read_settings` does the one thing it was used for: each field's
`validation_alias` is its variable, read case-sensitively, an empty value counted as unset.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator, model_validator

from . import localfiles

DEFAULT_REGION = "cn-hangzhou"
DEFAULT_ACCOUNT = "1000000000000001"
CREDENTIALS_FILE = "credentials.json"
ROOT_KEY_FILE = "root.key"
# Alibaba Cloud account ids (UIDs) are 16 decimal digits. ASCII digits only: `\d` would also take
# other scripts' digits, and an id ends up in ARNs, store keys and the audit trail.
_ACCOUNT_ID = re.compile(r"[0-9]{16}")
_ROOT_KEY_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# (access key id, secret, security token) variables of Tablestore, in order of preference. Function
# Compute puts the function role's temporary keys in ALIBABA_CLOUD_*; OTS_* lets a deployment
# override them. Each id is paired with the secret and token of its own family: a static OTS_* key
# must not carry FC's STS token.
OTS_CREDENTIAL_VARIABLES = (
    ("OTS_ACCESS_KEY_ID", "OTS_ACCESS_KEY_SECRET", "OTS_SECURITY_TOKEN"),
    ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"),
)


class ConfigError(Exception):
    """The configuration cannot work; the message says which variable or file and why."""


def check_account_id(value: str) -> str:
    """`value` if it is an Alibaba Cloud account id (16 digits), else ValueError saying so."""
    if not isinstance(value, str) or not _ACCOUNT_ID.fullmatch(value):
        raise ValueError("an account id is 16 digits (an Alibaba Cloud UID, e.g. 1234567890123456)")
    return value


def ots_credentials(env: Mapping[str, str]) -> tuple[str, str, str]:
    """(id, secret, token) of the first variable family in `env` with both an id and a secret; token
    may be "". All empty if none is complete."""
    for id_var, secret_var, token_var in OTS_CREDENTIAL_VARIABLES:
        if env.get(id_var) and env.get(secret_var):
            return env[id_var], env[secret_var], env.get(token_var) or ""
    return "", "", ""


def _var(name: str, default, **bounds):
    return Field(default, validation_alias=name, **bounds)


class TablestoreSettings(BaseModel):
    """The Tablestore variables: all that `alikms create-tables` needs. Read with `read_settings`."""

    # Fields are filled by their alias (the variable) only; read_settings passes nothing else.
    model_config = ConfigDict(extra="ignore", frozen=True)

    ots_endpoint: str = _var("OTS_ENDPOINT", "")
    ots_instance: str = _var("OTS_INSTANCE", "")  # derived from the endpoint when unset
    ots_key_id: str = _var("OTS_ACCESS_KEY_ID", "")
    ots_key_secret: SecretStr = _var("OTS_ACCESS_KEY_SECRET", SecretStr(""))
    ots_token: SecretStr = _var("OTS_SECURITY_TOKEN", SecretStr(""))
    role_key_id: str = _var("ALIBABA_CLOUD_ACCESS_KEY_ID", "")
    role_key_secret: SecretStr = _var("ALIBABA_CLOUD_ACCESS_KEY_SECRET", SecretStr(""))
    role_token: SecretStr = _var("ALIBABA_CLOUD_SECURITY_TOKEN", SecretStr(""))

    def credentials(self) -> tuple[str, str, str]:
        """The Tablestore credentials these settings name (`ots_credentials` over the same variables)."""
        return ots_credentials({
            "OTS_ACCESS_KEY_ID": self.ots_key_id, "OTS_ACCESS_KEY_SECRET": self.ots_key_secret.get_secret_value(),
            "OTS_SECURITY_TOKEN": self.ots_token.get_secret_value(),
            "ALIBABA_CLOUD_ACCESS_KEY_ID": self.role_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.role_key_secret.get_secret_value(),
            "ALIBABA_CLOUD_SECURITY_TOKEN": self.role_token.get_secret_value()})


class Settings(TablestoreSettings):
    """Every variable of the service (README, Configuration)."""

    data_dir: Path | None = _var("KMS_DATA_DIR", None)  # local mode: SQLite, credentials, root key, audit
    store: Literal["sqlite", "tablestore"] | None = _var("KMS_STORE", None)  # default: sqlite with a data dir
    region: str = _var("KMS_REGION", DEFAULT_REGION, pattern=r"^[a-z]{2,}(-[a-z0-9]+)+$", max_length=64)
    account_id: str | None = _var("KMS_ACCOUNT_ID", None)
    access_key_id: str | None = _var("KMS_ACCESS_KEY_ID", None, pattern=r"^[A-Za-z0-9]{1,128}$")
    access_key_secret: SecretStr | None = _var("KMS_ACCESS_KEY_SECRET", None)
    root_key: SecretStr | None = _var("KMS_ROOT_KEY", None)
    auto_open: bool = _var("KMS_AUTO_OPEN", True)  # the bootstrap account starts with KMS opened
    # Seconds a request timestamp may differ from now: nonces are kept this long, and beyond a day the
    # window is a replay risk rather than a tolerance (and past ~2**31 their expiry overflows).
    clock_skew: int = _var("KMS_CLOCK_SKEW", 900, ge=1, le=86400)
    # Bytes; a runner holds a body this large in memory. 2 MB is more than any legal request (and than
    # a Function Compute event may carry).
    max_body: int = _var("KMS_MAX_BODY", 128 * 1024, ge=1, le=2 << 20)
    key_quota: int = _var("KMS_KEY_QUOTA", 200, ge=0)  # documented quota: 200 keys per account and region
    alias_quota: int = _var("KMS_ALIAS_QUOTA", 300, ge=0)  # documented quota: 300
    secret_quota: int = _var("KMS_SECRET_QUOTA", 1000, ge=0)
    audit_stdout: bool = _var("KMS_AUDIT_STDOUT", True)  # FC ships stdout to its log service
    # A nonce hashes to a window of 32 slots (store/nonces.py), so a table needs more than that.
    nonce_slots: int | None = _var("KMS_NONCE_SLOTS", None, ge=64, le=1 << 30)
    nonce_dir: str | None = _var("KMS_NONCE_DIR", None)  # a directory, or "data"; default /dev/shm
    log_level: str = _var("KMS_LOG_LEVEL", "info")  # operational JSON logs on stderr (shared/log.py)
    audit_fail_open: bool = _var("KMS_AUDIT_FAIL_OPEN", False)  # serve on when the trail cannot be written
    audit_rotate_bytes: int = _var("KMS_AUDIT_ROTATE_BYTES", 64 << 20, ge=1)  # a new audit file past this
    audit_digest_records: int = _var("KMS_AUDIT_DIGEST_RECORDS", 1000, ge=1)  # a digest after this many...
    audit_digest_seconds: int = _var("KMS_AUDIT_DIGEST_SECONDS", 60, ge=1)  # ...or this long after the last
    metrics_host: str = _var("KMS_METRICS_HOST", "127.0.0.1")  # the runner's metrics and health listener
    metrics_port: int = _var("KMS_METRICS_PORT", 9464, ge=0, le=65535)  # 0: none

    @field_validator("account_id")
    @classmethod
    def _account(cls, value: str | None) -> str | None:
        return None if value is None else check_account_id(value)

    @field_validator("log_level")
    @classmethod
    def _log_level(cls, value: str) -> str:
        if value.lower() not in ("debug", "info", "warning", "error", "critical"):
            raise ValueError("a log level is debug, info, warning, error or critical")
        return value.lower()

    @field_validator("root_key")
    @classmethod
    def _root_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            parse_root_keys(value.get_secret_value())
        return value

    @model_validator(mode="after")
    def _key_pair(self) -> Settings:
        if (self.access_key_id is None) != (self.access_key_secret is None):
            raise ValueError("set KMS_ACCESS_KEY_ID and KMS_ACCESS_KEY_SECRET together, or neither")
        return self


def _variables(model: type[TablestoreSettings] = Settings) -> tuple[str, ...]:
    """The environment variables `model` reads, in declaration order."""
    return tuple(f.validation_alias for f in model.model_fields.values())  # type: ignore[misc]


_Model = TypeVar("_Model", bound=TablestoreSettings)


def read_settings(model: type[_Model], env: Mapping[str, str] | None = None) -> _Model:
    """`model` read from the environment (or `env`); ConfigError naming each bad variable (not its value).

    Variable names are case-sensitive, and unset and empty mean the same (a template may export a
    variable as ""), so an empty variable gets the field's default."""
    env = os.environ if env is None else env
    try:
        return model.model_validate({name: env[name] for name in _variables(model) if env.get(name)})
    except ValidationError as exc:
        lines = [f"  {'.'.join(map(str, e['loc'])) or 'configuration'}: {e['msg']}" for e in exc.errors()]
        # `from None`: the ValidationError's own text repeats each input, which may be a secret.
        raise ConfigError("invalid configuration:\n" + "\n".join(lines)) from None


@dataclass(frozen=True)
class Config:
    region: str
    account_id: str
    access_key_id: str
    access_key_secret: str
    root_keys: dict[str, bytes]  # root key id -> 32 bytes; the first entry wraps new material
    store: str  # "sqlite" | "tablestore"
    data_dir: Path | None
    ots_endpoint: str
    ots_instance: str
    ots_access_key_id: str
    ots_access_key_secret: str
    ots_security_token: str
    auto_open: bool  # the bootstrap account starts with KMS opened (local convenience)
    clock_skew: int  # seconds a request timestamp may differ from now
    max_body: int  # bytes
    key_quota: int  # keys per account and region (documented quota: 200)
    alias_quota: int  # aliases per account and region (documented quota: 300)
    secret_quota: int  # secrets per account and region
    audit_stdout: bool  # audit records as JSON lines on stdout (FC ships them to its log service)
    nonce_slots: int | None  # size of a local instance's shared nonce table (store/nonces.py)
    nonce_dir: str | None  # where it lives: a directory, "data" (the data directory), None: /dev/shm if any
    root_key_path: Path | None = None  # the local root key file (None: KMS_ROOT_KEY, or no data directory)
    log_level: str = "info"  # operational JSON logs on stderr (shared/log.py): debug, info, warning, error
    audit_fail_open: bool = False  # serve on when the audit trail cannot be written (development only)
    audit_rotate_bytes: int = 64 << 20  # start a new audit file past this size (and at each UTC day)
    audit_digest_records: int = 1000  # an authenticated digest after this many records...
    audit_digest_seconds: int = 60  # ...or at the first record this long after the last digest
    metrics_host: str = "127.0.0.1"  # the local runner's metrics and health listener
    metrics_port: int = 9464  # 0: no listener

    @property
    def primary_root_key_id(self) -> str:
        return next(iter(self.root_keys))


def _read_json(path: Path) -> dict:
    try:
        return json.loads(localfiles.read_private(path))
    except ValueError:
        raise ConfigError(f"{path} is not valid JSON") from None


def _bootstrap_credentials(s: Settings, data_dir: Path | None) -> dict:
    """The local runner's first admin key: from the environment, else from (or into) the data dir."""
    if s.access_key_id and s.access_key_secret is not None:
        return {"AccessKeyId": s.access_key_id, "AccessKeySecret": s.access_key_secret.get_secret_value(),
                "AccountId": s.account_id or ""}
    if data_dir is None:
        return {"AccessKeyId": "", "AccessKeySecret": "", "AccountId": s.account_id or ""}
    path = data_dir / CREDENTIALS_FILE
    if not path.exists():
        creds = {
            "AccessKeyId": "LTAI" + secrets.token_hex(10),
            "AccessKeySecret": secrets.token_urlsafe(24),
            "AccountId": s.account_id or str(10**15 + secrets.randbelow(9 * 10**15)),
        }
        try:
            localfiles.write_private(path, json.dumps(creds).encode())
        except FileExistsError:  # another worker won the race; read what it wrote
            pass
    creds = _read_json(path)
    try:
        check_account_id(creds.get("AccountId") or DEFAULT_ACCOUNT)
    except ValueError as exc:
        raise ConfigError(f"{path}: AccountId: {exc}") from None
    return creds


def root_key_file(data_dir: Path | None, from_env: bool = False) -> Path | None:
    """The root key file of a local instance (created on first use), or None when KMS_ROOT_KEY is
    set (`from_env`) or there is no data directory."""
    if from_env or data_dir is None:
        return None
    path = data_dir / ROOT_KEY_FILE
    if not path.exists():
        try:
            localfiles.write_private(path, ("r1:" + base64.b64encode(secrets.token_bytes(32)).decode()).encode())
        except FileExistsError:
            pass
    return path


def read_root_key_file(path: Path) -> dict[str, bytes]:
    try:
        return parse_root_keys(localfiles.read_private(path).decode())
    except ValueError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def parse_root_keys(raw: str) -> dict[str, bytes]:
    """Root keys by id from `base64` or `id:base64[,id:base64...]`; the first one wraps new data."""
    keys: dict[str, bytes] = {}
    for part in filter(None, (p.strip() for p in raw.strip().split(","))):
        kid, _, b64 = part.rpartition(":")
        kid = kid or "r1"
        if not _ROOT_KEY_ID.fullmatch(kid):  # it is written into every wrapped blob (one length byte)
            raise ValueError("a root key id is 1 to 64 letters, digits, '.', '_' or '-'")
        try:
            key = base64.b64decode(b64, validate=True)
        except ValueError:
            raise ValueError(f"root key {kid} is not base64") from None
        if len(key) != 32:
            raise ValueError("each root key must be 32 bytes (base64)")
        keys[kid] = key
    if not keys:
        raise ValueError("no root key: set KMS_ROOT_KEY or a data directory")
    return keys


@functools.cache
def get_config() -> Config:
    """The configuration of this instance, read once (`get_config.cache_clear()` reads it again)."""
    s = read_settings(Settings)
    data_dir = None
    if s.data_dir is not None:
        localfiles.check_links(s.data_dir)  # before anything is made through them
        s.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        localfiles.check_data_dir(s.data_dir)
        data_dir = s.data_dir.resolve()
    creds = _bootstrap_credentials(s, data_dir)
    key_file = root_key_file(data_dir, from_env=s.root_key is not None)
    if key_file is not None:
        root_keys = read_root_key_file(key_file)
    elif s.root_key is not None:
        root_keys = parse_root_keys(s.root_key.get_secret_value())
    else:
        raise ConfigError("no root key: set KMS_ROOT_KEY or a data directory (KMS_DATA_DIR)")
    ots_id, ots_secret, ots_token = s.credentials()
    return Config(
        region=s.region,
        account_id=s.account_id or creds["AccountId"] or DEFAULT_ACCOUNT,
        access_key_id=creds["AccessKeyId"],
        access_key_secret=creds["AccessKeySecret"],
        root_keys=root_keys,
        store=s.store or ("sqlite" if data_dir is not None else "tablestore"),
        data_dir=data_dir,
        ots_endpoint=s.ots_endpoint,
        ots_instance=s.ots_instance,
        ots_access_key_id=ots_id,
        ots_access_key_secret=ots_secret,
        ots_security_token=ots_token,
        auto_open=s.auto_open,
        clock_skew=s.clock_skew,
        max_body=s.max_body,
        key_quota=s.key_quota,
        alias_quota=s.alias_quota,
        secret_quota=s.secret_quota,
        audit_stdout=s.audit_stdout,
        nonce_slots=s.nonce_slots,
        nonce_dir=s.nonce_dir,
        root_key_path=key_file,
        log_level=s.log_level,
        audit_fail_open=s.audit_fail_open,
        audit_rotate_bytes=s.audit_rotate_bytes,
        audit_digest_records=s.audit_digest_records,
        audit_digest_seconds=s.audit_digest_seconds,
        metrics_host=s.metrics_host,
        metrics_port=s.metrics_port,
    )
