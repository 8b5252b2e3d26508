"""The local runner: `serve` the whole API over HTTP, fire the timers, `invoke` one function once.

`serve`: HTTP on 127.0.0.1 (uvicorn, httptools, uvloop; one worker process per core) in front of
`app.app`. The supervisor process fires the timer functions on their cron schedules from the same
registry, and serves the metrics and health listener (`listener.py`). `invoke`: call one function once
with an event file, like `fun local invoke`. Operational events are JSON lines on stderr (shared/log.py).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import threading
import time

from alikms.shared import audit, log, registry, rootkeys
from alikms.shared.config import get_config
from alikms.shared.store import get_store

from . import listener, metrics
from .app import _release_store, fc_context, function_handler


def timer_event(job: registry.Job, epoch: int) -> dict:
    return {"triggerTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)),
            "triggerName": f"{job.name}-timer", "payload": job.payload}


def fire(job: registry.Job, second: int) -> dict | None:
    """Run a job's handler as its timer does at `second`; its summary, or None if it failed."""
    try:
        return function_handler(job.module)(json.dumps(timer_event(job, second)).encode(), fc_context(job.name))
    except Exception as exc:  # noqa: BLE001 - a failed run must not stop the clock
        # The job logged its own failure; this says the invocation failed, as FC would.
        log.get("kms.timer").error("timer invocation failed", extra={
            "event": "timer.invocation_failed", "job": job.name, "error": type(exc).__name__})
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

    store = get_store()
    rootkeys.check_ring(store, cfg)  # before anything is written under a ring that opens nothing stored
    directory = metrics.prepare(cfg.data_dir) if cfg.data_dir is not None else None
    metrics.start_process()
    audit.check_dir(cfg)  # a trail directory planted by another user stops the runner here, as other files do
    identity.ensure_bootstrap(store, cfg, time.time())  # the first admin key, listed by scripts/admin
    if getattr(args, "seed", None):
        _load_seed(args.seed, cfg)
    _release_store()  # this thread now only waits
    metrics_server = _metrics_listener(store, cfg, directory)
    log.get("kms.runner").info("runner starting",
                               extra={"event": "runner.start", **settings(cfg, args, metrics_server)})
    print(f"KMS (API 2016-01-20) on http://{args.host}:{args.port}  region {cfg.region}  account {cfg.account_id}"
          f"  store {cfg.store}" + (f"  data {cfg.data_dir}" if cfg.data_dir else ""), flush=True)
    if first_start and not os.environ.get("KMS_ACCESS_KEY_SECRET"):
        print(f"AccessKeyId: {cfg.access_key_id}\nAccessKeySecret: {cfg.access_key_secret}", flush=True)
    else:
        print(f"AccessKeyId: {cfg.access_key_id}", flush=True)
    stop = threading.Event()
    if not args.no_timers:
        threading.Thread(target=run_timers, args=(stop,), daemon=True, name="timers").start()
    threading.Thread(target=listener.watch_nonces, args=(store, stop), daemon=True, name="nonce-watch").start()
    config = uvicorn.Config("alikms.runner.app:app", host=args.host, port=args.port, workers=args.workers,
                            http="alikms.runner.http_protocol:RunnerProtocol", loop="uvloop", log_level="warning",
                            log_config=log.uvicorn_log_config(), access_log=False,
                            lifespan="auto", server_header=False,  # app.lifespan closes the audit chains
                            # The runner is the gateway: it says who connected (x-forwarded-for in the
                            # event), never a client's own header, or acs:SourceIp could be forged.
                            proxy_headers=False, timeout_keep_alive=args.timeout_keep_alive,
                            # HTTP only: with a WebSocket library installed (uvicorn[standard] brings one)
                            # an `Upgrade: websocket` request would otherwise go to a protocol the app does
                            # not speak, and wait unanswered and unaudited for ever.
                            ws="none")
    # Our own setting, carried on uvicorn's config into each worker process, where RunnerProtocol reads it.
    config.request_timeout = args.request_timeout  # type: ignore[attr-defined]
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
        try:
            get_store().save_nonces()  # a nonce table in shared memory would not outlive a reboot
        except OSError as exc:  # a full disk, say: the table itself is intact, only the copy failed
            log.get("kms.runner").error("could not save the nonce table into the data directory", extra={
                "event": "nonces.save_failed", "error": exc.strerror or type(exc).__name__})
        if metrics_server is not None:
            metrics_server.shutdown()
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)  # this runner's counts end with it
        log.get("kms.runner").info("runner stopped", extra={"event": "runner.stop"})


def settings(cfg, args: argparse.Namespace, metrics_server) -> dict:
    """The effective configuration for the startup line: every setting but the secrets (the access
    key secret, root keys and Tablestore credentials); root keys by id only."""
    hidden = {"access_key_secret", "root_keys", "ots_access_key_id", "ots_access_key_secret", "ots_security_token"}
    out = {name: (str(value) if isinstance(value, os.PathLike) else value)
           for name, value in vars(cfg).items() if name not in hidden}
    out["root_key_ids"] = list(cfg.root_keys)
    out.update(host=args.host, port=args.port, workers=args.workers, timers=not args.no_timers,
               metrics=f"http://{cfg.metrics_host}:{metrics_server.server_address[1]}/metrics" if metrics_server
               else None)
    return out


def _metrics_listener(store, cfg, directory):
    """The metrics and health listener, or None (turned off, or its address taken: logged, not fatal)."""
    if directory is None or cfg.metrics_port == 0:
        return None
    try:
        return listener.serve(store, cfg, directory)
    except OSError as exc:
        log.get("kms.runner").error("metrics listener not started", extra={
            "event": "runner.metrics_unavailable", "address": f"{cfg.metrics_host}:{cfg.metrics_port}",
            "error": os.strerror(exc.errno) if exc.errno else type(exc).__name__})
        return None


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
