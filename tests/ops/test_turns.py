"""The runner's per-turn audit batch (runner/turns.py) belongs to its event loop's thread: a call
running on a call thread (remote store) writes its own record and leaves the batch alone, since the
loop may be filling it and the calls waiting for it are answered by the loop once it is written."""

from __future__ import annotations

import asyncio
import json
import threading

from alikms.runner import turns
from alikms.shared import audit
from alikms.shared.config import get_config


def test_a_call_thread_leaves_the_loops_held_records_alone(local_env, monkeypatch):
    monkeypatch.setattr(audit, "_holder", [])
    cfg = get_config()
    loop = asyncio.new_event_loop()
    holder = turns.TurnHolder(loop)
    held, go, seen = threading.Event(), threading.Event(), {}

    def on_the_loop() -> None:  # a call answered on the loop: its record is held for the turn's end
        audit.record(cfg, {"RequestId": "loop-call", "Action": "DescribeKey"})
        held.set()
        go.wait(10)  # meanwhile a call thread finishes its own call
        seen["batch"] = holder.pending()

    def run() -> None:
        holder.thread = threading.get_ident()
        audit.hold_records(holder)
        loop.call_soon(on_the_loop)
        loop.call_later(0.05, loop.stop)
        loop.run_forever()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert held.wait(10)
        audit.record(cfg, {"RequestId": "thread-call", "Action": "Encrypt"})  # a call thread's record
    finally:
        go.set()
        thread.join(10)
        loop.close()
    assert seen["batch"] is not None and [e["RequestId"] for e in seen["batch"].lines] == ["loop-call"]
    audit.close()
    written = [json.loads(line) for p in audit.files(local_env) for line in p.read_bytes().splitlines()]
    assert [r["RequestId"] for r in written if "Action" in r] == ["thread-call", "loop-call"]
