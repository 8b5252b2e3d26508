"""The local runner: `serve` the whole API over HTTP, fire the timers, `invoke` one function once.

`serve`: HTTP on 127.0.0.1 (uvicorn, httptools, uvloop; one worker process per core) in front of
`app.app`. The supervisor process fires the timer functions on their cron schedules from the same
registry. `invoke`: call one function once with an event file, like `fun local invoke`.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time

from alikms.shared import registry
from alikms.shared.config import get_config
from alikms.shared.store import get_store

from .app import _release_store, fc_context, function_handler


def timer_event(job: registry.Job, epoch: int) -> dict:
    return {"triggerTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
            "triggerName": f"{job.name}-timer", "payload": job.payload}


def fire(job: registry.Job, second: int) -> dict | None:
    """Run a job's handler as its timer does at `second`; its summary, or None if it failed."""
    try:
        return function_handler(job.module)(json.dumps(timer_event(job, second)).encode(), fc_context(job.name))
    except Exception as exc:  # noqa: BLE001 - a failed run must not stop the clock
        print(f"timer {job.name} failed: {type(exc).__name__}", file=sys.stderr)
        return None
    finally:
        _release_store()


def run_timers(stop: threading.Event) -> None:
    """Fire each job's handler when its schedule matches, once per second boundary."""
    from alikms.runner.cron import Schedule

    schedules = [(job, Schedule.parse(job.cron)) for job in registry.JOBS]
    last = int(time.time())
    while not stop.wait(max(0.0, last + 1 - time.time())):
        now = int(time.time())
        for second in range(last + 1, now + 1):
            for job, schedule in schedules:
                if schedule.matches(second):
                    fire(job, second)
        last = now


def serve(args: argparse.Namespace) -> None:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    first_start = not (args.data_dir and os.path.exists(os.path.join(args.data_dir, "credentials.json")))
    cfg = get_config()  # creates the data dir, bootstrap credentials and root key on first start
    from alikms.shared import identity

    identity.ensure_bootstrap(get_store(), cfg, time.time())  # the first admin key, listed by scripts/admin
    if getattr(args, "seed", None):
        _load_seed(args.seed, cfg)
    _release_store()  # this thread now only waits
    print(f"KMS (API 2016-01-20) on http://{args.host}:{args.port}  region {cfg.region}  account {cfg.account_id}"
          f"  store {cfg.store}" + (f"  data {cfg.data_dir}" if cfg.data_dir else ""), flush=True)
    if first_start and not os.environ.get("KMS_ACCESS_KEY_SECRET"):
        print(f"AccessKeyId: {cfg.access_key_id}\nAccessKeySecret: {cfg.access_key_secret}", flush=True)
    else:
        print(f"AccessKeyId: {cfg.access_key_id}", flush=True)
    stop = threading.Event()
    if not args.no_timers:
        threading.Thread(target=run_timers, args=(stop,), daemon=True, name="timers").start()
    config = uvicorn.Config("alikms.runner.app:app", host=args.host, port=args.port, workers=args.workers,
                            http="alikms.runner.http_protocol:RunnerProtocol", loop="uvloop", log_level="warning", access_log=False,
                            lifespan="off", server_header=False,
                            # The runner is the gateway: it says who connected (x-forwarded-for in the
                            # event), never a client's own header, or acs:SourceIp could be forged.
                            proxy_headers=False, timeout_keep_alive=args.timeout_keep_alive)
    config.request_timeout = args.request_timeout  # read by RunnerProtocol, in each worker process
    server = uvicorn.Server(config)
    # uvicorn re-raises the signal that stopped it once it has shut down; leave through Python
    # instead, so the `finally` below runs.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_quietly)
    try:
        if args.workers > 1:
            Multiprocess(config, sockets=[config.bind_socket()]).run()
        else:
            server.run()
    finally:
        stop.set()
        save = getattr(get_store(), "save_nonces", None)
        if save is not None:
            try:
                save()  # a nonce table in shared memory would not outlive a reboot
            except OSError as exc:  # a full disk, say: the table itself is intact, only the copy failed
                print(f"could not save the nonce table into the data directory: {exc.strerror}", file=sys.stderr)


def _load_seed(path: str, cfg) -> None:
    """Create the seed file's keys, aliases and secrets (what exists already is kept)."""
    from alikms.shared import seed

    try:
        done = seed.apply(seed.load(path), get_store(), cfg, time.time())
    except seed.SeedError as exc:
        print(f"--seed {path}: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"seeded from {path}: {len(done['keys'])} keys, {len(done['secrets'])} secrets", flush=True)


def _exit_quietly(signum, frame) -> None:
    raise SystemExit(0)


def invoke(args: argparse.Namespace) -> int:
    """Invoke one function (its name in template.yml) once with an event file."""
    spec = registry.action(args.function) or next((j for j in registry.JOBS if j.name == args.function), None)
    if spec is None:
        print(f"unknown function {args.function!r}", file=sys.stderr)
        return 2
    if args.event:
        event = open(args.event, "rb").read()
    elif isinstance(spec, registry.Job):
        event = json.dumps(timer_event(spec, int(time.time()))).encode()
    else:
        event = sys.stdin.buffer.read()
    result = function_handler(spec.module)(event, fc_context(spec.name))
    print(json.dumps(result, indent=2, ensure_ascii=False))
    return 0
