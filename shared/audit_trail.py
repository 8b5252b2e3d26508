"""The audit trail's writing side: a hash chain per writer, authenticated digests, rotating files,
and what happens when a record cannot be written.

Chain. Each process writing records is one writer, with its own id (`<pid>-<8 hex>`). Every line it
writes ends with `"Writer"`, `"Seq"` (0, 1, 2, ...) and `"Prev"`: the first 128 bits of the SHA-256
of its previous line (newline included), in hex. The same lines go, in the same order, to every sink
(stdout, and the files of the data directory: audit_sinks.py), so each sink holds whole chains.
Concurrent workers never share a chain or a file: no interleaving, and a failed write can be cut
back to the last whole line.

Digests. A writer's first line is a `Start` record, and a `Digest` record follows every
`audit_digest_records` records, the first write `audit_digest_seconds` after the last digest, the
end of each file ("End": "rotated", naming the next file) and the end of the process ("End":
"closed"). These carry "Mac", an HMAC-SHA256 of the line's own bytes (up to the Mac) under a key
derived with HKDF from the primary root key, named by "KeyId". Whoever can edit the files without
the root key can recompute the unkeyed chain, but not a digest: everything up to the last digest is
authenticated, and a record removed from the end shows as soon as the writer appends again (its
`Seq`/`Prev` then skip it).

Files. `<data dir>/audit/audit-<UTC date>-<writer>-<part>.log`, mode 0600, created by the writer
alone. A file ends past `audit_rotate_bytes` or when the UTC day changes; the chain goes on in the
next part. The writer holds a shared flock on the file it writes, so `verify` tells a file still being
written from one that ends early. A file removed while open is noticed within a second and its records,
read back through the open descriptor, begin the next part: removing a file loses no record.

Failures. A write that fails (disk full, permission lost, the directory gone) is cut back to the last
whole line and its lines are kept, in order, to go first once writing works again. Unless
`audit_fail_open` is set the writer is then blocked: calls are refused with ServiceUnavailableTemporary
(503) before they run (`audit.admit`), and so are the calls whose records were in the failed write
(their answers wait for it: runner/app.py, runtime.handler). A blocked writer retries on every call
and once a second in the runner; when the held lines are written, an `Outage` record counts the calls
refused meanwhile (their own records are not chained: nothing ran) and calls run again.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time

import orjson

from . import log, telemetry
from .audit_sinks import DIR_NAME, FAILURES, FILE_RE, FileSink, Sink, StdoutSink, errno_name
from .config import Config
from .wire import iso

__all__ = ["BLOCKED", "DIR_NAME", "FILE_RE", "Trail", "digest_key", "errno_name", "line_hash", "mac_ok",
           "mac_ok_under"]

REFUSAL = "ServiceUnavailableTemporary"  # the result code of a call refused because the trail cannot be written
DIGEST_INFO = b"alikms audit trail digests v1"
_MAC_TAIL = len(b',"Mac":""}') + 64

BLOCKED: set = set()  # the trails of this process that refuse calls until they can write


_sha256 = hashlib.sha256
_dumps, _NEWLINE = orjson.dumps, orjson.OPT_APPEND_NEWLINE
_monotonic = time.monotonic
_os_write = os.write


def line_hash(line: bytes) -> str:
    """The `Prev` that the line after `line` (with its newline) carries."""
    return _sha256(line).hexdigest()[:32]


def digest_key(root_key: bytes) -> bytes:
    """The key that authenticates digests: derived from a root key for this one purpose, so it can be
    kept after the root key itself is retired (`rootkeys.retire_digest_keys`) without exposing it."""
    from . import crypto

    return crypto.derive_key(root_key, DIGEST_INFO)


def digest_mac(root_key: bytes, body: bytes) -> str:
    from . import crypto

    return crypto.hmac_sha256(digest_key(root_key), body).hex()


def mac_ok(root_key: bytes, line: bytes) -> bool:
    """Whether a Start/Digest line's Mac authenticates the line under `root_key`."""
    return mac_ok_under(digest_key(root_key), line)


def mac_ok_under(key: bytes, line: bytes) -> bool:
    """Whether a Start/Digest line's Mac authenticates the line under the digest key `key`."""
    from . import crypto

    body, tail = line[:-_MAC_TAIL] + b"}", line[-_MAC_TAIL:]
    if not (tail.startswith(b',"Mac":"') and tail.endswith(b'"}')):
        return False
    try:
        tag = bytes.fromhex(tail[8:-2].decode("ascii"))
    except ValueError:
        return False
    return crypto.hmac_sha256_ok(key, body, tag)


class Trail:
    """One writer's chain over the sinks `cfg` names."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.writer = f"{os.getpid()}-{secrets.token_hex(4)}"
        self.lock = threading.RLock()
        self.seq, self.prev = 0, ""
        self.sinks: list[Sink] = [StdoutSink()] if cfg.audit_stdout else []
        self.file = FileSink(cfg.data_dir / DIR_NAME, self.writer) if cfg.data_dir is not None else None
        if self.file is not None:
            self.sinks.append(self.file)
        self.blocked, self.refused, self.failing_since, self.failures, self.logged = False, 0, 0.0, 0, 0.0
        self.since_digest, self.digest_due, self.closed = 0, 0.0, False
        self._rotate_bytes, self._digest_records = cfg.audit_rotate_bytes, cfg.audit_digest_records
        self._fail_open = cfg.audit_fail_open
        self._steady, self._due, self._room = False, 0.0, 0  # see _steady_state
        self._fds: tuple[int, ...] = ()

    # --- lines ---
    def _typed(self, kind: str, signed: bool, **fields) -> bytes:
        rec = {"Type": kind, "Time": iso(time.time()), **fields, "Writer": self.writer, "Seq": self.seq,
               "Prev": self.prev}
        if signed:
            from .crypto import root

            ring = root.keys(self.cfg)
            key_id = next(iter(ring))
            body = orjson.dumps({**rec, "KeyId": key_id})
            line = body[:-1] + b',"Mac":"%s"}\n' % digest_mac(ring[key_id], body).encode()
            self.since_digest, self.digest_due = 0, time.monotonic() + self.cfg.audit_digest_seconds
        else:
            line = orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE)
        self.prev = line_hash(line)
        self.seq += 1
        return line

    # --- writing ---
    def write(self, entries: list[dict]) -> bool:
        """Chain and write `entries` (records: the chain fields are added to them). False if they could
        not be written and calls must be refused for it (never in fail-open mode).

        Every call passes here, so the usual case (nothing held, nothing due) is kept to the chain
        and one write per sink; anything else takes `_write`."""
        lock = self.lock
        lock.acquire()  # (not `with`: on this path the statement costs as much as the lock)
        try:
            now = _monotonic()
            if not self._steady or now >= self._due or self._room <= 0 \
                    or self.since_digest + len(entries) >= self._digest_records:
                return self._write(entries, now)
            out, seq, prev, writer, size = [], self.seq, self.prev, self.writer, 0
            for entry in entries:  # each record gets its place in the chain
                entry["Writer"], entry["Seq"], entry["Prev"] = writer, seq, prev
                line = _dumps(entry, option=_NEWLINE)
                prev = _sha256(line).hexdigest()[:32]  # (= line_hash, in fewer steps)
                seq += 1
                size += len(line)
                out.append(line)
            self.seq, self.prev, self._room = seq, prev, self._room - size
            self.since_digest += len(entries)
            data = out[0] if len(out) == 1 else b"".join(out)
            for i, fd in enumerate(self._fds):  # (each sink's `_put`, inline: nothing held, nothing due)
                try:
                    written = _os_write(fd, data)
                except OSError as exc:
                    return self._emit_from(i, data, 0, exc)
                if written != size:
                    return self._emit_from(i, data, written, None)
            if self.file is not None:
                self.file.size += size
            return True
        finally:
            lock.release()

    def _emit_from(self, i: int, data: bytes, written: int, error: OSError | None) -> bool:
        """The short way met a write that failed (`error`) or stopped short (`written` bytes): that
        sink finishes or holds `data`, the sinks after it write it as usual."""
        sink, ok = self.sinks[i], True
        try:
            if error is not None:
                raise error
            sink._rest(data, written)
            if sink is self.file:
                self.file.size += len(data)
        except FAILURES as exc:
            sink.error = exc
            sink._hold(data)
            ok = False
        for later in self.sinks[i + 1:]:
            ok = later.write(data) and ok
        if not ok:
            self._failed()
        return ok or self._fail_open

    def _steady_state(self) -> None:
        """Whether the next write may take the short way, and until when: the next digest by time, the
        end of the day, the next check that the file still exists, and the bytes left before it rotates."""
        file = self.file
        self._steady = bool(self.seq) and not (self.blocked or self.closed or any(s.held for s in self.sinks))
        self._due, self._room = self.digest_due, 1 << 62
        if file is not None:
            self._steady = self._steady and file.fd is not None and not file.carry and file.next is None
            self._due, self._room = min(self._due, file.day_ends, file.check_at), self._rotate_bytes - file.size
        fds = tuple(sink.fd for sink in self.sinks if sink.fd is not None)
        self._fds = fds if self._steady and len(fds) == len(self.sinks) else ()

    def _write(self, entries: list[dict], now: float) -> bool:
        try:
            if self.closed:
                return True
            if self.blocked or not self.seq:
                entries = self._before(entries)
                if not entries:
                    return self.blocked is False
            file = self.file
            if file is not None and (file.size >= self._rotate_bytes or now >= file.day_ends) and file.can_rotate():
                # The file ends with a digest naming the next, which these lines then begin.
                name = file.next = file.next_name()
                self._emit([self._typed("Digest", True, End="rotated", Next=name)], now)
            out, seq, prev, writer = [], self.seq, self.prev, self.writer
            for entry in entries:  # (as in `write`)
                entry["Writer"], entry["Seq"], entry["Prev"] = writer, seq, prev
                line = _dumps(entry, option=_NEWLINE)
                prev = line_hash(line)
                seq += 1
                out.append(line)
            self.seq, self.prev = seq, prev
            self.since_digest += len(entries)
            if self.since_digest >= self._digest_records or now >= self.digest_due:
                out.append(self._typed("Digest", True))
            return self._emit(out, now) or self._fail_open
        finally:
            self._steady_state()

    def _before(self, entries: list[dict]) -> list[dict]:
        """The first write of a writer starts with its Start record; a blocked writer first tries to
        write what it holds, and while still blocked counts refused calls instead of chaining them."""
        if self.blocked:
            self.retry()
        if self.blocked:
            kept = [entry for entry in entries if entry.get("ResultCode") != REFUSAL]
            if len(kept) != len(entries):
                self.refused += len(entries) - len(kept)
                telemetry.sink.audit("refused", len(entries) - len(kept))
            entries = kept
        if entries and not self.seq:
            self._emit([self._typed("Start", True, Pid=os.getpid())])
        return entries

    def _emit(self, out: list[bytes], now: float = 0.0) -> bool:
        data = out[0] if len(out) == 1 else b"".join(out)
        ok = True
        for sink in self.sinks:
            if sink.held:
                ok = sink.write(data) and ok
                continue
            try:  # (what sink.write does when nothing is held, one call less: every call's path)
                sink._put(data, now)
            except FAILURES as exc:
                sink.error = exc
                sink._hold(data)
                ok = False
        if not ok:
            self._failed()
        return ok

    def _failed(self) -> None:
        """Count the failure; log it when writing first fails, then at most every ten seconds."""
        telemetry.sink.audit("write_failure")
        self.failures, self._steady = self.failures + 1, False
        now = time.monotonic()
        if not self.failing_since:
            self.failing_since, self.logged = time.time(), 0.0
        if now - self.logged >= 10.0:
            self.logged = now
            sink = next((s for s in self.sinks if s.held), None)
            log.get("kms.audit").error(
                "audit trail cannot be written: " + ("serving on (fail-open)" if self.cfg.audit_fail_open
                                                     else "calls are refused until it can"),
                extra={"event": "audit.write_failed", "sink": sink.name if sink else "",
                       "file": getattr(getattr(sink, "path", None), "name", None),
                       "error": errno_name(sink.error if sink else None), "writer": self.writer,
                       "failed_writes": self.failures, "refused_calls": self.refused})
        if not self.cfg.audit_fail_open and not self.blocked:
            self.blocked = True
            BLOCKED.add(self)
            telemetry.sink.audit_blocked(True)

    def retry(self) -> bool:
        """Write what the sinks hold. True once nothing is held (then calls run again)."""
        with self.lock:
            ok = True
            for sink in self.sinks:
                ok = sink.retry() and ok
            if ok and self.failing_since:
                self._recovered()
            self._steady_state()
            return ok and not self.blocked

    def _recovered(self) -> None:
        refused, since = self.refused, self.failing_since
        self.refused, self.failing_since, self.failures = 0, 0.0, 0
        if self.blocked:
            self.blocked = False
            BLOCKED.discard(self)
            telemetry.sink.audit_blocked(False)
        log.get("kms.audit").warning("audit trail writable again", extra={
            "event": "audit.recovered", "refused_calls": refused, "seconds": round(time.time() - since, 3),
            "writer": self.writer})
        if refused:
            self._emit([self._typed("Outage", False, Since=iso(since), RefusedCalls=refused)])

    def close(self) -> None:
        """End the chain with a closing digest (at process exit). A data directory removed meanwhile
        (a test's, a benchmark's) took the trail with it: nothing is left to close there."""
        with self.lock:
            if self.closed:
                return
            sinks = self.sinks
            if self.file is not None and not self.file.dir.parent.is_dir():
                self.sinks = [sink for sink in sinks if sink is not self.file]
            if self.seq and self.sinks:
                self._emit([self._typed("Digest", True, End="closed")])
            self.closed, self._steady = True, False
            BLOCKED.discard(self)
            for sink in sinks:
                sink.close()
