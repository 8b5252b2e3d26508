"""The audit trail: one JSON record per call, success or failure, like ActionTrail.

Fields: time, request id, account, access key id, source IP, action, resource ARNs, result code
and HTTP status. Never parameters, plaintext, data keys, secret values or signatures. Records go
to stdout as JSON lines (Function Compute ships stdout to its log service) and, in local mode, to
files in the data directory's `audit/` folder. Each line also carries its place in a hash chain
(`Writer`, `Seq`, `Prev`), and authenticated digests are interleaved: `audit_trail.py` writes them,
`audit_verify.py` checks them (`alikms admin audit verify`).

When a record cannot be written the call is refused (ServiceUnavailableTemporary, 503) unless
KMS_AUDIT_FAIL_OPEN is set: `admit` refuses calls before they run while the trail is blocked, and a
call whose own record fails to be written is answered with the refusal too (see `pending`).
"""

from __future__ import annotations

import atexit
import heapq
import json
import threading
import time
from pathlib import Path

from . import errors, localfiles
from .audit_trail import BLOCKED, DIR_NAME, FILE_RE, Trail
from .config import Config
from .wire import iso

FILE_NAME = "audit.log"  # the single file of earlier versions (no chain), still read by `events`
CHAIN_FIELDS = ("Writer", "Seq", "Prev")
REFUSED = "The audit trail cannot be written, so the service refuses calls until it can."
_trails: dict = {}  # data dir (None: stdout only) -> this process's Trail for it


class Batch:
    """Records held for the end of one event-loop turn; `refused` once their write failed (fail-closed).
    They share one configuration, except in tests, which may mix them (`others`)."""

    __slots__ = ("cfg", "lines", "others", "refused")

    def __init__(self, cfg: Config) -> None:
        self.cfg, self.refused = cfg, False
        self.lines: list[dict] = []
        self.others: list[tuple[Config, dict]] = []


# [event loop, its thread, holding] while the local runner holds records for the end of each turn
_turn: list = []
_batch: list[Batch] = []  # this turn's batch, while one is held
_state = {"exit_hook": False, "retrying": False}
_last: list = [None, None]  # the configuration and trail of the last record: nearly always the same


def hold_per_turn(loop) -> None:
    """Let the local runner's event loop collect the records of one turn and write them together.

    Responses leave at the end of the turn too (runner/http_protocol.py), and the runner answers a
    call only after its record's write (`pending`). Several calls finishing in one turn then cost
    one write per sink instead of one each (a system call per call measured a few per cent)."""
    if not _turn or _turn[0] is not loop:
        _turn[:] = [loop, threading.get_ident(), True]
        _on_exit()


def hold(on: bool) -> None:
    """Turn holding off (and on again) around a call on the loop that no other request in flight
    could share a write with: its record is then written at once, as it would be anywhere else, and
    its answer need not wait for the end of the turn."""
    if _turn:
        _turn[2] = on


def _on_exit() -> None:
    if not _state["exit_hook"]:
        _state["exit_hook"] = True
        atexit.register(close)  # a loop that stops before its turn ends loses nothing


def trail(cfg: Config) -> Trail:
    if _last[0] is cfg and not _last[1].closed:
        return _last[1]
    t = _trails.get(cfg.data_dir)
    if t is None or t.cfg is not cfg or t.closed:
        _on_exit()
        if t is not None:
            t.close()
        t = _trails[cfg.data_dir] = Trail(cfg)
    _last[:] = [cfg, t]
    return t


def check_dir(cfg: Config) -> None:
    """Make the trail's directory in the data directory, or refuse (UnsafeFile) one another user made:
    the runner calls this at start, as it checks the other files of the data directory."""
    if cfg.data_dir is not None:
        localfiles.private_dir(cfg.data_dir / DIR_NAME)


def admit(cfg: Config) -> None:
    """Refuse a call before it runs while this process cannot write its audit trail (unless that
    has just become possible again: every refused call tries)."""
    if BLOCKED:
        t = _trails.get(cfg.data_dir)
        if t is not None and t.blocked and not t.retry():
            raise errors.ServiceUnavailableTemporary(REFUSED)


def record(cfg: Config, entry: dict) -> None:
    """Write one call's record (the dict is the trail's from here: its chain fields are added to it).
    In the runner's event loop it is held for the end of the turn; anywhere else it is written now,
    and ServiceUnavailableTemporary is raised if it cannot be."""
    if _turn and _turn[2] and _turn[1] == threading.get_ident() and _turn[0].is_running():
        if not _batch:
            _batch.append(Batch(cfg))
            _turn[0].call_soon(flush)
        batch = _batch[0]
        if cfg is batch.cfg:
            batch.lines.append(entry)
        else:
            batch.others.append((cfg, entry))
        return
    flush()  # anything a stopped loop still held goes first
    if not trail(cfg).write([entry]):
        if _turn and _turn[1] == threading.get_ident():  # the runner's loop, not holding: it retries
            _retry_later()
        raise errors.ServiceUnavailableTemporary(REFUSED)


def pending() -> Batch | None:
    """The batch this turn's records are held in, until it is written. The runner waits for it before
    it answers, and answers with the refusal if `refused` is then set."""
    return _batch[0] if _batch else None


def flush() -> None:
    """Write the records held this turn (in order, one write per sink)."""
    if _batch:
        _write(_batch.pop())


def _write(batch: Batch) -> None:
    batch.refused = not trail(batch.cfg).write(batch.lines)
    for cfg, entry in batch.others:
        if not trail(cfg).write([entry]):
            batch.refused = True
    if batch.refused:
        _retry_later()


def _retry_later() -> None:
    if not _state["retrying"] and _turn and _turn[0].is_running():
        _state["retrying"] = True
        _turn[0].call_later(1.0, _retry)


def _retry() -> None:
    """While blocked, try again once a second even if no call comes (the health check follows)."""
    _state["retrying"] = False
    for t in list(BLOCKED):
        t.retry()
    if BLOCKED:
        _retry_later()


def close() -> None:
    """At exit: write what is held, and end each chain with its closing digest."""
    flush()
    for t in list(_trails.values()):
        t.close()


# What one record may hold of a value the caller chose (a claimed AccessKeyId, an unknown action name,
# an address a gateway passed on): enough to recognise it, never enough to flood the trail. The other
# fields are the service's own (request id, verified account) or come from the validated request,
# whose every id is bounded by its model (resource ARNs).
MAX_FIELD = 128


def bounded(value: str, limit: int = MAX_FIELD) -> str:
    """`value`, or its first `limit` characters marked with the length it had."""
    if len(value) <= limit:
        return value
    return f"{value[:limit]}...(truncated, {len(value)} characters)"


def entry(request_id: str, action: str, account_id: str, access_key_id: str, source_ip: str,
          resources: list[str], code: str, status: int, now: float | None = None) -> dict:
    rec = {"EventTime": iso(now or time.time()),
           "RequestId": request_id, "AccountId": account_id, "AccessKeyId": access_key_id,
           "SourceIp": source_ip, "Action": action, "Resources": resources, "ResultCode": code,
           "HttpStatus": status}
    if len(access_key_id) > MAX_FIELD or len(action) > MAX_FIELD or len(source_ip) > MAX_FIELD:
        rec.update(AccessKeyId=bounded(access_key_id), Action=bounded(action), SourceIp=bounded(source_ip))
    return rec


def files(data_dir: Path) -> list[Path]:
    """The trail's files in the data directory, oldest writer first, each writer's parts in order."""
    found = [(m.group(2), int(m.group(3)), p) for p in (data_dir / DIR_NAME).glob("audit-*.log")
             if (m := FILE_RE.match(p.name))]
    return [p for _, _, p in sorted(found)]


def _events(path: Path):
    with open(path, "rb") as f:
        for line in f:
            try:
                rec = json.loads(line)
            except ValueError:
                continue  # a damaged line: `audit verify` reports it
            if isinstance(rec, dict) and "EventTime" in rec:
                for name in CHAIN_FIELDS:
                    rec.pop(name, None)
                yield rec


def events(data_dir: Path, **filters: str | None):
    """Call records of a data directory's trail matching every given field (exact), oldest first,
    without their chain fields. Digest and outage records are left out."""
    sources = [_events(p) for p in files(data_dir)]
    legacy = data_dir / FILE_NAME
    if legacy.exists():
        sources.insert(0, _events(legacy))
    for rec in heapq.merge(*sources, key=lambda r: r["EventTime"]):
        if all(str(rec.get(k, "")) == v for k, v in filters.items() if v is not None):
            yield rec


def read(path: str, **filters: str):
    """Records of one audit file matching every given field (exact), in file order."""
    for rec in _events(Path(path)):
        if all(str(rec.get(k, "")) == v for k, v in filters.items() if v is not None):
            yield rec
