"""In-memory backend: the store behind the test double (`alikms.testing.mock`).

Holds the same contract as the persistent backends (`tests/store/test_contract.py` runs it too):
conditional writes, ascending `sk` within a partition, `(pk, sk)` order for scans. Several
`MemoryStore` objects can share one `MemoryData` (as several SQLite stores share one file), and one
lock makes every operation atomic, so racing writers still see exactly one winner.

Rows are kept as JSON bytes, not dicts: a caller that changes a dict it read or wrote cannot change
what is stored, and a value that would not survive a real backend (a set, bytes, a tuple turning
into a list) fails or changes here the same way. Nothing is written to disk.
"""

from __future__ import annotations

import bisect
import threading

import orjson

from .base import TABLES, Conflict, Item, Page, Store

_NONCE_SWEEP = 4096  # forget expired nonces whenever this many more were remembered


class _Partition:
    """One partition: rows by sort key, and the sort keys in order."""

    __slots__ = ("rows", "order")

    def __init__(self) -> None:
        self.rows: dict[str, tuple[int, bytes]] = {}
        self.order: list[str] = []


class MemoryData:
    """The rows of every table; share one between store objects to share the data."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tables: dict[str, dict[str, _Partition]] = {name: {} for name in TABLES}
        self.nonces: dict[str, int] = {}  # key -> expiry (epoch seconds)
        self.nonce_sweep_at = _NONCE_SWEEP


class MemoryStore(Store):
    def __init__(self, data: MemoryData | None = None) -> None:
        self.data = data if data is not None else MemoryData()

    def _table(self, table: str) -> dict[str, _Partition]:
        return self.data.tables[table]  # KeyError for a table that is not in TABLES, like the others

    def get(self, table: str, pk: str, sk: str = "") -> Item | None:
        part = self._table(table).get(pk)
        row = part.rows.get(sk) if part is not None else None
        return Item(pk, sk, orjson.loads(row[1]), row[0]) if row is not None else None

    def put_new(self, table: str, pk: str, sk: str, data: dict) -> Item:
        raw = orjson.dumps(data)
        with self.data.lock:
            part = self._table(table).get(pk)
            if part is None:
                part = self._table(table)[pk] = _Partition()
            if sk in part.rows:
                raise Conflict(f"{table} row exists")
            part.rows[sk] = (1, raw)
            bisect.insort(part.order, sk)
        return Item(pk, sk, orjson.loads(raw), 1)

    def update(self, table: str, pk: str, sk: str, data: dict, expected_rev: int) -> Item:
        raw = orjson.dumps(data)
        with self.data.lock:
            part = self._table(table).get(pk)
            row = part.rows.get(sk) if part is not None else None
            if row is None or row[0] != expected_rev:
                raise Conflict(f"{table} row changed")
            part.rows[sk] = (expected_rev + 1, raw)  # type: ignore[union-attr]
        return Item(pk, sk, orjson.loads(raw), expected_rev + 1)

    def delete(self, table: str, pk: str, sk: str = "", expected_rev: int | None = None) -> None:
        with self.data.lock:
            partitions = self._table(table)
            part = partitions.get(pk)
            row = part.rows.get(sk) if part is not None else None
            if row is None or (expected_rev is not None and row[0] != expected_rev):
                if expected_rev is None:
                    return
                raise Conflict(f"{table} row changed")
            del part.rows[sk]  # type: ignore[union-attr]
            part.order.pop(bisect.bisect_left(part.order, sk))  # type: ignore[union-attr]
            if not part.rows:  # type: ignore[union-attr]
                del partitions[pk]

    def query(self, table: str, pk: str, start_after: str | None = None, limit: int = 100) -> Page:
        with self.data.lock:
            part = self._table(table).get(pk)
            if part is None:
                return Page([], None)
            begin = 0 if start_after is None else bisect.bisect_right(part.order, start_after)
            sks = part.order[begin:begin + limit + 1]
            rows = [(sk, part.rows[sk]) for sk in sks[:limit]]
        items = [Item(pk, sk, orjson.loads(raw), rev) for sk, (rev, raw) in rows]
        return Page(items, items[-1].sk if len(sks) > limit else None)

    def scan(self, table: str, start_after: tuple[str, str] | None = None, limit: int = 100) -> list[Item]:
        out: list[tuple[str, str, int, bytes]] = []
        with self.data.lock:
            partitions = self._table(table)
            pks = sorted(partitions)  # sweeps are rare and tables small: sorting here keeps writes cheap
            first = 0
            if start_after is not None:
                first = bisect.bisect_left(pks, start_after[0])
            for pk in pks[first:]:
                part = partitions[pk]
                begin = 0
                if start_after is not None and pk == start_after[0]:
                    begin = bisect.bisect_right(part.order, start_after[1])
                for sk in part.order[begin:]:
                    out.append((pk, sk, *part.rows[sk]))
                    if len(out) == limit:
                        break
                if len(out) == limit:
                    break
        return [Item(pk, sk, orjson.loads(raw), rev) for pk, sk, rev, raw in out]

    def count(self, table: str, pk: str) -> int:
        part = self._table(table).get(pk)
        return len(part.rows) if part is not None else 0

    def remember_nonce(self, key: str, now: int, ttl: int) -> bool:
        data = self.data
        with data.lock:
            expires = data.nonces.get(key)
            if expires is not None and expires > now:
                return False
            data.nonces[key] = now + ttl
            if len(data.nonces) >= data.nonce_sweep_at:
                # Memory stays bounded by the nonces of one replay window, not of the whole run.
                data.nonces = {k: e for k, e in data.nonces.items() if e > now}
                data.nonce_sweep_at = len(data.nonces) + _NONCE_SWEEP
            return True
