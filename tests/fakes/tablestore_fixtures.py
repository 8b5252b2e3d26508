"""pytest fixtures for the Tablestore wire fake.

Use from a conftest with `from tests.fakes.tablestore_fixtures import *`:
* `ots_backend`      a fresh FakeTablestore (test-akid / test-secret, instance kmsfake);
* `ots_client`       a real OTSClient (NoRetryPolicy) wired to it in process, tables created;
* `tablestore_store` a TablestoreStore on that client;
* `ots_http`         the same backend (tables created) behind a loopback HTTP server; yields its URL.
"""

from __future__ import annotations

import pytest

from alikms.shared.store.tablestore import TablestoreStore, create_tables
from alikms.testing.fake_tablestore import FakeTablestore, fake_client, serve

__all__ = ["ots_backend", "ots_client", "tablestore_store", "ots_http"]


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
