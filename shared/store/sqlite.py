"""SQLite backend: the embedded default, one WAL-mode file in the data directory.

Every logical table is one SQL table `(pk, sk, rev, data)` keyed by (pk, sk). Each statement runs
in autocommit, and the conditions are part of the statement (`INSERT` fails on an existing key,
`UPDATE ... WHERE rev = ?`), so two processes on the same file can never both win a race.

Request nonces do not go through SQLite: every signed request records one, and a SQLite commit
per request (plus lock waits between worker processes) cost a third of the signed-request rate.
They live in a shared memory-mapped table (`nonces.SharedNonces`), in /dev/shm or beside the database.

Reads by key keep their read transaction open between calls (`get`): beginning and ending one took
two file locks and a process-id check, three system calls, which with the SQL made a key lookup the
largest part of an Encrypt call after the signature check. The snapshot is trusted only while no
process has written since it began: every write bumps a change count shared by all processes on the
file (`ChangeCounter`) right after it commits, and a read that sees a new count starts a new
snapshot. A read racing a write may see either row, as it may anyway. A snapshot is also renewed
after half a second, and `release` ends it (the runner calls it when idle), so an old snapshot never
keeps the WAL from being checkpointed for long. Everything else reads and writes in autocommit.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import sqlite3
import threading
import time
from pathlib import Path

import orjson

from .. import localfiles
from . import nonces
from .base import TABLES, Conflict, Item, NonceTableFull, Page, Store
from .nonces import SharedNonces

_BUSY_MS = 30000
_SNAPSHOT_SECONDS = 0.5


def _connect(path: Path, synchronous: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=_BUSY_MS / 1000)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
    # Keep the WAL from growing without bound under a steady write load.
    conn.execute("PRAGMA journal_size_limit=67108864")
    # Read the first 256 MB through a memory map: with 100,000 keys the rows outgrow SQLite's 2 MB page
    # cache and each lookup read its page from the OS again, a system call (a random lookup measured
    # cheaper mapped: docs/measurements.md; the OS page cache is shared by all workers).
    conn.execute("PRAGMA mmap_size=268435456")
    return conn


class ChangeCounter:
    """Counts of writes to one database, shared by every process on it: one for the whole database
    (the read snapshots' check) and one per table (`TABLES` order), so that a cache of one table,
    such as the access keys behind every request, is renewed only when that table changes. Readers
    load a count without a lock; writers add one under a byte-range lock, so no increment is lost
    and a count never returns to a value a reader has seen."""

    _SIZE = 4096

    def __init__(self, path: Path) -> None:
        self._fd = localfiles.open_private(path)
        if os.fstat(self._fd).st_size < self._SIZE:
            nonces.allocate(self._fd, self._SIZE)
        self._mm = mmap.mmap(self._fd, self._SIZE, flags=mmap.MAP_SHARED)
        # The counts as aligned native 64-bit words (only processes of one host share the file): an
        # index reads one in a single load, several times cheaper than slicing out bytes.
        self.counts = memoryview(self._mm).cast("Q")
        self._lock = threading.Lock()
        self.slot = {table: i + 1 for i, table in enumerate(TABLES)}
        self._span = 8 * (len(TABLES) + 1)

    def value(self) -> int:
        return self.counts[0]

    def bump(self, table: str) -> None:
        at, counts = self.slot[table], self.counts
        with self._lock:
            nonces.range_lock(self._fd, fcntl.F_WRLCK, 0, self._span)
            try:
                counts[0] += 1
                counts[at] += 1
            finally:
                nonces.range_lock(self._fd, fcntl.F_UNLCK, 0, self._span)


def _private_database(path: Path) -> None:
    """Make the database file 0600 before SQLite does (it creates files 0644 less the umask, and its
    -wal and -shm files with the database's own mode and owner), and check the files that exist.

    Existing files are checked by path, not opened: closing a descriptor of a database file would
    drop the locks SQLite holds on it in this process. The data directory admits no other user
    (`localfiles.check_data_dir`), so nobody else can swap a file between the check and SQLite's open."""
    try:
        os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, localfiles.PRIVATE))
    except FileExistsError:
        pass
    for suffix in ("", "-wal", "-shm", "-journal"):
        localfiles.check_path(Path(f"{path}{suffix}"))


class SqliteStore(Store):
    def __init__(self, path: str | Path, nonce_path: str | Path | None = None, nonce_slots: int | None = None,
                 nonce_dir: str | None = "data") -> None:
        """`nonce_dir`: where the nonce table lives (`nonces.table_path`); "data" is beside the
        database, None the default (/dev/shm where the host has it)."""
        self._path = Path(path)
        self._nonce_copy = self._path.with_name(self._path.stem + "-nonces.map")  # beside the database
        table = Path(nonce_path) if nonce_path else nonces.table_path(self._path, nonce_dir)
        if table.parent != self._path.parent:
            nonces.claim(table, self._path.parent)
        self._nonce_table = table
        self._nonces = SharedNonces(table, nonce_slots, seed=None if table == self._nonce_copy else self._nonce_copy)
        self._local = threading.local()  # one connection per thread: sqlite3 objects are not shared
        self._changes = ChangeCounter(self._path.with_name(self._path.stem + "-changes.map"))
        _private_database(self._path)
        self._get_sql = {t: f"SELECT rev, data FROM {name} WHERE pk = ? AND sk = ?" for t, name in TABLES.items()}
        conn = self._conn()
        for physical in TABLES.values():
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {physical} (pk TEXT NOT NULL, sk TEXT NOT NULL, rev INTEGER NOT NULL,"
                " data TEXT NOT NULL, PRIMARY KEY (pk, sk)) WITHOUT ROWID"
            )

    def _conn(self) -> sqlite3.Connection:
        """This thread's connection, outside any read transaction `get` kept open."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is None:
            conn = local.conn = _connect(self._path, "NORMAL")
            local.snapshot = None
        elif local.snapshot is not None:
            self._end_snapshot(conn)
        return conn

    def _end_snapshot(self, conn: sqlite3.Connection) -> None:
        self._local.snapshot = None
        if conn.in_transaction:
            conn.execute("COMMIT")

    def _reader(self) -> sqlite3.Connection:
        """This thread's connection inside a read transaction no older than the last write."""
        local = self._local
        conn = getattr(local, "conn", None)
        if conn is not None and local.snapshot is not None:
            if local.snapshot == self._changes.value() and time.monotonic() < local.until and conn.in_transaction:
                return conn
        conn = self._conn()
        if conn.in_transaction:  # a caller's own transaction (a bulk load): read inside it
            return conn
        changes = self._changes.value()  # before the snapshot begins: it is at least this fresh
        conn.execute("BEGIN")
        local.snapshot, local.until = changes, time.monotonic() + _SNAPSHOT_SECONDS
        return conn

    def release(self) -> None:
        """End this thread's open read snapshot, if any (before going idle)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None and self._local.snapshot is not None:
            self._end_snapshot(conn)

    def get(self, table: str, pk: str, sk: str = "") -> Item | None:
        row = self._reader().execute(self._get_sql[table], (pk, sk)).fetchone()
        return Item(pk, sk, orjson.loads(row[1]), row[0]) if row else None

    def put_new(self, table: str, pk: str, sk: str, data: dict) -> Item:
        try:
            self._conn().execute(
                f"INSERT INTO {TABLES[table]} (pk, sk, rev, data) VALUES (?, ?, 1, ?)",
                (pk, sk, orjson.dumps(data).decode()),
            )
        except sqlite3.IntegrityError as exc:
            raise Conflict(f"{table} row exists") from exc
        self._changes.bump(table)
        return Item(pk, sk, data, 1)

    def update(self, table: str, pk: str, sk: str, data: dict, expected_rev: int) -> Item:
        cur = self._conn().execute(
            f"UPDATE {TABLES[table]} SET rev = rev + 1, data = ? WHERE pk = ? AND sk = ? AND rev = ?",
            (orjson.dumps(data).decode(), pk, sk, expected_rev),
        )
        if cur.rowcount != 1:
            raise Conflict(f"{table} row changed")
        self._changes.bump(table)
        return Item(pk, sk, data, expected_rev + 1)

    def delete(self, table: str, pk: str, sk: str = "", expected_rev: int | None = None) -> None:
        if expected_rev is None:
            self._conn().execute(f"DELETE FROM {TABLES[table]} WHERE pk = ? AND sk = ?", (pk, sk))
            self._changes.bump(table)
            return
        cur = self._conn().execute(
            f"DELETE FROM {TABLES[table]} WHERE pk = ? AND sk = ? AND rev = ?", (pk, sk, expected_rev)
        )
        if cur.rowcount != 1:
            raise Conflict(f"{table} row changed")
        self._changes.bump(table)

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
        args: tuple
        if start_after is None:
            sql, args = f"SELECT pk, sk, rev, data FROM {TABLES[table]} ORDER BY pk, sk LIMIT ?", (limit,)
        else:
            sql = f"SELECT pk, sk, rev, data FROM {TABLES[table]} WHERE (pk, sk) > (?, ?) ORDER BY pk, sk LIMIT ?"
            args = (*start_after, limit)
        return [Item(pk, sk, orjson.loads(d), r) for pk, sk, r, d in self._conn().execute(sql, args)]

    def count(self, table: str, pk: str) -> int:
        return self._conn().execute(f"SELECT COUNT(*) FROM {TABLES[table]} WHERE pk = ?", (pk,)).fetchone()[0]

    def changes(self, table: str) -> int:
        return self._changes.counts[self._changes.slot[table]]

    def remember_nonce(self, key: str, now: int, ttl: int) -> bool:
        fresh = self._nonces.remember(key, now, ttl)
        if fresh is None:
            raise NonceTableFull()
        return fresh

    def nonce_usage(self, now: int) -> tuple[int, int]:
        """(live nonces, slots) of the shared nonce table."""
        return self._nonces.usage(now)

    def save_nonces(self) -> None:
        """Copy a nonce table kept outside the data directory into it (at shutdown): a table created
        after a reboot starts from it, so nonces survive a clean restart of the host too."""
        if self._nonce_table != self._nonce_copy:
            self._nonces.save(self._nonce_copy)

    def close(self) -> None:
        self.release()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
