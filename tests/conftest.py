"""Shared fixtures: a running local runner per test session (per xdist worker), and in-process
handler invocation against either store."""

from __future__ import annotations

import json
import logging
import os

import pytest

from tests import support


def pytest_configure(config):
    config.addinivalue_line("markers", "internal_failure_expected: the test injects a fault that the central "
                            "catch-all (shared/runtime.py) answers with InternalFailure; without this marker a "
                            "test during which the catch-all fires fails")
    # Small nonce tables (1 MB, not the serving default of 128 MB) for the many stores tests make,
    # in process and in the runners they start.
    from alikms.shared.store import nonces

    nonces.SLOTS = 1 << 16
    os.environ["KMS_NONCE_SLOTS"] = str(1 << 16)
    os.environ["KMS_NONCE_DIR"] = "data"  # beside each test's database, removed with it
    os.environ["KMS_METRICS_PORT"] = "0"  # no metrics listener in the runners tests start, unless a test asks


class _CatchAllWatch(logging.Handler):
    """Collects the central catch-all's log lines (`runtime.CATCH_ALL`): each is a 500 no input should cause."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.fired: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        from alikms.shared import runtime

        if record.msg == runtime.CATCH_ALL:
            self.fired.append(record.getMessage())


@pytest.fixture(autouse=True)
def no_catch_all(request):
    """Fail any in-process test during which the catch-all answered InternalFailure: it is a safety net,
    and every input is meant to get its documented answer before it. A test that injects a fault on
    purpose opts out with `@pytest.mark.internal_failure_expected`."""
    watch = _CatchAllWatch()
    logger = logging.getLogger("kms")
    logger.addHandler(watch)
    try:
        yield watch
    finally:
        logger.removeHandler(watch)
    if watch.fired and request.node.get_closest_marker("internal_failure_expected") is None:
        pytest.fail("the central catch-all answered InternalFailure: " + "; ".join(watch.fired[:3]))


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """One local runner (SQLite) shared by the SDK tests of this worker."""
    srv = support.start_server(tmp_path_factory.mktemp("kms-data"))
    yield srv
    srv.stop()


@pytest.fixture
def server_factory(tmp_path):
    """Start runners with custom environment; all are stopped after the test."""
    started = []

    def start(env=None, **kw):
        srv = support.start_server(tmp_path / f"data{len(started)}", env, **kw)
        started.append(srv)
        return srv

    yield start
    for srv in started:
        srv.stop()


def reset_caches() -> None:
    """Forget per-instance caches so each in-process test sees its own configuration."""
    from alikms.shared import accounts, identity, secrets, versions
    from alikms.shared.config import get_config
    from alikms.shared.store import get_store

    get_config.cache_clear()
    get_store.cache_clear()
    accounts._opened.clear()
    identity._cache.clear()
    versions._material.clear()
    versions._loaded.clear()
    secrets._values.clear()


@pytest.fixture
def local_env(tmp_path, monkeypatch):
    """Environment of a local instance (SQLite in tmp_path, test credentials)."""
    monkeypatch.setenv("KMS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("KMS_ACCESS_KEY_ID", support.TEST_AK)
    monkeypatch.setenv("KMS_ACCESS_KEY_SECRET", support.TEST_SECRET)
    monkeypatch.setenv("KMS_ACCOUNT_ID", support.TEST_ACCOUNT)
    for name in ("KMS_STORE", "KMS_ROOT_KEY", "KMS_REGION", "KMS_AUTO_OPEN"):
        monkeypatch.delenv(name, raising=False)
    reset_caches()
    yield tmp_path / "data"
    reset_caches()


def make_event(action: str, params: dict, method: str = "POST", **sign) -> bytes:
    """An API Gateway event carrying a correctly signed RPC v1 request."""
    query = support.sign_v1_params(action, params, support.TEST_AK, support.TEST_SECRET, method, **sign)
    return support.gateway_event(action, query, method)


@pytest.fixture
def invoke(local_env):
    """Call an action's FC handler in process: invoke("CreateKey", {...}) -> (status, body dict)."""
    import importlib

    from alikms.shared import registry

    def call(action: str, params: dict | None = None, **sign):
        spec = registry.action(action)
        handler = importlib.import_module(spec.module).handler
        result = handler(make_event(action, {k: str(v) for k, v in (params or {}).items()}, **sign), None)
        return result["statusCode"], json.loads(result["body"])

    return call


from tests.fakes.tablestore_fixtures import *  # noqa: E402, F403 - ots_backend, tablestore_store, ots_http


class Kms:
    """In-process access to the service on one store: call actions, fire timer jobs."""

    def __init__(self, store, call):
        self.store = store
        self.call = call

    def fire(self, job: str, when: float) -> dict:
        import importlib

        from alikms.shared import registry

        spec = next(j for j in registry.JOBS if j.name == job)
        return importlib.import_module(spec.module).handler(support.timer_event(job, when, spec.payload), None)


@pytest.fixture(params=["sqlite", "tablestore"])
def kms(request, local_env, invoke, monkeypatch):
    """The service in process on each store backend in turn (SQLite, then the Tablestore wire fake)."""
    if request.param == "tablestore":
        store = request.getfixturevalue("tablestore_store")
    else:
        from alikms.shared.store.sqlite import SqliteStore

        local_env.mkdir(parents=True, exist_ok=True)
        store = SqliteStore(local_env / "kms.sqlite3")
    monkeypatch.setattr("alikms.shared.runtime.get_store", lambda: store)
    return Kms(store, invoke)


@pytest.fixture
def new_store(kms, request):
    """Factory: another store object on the same data (same SQLite file / same Tablestore backend)."""
    made = []

    def make():
        from alikms.shared.store.sqlite import SqliteStore
        from alikms.shared.store.tablestore import TablestoreStore

        if isinstance(kms.store, SqliteStore):
            store = SqliteStore(kms.store._path)
        else:
            from alikms.testing.fake_tablestore import fake_client

            store = TablestoreStore(fake_client(request.getfixturevalue("ots_backend")))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()
