"""`mock_kms`: the whole service in process, behind every Alibaba KMS client, for an application's tests.

    from alikms.testing import mock_kms

    with mock_kms() as kms:          # or @mock_kms on a test (sync or async), or the `mock_kms` fixture
        app.run()                    # its clients, configured for the real cloud, reach the double
        kms.advance(days=8)          # the service's clock moves; timer jobs that fall due run

Inside, a request that any installed client sends to `kms.<region>.aliyuncs.com` or
`kms-vpc.<region>.aliyuncs.com` is answered by the real service in this process: the same action
functions, validation, key states, cryptography, errors and policies as the runner, reached through
the runner's own routing (`runner.app.dispatch`). Only the socket is skipped (`_transport`). Each
region of the host is served as that region, with its own keys and secrets. Every other host passes
through untouched; a dedicated KMS instance (`*.cryptoservice.kms.aliyuncs.com`) is refused, so
nothing meant for the cloud leaves by accident.

State lives in memory (or, with `store="sqlite"`, in a temporary SQLite file) and is fresh every
time the double is entered, unless `keep_state=True`. Any access key works (like moto), all as the
account `kms.account_id`; with `strict=True` every request must carry a valid signature of a key the
double knows (`kms.access_key_id`/`kms.access_key_secret`, or one from `kms.create_access_key`) and
passes its policies. The process's `ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET` are set to the default
pair meanwhile, so clients on the default credential chain need no configuration either.

One double serves at a time: entering another (nested) makes it the one answering until it exits.
Leaving, by return or exception, puts back every patch and variable it changed.
"""

from __future__ import annotations

import datetime
import functools
import inspect
import json
import os
import re
import secrets
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

import orjson

from alikms.shared import accounts, auth, clock, errors, identity, runtime, versions, wire
from alikms.shared import secrets as secret_values
from alikms.shared import seed as seeds
from alikms.shared.config import Config

from . import _timers, _transport

DEFAULT_REGION = "cn-hangzhou"
DEFAULT_ACCOUNT = "1234567890123456"
ACCESS_KEY_ID = "LTAI5tMockKmsAccessKey01"
_KMS_HOST = re.compile(r"^kms(?:-vpc)?\.([a-z0-9][a-z0-9-]*)\.aliyuncs\.com$")
_INSTANCE_GATEWAY = ".cryptoservice.kms.aliyuncs.com"
_REFUSED = "refused"
_CREDENTIAL_ENV = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN")

_CREDENTIAL_MODULE = "alibabacloud_credentials.utils.auth_util"
_CREDENTIAL_ATTRIBUTES = ("environment_access_key_id", "environment_access_key_secret", "environment_security_token")

_active: list[MockKms] = []  # the double answering is the last one
_local = threading.local()  # per thread: (state, config of the region being served)
_hosts: dict[str, str | None] = {}  # netloc -> region, _REFUSED or None
_service_patches: list[tuple[object, str, object]] = []


@dataclass(frozen=True, slots=True)
class Call:
    """One request the double answered: the action, HTTP status, result code and region."""

    action: str
    status: int
    code: str
    region: str


class AccessKey(NamedTuple):
    access_key_id: str
    access_key_secret: str


def mock_kms(func=None, /, **options):
    """A `MockKms` with `options`; bare `@mock_kms` decorates a test function or class directly."""
    if func is not None:
        return MockKms(**options)(func)
    return MockKms(**options)


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


class _Clock:
    """The service's time: wall time plus what the test added, or a frozen start plus that."""

    __slots__ = ("start", "offset")

    def __init__(self, start: float | None) -> None:
        self.start, self.offset = start, 0.0

    def now(self) -> float:
        return (time.time() if self.start is None else self.start) + self.offset


class _State:
    """One instance of the service: its store, its configuration per region, its clock."""

    def __init__(self, options: dict, seed: seeds.Seed | None) -> None:
        self.options = options
        self.clock = _Clock(_epoch(options["now"]) if options["now"] is not None else None)
        self.root_keys = {"r1": os.urandom(32)}
        self.secret = secrets.token_urlsafe(24)
        self.configs: dict[str, Config] = {}
        self.default = self.config(options["region"])
        self.calls: list[Call] = []
        self.tmp: str | None = None
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
        self.fired_until = {name: start for name in _timers.JOBS}
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


class MockKms:
    """The double: a context manager, a decorator of sync and async tests (and test classes), and
    the object a test asks about the service (`advance`, `create_access_key`, `calls`...).

    Options: `seed` (a seed file, dict or `alikms.shared.seed.Seed`, loaded into every fresh state),
    `strict` (check signatures and policies), `region` (of entries and of `kms.endpoint`),
    `account_id`, `now` (freeze the clock at this instant: epoch, ISO text or datetime; default:
    wall time), `store` ("memory" or "sqlite"), `keep_state` (one state across entries),
    `source_ip` (what policies see as `acs:SourceIp`)."""

    def __init__(self, *, seed=None, strict: bool = False, region: str = DEFAULT_REGION,
                 account_id: str = DEFAULT_ACCOUNT, now=None, store: str = "memory", keep_state: bool = False,
                 source_ip: str = "127.0.0.1") -> None:
        self._seed = seeds.load(seed) if seed is not None else None
        self._options = {"strict": strict, "region": region, "account_id": account_id, "now": now, "store": store,
                         "source_ip": source_ip}
        self._keep_state = keep_state
        self._state: _State | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_chain: tuple | None = None

    # --- entering and leaving ---------------------------------------------------------------------

    def __enter__(self) -> MockKms:
        if self in _active:
            raise RuntimeError("this mock_kms is already active")
        _forget_cached_state()
        if self._state is None or not self._keep_state:
            if self._state is not None:
                self._state.close()
            self._state = _State(self._options, self._seed)
        if not _active:
            _install()
        _active.append(self)
        self._saved_env = {name: os.environ.get(name) for name in _CREDENTIAL_ENV}
        self._saved_chain = _credential_chain()
        self._use_default_credentials()
        return self

    def _use_default_credentials(self) -> None:
        values = (ACCESS_KEY_ID, self._live.secret, None)
        for name, value in zip(_CREDENTIAL_ENV, values):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        # alibabacloud-credentials reads these variables once, when it is imported; its default
        # chain would otherwise go on to the ECS metadata service.
        module = _credential_module()
        if module is not None:
            for attribute, value in zip(_CREDENTIAL_ATTRIBUTES, values):
                setattr(module, attribute, value)

    def __exit__(self, *exc_info) -> None:
        try:
            for name, value in self._saved_env.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
            module = _credential_module()
            if module is not None and self._saved_chain is not None:
                for attribute, value in zip(_CREDENTIAL_ATTRIBUTES, self._saved_chain):
                    setattr(module, attribute, value)
            if self in _active:
                _active.remove(self)
            if not _active:
                _uninstall()
            _forget_cached_state()
        finally:
            if not self._keep_state and self._state is not None and self._state.tmp is not None:
                self._state.close()

    def __call__(self, func):
        if inspect.isclass(func):
            for name, member in list(vars(func).items()):
                if name.startswith("test") and callable(member):
                    setattr(func, name, self(member))
            return func
        if inspect.iscoroutinefunction(func):
            @functools.wraps(func)
            async def run_async(*args, **kwargs):
                with self:
                    return await func(*args, **kwargs)

            return run_async

        @functools.wraps(func)
        def run(*args, **kwargs):
            with self:
                return func(*args, **kwargs)

        return run

    # --- what a test reads ------------------------------------------------------------------------

    @property
    def _live(self) -> _State:
        if self._state is None:
            raise RuntimeError("mock_kms has not been entered yet")
        return self._state

    @property
    def region(self) -> str:
        return self._options["region"]

    @property
    def account_id(self) -> str:
        return self._options["account_id"]

    @property
    def endpoint(self) -> str:
        """The public endpoint of the default region, as a client configured for the cloud uses."""
        return f"kms.{self.region}.aliyuncs.com"

    @property
    def access_key_id(self) -> str:
        return ACCESS_KEY_ID

    @property
    def access_key_secret(self) -> str:
        """The default key's secret (a new one for every fresh state; strict mode checks it)."""
        return self._live.secret

    @property
    def store(self):
        """The service's store (`alikms.shared.store.Store`), for tests that look underneath."""
        return self._live.store

    @property
    def calls(self) -> list[Call]:
        """Every request answered since the state was made, oldest first."""
        return self._live.calls

    @property
    def now(self) -> float:
        """The service's clock (epoch seconds)."""
        return self._live.clock.now()

    # --- what a test does -------------------------------------------------------------------------

    def advance(self, delta: datetime.timedelta | None = None, *, seconds: float = 0, minutes: float = 0,
                hours: float = 0, days: float = 0, weeks: float = 0) -> list[tuple[str, int, dict]]:
        """Move the service's clock forward and run every timer job tick that falls due on the way
        (rotation, deletion after the pending window, secret recovery windows, expiry of imported
        material), in time order. Returns (job, trigger time, job result) per run."""
        step = (delta or datetime.timedelta()) + datetime.timedelta(seconds=seconds, minutes=minutes, hours=hours,
                                                                     days=days, weeks=weeks)
        if step < datetime.timedelta():
            raise ValueError("the clock only moves forward")
        self._live.clock.offset += step.total_seconds()
        return self.run_timers()

    def travel_to(self, when) -> list[tuple[str, int, dict]]:
        """Move the service's clock to `when` (epoch, ISO text or datetime; not in its past) and run
        the timer jobs that fall due, as `advance` does."""
        target = _epoch(when)
        if target < self.now - 1e-6:
            raise ValueError("the clock only moves forward")
        return self.advance(seconds=max(0.0, target - self.now))

    def run_timers(self) -> list[tuple[str, int, dict]]:
        """Run the timer job ticks due by the service's time now (tests whose clock follows wall time)."""
        state = self._live
        return _timers.fire_due(state.store, state.fired_until, int(state.clock.now()), state.run_job)

    def create_access_key(self, policy: dict | str | list | None = None, *, account_id: str | None = None) -> AccessKey:
        """A new access key of `account_id` (default: the double's account; another account gets
        KMS opened). No policy: full access to its account; else a RAM policy (dict or JSON text)
        or a list of them, enforced in strict mode."""
        state = self._live
        account = account_id or self.account_id
        if account != self.account_id:
            try:
                accounts.open_service(state.store, state.default, account, state.clock.now())
            except errors.ForbiddenOpened:
                pass
        docs = None if policy is None else policy if isinstance(policy, list) else [policy]
        docs = None if docs is None else [json.loads(d) if isinstance(d, str) else d for d in docs]
        return AccessKey(*identity.create(state.store, state.default, account, docs, state.clock.now()))

    def seed(self, source) -> dict:
        """Load more seed data (a file, dict or Seed) into the live state."""
        state = self._live
        return seeds.apply(seeds.load(source), state.store, state.default, state.clock.now())

    def reset(self) -> None:
        """Throw the state away and start again (with the seed), as a fresh entry would."""
        if self._state is not None:
            self._state.close()
        _forget_cached_state()
        self._state = _State(self._options, self._seed)
        if self in _active:
            self._use_default_credentials()


# --- the seams the double plugs into --------------------------------------------------------------

_real_authenticate = auth.authenticate


def _serving() -> tuple[_State, Config]:
    """The state answering now, and the configuration of the region this thread is serving."""
    state = _active[-1]._live
    pair = getattr(_local, "serving", None)
    return pair if pair is not None and pair[0] is state else (state, state.default)


def _config() -> Config:
    return _serving()[1]


def _store():
    return _active[-1]._live.store


def _now() -> float:
    return _active[-1]._live.clock.now()


def _authenticate(req, query, params, cfg, store, now):
    return _active[-1]._live.authenticate(req, query, params, cfg, store, now)


def _serve(method: str, url: str, headers, body: bytes) -> _transport.Answer | None:
    parts = urlsplit(url)
    region = _region(parts.netloc)
    if region is None or not _active:
        return None
    if region is _REFUSED:
        raise _transport.NotServed(f"mock_kms does not serve dedicated KMS instances ({parts.netloc})")
    return _active[-1]._live.serve(method, parts, headers, body, region)


def _is_kms_host(host: str) -> bool:
    return region_of(host) is not None


def _install() -> None:
    """Patch the client transports and the service's seams (once, for the outermost double)."""
    try:
        for owner, name, value in ((runtime, "get_config", _config), (runtime, "get_store", _store),
                                   (clock, "now", _now), (auth, "authenticate", _authenticate)):
            _service_patches.append((owner, name, getattr(owner, name)))
            setattr(owner, name, value)
        _transport.install(_serve, _is_kms_host)
    except BaseException:
        _uninstall()
        raise


def _uninstall() -> None:
    _transport.uninstall()
    while _service_patches:
        owner, name, value = _service_patches.pop()
        setattr(owner, name, value)


def _credential_module():
    """alibabacloud-credentials' copy of the credential variables, if it is installed."""
    try:
        import importlib

        module = importlib.import_module(_CREDENTIAL_MODULE)
    except ImportError:
        return None
    return module if all(hasattr(module, a) for a in _CREDENTIAL_ATTRIBUTES) else None


def _credential_chain() -> tuple | None:
    module = _credential_module()
    return None if module is None else tuple(getattr(module, a) for a in _CREDENTIAL_ATTRIBUTES)


def _forget_cached_state() -> None:
    """Drop what warm instances remember between calls (material of key versions, opened accounts,
    secret values): another double may reuse the same key ids with other material."""
    accounts._opened.clear()
    versions._material.clear()
    versions._loaded.clear()
    secret_values._values.clear()


def _epoch(when) -> float:
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
    import base64

    return base64.b64decode(text)


def active() -> MockKms | None:
    """The double answering now, if any."""
    return _active[-1] if _active else None

