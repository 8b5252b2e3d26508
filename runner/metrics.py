"""Metrics for the local runner: what each process counts, and the Prometheus text a scrape adds up.

Counting. Each process of a runner (the supervisor, which fires the timers, and every worker) counts
into a memory-mapped file of its own in `<data dir>/metrics/<supervisor pid>/`: a value is a float64
at a fixed offset, so counting is a memory write, not a system call (two happen per request). A file
is a list of entries, each a series key (name and labels, in exposition syntax) and its values,
appended by its one writer, which publishes an entry by advancing the used length in the header after
writing it. A scrape reads every file and adds them up: counters and histograms of processes that
have exited still count (a worker restarted does not take its calls with it), gauges only from
processes still running (each holds a shared flock on its file while it lives).

The listener that serves them, with the health check, is listener.py.
"""

from __future__ import annotations

import bisect
import fcntl
import mmap
import os
import shutil
import struct
import threading
from pathlib import Path
from types import SimpleNamespace

from alikms.shared import localfiles, log, telemetry
from alikms.shared.store import nonces

DIR_ENV = "ALIKMS_METRICS_DIR"  # set by the supervisor for its workers; not a user setting
SIZE = 1 << 20
_HEADER = 16
_SPARE = 8 * 32  # at the end: where values go once the file is full (never listed)
BOUNDS = (1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4, 1e-3, 2.5e-3, 5e-3, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
_NB = len(BOUNDS) + 1  # buckets, +Inf last; the sum follows them
_bucket = bisect.bisect_left  # the first bound at or above a value: Prometheus' `le`
_thread = threading.get_ident

# name -> (type, help, how processes add up: "sum", "live" = sum over running processes, "max")
FAMILIES = {
    "alikms_requests_total": ("counter", "API calls answered, by action and result code.", "sum"),
    "alikms_request_duration_seconds": ("histogram", "Time in the function per call, by action.", "sum"),
    "alikms_store_operation_duration_seconds": ("histogram", "Store operations, by operation.", "sum"),
    "alikms_store_conflicts_total": ("counter", "Conditional writes that found the row changed.", "sum"),
    "alikms_store_faults_total": ("counter", "Store operations that failed (not conflicts).", "sum"),
    "alikms_store_retries_total": ("counter", "Tablestore requests retried after a transient failure, by table.",
                                   "sum"),
    "alikms_timer_runs_total": ("counter", "Timer job runs, by job and result.", "sum"),
    "alikms_timer_duration_seconds": ("histogram", "Timer job run time, by job.", "sum"),
    "alikms_timer_last_run_timestamp_seconds": ("gauge", "Trigger time of each job's last run.", "max"),
    "alikms_audit_write_failures_total": ("counter", "Audit trail writes that failed.", "sum"),
    "alikms_audit_refused_calls_total": ("counter", "Calls refused because the audit trail could not be written.",
                                         "sum"),
    "alikms_audit_blocked": ("gauge", "Processes refusing calls until their audit trail can be written.", "live"),
    "alikms_nonce_table_live": ("gauge", "Request nonces held in the shared nonce table.", "scrape"),
    "alikms_nonce_table_slots": ("gauge", "Slots of the shared nonce table.", "scrape"),
}


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Recorder(telemetry.Sink):
    """This process's counts, in its file.

    The two updates of every request (`call`, `store`) take no lock: each thread counts in entries
    of its own (a scrape adds up entries with the same key), so no two threads ever write one value.
    The entries are found by thread id, which the system gives again to a later thread once one has
    ended: a listener starting a thread per request reuses the same few entries rather than filling
    the file. Making an entry, and the rarer updates, take the lock."""

    def __init__(self, path: Path) -> None:
        fd = localfiles.open_private(path, os.O_RDWR | os.O_EXCL)
        nonces.allocate(fd, SIZE)  # real zeros: no block allocation inside a request later
        fcntl.flock(fd, fcntl.LOCK_SH)  # "running", for the gauges
        self._fd, self._mm = fd, mmap.mmap(fd, SIZE)
        self._d = memoryview(self._mm).cast("d")
        self._used = _HEADER
        self._slots: dict = {}  # the shared entries (rare updates, under the lock)
        # thread id -> its entries: .calls (action, code) -> (counter, histogram), .ops op -> histogram
        self._threads: dict[int, SimpleNamespace] = {}
        self._lock = threading.Lock()

    def _slot(self, key: tuple | None, family: str, labels: str, n: int) -> int:
        """A new entry of `n` values; with a key, remembered as shared. Caller holds the lock."""
        name = f"{family}{{{labels}}}".encode() if labels else family.encode()
        size = 8 + (len(name) + 7) // 8 * 8 + 8 * n
        if self._used + size > SIZE - _SPARE:
            index = (SIZE - _SPARE) // 8  # full: count nowhere rather than fail a call
        else:
            at = self._used
            struct.pack_into("II", self._mm, at, len(name), n)
            self._mm[at + 8:at + 8 + len(name)] = name
            index = (at + size - 8 * n) // 8
            self._used = at + size
            struct.pack_into("Q", self._mm, 0, self._used)  # publish: readers see whole entries only
        if key is not None:
            self._slots[key] = index
        return index

    def _histogram(self, key: tuple, family: str, labels: str, seconds: float) -> None:
        base = self._slots.get(key)
        if base is None:
            base = self._slot(key, family, labels, _NB + 1)
        d = self._d
        d[base + _bucket(BOUNDS, seconds)] += 1.0
        d[base + _NB] += seconds

    def _add(self, key: tuple, family: str, labels: str, amount: float = 1.0) -> None:
        index = self._slots.get(key)
        if index is None:
            index = self._slot(key, family, labels, 1)
        self._d[index] += amount

    def _own(self) -> SimpleNamespace:
        mine = self._threads.get(_thread())
        if mine is None:
            mine = self._threads[_thread()] = SimpleNamespace(calls={}, ops={}, hists={})
        return mine

    def call(self, action: str, code: str, seconds: float) -> None:
        try:
            count, hist = self._threads[_thread()].calls[(action, code)]
        except KeyError:
            count, hist = self._new_call(action, code)
        d = self._d
        d[count] += 1.0
        d[hist + _bucket(BOUNDS, seconds)] += 1.0
        d[hist + _NB] += seconds

    def _new_call(self, action: str, code: str) -> tuple[int, int]:
        mine, label = self._own(), f'action="{_escape(action)}"'
        with self._lock:
            hist = mine.hists.get(action)
            if hist is None:
                hist = mine.hists[action] = self._slot(None, "alikms_request_duration_seconds", label, _NB + 1)
            count = self._slot(None, "alikms_requests_total", f'{label},code="{_escape(code)}"', 1)
        mine.calls[(action, code)] = count, hist
        return count, hist

    def store(self, op: str, seconds: float) -> None:
        try:
            hist = self._threads[_thread()].ops[op]
        except KeyError:
            mine = self._own()
            with self._lock:
                hist = mine.ops[op] = self._slot(None, "alikms_store_operation_duration_seconds", f'op="{op}"',
                                                 _NB + 1)
        d = self._d
        d[hist + _bucket(BOUNDS, seconds)] += 1.0
        d[hist + _NB] += seconds

    def store_event(self, op: str, kind: str) -> None:
        family = {"conflict": "alikms_store_conflicts_total", "fault": "alikms_store_faults_total"}[kind]
        with self._lock:
            self._add(("e", op, kind), family, f'op="{op}"')

    def store_retry(self, table: str) -> None:
        with self._lock:
            self._add(("r", table), "alikms_store_retries_total", f'table="{_escape(table)}"')

    def timer(self, job: str, ok: bool, seconds: float, when: float) -> None:
        result = "ok" if ok else "error"
        with self._lock:
            self._add(("t", job, result), "alikms_timer_runs_total", f'job="{job}",result="{result}"')
            self._histogram(("td", job), "alikms_timer_duration_seconds", f'job="{job}"', seconds)
            index = self._slots.get(("tl", job))
            if index is None:
                index = self._slot(("tl", job), "alikms_timer_last_run_timestamp_seconds", f'job="{job}"', 1)
            self._d[index] = max(self._d[index], when)

    def audit(self, kind: str, count: int = 1) -> None:
        family = "alikms_audit_write_failures_total" if kind == "write_failure" else "alikms_audit_refused_calls_total"
        with self._lock:
            self._add(("a", kind), family, "", float(count))

    def audit_blocked(self, blocked: bool) -> None:
        with self._lock:
            index = self._slots.get(("ab",))
            if index is None:
                index = self._slot(("ab",), "alikms_audit_blocked", "", 1)
            self._d[index] = 1.0 if blocked else 0.0

    def close(self) -> None:
        """Stop counting here (the process is ending): its gauges no longer count, its counters do."""
        with self._lock:
            self._d.release()
            self._mm.close()
            os.close(self._fd)


def _entries(path: Path):
    """(series key, values) of one process's file."""
    with open(path, "rb") as f:
        data = f.read()
    used = min(struct.unpack_from("Q", data, 0)[0] if len(data) >= 8 else 0, len(data))
    at = _HEADER
    while at + 8 <= used:
        length, n = struct.unpack_from("II", data, at)
        key = data[at + 8:at + 8 + length].decode()
        values_at = at + 8 + (length + 7) // 8 * 8
        yield key, struct.unpack_from(f"{n}d", data, values_at)
        at = values_at + 8 * n


def still_running(path: Path) -> bool:
    """Whether the process that wrote `path` still runs (it holds a shared flock on it while it lives)."""
    with open(path, "rb") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def collect(directory: Path) -> dict[str, list[float]]:
    """Every series of every process file, added up family by family."""
    totals: dict[str, list[float]] = {}
    for path in sorted(directory.glob("*.map")):
        running = None
        for key, values in _entries(path):
            how = FAMILIES.get(key.split("{", 1)[0], ("", "", "sum"))[2]
            if how == "live":
                running = still_running(path) if running is None else running
                if not running:
                    continue
            have = totals.get(key)
            if have is None:
                totals[key] = list(values)
            elif how == "max":
                totals[key] = [max(a, b) for a, b in zip(have, values, strict=False)]
            else:
                totals[key] = [a + b for a, b in zip(have, values, strict=False)]
    return totals


def _number(value: float) -> str:
    return str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(value)


def exposition(totals: dict[str, list[float]], extra: dict[str, float]) -> str:
    """Prometheus text format 0.0.4."""
    by_family: dict[str, list[tuple[str, list[float]]]] = {}
    for key, values in {**totals, **{k: [v] for k, v in extra.items()}}.items():
        family, _, labels = key.partition("{")
        by_family.setdefault(family, []).append((labels.rstrip("}"), values))
    out = []
    for family, (kind, text, _) in FAMILIES.items():
        series = by_family.get(family)
        if series is None:
            continue
        out.append(f"# HELP {family} {text}\n# TYPE {family} {kind}\n")
        for labels, values in sorted(series):
            if kind != "histogram":
                series_name = f"{family}{{{labels}}}" if labels else family
                out.append(f"{series_name} {_number(values[0])}\n")
                continue
            sep = "," if labels else ""
            running = 0.0
            for bound, count in zip((*map(repr, BOUNDS), "+Inf"), values[:_NB], strict=False):
                running += count
                out.append(f'{family}_bucket{{{labels}{sep}le="{bound}"}} {_number(running)}\n')
            tail = f"{{{labels}}}" if labels else ""
            out.append(f"{family}_sum{tail} {_number(values[_NB])}\n{family}_count{tail} {_number(running)}\n")
    return "".join(out)


# --- the supervisor's side ---


def prepare(data_dir: Path) -> Path:
    """This runner's metrics directory (made empty), named for the workers by an environment variable.
    Directories of runners no longer running are removed."""
    parent = localfiles.private_dir(data_dir / "metrics")
    for old in parent.iterdir():
        lock = old / ".lock"
        if old.is_dir() and not old.is_symlink() and (not lock.exists() or not still_running(lock)):
            shutil.rmtree(old, ignore_errors=True)
    directory = parent / str(os.getpid())
    directory.mkdir(mode=0o700)
    fd = localfiles.open_private(directory / ".lock", os.O_RDWR | os.O_EXCL)
    fcntl.flock(fd, fcntl.LOCK_SH)  # held for the runner's life
    os.environ[DIR_ENV] = str(directory)
    return directory


def start_process() -> None:
    """In each process of a runner (once): JSON logs, and a recorder if the runner counts metrics."""
    from alikms.shared.config import get_config

    log.configure(get_config().log_level)
    directory = os.environ.get(DIR_ENV)
    if directory and not isinstance(telemetry.sink, Recorder) and os.path.isdir(directory):
        telemetry.install(Recorder(Path(directory) / f"{os.getpid()}.map"))
