"""`get_store()`: the configured backend, built once per warm instance and reused."""

from __future__ import annotations

import functools

from .base import TABLES, Conflict, Item, NonceTableFull, Page, Store, StoreUnavailable

__all__ = ["TABLES", "Conflict", "Item", "NonceTableFull", "Page", "Store", "StoreUnavailable", "get_store"]


@functools.cache
def get_store() -> Store:
    """The backend, wrapped to report each operation's latency, conflicts and faults (observed.py)."""
    from .observed import ObservedStore

    return ObservedStore(_backend())


def _backend() -> Store:
    from ..config import get_config

    cfg = get_config()
    if cfg.store == "sqlite":
        from .sqlite import SqliteStore

        if cfg.data_dir is None:
            raise ValueError("the sqlite store needs KMS_DATA_DIR")
        return SqliteStore(cfg.data_dir / "kms.sqlite3", nonce_slots=cfg.nonce_slots, nonce_dir=cfg.nonce_dir)
    if cfg.store == "tablestore":
        from .tablestore import TablestoreStore

        return TablestoreStore.from_config(cfg)
    raise ValueError(f"unknown KMS_STORE {cfg.store!r}")
