"""SQLite backend: the embedded default, one WAL-mode file in the data directory.

Every logical table is one SQL table `(pk, sk, rev, data)` keyed by (pk, sk). Each statement runs
in autocommit, and the conditions are part of the statement (`INSERT` fails on an existing key,
`UPDATE ... WHERE rev = ?`), so two processes on the same file can never both win a race.

Request nonces do not go through SQLite: every signed request records one, and a SQLite commit
per request (plus lock waits between worker processes) cost a third of the signed-request rate.
They live in a shared memory-mapped table (`nonces.SharedNonces`), in /dev/shm or beside the database.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import orjson

from .base import TABLES, Conflict, Item, NonceTableFull, Page, Store
from . import nonces
from .nonces import SharedNonces

_BUSY_MS = 30000


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_MS / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
    # Keep the WAL from growing without bound under a steady write load.
    conn.execute("PRAGMA journal_size_limit=67108864")
    # Read the first 256 MB through a memory map: with 100,000 keys the rows outgrow SQLite's 2 MB page
    # cache and each lookup read its page from the OS again, a system call (a random lookup in an
    # 80 MB table measured 7.0 us against 5.7 mapped; the OS page cache is shared by all workers).
    conn.execute("PRAGMA mmap_size=268435456")
    return conn


class SqliteStore(Store):
    def __init__(self, path: str | Path, nonce_path: str | Path | None = None, nonce_slots: int | None = None,
                 nonce_dir: str = "data") -> None:
        """`nonce_dir`: where the nonce table lives (`nonces.table_path`); "data" is beside the
        database, None the default (/dev/shm where the host has it)."""
        self._path = Path(path)
        self._nonce_copy = self._path.with_name(self._path.stem + "-nonces.map")  # beside the database
        table = Path(nonce_path) if nonce_path else nonces.table_path(self._path, nonce_dir)
        if table != self._nonce_copy and not table.exists():
            nonces.sweep(table.parent, keep=table)
            owner = table.with_suffix(".owner")
            owner.write_text(str(self._path.parent.resolve()), encoding="utf-8")
        self._nonce_table = table
        self._nonces = SharedNonces(table, nonce_slots, seed=None if table == self._nonce_copy else self._nonce_copy)
        self._local = threading.local()  # one connection per thread: sqlite3 objects are not shared
        conn = self._conn()
        for table in TABLES.values():
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {table} (pk TEXT NOT NULL, sk TEXT NOT NULL, rev INTEGER NOT NULL,"
                " data TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID"
            )

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = _connect(self._path, "NORMAL")
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
        fresh = self._nonces.remember(key, now, ttl)
        if fresh is None:
            raise NonceTableFull()
        return fresh

    def save_nonces(self) -> None:
        """Copy a nonce table kept outside the data directory into it (at shutdown): a table created
        after a reboot starts from it, so nonces survive a clean restart of the host too."""
        if self._nonce_table != self._nonce_copy:
            self._nonces.save(self._nonce_copy)

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
