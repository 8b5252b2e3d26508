"""The SQLite store's kept read snapshots and the change count that renews them (shared/store/sqlite.py)."""

from __future__ import annotations

import multiprocessing as mp

from alikms.shared.store import sqlite
from alikms.shared.store.sqlite import ChangeCounter, SqliteStore


def _bump(path: str, times: int, start) -> None:
    counter = ChangeCounter(path)
    start.wait()
    for i in range(times):
        counter.bump("keys" if i % 2 else "access_keys")


def test_processes_bumping_at_once_lose_no_count(tmp_path):
    from pathlib import Path

    path = str(tmp_path / "c.map")
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(3)
    procs = [ctx.Process(target=_bump, args=(path, 400, start)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    counter = ChangeCounter(Path(path))
    assert counter.value() == 1200  # the whole database's count
    assert [counter.counts[counter.slot[t]] for t in ("keys", "access_keys", "secrets")] == [600, 600, 0]


def _update(db: str, data: dict, rev: int) -> None:
    SqliteStore(db).update("keys", "scope", "k", data, rev)


def test_a_write_in_another_process_is_read_at_once(tmp_path):
    db = str(tmp_path / "kms.sqlite3")
    store = SqliteStore(db)
    store.put_new("keys", "scope", "k", {"state": "Enabled"})
    assert store.get("keys", "scope", "k").data == {"state": "Enabled"}  # a snapshot is now open
    p = mp.get_context("spawn").Process(target=_update, args=(db, {"state": "Disabled"}, 1))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert store.get("keys", "scope", "k").data == {"state": "Disabled"}


def test_reads_share_one_snapshot_until_something_is_written(tmp_path):
    store = SqliteStore(tmp_path / "kms.sqlite3")
    store.put_new("keys", "scope", "k", {"v": 1})
    statements = []
    store.get("keys", "scope", "k")
    store._local.conn.set_trace_callback(statements.append)
    for _ in range(3):
        assert store.get("keys", "scope", "k").data == {"v": 1}
    assert statements == ["SELECT rev, data FROM kms_keys WHERE pk = 'scope' AND sk = 'k'"] * 3  # no BEGIN/COMMIT
    other = SqliteStore(tmp_path / "kms.sqlite3")
    other.update("keys", "scope", "k", {"v": 2}, 1)
    statements.clear()
    assert store.get("keys", "scope", "k").data == {"v": 2}
    assert statements[:2] == ["COMMIT", "BEGIN"]  # a new snapshot after the write


def test_a_snapshot_is_renewed_after_a_while_and_released_on_demand(tmp_path, monkeypatch):
    store = SqliteStore(tmp_path / "kms.sqlite3")
    store.put_new("keys", "scope", "k", {"v": 1})
    store.get("keys", "scope", "k")
    conn = store._local.conn
    assert conn.in_transaction
    statements = []
    conn.set_trace_callback(statements.append)
    monkeypatch.setattr(sqlite, "_SNAPSHOT_SECONDS", 0.0)
    store._local.until = 0.0  # as if half a second had passed
    store.get("keys", "scope", "k")
    assert statements[:2] == ["COMMIT", "BEGIN"]
    store.release()  # the runner does this when idle, so the WAL can be checkpointed
    assert not conn.in_transaction
    assert store.get("keys", "scope", "k").data == {"v": 1}


def test_reads_inside_a_callers_own_transaction(tmp_path):
    store = SqliteStore(tmp_path / "kms.sqlite3")
    conn = store._conn()
    conn.execute("BEGIN")  # a bulk load wraps many writes in one transaction
    store.put_new("keys", "scope", "k", {"v": 1})
    assert store.get("keys", "scope", "k").data == {"v": 1}
    store.update("keys", "scope", "k", {"v": 2}, 1)
    conn.execute("COMMIT")
    assert SqliteStore(tmp_path / "kms.sqlite3").get("keys", "scope", "k").data == {"v": 2}
