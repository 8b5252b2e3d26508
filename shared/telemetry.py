"""Where the service reports what it does, for metrics: calls, store operations, timer runs, audit writes.

The shared code reports to `sink`, which does nothing by default (a Function Compute instance has
the platform's own metrics). The local runner installs a recorder in each of its processes
(`alikms.runner.metrics`) that counts into shared memory, so one scrape sees every worker.
Reporting costs a method call when nothing records, and is kept that small because two of these
calls happen on every request; a caller that would read the clock only to report a duration checks
`sink.records` first.
"""

from __future__ import annotations


class Sink:
    """The interface. A recorder subclasses it; the default (`_Nothing`) records nothing."""

    records = True  # whether durations are recorded: without, callers skip timing what they do

    def call(self, action: str, code: str, seconds: float) -> None:
        """One API call answered: its action ("" if none was recognised), result code and time taken."""

    def store(self, op: str, seconds: float) -> None:
        """One store operation completed (a Conflict counts as completed)."""

    def store_event(self, op: str, kind: str) -> None:
        """A store operation's "conflict" or "fault" (an exception other than Conflict)."""

    def store_retry(self, table: str) -> None:
        """The store retried a request on `table` after a transient failure (Tablestore)."""

    def timer(self, job: str, ok: bool, seconds: float, when: float) -> None:
        """One timer job run: whether it finished, how long it took, its trigger time."""

    def audit(self, kind: str, count: int = 1) -> None:
        """Audit trail trouble: "write_failure" (a write that failed) or "refused" (calls refused for it)."""

    def audit_blocked(self, blocked: bool) -> None:
        """This process cannot write its audit trail (True) or can again (False)."""


class _Nothing(Sink):
    records = False


sink: Sink = _Nothing()


def install(recorder: Sink) -> None:
    global sink
    sink = recorder
