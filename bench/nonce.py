"""Nonce-store microbenchmarks for scripts/bench: `SqliteStore.remember_nonce` alone, 1 and 2 processes.

What the runner does per signed request: a check-and-insert in the shared memory-mapped nonce table
(shared/store/nonces.py). The baseline is what it replaced: one autocommit
`INSERT ... ON CONFLICT DO UPDATE ... WHERE t <= ?` into a SQLite WAL file (synchronous=OFF), whose
commit costs ~10 us and whose write lock two worker processes contend for (SQLite's busy handler
first sleeps 1 ms, blocking a worker's event loop). The "runner-like" rows space the calls with
100 us of CPU work (about one request's handling) in two processes, as two busy workers do. A
per-process set is a lower bound only (not replay-safe across workers or instances).
Run alone: `python -m bench.nonce [--quick]`.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import secrets
import shutil
import sqlite3
import sys
import time
from pathlib import Path

AK = "LTAIbenchAccessKey0001"
TTL = 900  # the default clock skew, as shared/auth.py passes it for a request stamped now


def _variant(dirpath: Path, variant: str):
    """(remember(key, now, ttl) -> bool, close()) for one process."""
    if variant == "store":
        from alikms.shared.store.sqlite import SqliteStore

        # A table big enough for a back-to-back run (hundreds of thousands of nonces a second).
        store = SqliteStore(dirpath / "kms.sqlite3", nonce_slots=1 << 23)
        return store.remember_nonce, store.close
    if variant == "set":
        seen: set[str] = set()

        def remember_set(key: str, now: int, ttl: int) -> bool:
            if key in seen:
                return False
            seen.add(key)
            return True

        return remember_set, lambda: None
    conn = sqlite3.connect(dirpath / "nonces-sqlite.sqlite3", isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("CREATE TABLE IF NOT EXISTS nonces (k TEXT PRIMARY KEY, t INTEGER NOT NULL) WITHOUT ROWID")

    def remember_sqlite(key: str, now: int, ttl: int) -> bool:
        return conn.execute("INSERT INTO nonces (k, t) VALUES (?, ?) ON CONFLICT(k) DO UPDATE SET t = excluded.t"
                            " WHERE t <= ?", (key, now, now - ttl)).rowcount == 1

    return remember_sqlite, conn.close


def _worker(dirpath: str, variant: str, seconds: float, work_us: int, ready, go, out) -> None:
    remember, close = _variant(Path(dirpath), variant)
    prefix = secrets.token_hex(8)
    lat: list[int] = []
    clock = time.perf_counter_ns
    ready.set()
    go.wait()
    end = clock() + int(seconds * 1e9)
    i = 0
    refused = 0
    t_start = clock()
    work_ns = work_us * 1000
    while True:
        if work_ns:  # stand-in for the rest of a request's handling (CPU, no I/O)
            stop = clock() + work_ns
            while clock() < stop:
                pass
        t0 = clock()
        if not remember(f"{AK}/{prefix}{i:010d}", int(time.time()), TTL):
            refused += 1
        t1 = clock()
        lat.append(t1 - t0)
        i += 1
        if t1 >= end:
            break
    elapsed = (clock() - t_start) / 1e9
    lat.sort()
    out.put({"calls": i, "seconds": elapsed, "sum_ns": sum(lat), "p50_ns": lat[len(lat) // 2],
             "p99_ns": lat[int(len(lat) * 0.99)], "max_ns": lat[-1], "refused": refused,
             "over_1ms": sum(1 for x in lat if x > 1_000_000)})
    close()


def _measure(dirpath: Path, variant: str, procs: int, seconds: float, work_us: int = 0) -> dict:
    ctx = mp.get_context("spawn")
    go = ctx.Event()
    out = ctx.Queue()
    readies, ps = [], []
    for _ in range(procs):
        ready = ctx.Event()
        p = ctx.Process(target=_worker, args=(str(dirpath), variant, seconds, work_us, ready, go, out), daemon=True)
        p.start()
        readies.append(ready)
        ps.append(p)
    try:
        for r in readies:
            if not r.wait(60):
                raise RuntimeError("nonce worker did not start")
        go.set()
        results = [out.get(timeout=seconds + 120) for _ in ps]
    finally:
        for p in ps:
            p.join(10)
            if p.is_alive():
                p.kill()
                p.join()
    calls = sum(r["calls"] for r in results)
    wall = max(r["seconds"] for r in results)
    return {"procs": procs, "work_us": work_us, "calls": calls, "rate": calls / wall,
            "us_per_call": sum(r["sum_ns"] for r in results) / calls / 1000,
            "p50_us": max(r["p50_ns"] for r in results) / 1000, "p99_us": max(r["p99_ns"] for r in results) / 1000,
            "max_ms": max(r["max_ns"] for r in results) / 1e6, "over_1ms": sum(r["over_1ms"] for r in results),
            "stalls_per_10k": sum(r["over_1ms"] for r in results) / calls * 10000,
            "refused": sum(r["refused"] for r in results), "per_proc": [r["calls"] for r in results]}


def _fresh(base: Path, name: str) -> Path:
    d = base / name
    shutil.rmtree(d, ignore_errors=True)
    d.mkdir(parents=True)
    for variant in ("store", "sqlite"):  # create files and tables before the clock starts
        _, close = _variant(d, variant)
        close()
    return d


def run_all(base: Path, quick: bool = False, quiet_wait: float = 30) -> dict:
    seconds = 1.0 if quick else 1.5
    rows: list[dict] = []

    from bench.suite import wait_quiet

    def add(label: str, procs: int, kind: str, work_us: int = 0) -> None:
        _, load = wait_quiet(0.25, quiet_wait)
        r = _measure(_fresh(base, f"{kind}{procs}{work_us}"), kind, procs, seconds, work_us)
        r["load_before"] = load
        r["variant"] = label
        rows.append(r)

    for kind, label in (("store", "as built: shared memory-mapped table (8M slots)"),
                        ("sqlite", "baseline: SQLite upsert (WAL, synchronous=OFF)")):
        add(f"{label}, back to back", 1, kind)
        add(f"{label}, back to back", 2, kind)
        add(f"{label}, runner-like (100 us work between calls)", 2, kind, 100)
    add("lower bound: per-process set (NOT replay-safe across workers)", 1, "set")
    shutil.rmtree(base, ignore_errors=True)
    notes = ["us/call = mean time inside remember_nonce (stalls included); stalls = calls over 1 ms per 10k"]
    return {"rows": rows, "notes": notes, "seconds_per_row": seconds}


if __name__ == "__main__":
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix="kms-nonce-bench-"))
    try:
        res = run_all(tmp / "n", quick="--quick" in sys.argv)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for row in res["rows"]:
        print(f"{row['variant']:<62} procs {row['procs']}  {row['rate']:>9,.0f}/s  {row['us_per_call']:6.1f} us  "
              f"p99 {row['p99_us']:7.1f} us  max {row['max_ms']:7.2f} ms  stalls/10k {row['stalls_per_10k']:.1f}")
    for note in res["notes"]:
        print(note)
    print(json.dumps({k: v for k, v in res.items() if k != "rows"}))
