"""The audit trail: one JSON record per call, success or failure, like ActionTrail.

Fields: time, request id, account, access key id, source IP, action, resource ARNs, result code
and HTTP status. Never parameters, plaintext, data keys, secret values or signatures. Records go
to stdout as JSON lines (Function Compute ships stdout to its log service) and, in local mode, are
appended to `audit.log` in the data directory (O_APPEND, one write per line, so several worker
processes can share the file).
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time

import orjson

from . import localfiles
from .config import Config
from .wire import iso

FILE_NAME = "audit.log"
_fd: dict = {}  # data dir -> open descriptor of its audit log


_turn: list = []  # [event loop, its thread] while the local runner holds records for the end of each turn
_held: list[tuple[Config, bytes]] = []


def hold_per_turn(loop) -> None:
    """Let the local runner's event loop collect the records of one turn and write them together.

    Responses leave at the end of the turn too (runner/http_protocol.py), scheduled after the
    records, so no response is out before its record. Several calls finishing in one turn then cost
    one write per sink instead of one each (a system call per call measured a few per cent)."""
    if not _turn or _turn[0] is not loop:
        if not _turn:
            atexit.register(flush)  # a loop that stops before its turn ends loses nothing
        _turn[:] = [loop, threading.get_ident()]


def record(cfg: Config, entry: dict) -> None:
    line = orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
    if _turn and _turn[1] == threading.get_ident() and _turn[0].is_running():
        if not _held:
            _turn[0].call_soon(flush)
        _held.append((cfg, line))
    else:
        flush()  # anything a stopped loop still held goes first
        _write(cfg, line)


def flush() -> None:
    """Write the records held this turn (in order, one write per sink)."""
    while _held:
        cfg = _held[0][0]
        lines = b"".join(line for c, line in _held if c is cfg)
        _held[:] = [(c, line) for c, line in _held if c is not cfg]
        _write(cfg, lines)


def _write(cfg: Config, lines: bytes) -> None:
    if cfg.audit_stdout:
        os.write(1, lines)  # unbuffered: the lines are out before the invocation ends
    if cfg.data_dir is not None:
        fd = _fd.get(cfg.data_dir)
        if fd is None:
            fd = _fd[cfg.data_dir] = localfiles.open_private(cfg.data_dir / FILE_NAME, os.O_WRONLY | os.O_APPEND)
        os.write(fd, lines)


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


def read(path: str, **filters: str):
    """Records of an audit file matching every given field (exact), oldest first."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if all(str(rec.get(k, "")) == v for k, v in filters.items() if v is not None):
                yield rec
