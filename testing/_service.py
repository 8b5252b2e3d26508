"""One instance of the service inside a test process, and the seams through which it answers.

`State` is what `mock_kms` starts fresh for a test: a store (memory, or a temporary SQLite file), a
configuration per region served (a random root key, the double's own access key), a clock the test
moves, the requests it answered. `install()` plugs the innermost active state into the service
(`runtime.get_config` / `get_store`, `clock.now`, `auth.authenticate`) and into the clients'
transports (`_transport`); `uninstall()` puts every original back. A request reaches the state
through `runner.app.dispatch`, the runner's own routing to the action functions.

Requests are served for the region their host names, so the configuration differs per request: each
thread notes the one it is serving, and `runtime.get_config` returns it.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson

from alikms.shared import accounts, auth, clock, errors, runtime, versions, wire
from alikms.shared import secrets as secret_values
from alikms.shared import seed as seeds
from alikms.shared.config import Config
from alikms.shared.store import Store

from . import _timers, _transport

DEFAULT_REGION = "cn-hangzhou"
DEFAULT_ACCOUNT = "1234567890123456"
ACCESS_KEY_ID = "LTAI5tMockKmsAccessKey01"
_KMS_HOST = re.compile(r"^kms(?:-vpc)?\.([a-z0-9][a-z0-9-]*)\.aliyuncs\.com$")
_INSTANCE_GATEWAY = ".cryptoservice.kms.aliyuncs.com"
_REFUSED = "refused"

stack: list[State] = []  # the states of the active doubles; the last one answers
_local = threading.local()  # per thread: (state, config of the region being served)
_hosts: dict[str, str | None] = {}  # netloc -> region, _REFUSED or None
_patches: list[tuple[object, str, object]] = []


@dataclass(frozen=True, slots=True)
class Call:
    """One request the double answered: the action, HTTP status, result code and region."""

    action: str
    status: int
    code: str
    region: str


def region_of(host: str) -> str | None:
    """The region a KMS endpoint host (`kms.<region>.aliyuncs.com`, `kms-vpc.<region>...`, any
    port) serves, or None for any other host."""
    found = _region(host)
    return None if found is _REFUSED else found


def _region(netloc: str) -> str | None:
    found = _hosts.get(netloc, "")
    if found != "":
        return found
    host = netloc.rpartition("@")[2].lower()
    host = host if host.startswith("[") else host.partition(":")[0]
    m = _KMS_HOST.match(host)
    found = m.group(1) if m else (_REFUSED if host.endswith(_INSTANCE_GATEWAY) else None)
    if len(_hosts) < 4096:
        _hosts[netloc] = found
    return found


class Clock:
    """The service's time: wall time plus what the test added, or a frozen start plus that."""

    __slots__ = ("start", "offset")

    def __init__(self, start: float | None) -> None:
        self.start, self.offset = start, 0.0

    def now(self) -> float:
        return (time.time() if self.start is None else self.start) + self.offset


class State:
    """One instance of the service: its store, its configuration per region, its clock."""

    def __init__(self, options: dict, seed: seeds.Seed | None) -> None:
        self.options = options
        self.clock = Clock(epoch(options["now"]) if options["now"] is not None else None)
        self.root_keys = {"r1": os.urandom(32)}
        self.secret = secrets.token_urlsafe(24)
        self.configs: dict[str, Config] = {}
        self.default = self.config(options["region"])
        self.calls: list[Call] = []
        self.tmp: str | None = None
        self.store: Store
        if options["store"] == "sqlite":
            from alikms.shared.store.sqlite import SqliteStore

            self.tmp = tempfile.mkdtemp(prefix="alikms-mock-")
            self.store = SqliteStore(os.path.join(self.tmp, "kms.sqlite3"), nonce_slots=4096, nonce_dir="data")
        elif options["store"] == "memory":
            from alikms.shared.store.memory import MemoryStore

            self.store = MemoryStore()
        else:
            raise ValueError("store: 'memory' or 'sqlite'")
        start = int(self.clock.now())
        self.fired_until = dict.fromkeys(_timers.JOBS, start)
        if seed is not None:
            seeds.apply(seed, self.store, self.default, self.clock.now())

    def config(self, region: str) -> Config:
        cfg = self.configs.get(region)
        if cfg is None:
            o = self.options
            cfg = self.configs[region] = Config(
                region=region, account_id=o["account_id"], access_key_id=ACCESS_KEY_ID, access_key_secret=self.secret,
                root_keys=self.root_keys, store=o["store"], data_dir=None, ots_endpoint="", ots_instance="",
                ots_access_key_id="", ots_access_key_secret="", ots_security_token="", auto_open=True,
                clock_skew=900, max_body=128 * 1024, key_quota=200, alias_quota=300, secret_quota=1000,
                audit_stdout=False, nonce_slots=None, nonce_dir=None)
        return cfg

    def close(self) -> None:
        self.store.close()
        if self.tmp is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            self.tmp = None

    def serve(self, method: str, parts, headers, body: bytes, region: str) -> _transport.Answer:
        from alikms.runner import app

        cfg = self.configs.get(region) or self.config(region)
        _local.serving = (self, cfg)
        # requests' CaseInsensitiveDict walks its items slowly; its lower_items do not
        pairs = list(headers.lower_items() if hasattr(headers, "lower_items") else headers.items())
        if "host" not in headers:  # the classic SDK leaves Host to the HTTP library
            pairs.append(("host", parts.netloc))
        try:
            req = app.build_request(method, parts.path or "/", parts.query, pairs, body, self.options["source_ip"])
        except errors.KmsError as exc:
            result, action = wire.error_response(exc, app.new_request_id(), parts.netloc), ""
        else:
            result = app.dispatch(req)
            action = req.headers.get("x-acs-action") or app.route(req)
        payload = result["body"].encode() if not result.get("isBase64Encoded") else _b64(result["body"])
        status = result["statusCode"]
        code = "OK" if status < 400 else str(orjson.loads(payload).get("Code", ""))
        self.calls.append(Call(action, status, code, region))
        out = dict(result["headers"])
        out["content-length"] = str(len(payload))
        return status, out, payload

    def authenticate(self, req, query, params, cfg, store, now):
        if self.options["strict"]:
            # Signatures carry the client's wall-clock time, whatever the test did to the service's.
            return _real_authenticate(req, query, params, cfg, store, time.time())
        return auth.Caller(cfg.account_id, auth.claimed_access_key(req, params) or ACCESS_KEY_ID, req.source_ip, None)

    def run_job(self, job, tick: int) -> dict:
        from alikms.runner import app, server

        _local.serving = (self, self.default)
        return app.function_handler(job.module)(json.dumps(server.timer_event(job, tick)).encode(), None)


# --- the seams the state plugs into ----------------------------------------------------------------

_real_authenticate = auth.authenticate


def _serving() -> tuple[State, Config]:
    """The state answering now, and the configuration of the region this thread is serving."""
    state = stack[-1]
    pair = getattr(_local, "serving", None)
    return pair if pair is not None and pair[0] is state else (state, state.default)


def _config() -> Config:
    return _serving()[1]


def _store():
    return stack[-1].store


def _now() -> float:
    return stack[-1].clock.now()


def _authenticate(req, query, params, cfg, store, now):
    return stack[-1].authenticate(req, query, params, cfg, store, now)


def _serve(method: str, url: str, headers, body: bytes) -> _transport.Answer | None:
    parts = urlsplit(url)
    region = _region(parts.netloc)
    if region is None or not stack:
        return None
    if region is _REFUSED:
        raise _transport.NotServed(f"mock_kms does not serve dedicated KMS instances ({parts.netloc})")
    return stack[-1].serve(method, parts, headers, body, region)


def _is_kms_host(host: str) -> bool:
    return region_of(host) is not None


def install() -> None:
    """Patch the client transports and the service's seams (once, for the outermost double)."""
    try:
        for owner, name, value in ((runtime, "get_config", _config), (runtime, "get_store", _store),
                                   (clock, "now", _now), (auth, "authenticate", _authenticate)):
            _patches.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)
        _transport.install(_serve, _is_kms_host)
    except BaseException:
        uninstall()
        raise


def uninstall() -> None:
    _transport.uninstall()
    while _patches:
        owner, name, value = _patches.pop()
        setattr(owner, name, value)


def forget_cached_state() -> None:
    """Drop what warm instances remember between calls (material of key versions, opened accounts,
    secret values): another double may reuse the same key ids with other material."""
    accounts._opened.clear()
    versions._material.clear()
    versions._loaded.clear()
    secret_values._values.clear()


def epoch(when) -> float:
    if isinstance(when, (int, float)):
        return float(when)
    if isinstance(when, str):
        when = datetime.datetime.fromisoformat(when.replace("Z", "+00:00"))
    if isinstance(when, datetime.datetime):
        if when.tzinfo is None:
            when = when.replace(tzinfo=datetime.timezone.utc)
        return when.timestamp()
    raise TypeError("a time is epoch seconds, ISO 8601 text or a datetime")


def _b64(text: str) -> bytes:
    return base64.b64decode(text)
