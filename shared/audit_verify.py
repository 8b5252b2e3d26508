"""Checking the audit trail (`alikms admin audit verify`): what `audit_trail.py` wrote, writer by writer.

Each problem is reported with the file and line where it shows:

* malformed: a line that is not a whole record of this writer (edited by hand, or cut short);
* edited: a record whose bytes no longer match the hash the record after it keeps (`Prev`);
* removed: records missing from a writer's chain (its `Seq` skips them), or a missing file;
* reordered: a record that comes after a later one;
* duplicated: the same `Seq` twice;
* forged: a Start or Digest record whose Mac does not authenticate it under the root key it names
  (its bytes, or the chain it seals, were changed by someone without the root key);
* unverifiable: a Start or Digest record naming a root key that neither the ring nor the retired
  digest keys (`rootkeys.retire_digest_keys`, kept by `rotate-root-key`) know: it cannot be
  authenticated, and a forger without the root key would name just such a key;
* truncated: a file that stops without its closing digest while no writer holds it (cut short, or
  its writer was killed before it could close it).

Not a problem, but said: records after the last digest of a file still being written (chained, not
yet authenticated).
"""

from __future__ import annotations

import contextlib
import fcntl
import itertools
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from .audit_trail import DIR_NAME, FILE_RE, digest_key, line_hash, mac_ok_under


@dataclass(frozen=True)
class Finding:
    kind: str  # one of the problem kinds above, or "note"
    file: str
    line: int  # 1-based; 0 when it concerns the file as a whole
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.kind}: {self.message}"


@dataclass
class _Rec:
    file: str
    line: int
    seq: int
    prev: str
    hash: str
    data: dict
    raw: bytes


@dataclass
class Report:
    files: int = 0
    records: int = 0
    writers: int = 0
    findings: list[Finding] = field(default_factory=list)

    @property
    def problems(self) -> list[Finding]:
        return [f for f in self.findings if f.kind != "note"]


def _live(path: Path) -> bool:
    """Whether a writer still holds the file open (its shared flock)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


def _read(path: Path, writer: str, report: Report, tick: Callable[[int], None]) -> tuple[list[_Rec], list[int]]:
    """The records of one file, and the line numbers of its malformed lines (a last line cut short
    counts among them, reported as the file's truncation)."""
    recs, bad = [], []
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            tick(len(raw))
            if not raw.endswith(b"\n"):
                bad.append(number)
                report.findings.append(Finding("truncated", path.name, number, "the file ends inside a record"))
                break
            line = raw[:-1]
            try:
                data = orjson.loads(line)
                ok = (isinstance(data, dict) and data.get("Writer") == writer and type(data.get("Seq")) is int
                      and isinstance(data.get("Prev"), str))
            except orjson.JSONDecodeError:
                ok = False
            if not ok:
                bad.append(number)
                report.findings.append(Finding("malformed", path.name, number, f"not a record of writer {writer}"))
                continue
            recs.append(_Rec(path.name, number, data["Seq"], data["Prev"], line_hash(raw), data, line))
            report.records += 1
    return recs, bad


def _check_writer(writer: str, parts: list[tuple[int, Path]], keys: dict[str, bytes], report: Report,
                  tick: Callable[[int], None]) -> None:
    find = report.findings.append
    recs: list[_Rec] = []
    bad_at: dict[str, list[int]] = {}
    names = {p.name for _, p in parts}
    expected, after_gap = 0, set()
    for number, path in parts:
        if number != expected:
            find(Finding("removed", path.name, 0,
                         f"file parts {expected}..{number - 1} of writer {writer} are missing"))
            after_gap.add(path.name)
        expected = number + 1
        got, bad = _read(path, writer, report, tick)
        recs.extend(got)
        bad_at[path.name] = bad
        report.files += 1
    if not recs:
        return
    by_seq: dict[int, _Rec] = {}
    high = None
    for rec in recs:
        if rec.seq in by_seq:
            first = by_seq[rec.seq]
            find(Finding("duplicated", rec.file, rec.line, f"Seq {rec.seq} again (first at {first.file}:{first.line})"))
            continue
        by_seq[rec.seq] = rec
        if high is not None and rec.seq < high.seq:
            find(Finding("reordered", rec.file, rec.line, f"Seq {rec.seq} comes after Seq {high.seq} "
                                                          f"({high.file}:{high.line})"))
        if high is None or rec.seq > high.seq:
            high = rec
    _gaps(recs, by_seq, bad_at, after_gap, find)
    for rec in by_seq.values():
        before = by_seq.get(rec.seq - 1)
        if before is not None and rec.prev != before.hash:
            find(Finding("edited", before.file, before.line, f"record Seq {before.seq} does not match the hash "
                                                             f"that Seq {rec.seq} ({rec.file}:{rec.line}) keeps"))
    _digests(recs, keys, find)
    cut = {f.file for f in report.findings if f.kind == "truncated"}
    _ends(writer, parts, recs, names, cut, find)


def _gaps(recs: list[_Rec], by_seq: dict[int, _Rec], bad_at: dict[str, list[int]], after_gap: set[str],
          find) -> None:
    """Seq numbers missing from the chain, unless malformed lines stand exactly where they were or a
    missing file (already reported) held them."""
    seqs = sorted(by_seq)
    first = by_seq[seqs[0]]
    if seqs[0] != 0 and not (first.file in after_gap and first.line == recs[0].line and first.file == recs[0].file):
        find(Finding("removed", first.file, first.line, f"records Seq 0..{seqs[0] - 1} before it are missing"))
    for a, b in itertools.pairwise(seqs):
        if b == a + 1:
            continue
        ra, rb = by_seq[a], by_seq[b]
        if rb.file in after_gap and ra.file != rb.file:
            continue  # they were in the missing file
        between = sum(1 for n in bad_at.get(rb.file, []) if (ra.file != rb.file or n > ra.line) and n < rb.line)
        if ra.file == rb.file and between >= b - a - 1:
            continue  # the malformed lines are those records, reported as such
        find(Finding("removed", rb.file, rb.line, f"records Seq {a + 1}..{b - 1} before it are missing"))


def _digests(recs: list[_Rec], keys: dict[str, bytes], find) -> None:
    last_good = -1
    for rec in sorted(recs, key=lambda r: r.seq):
        if rec.data.get("Type") not in ("Start", "Digest"):
            continue
        key_id = rec.data.get("KeyId", "")
        key = keys.get(key_id) if isinstance(key_id, str) else None
        if key is None:
            find(Finding("unverifiable", rec.file, rec.line, f"digest Seq {rec.seq} names root key {key_id!r}, which "
                         "neither the ring nor the retired digest keys hold: it cannot be authenticated (put that "
                         "root key back in the ring to check it)"))
            continue
        if not mac_ok_under(key, rec.raw):
            find(Finding("forged", rec.file, rec.line,
                         f"digest Seq {rec.seq} does not authenticate: it or the records Seq "
                         f"{last_good + 1}..{rec.seq - 1} it seals were changed"))
            continue
        last_good = rec.seq


def _ends(writer: str, parts: list[tuple[int, Path]], recs: list[_Rec], names: set[str], cut: set[str],
          find) -> None:
    """Every file ends with its closing digest; a rotated one names the next file, which must exist."""
    last_of: dict[str, _Rec] = {}
    for rec in recs:
        last_of[rec.file] = rec
    for i, (_, path) in enumerate(parts):
        if path.name in cut:
            continue  # already reported: it ends inside a record
        last = last_of.get(path.name)
        end = last.data.get("End") if last and last.data.get("Type") == "Digest" else None
        if end == "rotated" and last is not None:
            nxt = last.data.get("Next", "")
            if nxt not in names and i == len(parts) - 1:  # (a missing file between two was reported)
                find(Finding("removed", path.name, last.line, f"the next file it names, {nxt}, is missing"))
            continue
        if end == "closed" and i == len(parts) - 1:
            continue
        if i == len(parts) - 1 and _live(path):
            mine = [r for r in recs if r.file == path.name]
            sealed = max((n for n, r in enumerate(mine) if r.data.get("Type") in ("Start", "Digest")), default=-1)
            unsealed = len(mine) - 1 - sealed
            find(Finding("note", path.name, 0, f"being written by writer {writer}"
                                               + (f"; its last {unsealed} records are not yet sealed by a digest"
                                                  if unsealed else "")))
            continue
        where = last.line if last else 0
        find(Finding("truncated", path.name, where, "the file ends without its closing digest (cut short, or its "
                                                    "writer was stopped without closing it)"))


def verify(data_dir: Path, ring: dict[str, bytes], progress: Callable[[int, int], None] | None = None,
           retired: dict[str, bytes] | None = None) -> Report:
    """Check every file of the trail in `data_dir` against the root keys of `ring` and the digest keys
    of retired root keys (`retired`, by root key id); `progress(bytes done, bytes total)` as it reads."""
    report = Report()
    keys = {**(retired or {}), **{kid: digest_key(key) for kid, key in ring.items()}}
    writers: dict[str, list[tuple[int, Path]]] = {}
    directory = data_dir / DIR_NAME
    for path in sorted(directory.glob("*")) if directory.is_dir() else []:
        m = FILE_RE.match(path.name)
        if m is None:
            if path.is_file() and not path.name.startswith("."):
                report.findings.append(Finding("note", path.name, 0, "not a trail file name: not checked"))
            continue
        writers.setdefault(m.group(2), []).append((int(m.group(3)), path))
    total = sum(p.stat().st_size for parts in writers.values() for _, p in parts)
    done = [0]

    def tick(n: int) -> None:
        done[0] += n
        if progress is not None and (done[0] & 0xFFFFF) < n:  # about once a megabyte
            progress(done[0], total)

    for writer, parts in sorted(writers.items()):
        report.writers += 1
        _check_writer(writer, sorted(parts), keys, report, tick)
    legacy = data_dir / "audit.log"
    if legacy.exists():
        with contextlib.suppress(OSError):
            count = sum(1 for _ in open(legacy, "rb"))
            report.findings.append(Finding("note", legacy.name, 0, f"{count} records from before the chained "
                                                                   "trail: not verifiable"))
    if progress is not None:
        progress(total, total)
    return report
