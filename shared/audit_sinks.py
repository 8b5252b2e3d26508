"""Where the audit trail's lines go (audit_trail.py chains them): stdout, and a writer's files.

A sink writes whole lines or raises OSError; what it could not write it keeps, in order, and writes
first next time (`held`), so a trail that could not be written for a while resumes with nothing lost
or duplicated. The file sink owns the file naming and rotation mechanics (its writer decides when),
cuts a partial write back to the last whole line, and notices a file removed while open.
"""

from __future__ import annotations

import calendar
import contextlib
import fcntl
import os
import re
import time
from abc import ABC, abstractmethod
from pathlib import Path

from . import localfiles, log
from .localfiles import UnsafeFile

FAILURES = (OSError, UnsafeFile)  # what a write can meet: the filesystem's errors, or a file planted there

DIR_NAME = "audit"
FILE_RE = re.compile(r"^audit-(\d{8})-(\d+-[0-9a-f]{8})-(\d{6})\.log$")
_HELD_MAX = 32 << 20  # bytes a sink keeps while it cannot write; beyond, the oldest lines are lost (and logged)
_CHECK_SECONDS = 1.0  # how often a writer makes sure its open file still has a name


def errno_name(exc: BaseException | None) -> str:
    number = getattr(exc, "errno", None)
    if number:
        return os.strerror(number)
    return str(exc) if isinstance(exc, UnsafeFile) else type(exc).__name__


class Sink(ABC):
    """Where lines go. Keeps what it could not write, to write it first next time."""

    name = "sink"
    fd: int | None  # the descriptor written to, while one is open

    def __init__(self) -> None:
        self.held: list[bytes] = []
        self.held_bytes = 0
        self.error: Exception | None = None

    def write(self, data: bytes) -> bool:
        if not self.held:
            try:
                self._put(data)
                return True
            except FAILURES as exc:
                self.error = exc
                self._hold(data)
                return False
        self._hold(data)
        return self.retry()

    def retry(self) -> bool:
        """Write the held lines, one earlier write at a time (a file may end after one of them)."""
        while self.held:
            try:
                self._put(self.held[0])
            except FAILURES as exc:
                self.error = exc
                return False
            self.held_bytes -= len(self.held.pop(0))
        self.error = None
        return True

    def _hold(self, data: bytes) -> None:
        self.held.append(data)
        self.held_bytes += len(data)
        lost = 0
        while self.held_bytes > _HELD_MAX and len(self.held) > 1:
            dropped = self.held.pop(0)
            self.held_bytes -= len(dropped)
            lost += dropped.count(b"\n")
        if lost:
            log.get("kms.audit").error("audit records lost: more than the writer can hold while it cannot write",
                                       extra={"event": "audit.records_lost", "sink": self.name, "records": lost})

    @abstractmethod
    def _put(self, data: bytes, now: float = 0.0) -> None:
        """Write `data` whole or raise OSError. `now`: time.monotonic() if the caller has it."""

    def _rest(self, data: bytes, done: int) -> None:
        """Finish a write that stopped after `done` bytes, or raise OSError."""
        fd = self.fd
        assert fd is not None  # a write stopped short on it: it is open
        while done < len(data):
            done += os.write(fd, data[done:])

    def close(self) -> None:  # noqa: B027 - optional: stdout holds nothing of its own
        """Release what the sink holds open."""


class StdoutSink(Sink):
    name = "stdout"
    fd = 1

    def _put(self, data: bytes, now: float = 0.0) -> None:
        done = 0
        while done < len(data):
            done += os.write(1, data[done:] if done else data)  # unbuffered: out before the invocation ends


class FileSink(Sink):
    name = "file"

    def __init__(self, directory: Path, writer: str) -> None:
        super().__init__()
        self.dir, self.writer = directory, writer
        self.fd: int | None = None
        self.part, self.size, self.day_ends = -1, 0, 0.0
        self.path: Path | None = None
        self.want: str | None = None  # the name the next file must have (announced by a closing digest)
        self.next: str | None = None  # switch to this file once what was written ends the current one
        self.check_at = 0.0  # when to make sure the open file still has a name
        self.carry = b""  # what a removed file held: it goes first into the next one

    def next_name(self) -> str:
        return f"audit-{time.strftime('%Y%m%d', time.gmtime())}-{self.writer}-{self.part + 1:06d}.log"

    def can_rotate(self) -> bool:
        return self.fd is not None and self.next is None and not self.held

    def _open(self) -> None:
        name = self.want or self.next_name()
        # Made if missing (not the data directory: if that is gone, writing fails), and refused if
        # another user made it; the file is new (O_EXCL), 0600, never reached through a link.
        localfiles.private_dir(self.dir)
        # Readable too: if the file is removed while open, its records are read back from it (_check).
        fd = localfiles.open_private(self.dir / name, os.O_RDWR | os.O_APPEND | os.O_EXCL)
        fcntl.flock(fd, fcntl.LOCK_SH)  # "being written": verify does not call the missing end a truncation
        m = FILE_RE.match(name)
        self.fd, self.path, self.want, self.size = fd, self.dir / name, None, 0
        self.part = int(m.group(3)) if m else self.part + 1
        now, mono = time.time(), time.monotonic()
        self.day_ends = mono + calendar.timegm(time.gmtime(now)[:3] + (0, 0, 0)) + 86400.0 - now  # monotonic
        self.check_at = mono + _CHECK_SECONDS

    def _check(self, now: float) -> None:
        """Once a second: if the open file was removed, read back what it holds (the inode lives on
        while it is open) and start the next part with it, so removing the file loses no record."""
        self.check_at = now + _CHECK_SECONDS
        fd, path = self.fd, self.path
        assert fd is not None and path is not None  # checked only while a file is open
        if os.fstat(fd).st_nlink:
            return
        chunks, at = [], 0
        while chunk := os.pread(fd, 1 << 20, at):
            chunks.append(chunk)
            at += len(chunk)
        self.carry = b"".join(chunks) + self.carry
        log.get("kms.audit").error("audit file removed while being written: its records go into a new file",
                                   extra={"event": "audit.file_removed", "file": path.name})
        self._close_fd()
        self._open()

    def _put(self, data: bytes, now: float = 0.0) -> None:
        if self.fd is None:
            self._open()
        now = now or time.monotonic()
        if now >= self.check_at:
            self._check(now)
        if self.carry:
            self._write(self.carry)
            self.carry = b""
        fd = self.fd
        assert fd is not None  # opened above, or reopened by _check
        written = os.write(fd, data)  # (what _write does, inline)
        if written != len(data):
            self._rest(data, written)
        self.size += len(data)
        if self.next is not None:  # `data` ended with the closing digest of this file
            self.want, self.next = self.next, None
            self._close_fd()

    def _write(self, data: bytes) -> None:
        fd = self.fd
        assert fd is not None  # called with a file open
        written = os.write(fd, data)
        if written != len(data):
            self._rest(data, written)
        self.size += len(data)

    def _rest(self, data: bytes, done: int) -> None:
        """Finish a short write (a filesystem filling up), or cut the part written back off: a partial
        line would corrupt the record after it."""
        fd = self.fd
        assert fd is not None  # a write stopped short on it: it is open
        try:
            while done < len(data):
                done += os.write(fd, data[done:])
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, os.fstat(fd).st_size - done)
            raise

    def _close_fd(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def close(self) -> None:
        self._close_fd()
