"""Fixtures of the key tests: more store objects on the backend the `kms` fixture uses, so threads
can act as separate function instances."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture
def new_store(kms, request):
    """Factory: another store object on the same data (same SQLite file / same Tablestore backend)."""
    made = []

    def make():
        from shared.store.sqlite import SqliteStore
        from shared.store.tablestore import TablestoreStore

        if isinstance(kms.store, SqliteStore):
            store = SqliteStore(kms.store._path)
        else:
            from tests.fakes.tablestore import fake_client

            store = TablestoreStore(fake_client(request.getfixturevalue("ots_backend")))
        made.append(store)
        return store

    yield make
    for store in made:
        store.close()


@pytest.fixture
def per_thread_store(kms, monkeypatch):
    """`use(store)` makes the calling thread's handlers use `store`; other threads keep `kms.store`."""
    local = threading.local()
    monkeypatch.setattr("shared.runtime.get_store", lambda: getattr(local, "store", kms.store))

    def use(store) -> None:
        local.store = store

    return use
