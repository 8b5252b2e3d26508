"""Fixtures of the key tests: threads acting as separate function instances (see `new_store` in
tests/conftest.py for their store objects)."""

from __future__ import annotations

import threading

import pytest


@pytest.fixture
def per_thread_store(kms, monkeypatch):
    """`use(store)` makes the calling thread's handlers use `store`; other threads keep `kms.store`."""
    local = threading.local()
    monkeypatch.setattr("alikms.shared.runtime.get_store", lambda: getattr(local, "store", kms.store))

    def use(store) -> None:
        local.store = store

    return use
