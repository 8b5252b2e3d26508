"""The request-nonce table of a local instance: a hash table in a memory-mapped file, shared by every
worker process (and every runner) on the data directory.

Every signed request records its nonce, so this is on the hot path of every call. A SQLite write
costs ~10 us of commit overhead plus lock waits when two workers write at once (`scripts/bench`
measured a third of the signed-request rate going to it); here a check-and-insert is a hash, a
lock and a few bytes of shared memory, a few microseconds.

Layout: `SLOTS` slots of 16 bytes: a 12-byte fingerprint of the nonce key (BLAKE2b) and a 4-byte
little-endian expiry (epoch seconds; 0 or past = free). A key hashes to a window of `WINDOW`
consecutive slots; it is a replay if its fingerprint sits unexpired in the window, else it takes the
first free slot. A byte-range lock on just that window (an open-file-description lock, so it is
per store object, plus a thread lock for threads sharing one object) makes the check-and-insert
atomic across processes, while two requests contend only if their windows overlap (a whole-file
lock measured 4x slower per call with two busy workers). A window full of live nonces means more requests
within the replay window than the table holds: the caller refuses the request (throttling) rather
than forget a nonce. Expired slots are reused in place, so the table never needs sweeping.
The file survives restarts, so nonces do too; a crash loses at most what the OS had not written
back, which the timestamp window already bounds.
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

SLOT = 16
WINDOW = 32
# Default size: 4M nonces, 64 MB (KMS_NONCE_SLOTS): ~2,800 signed requests/s sustained over the
# 15-minute window, and a burst of about two million. Size costs nothing per call since the pages
# are mapped writable up front (8M slots had measured 15 us slower per request through the write
# faults); it is memory: a table bigger than RAM would page.
SLOTS = 1 << 22
_FP = 12
_SPAN = WINDOW * SLOT


def _range_lock(fd: int, kind: int, start: int) -> None:
    # struct flock: l_type, l_whence, l_start, l_len, l_pid (0 for OFD locks), padding.
    fcntl.fcntl(fd, fcntl.F_OFD_SETLKW, struct.pack("hhqqi4x", kind, os.SEEK_SET, start, _SPAN, 0))


def _allocate(fd: int, size: int) -> None:
    """Write the table out as real zeros once: first writes into holes of a sparse file make the
    filesystem allocate blocks inside a request, which measured as stalls of tens of milliseconds."""
    fcntl.flock(fd, fcntl.LOCK_EX)  # two processes creating the file at once: one writes it
    try:
        have = os.fstat(fd).st_size
        chunk = bytes(1 << 20)
        os.lseek(fd, have, os.SEEK_SET)
        while have < size:
            have += os.write(fd, chunk[: size - have])
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)


class SharedNonces:
    def __init__(self, path: str | Path, slots: int | None = None) -> None:
        self._slots = slots = slots or SLOTS
        size = slots * SLOT
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        if os.fstat(self._fd).st_size < size:
            _allocate(self._fd, size)
        # Map every page now (once per process) rather than fault them in one by one inside requests.
        flags = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
        self._mm = mmap.mmap(self._fd, size, flags=flags)
        if sys.platform == "linux":
            # MAP_POPULATE maps a shared file's pages read-only: each page's first write in each
            # process still took a fault (ext4 page_mkwrite, ~5% of a worker's CPU early in a run).
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
            _range_lock(self._fd, fcntl.F_WRLCK, start)
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
                _range_lock(self._fd, fcntl.F_UNLCK, start)

    def close(self) -> None:
        self._mm.close()
        os.close(self._fd)
