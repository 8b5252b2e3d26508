"""Function Compute timer schedules: six-field cron (seconds first, UTC) and `@every <n><s|m|h>`.

Only what a timer trigger accepts: numbers, `*`, `?`, ranges `a-b`, lists `a,b`, steps `*/n` and
`a-b/n`, month and weekday names. Weekdays run 0-7 with both 0 and 7 meaning Sunday.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

_MONTHS = {m: i + 1 for i, m in enumerate("JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split())}
_DAYS = {d: i for i, d in enumerate("SUN MON TUE WED THU FRI SAT".split())}
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}), (0, 59, {}), (0, 23, {}), (1, 31, {}), (1, 12, _MONTHS), (0, 7, _DAYS))


def _field(text: str, low: int, high: int, names: dict[str, int]) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        expr, _, step_text = part.partition("/")
        step = int(step_text) if step_text else 1
        if expr in ("*", "?"):
            start, end = low, high
        else:
            a, _, b = expr.partition("-")
            start = names[a.upper()] if a.upper() in names else int(a)
            end = (names[b.upper()] if b.upper() in names else int(b)) if b else (high if step_text else start)
        if not (low <= start <= end <= high) or step < 1:
            raise ValueError(f"bad cron field {text!r}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    fields: tuple[frozenset[int], ...] | None
    every: int | None  # seconds, for @every

    @classmethod
    def parse(cls, text: str) -> Schedule:
        text = text.strip()
        if text.startswith("@every "):
            spec = text[7:].strip()
            mult = {"s": 1, "m": 60, "h": 3600}.get(spec[-1:])
            if mult is None or not spec[:-1].isdigit() or int(spec[:-1]) < 1:
                raise ValueError(f"bad interval {text!r}: use @every <n>s|m|h with n >= 1")
            return cls(None, int(spec[:-1]) * mult)
        parts = text.split()
        if len(parts) != 6:
            raise ValueError("cron needs six fields: seconds minutes hours day-of-month month day-of-week")
        return cls(tuple(_field(p, lo, hi, names) for p, (lo, hi, names) in zip(parts, _FIELDS, strict=True)), None)

    def matches(self, epoch: int) -> bool:
        if self.every is not None:
            return epoch % self.every == 0
        t = time.gmtime(epoch)
        sec, minute, hour, dom, month, dow = self.fields  # type: ignore[misc]
        weekday = (t.tm_wday + 1) % 7  # Python: Monday=0; cron: Sunday=0
        return (
            t.tm_sec in sec and t.tm_min in minute and t.tm_hour in hour and t.tm_mday in dom
            and t.tm_mon in month and (weekday in dow or (weekday == 0 and 7 in dow))
        )
