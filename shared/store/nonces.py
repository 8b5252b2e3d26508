"""The request-nonce table of a local instance: a hash table in a memory-mapped file, shared by every
worker process (and every runner) on the data directory.

Every signed request records its nonce, so this is on the hot path of every call. A SQLite write
costs a commit plus lock waits when two workers write at once (a large share of the signed-request
rate went to it: docs/measurements.md); here a check-and-insert is a hash, a lock and a few bytes
of shared memory.

Layout: `SLOTS` slots of 16 bytes: a 12-byte fingerprint of the nonce key (BLAKE2b) and a 4-byte
little-endian expiry (epoch seconds; 0 or past = free). A key hashes to a window of `WINDOW`
consecutive slots; it is a replay if its fingerprint sits unexpired in the window, else it takes the
first free slot. A byte-range lock on just that window (an open-file-description lock, so it is
per store object, plus a thread lock for threads sharing one object) makes the check-and-insert
atomic across processes, while two requests contend only if their windows overlap (a whole-file
lock measured several times slower per call with two busy workers). A window full of live nonces means more requests
within the replay window than the table holds: the caller refuses the request (throttling) rather
than forget a nonce. Expired slots are reused in place, so the table never needs sweeping.
Where it lives (`table_path`): in shared memory (tmpfs, /dev/shm) by default. A file on disk is
written back every half minute, and each page written back takes a write fault at its next write:
a measurable part of a call and most of the run-to-run spread of `scripts/bench`. The table
survives runner restarts there, and a clean shutdown also saves it beside the database
(`save`), from where a new table is seeded, so a reboot forgets no nonce either; only a crash of
the whole host loses the last 15 minutes of nonces. Tables whose data directory is gone are removed
when another table is created.

/dev/shm is writable by every local user and the table's name is predictable, so a table planted
there by someone else (and wiped by them later, to replay a captured request) must never be
adopted: tables live in a private directory of the service's user (`alikms-UID`, 0700), and every
file here is opened without following links and checked on its descriptor (owner, one link,
regular file: `alikms.shared.localfiles`). The service refuses to start on anything it did not make.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import struct
import sys
import threading
from pathlib import Path

from .. import localfiles

SLOT = 16
WINDOW = 32
# Default size: 2M nonces, 32 MB (KMS_NONCE_SLOTS): ~1,400 signed requests/s sustained over the
# 15-minute window and a burst of about a million, and it fits a container's default 64 MB /dev/shm.
# Size costs nothing per call once the pages are mapped (before that, a larger table measured slower
# per request through write faults: docs/measurements.md); it is memory.
SLOTS = 1 << 21
SHM = "/dev/shm"
_FP = 12
_SPAN = WINDOW * SLOT


def range_lock(fd: int, kind: int, start: int, length: int = _SPAN) -> None:
    """Lock (F_WRLCK) or unlock (F_UNLCK) bytes of a file shared by processes, waiting if need be."""
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), padding.
    fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, struct.pack("hhqqi4x", kind, os.SEEK_SET, start, length, 0))


def table_path(db_path: Path, nonce_dir: str | None) -> Path:
    """The table of the database at `db_path`: in `nonce_dir` (KMS_NONCE_DIR; "data" means beside the
    database), by default in /dev/shm where the host has it, else beside the database. Outside the
    data directory it sits in the service user's private directory there (`claim` makes it)."""
    beside = db_path.with_name(db_path.stem + "-nonces.map")
    if nonce_dir == "data" or (nonce_dir is None and not os.path.isdir(SHM)):
        return beside
    tag = hashlib.sha256(str(db_path.resolve()).encode()).hexdigest()[:24]
    return private_dir(nonce_dir) / f"nonces-{tag}.map"


def private_dir(nonce_dir: str | None = None) -> Path:
    """The service user's own directory for tables in `nonce_dir` (default /dev/shm)."""
    return Path(nonce_dir or SHM) / f"alikms-{os.geteuid()}"


def claim(table: Path, data_dir: Path) -> None:
    """Before a table outside the data directory is opened: make sure its directory is the service's
    own (refusing one someone else made), note whose table it is, and sweep the others'."""
    localfiles.private_dir(table.parent)
    if not os.path.lexists(table):
        sweep(table.parent, keep=table)
        localfiles.write_private(table.with_suffix(".owner"), str(data_dir.resolve()).encode(), replace=True)


def sweep(directory: Path, keep: Path | None = None) -> None:
    """Remove the tables in the private directory whose data directory no longer exists."""
    for owner in directory.glob("nonces-*.owner"):
        table = owner.with_suffix(".map")
        with contextlib.suppress(OSError, localfiles.UnsafeFile):
            if table != keep and not os.path.isdir(localfiles.read_private(owner).decode()):
                table.unlink(missing_ok=True)
                owner.unlink()


def allocate(fd: int, size: int, seed: Path | None = None) -> None:
    """Write the table out once, as real zeros or as the saved copy `seed`: first writes into holes
    of a sparse file make the filesystem allocate blocks inside a request (stalls of tens of ms)."""
    fcntl.flock(fd, fcntl.LOCK_EX)  # two processes creating the file at once: one writes it
    try:
        have = os.fstat(fd).st_size
        if have == 0 and seed is not None and os.path.lexists(seed):
            src = localfiles.open_private(seed, os.O_RDONLY, create=False)
            with os.fdopen(src, "rb") as f:
                if os.fstat(src).st_size == size:
                    while chunk := f.read(1 << 20):
                        have += os.write(fd, chunk)
        chunk = bytes(1 << 20)
        os.lseek(fd, have, os.SEEK_SET)
        while have < size:
            have += os.write(fd, chunk[: size - have])
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


class SharedNonces:
    def __init__(self, path: str | Path, slots: int | None = None, seed: Path | None = None) -> None:
        """Open (or create, from `seed` if it holds a saved table of this size) the table at `path`."""
        self._slots = slots = slots or SLOTS
        size = slots * SLOT
        self._fd = localfiles.open_private(path)
        if os.fstat(self._fd).st_size < size:
            try:
                allocate(self._fd, size, seed)
            except OSError as exc:
                os.close(self._fd)
                raise OSError(exc.errno, f"no room for the {size >> 20} MB nonce table at {path}: make room, "
                                         "or set KMS_NONCE_SLOTS lower or KMS_NONCE_DIR elsewhere") from exc
        # Map every page now (once per process) rather than fault them in one by one inside requests.
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        self._mm = mmap.mmap(self._fd, size, flags=flags)
        if sys.platform == "linux":
            # MAP_POPULATE maps a shared file's pages read-only: each page's first write in each
            # process still took a fault (ext4 page_mkwrite: a visible share of a worker's CPU early in
            # a run, docs/measurements.md).
            # MADV_POPULATE_WRITE (Linux 5.14; the constant is missing from Python 3.11) maps them
            # writable up front without changing a byte, so it is safe beside running writers.
            with contextlib.suppress(OSError):
                self._mm.madvise(getattr(mmap, "MADV_POPULATE_WRITE", 23))
        self._lock = threading.Lock()

    def remember(self, key: str, now: int, ttl: int) -> bool | None:
        """True if the nonce is new (recorded until now + ttl), False if it is a replay, None if
        the table has no room for it."""
        digest = hashlib.blake2b(key.encode(), digest_size=_FP + 8).digest()
        fp = digest[:_FP]
        start = int.from_bytes(digest[_FP:], "little") % (self._slots - WINDOW) * SLOT
        expiry = (now + ttl).to_bytes(4, "little")
        mm = self._mm
        with self._lock:
            range_lock(self._fd, fcntl.F_WRLCK, start)
            try:
                block = mm[start : start + _SPAN]
                at = block.find(fp)
                while at != -1:
                    if at % SLOT == 0:  # an aligned match is this key's slot
                        if int.from_bytes(block[at + _FP : at + SLOT], "little") > now:
                            return False
                        mm[start + at + _FP : start + at + SLOT] = expiry  # its old use has expired
                        return True
                    at = block.find(fp, at + 1)
                for at in range(0, _SPAN, SLOT):
                    if int.from_bytes(block[at + _FP : at + SLOT], "little") <= now:
                        mm[start + at : start + at + SLOT] = fp + expiry
                        return True
                return None
            finally:
                range_lock(self._fd, fcntl.F_UNLCK, start)

    def usage(self, now: int) -> tuple[int, int]:
        """(live nonces, slots): how full the table is. Reads every slot's expiry without locking (a
        gauge may be a request or two off), for the metrics scrape and `alikms admin status`."""
        view = memoryview(self._mm).cast("I")  # 4 unsigned 32-bit words per slot, the expiry last
        try:
            expiries = view[3::4].tolist()
        finally:
            view.release()
        return sum(1 for e in expiries if e > now), self._slots

    def save(self, path: Path) -> None:
        """Write a copy of the table to `path` (atomically, mode 0600), for a later table to start from."""
        localfiles.write_private(path, self._mm, replace=True)

    def close(self) -> None:
        self._mm.close()
        os.close(self._fd)
