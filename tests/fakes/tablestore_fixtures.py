"""pytest fixtures for the Tablestore wire fake.

Use from a conftest with `from tests.fakes.tablestore_fixtures import *`:
* `ots_backend`      a fresh FakeTablestore (test-akid / test-secret, instance kmsfake); its
                     `inject(code, action=..., count=...)` answers OTSServerBusy, OTSTimeout... on demand;
* `ots_client`       a real OTSClient (NoRetryPolicy) wired to it in process, tables created;
* `tablestore_store` a TablestoreStore on that client;
* `ots_http`         the same backend (tables created) behind a loopback HTTP server; yields its URL;
* `ots_proxy`        an OtsProxy (testing/ots_proxy.py, seed 0) in front of `ots_http`: set its
                     `latency`, add `delay`/`drop_before`/`drop_after` rules; its URL is `ots_proxy.url`;
* `ots_proxy_store`  a TablestoreStore whose client talks HTTP through `ots_proxy`.
"""

from __future__ import annotations

import pytest

from alikms.shared.store.tablestore import TablestoreStore, create_tables
from alikms.testing.fake_tablestore import FakeTablestore, fake_client, http_client, serve
from alikms.testing.ots_proxy import OtsProxy

__all__ = ["ots_backend", "ots_client", "ots_http", "ots_proxy", "ots_proxy_store", "tablestore_store"]


@pytest.fixture
def ots_backend() -> FakeTablestore:
    return FakeTablestore()


@pytest.fixture
def ots_client(ots_backend):
    client = fake_client(ots_backend)
    create_tables(client)
    return client


@pytest.fixture
def tablestore_store(ots_client):
    store = TablestoreStore(ots_client)
    yield store
    store.close()


@pytest.fixture
def ots_http(ots_backend, ots_client):
    server, url = serve(backend=ots_backend)
    yield url
    server.shutdown()
    server.server_close()


@pytest.fixture
def ots_proxy(ots_http):
    proxy = OtsProxy(ots_http, seed=0)
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def ots_proxy_store(ots_proxy, ots_backend):
    store = TablestoreStore(http_client(ots_proxy.url, ots_backend))
    yield store
    store.close()
