"""The runner's audit seam: the records of one event-loop turn are written together, at its end.

Responses leave at the end of the turn too (http_protocol.py), and the runner answers a call only
after its record's write (app.py waits for `pending()`). Several calls finishing in one turn then
cost one write per sink instead of one each, saving a system call per call (docs/measurements.md).
`TurnHolder` is an `audit.Holder`: everything else (the chain, the files, failing closed) is the
audit writer's.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from alikms.shared import audit
from alikms.shared.config import Config


class Batch:
    """Records held for the end of one event-loop turn; `refused` once their write failed (fail-closed).
    They share one configuration, except in tests, which may mix them (`others`)."""

    __slots__ = ("cfg", "lines", "others", "refused")

    def __init__(self, cfg: Config) -> None:
        self.cfg, self.refused = cfg, False
        self.lines: list[dict] = []
        self.others: list[tuple[Config, dict]] = []


class TurnHolder:
    """Holds the records made on its event loop's thread while the loop runs, for the end of the turn."""

    __slots__ = ("_held", "_retrying", "holding", "loop", "thread")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop, self.thread = loop, threading.get_ident()
        self._held: list[Batch] = []  # this turn's batch, while one is held
        self._retrying = False
        # False around a call that no other request in flight could share a write with (`alone`)
        self.holding = True

    def hold(self, cfg: Config, entry: dict) -> bool:
        if not self.holding or not self.loop.is_running():
            return False
        if not self._held:
            self._held.append(Batch(cfg))
            self.loop.call_soon(self.flush)
        batch = self._held[0]
        if cfg is batch.cfg:
            batch.lines.append(entry)
        else:
            batch.others.append((cfg, entry))
        return True

    def running(self) -> bool:
        return self.loop.is_running()

    def pending(self) -> Batch | None:
        """The batch this turn's records are held in, until it is written. The runner waits for it
        before it answers, and answers with the refusal if `refused` is then set."""
        return self._held[0] if self._held else None

    def flush(self) -> None:
        """Write the records held this turn (in order, one write per sink)."""
        if not self._held:  # the usual case for a record made elsewhere: raising IndexError cost more
            return
        try:
            batch = self._held.pop()  # (a call thread flushes only once the loop has stopped: audit.record)
        except IndexError:
            return
        batch.refused = not audit.write(batch.cfg, batch.lines)
        for cfg, entry in batch.others:
            if not audit.write(cfg, [entry]):
                batch.refused = True
        if batch.refused:
            self._retry_later()

    def alone(self, call: Callable[..., dict], *args: object) -> dict:
        """Run `call(*args)`, the only request in flight, with its records written at once rather than held:
        no other call could finish in this turn and share the write, and its answer then need not
        wait a turn for it. A write that failed (the call is answered with the refusal) is retried
        once a second as a held one is."""
        self.holding = False
        try:
            return call(*args)
        finally:
            self.holding = True
            if audit.blocked():
                self._retry_later()

    def _retry_later(self) -> None:
        if not self._retrying and self.loop.is_running():
            self._retrying = True
            self.loop.call_later(1.0, self._retry)

    def _retry(self) -> None:
        """While blocked, try again once a second even if no call comes (the health check follows)."""
        self._retrying = False
        if audit.retry_blocked():
            self._retry_later()


_current: list[TurnHolder] = []  # this process's holder (one event loop per worker)


def for_loop(loop: asyncio.AbstractEventLoop) -> TurnHolder:
    """The holder of `loop`, installed as the audit writer's holder on first use."""
    if not _current or _current[0].loop is not loop:
        _current[:] = [TurnHolder(loop)]
        audit.hold_records(_current[0])
    return _current[0]
