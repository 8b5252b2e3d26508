"""Files a local instance keeps: created private (0600), opened only if the service made them.

Everything a local instance writes holds key material, secrets, credentials or metadata about them:
the SQLite database and its -wal/-shm files, credentials.json, root.key, the audit trail's files
(audit/), the nonce table and its saved copy, the change counter, the runner's metrics files.
Another local user must neither read these nor plant one in advance for the service to adopt: a
nonce table planted in /dev/shm by another user, and wiped by them later, would let a captured
request be replayed.

So every such file is opened here, never through a symbolic link (`O_NOFOLLOW`), and checked on the
descriptor that was opened (`fstat`), so nothing can be swapped between the check and the use:
  - a regular file, with one link if the service writes to it (a hard link to a file elsewhere
    would have us write into that file),
  - owned by the user the service runs as: anything else was not created by the service, and the
    service refuses to start on it (`UnsafeFile`, with what to do);
  - mode 0600: a file of ours with a looser mode (a database made by an older version, or by hand)
    is tightened in place, since only our own user could have made it.
New files are created 0600 whatever the umask or the directory's mode. Files that must appear
whole (credentials, root key, saved tables) are written under a unique temporary name created with
`O_EXCL` and then linked or renamed into place.

Directories: the data directory is the operator's (any mode, owned by the service user or root,
but not writable by every user). Files kept in a directory every user can write to (the nonce table
in /dev/shm) live in a private subdirectory of it (`private_dir`: 0700, ours). Either way every
directory above must belong to root or the service's user and must not let every user rename its
entries, or the whole directory could be swapped for another user's while the service runs.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import mmap

PRIVATE = 0o600
_OPEN = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK  # O_NONBLOCK: a planted FIFO must not hang us


class UnsafeFile(Exception):
    """A file or directory the service did not create, or must not trust. Refuse to start."""


def _refuse(path: Path | str, why: str) -> UnsafeFile:
    return UnsafeFile(f"{path} {why}: the service did not create it. Check who put it there, then remove it "
                      f"(`rm -r {path}`) and start again")


def check_file(fd: int, path: Path | str, writing: bool = True) -> os.stat_result:
    """Refuse what the service did not create; tighten a loose mode of a file of ours to 0600."""
    st = os.fstat(fd)
    _check(st, path, writing)
    if st.st_mode & 0o7177:
        os.fchmod(fd, st.st_mode & PRIVATE)  # only ever take permissions away
    return st


def _check(st: os.stat_result, path: Path | str, writing: bool) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "is not a regular file")
    if st.st_uid != os.geteuid():
        raise _refuse(path, f"belongs to uid {st.st_uid}, not to the service's user (uid {os.geteuid()})")
    # A second link to another file would have the service write into that file. Only for files
    # written: a file made whole by `write_private` has two links for a moment while it appears.
    if writing and st.st_nlink != 1:
        raise _refuse(path, f"has {st.st_nlink} hard links")


def open_private(path: Path | str, flags: int = os.O_RDWR, create: bool = True) -> int:
    """Open (or create, mode 0600) a file of the service and check it (`check_file`); the descriptor."""
    try:
        fd = os.open(path, flags | _OPEN | (os.O_CREAT if create else 0), PRIVATE)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _refuse(path, "is a symbolic link") from None
        raise
    try:
        check_file(fd, path, writing=bool(flags & (os.O_WRONLY | os.O_RDWR)))
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_path(path: Path) -> bool:
    """`check_file` by path, for a file another component opens itself (SQLite's): False if absent."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    if stat.S_ISLNK(st.st_mode):
        raise _refuse(path, "is a symbolic link")
    _check(st, path, writing=True)
    if st.st_mode & 0o7177:
        os.chmod(path, st.st_mode & PRIVATE)
    return True


def read_private(path: Path | str) -> bytes:
    """The contents of a file of the service (checked as `open_private` does)."""
    fd = open_private(path, os.O_RDONLY, create=False)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def write_private(path: Path | str, data: bytes | memoryview | mmap.mmap, replace: bool = False) -> None:
    """Write a whole file, mode 0600, so a reader sees no file, or the old one, or all of the new one:
    written under a unique temporary name (`O_EXCL`: never an existing file or link) and then
    renamed over `path` (`replace`) or linked to it (FileExistsError if another process made it first)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, PRIVATE)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if replace:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def check_links(path: Path) -> None:
    """The path as given passes through no symbolic link of another user's (say /tmp/kms planted to
    point at a directory of the service's user): that user would choose the directory."""
    given = Path(os.path.abspath(path))
    for step in [*reversed(given.parents), given]:
        with contextlib.suppress(FileNotFoundError):
            st = os.lstat(step)
            if stat.S_ISLNK(st.st_mode) and st.st_uid not in (os.geteuid(), 0):
                raise UnsafeFile(f"{step} is a symbolic link of uid {st.st_uid}, who chooses where it leads: "
                                 f"name the real directory instead")


def _check_parents(path: Path) -> None:
    """`check_links`, and every directory above `path` belongs to root or to the service's user, and
    none lets every user replace what it holds (world-writable without the sticky bit, like /tmp
    has): otherwise another user could move `path` away and put a directory of their own in its place."""
    check_links(path)
    for parent in Path(os.path.realpath(path)).parents:
        st = os.stat(parent)
        if st.st_uid not in (os.geteuid(), 0):
            raise UnsafeFile(f"{parent}, above {path}, belongs to uid {st.st_uid}, who could replace {path.name} "
                             f"with a directory of their own: use a place whose parents belong to root or the "
                             f"service's user (uid {os.geteuid()})")
        if st.st_mode & stat.S_IWOTH and not st.st_mode & stat.S_ISVTX:
            raise UnsafeFile(f"{parent}, above {path}, is writable by every user without the sticky bit, so anyone "
                             f"could replace {path.name} in it: use another place")


def check_data_dir(path: Path) -> None:
    """The data directory: owned by the service's user (or root), not writable by every user, who
    could otherwise put files in it before the service does, and in a safe place (`_check_parents`)."""
    _check_parents(path)
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise UnsafeFile(f"data directory {path} is not a directory")
    if st.st_uid not in (os.geteuid(), 0):
        raise UnsafeFile(f"data directory {path} belongs to uid {st.st_uid}, not to the service's user "
                         f"(uid {os.geteuid()}): use a directory of that user")
    if st.st_mode & stat.S_IWOTH:
        raise UnsafeFile(f"data directory {path} is writable by every user, who could replace the files in it: "
                         f"`chmod o-w {path}` (or 0700)")


def private_dir(path: Path) -> Path:
    """`path`, a directory of the service's own (0700, ours) inside a directory others may write to;
    created if missing. Refused if another user made it, or if a directory above lets them replace it."""
    _check_parents(path)
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            raise _refuse(path, "is a link or a file, not a directory") from None
        raise
    try:
        st = os.fstat(fd)
        if st.st_uid != os.geteuid():
            raise _refuse(path, f"belongs to uid {st.st_uid}, not to the service's user (uid {os.geteuid()})")
        if st.st_mode & 0o077:
            os.fchmod(fd, 0o700)  # ours, so made by our own user; what it holds is checked file by file
    finally:
        os.close(fd)
    return path
