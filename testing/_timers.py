"""Which timer jobs fall due when a test moves the double's clock, and when.

The deployed service fires each job on its cron schedule (`registry.JOBS`), and a job acts on the
rows whose deadline has passed at its trigger time. Firing every tick of a long jump (a year is
100,000 ticks) would make `advance` slow, and firing once at the end would be wrong: a key rotating
weekly must get a version per week, each dated at the tick that made it. So the double reads each
job's earliest pending deadline from the store, fires that job at the first of its own ticks at or
after the deadline, and repeats until no job has a tick due by the target time. The result is what
the deployed service would have done by then, tick for tick, at the cost of one run per change.

The deadlines mirror the predicates of the jobs (functions/jobs/): a change there needs one here.
"""

from __future__ import annotations

from collections.abc import Callable

from alikms.runner.cron import Schedule
from alikms.shared import lifecycle, registry
from alikms.shared.records import ImportToken, Key, Secret
from alikms.shared.store import Store

JOBS = {job.name: job for job in registry.JOBS}


def deadlines(store: Store) -> dict[str, float]:
    """The earliest instant at which each job has something to do (jobs with nothing pending are left out)."""
    due: dict[str, list[float]] = {name: [] for name in JOBS}
    for key in Key.scan(store):
        # RotateKeys: versions.rotation_due
        if key.automatic_rotation and key.state == lifecycle.ENABLED and key.last_rotation_date is not None \
                and key.rotation_interval is not None:
            due["RotateKeys"].append(key.last_rotation_date + key.rotation_interval)
        # DeleteExpiredKeys: lifecycle.is_gone
        if key.state == lifecycle.PENDING_DELETION and key.delete_date is not None:
            due["DeleteExpiredKeys"].append(key.delete_date)
        # ExpireKeyMaterial: imported material past its expiry
        if key.material_expire_time is not None and key.state in (lifecycle.ENABLED, lifecycle.DISABLED):
            due["ExpireKeyMaterial"].append(key.material_expire_time)
    for token in ImportToken.scan(store):  # ExpireKeyMaterial also drops expired import tokens
        due["ExpireKeyMaterial"].append(token.expires)
    for secret in Secret.scan(store):  # DeleteExpiredSecrets: secrets.is_gone
        if secret.planned_delete_time is not None:
            due["DeleteExpiredSecrets"].append(secret.planned_delete_time)
    return {name: min(times) for name, times in due.items() if times}


def next_tick(schedule: Schedule, at: int) -> int:
    """The first second >= `at` at which `schedule` fires."""
    if schedule.every is not None:
        return -(-at // schedule.every) * schedule.every
    seconds = sorted(schedule.fields[0])  # type: ignore[index]
    minute = at - at % 60
    for _ in range(366 * 24 * 60 + 1):  # a valid schedule fires within a year
        for second in seconds:
            t = minute + second
            if t >= at and schedule.matches(t):
                return t
        minute += 60
    raise ValueError("the schedule never fires")


def fire_due(store: Store, fired_until: dict[str, int], target: int,
             run: Callable[[registry.Job, int], dict]) -> list[tuple[str, int, dict]]:
    """Fire, in time order, every job tick in (fired_until[job], target] at which the job has work.

    `run(job, tick)` runs one job at one trigger time. Returns (job name, tick, result) per run.
    `fired_until` is updated: every tick up to `target` counts as fired afterwards."""
    schedules = {name: Schedule.parse(job.cron) for name, job in JOBS.items()}
    runs: list[tuple[str, int, dict]] = []
    stuck: set[str] = set()
    while True:
        pending = deadlines(store)
        best: tuple[int, str] | None = None
        for name, when in pending.items():
            if name in stuck:
                continue
            tick = next_tick(schedules[name], max(int(-(-when // 1)), fired_until[name] + 1))
            if tick <= target and (best is None or tick < best[0]):
                best = (tick, name)
        if best is None:
            break
        tick, name = best
        runs.append((name, tick, run(JOBS[name], tick)))
        fired_until[name] = tick
        if deadlines(store).get(name) == pending[name]:
            # The run left its earliest row as it was (it failed on it): the deployed service would
            # retry on every tick with the same result, so stop here rather than tick to the target.
            stuck.add(name)
    for name in fired_until:
        fired_until[name] = max(fired_until[name], target)
    return runs

