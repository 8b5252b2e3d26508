"""The audit trail: one JSON record per call, success or failure, like ActionTrail.

Fields: time, request id, account, access key id, source IP, action, resource ARNs, result code
and HTTP status. Never parameters, plaintext, data keys, secret values or signatures. Records go
to stdout as JSON lines (Function Compute ships stdout to its log service) and, in local mode, are
appended to `audit.log` in the data directory (O_APPEND, one write per line, so several worker
processes can share the file).
"""

from __future__ import annotations

import json
import os
import time

import orjson

from .config import Config
from .wire import iso

FILE_NAME = "audit.log"
_fd: dict = {}  # data dir -> open descriptor of its audit log


def record(cfg: Config, entry: dict) -> None:
    line = orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
    if cfg.audit_stdout:
        os.write(1, line)  # one unbuffered write: the line is out before the invocation ends
    if cfg.data_dir is not None:
        fd = _fd.get(cfg.data_dir)
        if fd is None:
            fd = _fd[cfg.data_dir] = os.open(cfg.data_dir / FILE_NAME, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.write(fd, line)


def entry(request_id: str, action: str, account_id: str, access_key_id: str, source_ip: str,
          resources: list[str], code: str, status: int, now: float | None = None) -> dict:
    return {"EventTime": iso(now or time.time()),
            "RequestId": request_id, "AccountId": account_id, "AccessKeyId": access_key_id,
            "SourceIp": source_ip, "Action": action, "Resources": resources, "ResultCode": code,
            "HttpStatus": status}


def read(path: str, **filters: str):
    """Records of an audit file matching every given field (exact), oldest first."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if all(str(rec.get(k, "")) == v for k, v in filters.items() if v is not None):
                yield rec
