"""A store that reports each operation: its latency and conflicts to the metrics, its faults to the log.

`get_store()` wraps the configured backend in it. A fault is any exception other than `Conflict`
(a locked SQLite file, a Tablestore error after the SDK's own retries, a full disk): it is logged
with the operation and table, never the keys or the row, and re-raised unchanged. The request
that met it then answers InternalFailure (logged again there with its request id), or 503
ServiceUnavailableTemporary for a store that is unavailable (`StoreUnavailable`).

The nonce check (`remember_nonce`) is timed only where it is a store round trip (Tablestore's
conditional put). On SQLite it is a shared-memory table, reported as nonce-table fill instead, and
timing it would add to every request for nothing an operator acts on.
"""

from __future__ import annotations

import time

from .. import telemetry
from .base import Conflict, Item, Page, Store

_perf = time.perf_counter
_TIMED = frozenset({"get", "put_new", "update", "delete", "query", "scan", "count", "remember_nonce"})


class ObservedStore(Store):
    def __init__(self, inner: Store) -> None:
        self.inner = inner
        # What the backend does its own way and is not timed here (`changes`, `release`, `close`, a local
        # nonce table...) is called on it straight: inheriting Store's default would hide the backend's.
        for name, default in vars(Store).items():
            if callable(default) and not name.startswith("_") and name not in _TIMED \
                    and getattr(type(inner), name, default) is not default:
                setattr(self, name, getattr(inner, name))
        if type(inner).remember_nonce is not Store.remember_nonce:  # a local table: called straight
            self.remember_nonce = inner.remember_nonce  # type: ignore[method-assign]

    def _failed(self, op: str, table: str, exc: Exception) -> None:
        if isinstance(exc, Conflict):
            telemetry.sink.store_event(op, "conflict")
            return
        telemetry.sink.store_event(op, "fault")
        from .. import log

        log.get("kms.store").error("store operation failed", exc_info=exc,
                                   extra={"event": "store.fault", "op": op, "table": table})

    def get(self, table: str, pk: str, sk: str = "") -> Item | None:
        if not telemetry.sink.records:  # nothing to time (a function instance): faults are still logged
            try:
                return self.inner.get(table, pk, sk)
            except Exception as exc:
                self._failed("get", table, exc)
                raise
        t = _perf()
        try:
            item = self.inner.get(table, pk, sk)
        except Exception as exc:
            self._failed("get", table, exc)
            raise
        telemetry.sink.store("get", _perf() - t)
        return item

    def put_new(self, table: str, pk: str, sk: str, data: dict) -> Item:
        return self._timed("put_new", table, self.inner.put_new, table, pk, sk, data)

    def update(self, table: str, pk: str, sk: str, data: dict, expected_rev: int) -> Item:
        return self._timed("update", table, self.inner.update, table, pk, sk, data, expected_rev)

    def delete(self, table: str, pk: str, sk: str = "", expected_rev: int | None = None) -> None:
        return self._timed("delete", table, self.inner.delete, table, pk, sk, expected_rev)

    def query(self, table: str, pk: str, start_after: str | None = None, limit: int = 100) -> Page:
        return self._timed("query", table, self.inner.query, table, pk, start_after, limit)

    def scan(self, table: str, start_after: tuple[str, str] | None = None, limit: int = 100) -> list[Item]:
        return self._timed("scan", table, self.inner.scan, table, start_after, limit)

    def count(self, table: str, pk: str) -> int:
        return self._timed("count", table, self.inner.count, table, pk)

    def _timed(self, op: str, table: str, method, *args):
        timed = telemetry.sink.records
        t = _perf() if timed else 0.0
        try:
            return method(*args)
        except Exception as exc:
            self._failed(op, table, exc)
            raise
        finally:
            if timed:
                telemetry.sink.store(op, _perf() - t)

    def remember_nonce(self, key: str, now: int, ttl: int) -> bool:
        return self._timed("remember_nonce", "nonces", self.inner.remember_nonce, key, now, ttl)

    def close(self) -> None:
        self.inner.close()
