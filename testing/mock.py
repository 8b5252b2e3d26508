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
import importlib
import inspect
import json
import os
from typing import NamedTuple

from alikms.shared import accounts, errors, identity
from alikms.shared import seed as seeds

from . import _service, _timers
from ._service import ACCESS_KEY_ID, DEFAULT_ACCOUNT, DEFAULT_REGION, Call, region_of

__all__ = ["AccessKey", "Call", "MockKms", "active", "mock_kms", "region_of"]

_CREDENTIAL_ENV = ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN")
_CREDENTIAL_MODULE = "alibabacloud_credentials.utils.auth_util"
_CREDENTIAL_ATTRIBUTES = ("environment_access_key_id", "environment_access_key_secret", "environment_security_token")
_active: list[MockKms] = []  # the active doubles, outermost first


class AccessKey(NamedTuple):
    access_key_id: str
    access_key_secret: str


def mock_kms(func=None, /, **options):
    """A `MockKms` with `options`; bare `@mock_kms` decorates a test function or class directly."""
    if func is not None:
        return MockKms(**options)(func)
    return MockKms(**options)


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
        self._state: _service.State | None = None
        self._saved_env: dict[str, str | None] = {}
        self._saved_chain: tuple | None = None

    # --- entering and leaving ---------------------------------------------------------------------

    def __enter__(self) -> MockKms:
        if self in _active:
            raise RuntimeError("this mock_kms is already active")
        _service.forget_cached_state()
        if self._state is None or not self._keep_state:
            if self._state is not None:
                self._state.close()
            self._state = _service.State(self._options, self._seed)
        if not _active:
            _service.install()
        _active.append(self)
        _service.stack.append(self._state)
        self._saved_env = {name: os.environ.get(name) for name in _CREDENTIAL_ENV}
        self._saved_chain = _credential_chain()
        self._use_default_credentials()
        return self

    def _use_default_credentials(self) -> None:
        values = (ACCESS_KEY_ID, self._live.secret, None)
        for name, value in zip(_CREDENTIAL_ENV, values, strict=True):
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        # alibabacloud-credentials reads these variables once, when it is imported; its default
        # chain would otherwise go on to the ECS metadata service.
        module = _credential_module()
        if module is not None:
            for attribute, value in zip(_CREDENTIAL_ATTRIBUTES, values, strict=True):
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
                for attribute, value in zip(_CREDENTIAL_ATTRIBUTES, self._saved_chain, strict=True):
                    setattr(module, attribute, value)
            if self in _active and self._state is not None:  # (an active double has a state)
                _service.stack.remove(self._state)
                _active.remove(self)
            if not _active:
                _service.uninstall()
            _service.forget_cached_state()
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
    def _live(self) -> _service.State:
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
        target = _service.epoch(when)
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
        given = None if policy is None else policy if isinstance(policy, list) else [policy]
        docs = None if given is None else [json.loads(d) if isinstance(d, str) else d for d in given]
        return AccessKey(*identity.create(state.store, state.default, account, docs, state.clock.now()))

    def seed(self, source) -> dict:
        """Load more seed data (a file, dict or Seed) into the live state."""
        state = self._live
        return seeds.apply(seeds.load(source), state.store, state.default, state.clock.now())

    def reset(self) -> None:
        """Throw the state away and start again (with the seed), as a fresh entry would."""
        fresh = _service.State(self._options, self._seed)
        if self in _active and self._state is not None:
            stack = _service.stack
            stack[stack.index(self._state)] = fresh
        if self._state is not None:
            self._state.close()
        _service.forget_cached_state()
        self._state = fresh
        if self in _active:
            self._use_default_credentials()


def _credential_module():
    """alibabacloud-credentials' copy of the credential variables, if it is installed."""
    try:
        module = importlib.import_module(_CREDENTIAL_MODULE)
    except ImportError:
        return None
    return module if all(hasattr(module, a) for a in _CREDENTIAL_ATTRIBUTES) else None


def _credential_chain() -> tuple | None:
    module = _credential_module()
    return None if module is None else tuple(getattr(module, a) for a in _CREDENTIAL_ATTRIBUTES)


def active() -> MockKms | None:
    """The double answering now, if any."""
    return _active[-1] if _active else None

