"""Configuration, read from the environment once per warm instance (never at import time).

Function Compute hands a function its configuration as environment variables, and the local runner
does the same, so this is the only place that reads them. In local mode (a data directory is set)
missing secrets are generated into the data directory with mode 0600, so one command gives a
working service; a deployment sets them explicitly.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

DEFAULT_REGION = "cn-hangzhou"
CREDENTIALS_FILE = "credentials.json"
ROOT_KEY_FILE = "root.key"


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


def _write_private(path: Path, data: str) -> None:
    """Create `path` with `data`, mode 0600, all at once: written under a temporary name and linked
    into place, so a concurrent reader sees no file or the whole file, never an empty one.
    FileExistsError if another process created it first."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(data)
        os.link(tmp, path)
    finally:
        os.unlink(tmp)


def _bootstrap_credentials(data_dir: Path | None) -> dict:
    """The local runner's first admin key: from the environment, else from (or into) the data dir."""
    env = os.environ
    if env.get("KMS_ACCESS_KEY_ID") and env.get("KMS_ACCESS_KEY_SECRET"):
        return {
            "AccessKeyId": env["KMS_ACCESS_KEY_ID"],
            "AccessKeySecret": env["KMS_ACCESS_KEY_SECRET"],
            "AccountId": env.get("KMS_ACCOUNT_ID", ""),
        }
    if data_dir is None:
        return {"AccessKeyId": "", "AccessKeySecret": "", "AccountId": env.get("KMS_ACCOUNT_ID", "")}
    path = data_dir / CREDENTIALS_FILE
    if not path.exists():
        creds = {
            "AccessKeyId": "LTAI" + secrets.token_hex(10),
            "AccessKeySecret": secrets.token_urlsafe(24),
            "AccountId": env.get("KMS_ACCOUNT_ID") or str(10**15 + secrets.randbelow(9 * 10**15)),
        }
        try:
            _write_private(path, json.dumps(creds))
        except FileExistsError:  # another worker won the race; read what it wrote
            pass
    return json.loads(path.read_text())


def root_key_file(data_dir: Path | None) -> Path | None:
    """The root key file of a local instance (created on first use), or None when KMS_ROOT_KEY is set."""
    if os.environ.get("KMS_ROOT_KEY") or data_dir is None:
        return None
    path = data_dir / ROOT_KEY_FILE
    if not path.exists():
        try:
            _write_private(path, "r1:" + base64.b64encode(secrets.token_bytes(32)).decode())
        except FileExistsError:
            pass
    return path


def _root_keys(data_dir: Path | None) -> dict[str, bytes]:
    path = root_key_file(data_dir)
    return parse_root_keys(path.read_text() if path else os.environ.get("KMS_ROOT_KEY", ""))


def parse_root_keys(raw: str) -> dict[str, bytes]:
    """Root keys by id from `base64` or `id:base64[,id:base64...]`; the first one wraps new data."""
    keys: dict[str, bytes] = {}
    for part in filter(None, (p.strip() for p in raw.strip().split(","))):
        kid, _, b64 = part.rpartition(":")
        key = base64.b64decode(b64, validate=True)
        if len(key) != 32:
            raise ValueError("each root key must be 32 bytes (base64)")
        keys[kid or "r1"] = key
    if not keys:
        raise ValueError("no root key: set KMS_ROOT_KEY or a data directory")
    return keys


@functools.cache
def get_config() -> Config:
    env = os.environ
    data_dir = Path(env["KMS_DATA_DIR"]).resolve() if env.get("KMS_DATA_DIR") else None
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    creds = _bootstrap_credentials(data_dir)
    store = env.get("KMS_STORE", "sqlite" if data_dir is not None else "tablestore")
    return Config(
        region=env.get("KMS_REGION", DEFAULT_REGION),
        account_id=env.get("KMS_ACCOUNT_ID") or creds["AccountId"] or "1000000000000001",
        access_key_id=creds["AccessKeyId"],
        access_key_secret=creds["AccessKeySecret"],
        root_keys=_root_keys(data_dir),
        store=store,
        data_dir=data_dir,
        ots_endpoint=env.get("OTS_ENDPOINT", ""),
        ots_instance=env.get("OTS_INSTANCE", ""),
        # On Function Compute the function role's temporary keys arrive as ALIBABA_CLOUD_*.
        ots_access_key_id=env.get("OTS_ACCESS_KEY_ID") or env.get("ALIBABA_CLOUD_ACCESS_KEY_ID", ""),
        ots_access_key_secret=env.get("OTS_ACCESS_KEY_SECRET") or env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET", ""),
        ots_security_token=env.get("OTS_SECURITY_TOKEN") or env.get("ALIBABA_CLOUD_SECURITY_TOKEN", ""),
        auto_open=env.get("KMS_AUTO_OPEN", "true").lower() == "true",
        clock_skew=int(env.get("KMS_CLOCK_SKEW", "900")),
        max_body=int(env.get("KMS_MAX_BODY", str(128 * 1024))),
        key_quota=int(env.get("KMS_KEY_QUOTA", "200")),
        alias_quota=int(env.get("KMS_ALIAS_QUOTA", "300")),
        secret_quota=int(env.get("KMS_SECRET_QUOTA", "1000")),
        audit_stdout=env.get("KMS_AUDIT_STDOUT", "true").lower() == "true",
        nonce_slots=int(env["KMS_NONCE_SLOTS"]) if env.get("KMS_NONCE_SLOTS") else None,
        nonce_dir=env.get("KMS_NONCE_DIR") or None,
        log_level=env.get("KMS_LOG_LEVEL", "info").lower(),
        audit_fail_open=env.get("KMS_AUDIT_FAIL_OPEN", "false").lower() == "true",
        audit_rotate_bytes=int(env.get("KMS_AUDIT_ROTATE_BYTES", str(64 << 20))),
        audit_digest_records=int(env.get("KMS_AUDIT_DIGEST_RECORDS", "1000")),
        audit_digest_seconds=int(env.get("KMS_AUDIT_DIGEST_SECONDS", "60")),
        metrics_host=env.get("KMS_METRICS_HOST", "127.0.0.1"),
        metrics_port=int(env.get("KMS_METRICS_PORT", "9464")),
    )
