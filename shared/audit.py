"""The audit trail: one JSON record per call, success or failure, like ActionTrail.

Fields: time, request id, account, access key id, source IP, action, resource ARNs, result code
and HTTP status. Never parameters, plaintext, data keys, secret values or signatures. Records go
to stdout as JSON lines (Function Compute ships stdout to its log service) and, in local mode, to
files in the data directory's `audit/` folder. Each line also carries its place in a hash chain
(`Writer`, `Seq`, `Prev`), and authenticated digests are interleaved: `audit_trail.py` writes them,
`audit_verify.py` checks them (`alikms admin audit verify`).

When a record cannot be written the call is refused (ServiceUnavailableTemporary, 503) unless
KMS_AUDIT_FAIL_OPEN is set: `admit` refuses calls before they run while the trail is blocked, and a
call whose own record fails to be written is answered with the refusal too. The local runner writes
the records of one event-loop turn together (runner/turns.py, through `hold_records`).
"""

from __future__ import annotations

import atexit
import heapq
import json
import threading
import time
from pathlib import Path
from typing import Protocol

from . import errors, localfiles
from .audit_trail import BLOCKED, DIR_NAME, FILE_RE, Trail
from .config import Config
from .wire import iso

FILE_NAME = "audit.log"  # the single file of earlier versions (no chain), still read by `events`
CHAIN_FIELDS = ("Writer", "Seq", "Prev")
REFUSED = "The audit trail cannot be written, so the service refuses calls until it can."
_trails: dict = {}  # data dir (None: stdout only) -> this process's Trail for it


class Holder(Protocol):
    """What takes the records made on one thread and writes them itself, later (`hold_records`): the
    local runner's event loop, which writes the records of one loop turn together (runner/turns.py)."""

    thread: int  # records made on this thread are offered to `hold`

    def hold(self, cfg: Config, entry: dict) -> bool:
        """Take the record, to be written through `write`; False to have it written now instead."""

    def flush(self) -> None:
        """Write what is held now (before a record made elsewhere, and at exit)."""

    def running(self) -> bool:
        """Whether it still takes records (its loop runs): then only its own thread writes them."""


_holder: list[Holder] = []  # the one Holder of this process, once installed
_state = {"exit_hook": False}
_last: list = [None, None]  # the configuration and trail of the last record: nearly always the same


def hold_records(holder: Holder) -> None:
    """Install `holder`: from now on the records made on its thread are offered to it first."""
    _holder[:] = [holder]
    _on_exit()


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
    On a holder's thread it is held (`hold_records`); anywhere else it is written now, and
    ServiceUnavailableTemporary is raised if it cannot be."""
    if _holder:
        holder = _holder[0]
        if holder.thread == threading.get_ident():
            if holder.hold(cfg, entry):
                return
            holder.flush()  # anything the stopped loop still held goes first
        elif not holder.running():
            holder.flush()  # the same, from another thread once that loop has stopped
        # A call thread (remote store) leaves a running loop's batch alone: the loop may be filling
        # it, and only the loop writes it and answers the calls waiting for it.
    if not trail(cfg).write([entry]):
        raise errors.ServiceUnavailableTemporary(REFUSED)


def write(cfg: Config, entries: list[dict]) -> bool:
    """Write records now, in order (one write per sink); False if they could not be written (the
    trail is blocked: unless it fails open, the calls they record are answered with the refusal)."""
    return trail(cfg).write(entries)


def blocked() -> bool:
    """Whether a trail of this process cannot be written now (calls are refused until it can)."""
    return bool(BLOCKED)


def retry_blocked() -> bool:
    """Try each blocked trail once more; True while one still is (a holder retries once a second
    even if no call comes, so that the health check follows)."""
    for t in list(BLOCKED):
        t.retry()
    return bool(BLOCKED)


def close() -> None:
    """At exit: write what is held, and end each chain with its closing digest."""
    if _holder:
        _holder[0].flush()
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
