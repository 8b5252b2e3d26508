"""SQLite backend: the embedded default, one WAL-mode file in the data directory.

Every logical table is one SQL table `(pk, sk, rev, data)` keyed by (pk, sk). Each statement runs
in autocommit, and the conditions are part of the statement (`INSERT` fails on an existing key,
`UPDATE ... WHERE rev = ?`), so two processes on the same file can never both win a race.

Nonces live in a second file with `synchronous=OFF`: they are worth nothing after 15 minutes and a
crash that loses the last few only reopens a replay window that the timestamp check already bounds,
so they should not pay for an fsync or contend with key writes for the main file's write lock.
Every request writes one, from every worker process, so the writes contend for that file's lock.
SQLite's own busy handler first sleeps a whole millisecond, blocking the worker's event loop;
the nonce connection therefore does not wait inside SQLite but retries from Python after a few
tens of microseconds (`scripts/bench` measured +19% signed requests/s). Old nonces are swept a
slice at a time in key order (a cursor per connection), so no index on the time column taxes every
insert (it cost 7 of 17 us) and no sweep ever scans the whole table at once.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import orjson

from .base import TABLES, Conflict, Item, Page, Store

_BUSY_MS = 30000
_SWEEP_EVERY = 1024  # nonce writes per connection between two sweep slices


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_MS / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
    # Keep the WAL from growing without bound under a steady write load.
    conn.execute("PRAGMA journal_size_limit=67108864")
    return conn


def _retry(conn: sqlite3.Connection, sql: str, args: tuple = ()) -> sqlite3.Cursor:
    """Run a statement on a busy_timeout=0 connection, retrying a locked database after 0, 20, 40 ...
    microseconds (at most 1 ms between tries, 30 s in all)."""
    delay, deadline = 0.0, time.monotonic() + _BUSY_MS / 1000
    while True:
        try:
            return conn.execute(sql, args)
        except sqlite3.OperationalError as exc:
            if ("locked" not in str(exc) and "busy" not in str(exc)) or time.monotonic() > deadline:
                raise
            time.sleep(delay)
            delay = min(0.001, delay * 2 or 0.00002)


class SqliteStore(Store):
    def __init__(self, path: str | Path, nonce_path: str | Path | None = None) -> None:
        self._path = Path(path)
        self._nonce_path = Path(nonce_path) if nonce_path else self._path.with_name(self._path.stem + "-nonces.sqlite3")
        self._local = threading.local()  # one connection per thread: sqlite3 objects are not shared
        conn = self._conn()
        for table in TABLES.values():
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (pk TEXT NOT NULL, sk TEXT NOT NULL, rev INTEGER NOT NULL,"
                " data TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID"
            )
        nonces = self._nonce_conn()
        _retry(nonces, "CREATE TABLE IF NOT EXISTS nonces (k TEXT PRIMARY KEY, t INTEGER NOT NULL) WITHOUT ROWID")

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self._path, "NORMAL")
        return conn

    def _nonce_conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "nonce_conn", None)
        if conn is None:
            conn = self._local.nonce_conn = _connect(self._nonce_path, "OFF")
            conn.execute("PRAGMA busy_timeout=0")  # contention is handled by _retry
            self._local.nonce_writes = 0
            self._local.sweep_after = ""
        return conn

    def get(self, table: str, pk: str, sk: str = "") -> Item | None:
        row = (
            self._conn()
            .execute(f"SELECT rev, data FROM {TABLES[table]} WHERE pk = ? AND sk = ?", (pk, sk))
            .fetchone()
        )
        return Item(pk, sk, orjson.loads(row[1]), row[0]) if row else None

    def put_new(self, table: str, pk: str, sk: str, data: dict) -> Item:
        try:
            self._conn().execute(
                f"INSERT INTO {TABLES[table]} (pk, sk, rev, data) VALUES (?, ?, 1, ?)", (pk, sk, orjson.dumps(data).decode())
            )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"{table} row exists") from exc
        return Item(pk, sk, data, 1)

    def update(self, table: str, pk: str, sk: str, data: dict, expected_rev: int) -> Item:
        cur = self._conn().execute(
            f"UPDATE {TABLES[table]} SET rev = rev + 1, data = ? WHERE pk = ? AND sk = ? AND rev = ?",
            (orjson.dumps(data).decode(), pk, sk, expected_rev),
        )
        if cur.rowcount != 1:
            raise Conflict(f"{table} row changed")
        return Item(pk, sk, data, expected_rev + 1)

    def delete(self, table: str, pk: str, sk: str = "", expected_rev: int | None = None) -> None:
        if expected_rev is None:
            self._conn().execute(f"DELETE FROM {TABLES[table]} WHERE pk = ? AND sk = ?", (pk, sk))
            return
        cur = self._conn().execute(
            f"DELETE FROM {TABLES[table]} WHERE pk = ? AND sk = ? AND rev = ?", (pk, sk, expected_rev)
        )
        if cur.rowcount != 1:
            raise Conflict(f"{table} row changed")

    def query(self, table: str, pk: str, start_after: str | None = None, limit: int = 100) -> Page:
        rows = (
            self._conn()
            .execute(
                f"SELECT sk, rev, data FROM {TABLES[table]} WHERE pk = ? AND (? IS NULL OR sk > ?)"
                " ORDER BY sk LIMIT ?",
                (pk, start_after, start_after, limit + 1),
            )
            .fetchall()
        )
        items = [Item(pk, sk, orjson.loads(d), r) for sk, r, d in rows[:limit]]
        return Page(items, items[-1].sk if len(rows) > limit else None)

    def scan(self, table: str, start_after: tuple[str, str] | None = None, limit: int = 100) -> list[Item]:
        if start_after is None:
            sql, args = f"SELECT pk, sk, rev, data FROM {TABLES[table]} ORDER BY pk, sk LIMIT ?", (limit,)
        else:
            sql = f"SELECT pk, sk, rev, data FROM {TABLES[table]} WHERE (pk, sk) > (?, ?) ORDER BY pk, sk LIMIT ?"
            args = (*start_after, limit)
        return [Item(pk, sk, orjson.loads(d), r) for pk, sk, r, d in self._conn().execute(sql, args)]

    def count(self, table: str, pk: str) -> int:
        return self._conn().execute(f"SELECT COUNT(*) FROM {TABLES[table]} WHERE pk = ?", (pk,)).fetchone()[0]

    def remember_nonce(self, key: str, now: int, ttl: int) -> bool:
        conn = self._nonce_conn()
        # One statement decides atomically: insert, or take over an entry older than the window.
        cur = _retry(conn, "INSERT INTO nonces (k, t) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET t = excluded.t"
                           " WHERE t <= ?", (key, now, now - ttl))
        fresh = cur.rowcount == 1
        self._local.nonce_writes += 1
        if self._local.nonce_writes % _SWEEP_EVERY == 0:
            self._sweep_nonces(conn, now - ttl)
        return fresh

    def _sweep_nonces(self, conn: sqlite3.Connection, expired: int) -> None:
        """Delete expired nonces among the next slice of keys after this connection's cursor. Each
        slice holds twice as many keys as were written since the last one, so the sweep keeps ahead
        of the inserts; at the end of the table the cursor starts over."""
        start = self._local.sweep_after
        last = _retry(conn, "SELECT MAX(k) FROM (SELECT k FROM nonces WHERE k > ? ORDER BY k LIMIT ?)",
                      (start, 2 * _SWEEP_EVERY)).fetchone()[0]
        if last is None:
            self._local.sweep_after = ""
            return
        _retry(conn, "DELETE FROM nonces WHERE k > ? AND k <= ? AND t <= ?", (start, last, expired))
        self._local.sweep_after = last

    def close(self) -> None:
        for name in ("conn", "nonce_conn"):
            conn = getattr(self._local, name, None)
            if conn is not None:
                conn.close()
                setattr(self._local, name, None)
