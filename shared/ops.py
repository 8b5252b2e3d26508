"""Operational state in the store: the last run of each timer job, and the health probe's write.

Kept in the store (table `ops`) rather than a local file, so a Function Compute deployment, whose
instances keep nothing, has it too, and `alikms admin status` reads it the same way everywhere.
"""

from __future__ import annotations

import socket
import time

from . import log, telemetry
from .context import Context
from .store import Conflict, Store
from .wire import iso

_SHOWN = 10  # failures listed in a timer's log line; the rest are counted


def summary(result: dict) -> dict:
    """A job's result for the log: lists become their length, except a few failures named."""
    out: dict = {}
    for name, value in result.items():
        if isinstance(value, list):
            out[name] = len(value)
            if name == "Failed" and value:
                out["FailedFirst"] = value[:_SHOWN]
        else:
            out[name] = value
    return out


def timer_finished(ctx: Context, job: str, seconds: float, result: dict | None, exc: Exception | None) -> None:
    """Log a timer run, count it, and keep it as the job's last run. Never raises: the run's own
    outcome is what the caller reports."""
    ok = exc is None
    telemetry.sink.timer(job, ok, seconds, ctx.now)
    fields = {"event": "timer.run", "job": job, "trigger_time": iso(ctx.now), "ok": ok,
              "seconds": round(seconds, 6)}
    logger = log.get("kms.timer")
    if ok:
        logger.info("timer job finished", extra={**fields, "summary": summary(result or {})})
    else:
        logger.error("timer job failed", exc_info=exc, extra=fields)
    run = {"trigger_time": ctx.now, "finished": time.time(), "ok": ok, "seconds": round(seconds, 6),
           "summary": summary(result) if result else {}, "error": type(exc).__name__ if exc else ""}
    try:
        _keep_latest(ctx.store, f"timer/{job}", run)
    except Exception as err:
        logger.warning("timer run not recorded", exc_info=err, extra={"event": "timer.record_failed", "job": job})


def _keep_latest(store: Store, pk: str, run: dict) -> None:
    """Store `run` unless a run with a later trigger time is already there (two runs may race)."""
    for _ in range(5):
        item = store.get("ops", pk)
        if item is not None and item.data.get("trigger_time", 0) > run["trigger_time"]:
            return
        try:
            if item is None:
                store.put_new("ops", pk, "", run)
            else:
                store.update("ops", pk, "", run, item.rev)
            return
        except Conflict:
            continue


def last_timer_runs(store: Store) -> dict[str, dict]:
    """Job name -> its last recorded run."""
    return {item.pk.split("/", 1)[1]: item.data for item in store.scan_all("ops") if item.pk.startswith("timer/")}


def probe_store(store: Store, now: float | None = None) -> None:
    """Write this host's health row: raises if the store cannot be written. A Conflict means another
    probe wrote it meanwhile, which proves the store writable all the same."""
    pk = f"health/{socket.gethostname()}"
    data = {"time": now or time.time()}
    item = store.get("ops", pk)
    try:
        if item is None:
            store.put_new("ops", pk, "", data)
        else:
            store.update("ops", pk, "", data, item.rev)
    except Conflict:
        pass
