"""The SQLite store's per-process read cache and the change count it trusts (shared/store/sqlite.py)."""

from __future__ import annotations

import multiprocessing as mp

from shared.store.sqlite import ChangeCounter, SqliteStore


def _bump(path: str, times: int, start) -> None:
    counter = ChangeCounter(path)
    start.wait()
    for _ in range(times):
        counter.bump()


def test_processes_bumping_at_once_lose_no_count(tmp_path):
    path = str(tmp_path / "c.map")
    ctx = mp.get_context("spawn")
    start = ctx.Barrier(3)
    procs = [ctx.Process(target=_bump, args=(path, 400, start)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert ChangeCounter(path).value() == 1200


def _update(db: str, data: dict, rev: int) -> None:
    SqliteStore(db).update("keys", "scope", "k", data, rev)


def test_a_write_in_another_process_is_read_at_once(tmp_path):
    db = str(tmp_path / "kms.sqlite3")
    store = SqliteStore(db)
    store.put_new("keys", "scope", "k", {"state": "Enabled"})
    assert store.get("keys", "scope", "k").data == {"state": "Enabled"}  # now cached
    assert store.get("keys", "scope", "k").data == {"state": "Enabled"}
    p = mp.get_context("spawn").Process(target=_update, args=(db, {"state": "Disabled"}, 1))
    p.start()
    p.join(60)
    assert p.exitcode == 0
    assert store.get("keys", "scope", "k").data == {"state": "Disabled"}


def test_reads_are_served_from_the_cache_until_a_write(tmp_path):
    store = SqliteStore(tmp_path / "kms.sqlite3")
    store.put_new("keys", "scope", "k", {"v": 1})
    store.get("keys", "scope", "k")
    reads = []
    store._conn().set_trace_callback(reads.append)
    assert store.get("keys", "scope", "k").data == {"v": 1}
    assert reads == []  # no SQL: the cached row was still valid
    store.update("keys", "scope", "k", {"v": 2}, 1)
    reads.clear()
    assert store.get("keys", "scope", "k").data == {"v": 2}
    assert any(r.startswith("SELECT") for r in reads)
