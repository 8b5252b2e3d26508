"""Operational logs: JSON lines on stderr, with nothing sensitive in them.

An InternalFailure names its request id and shows its traceback's frames, never the exception's
message or any variable (both can hold what the caller sent). Timer runs, store faults and retries,
nonce-table pressure and the runner's start are each one line; the level is KMS_LOG_LEVEL.
"""

from __future__ import annotations

import base64
import importlib
import json
import sqlite3
import threading
import time

import pytest

from alikms.runner import listener, metrics
from alikms.shared import log, ops, registry, runtime, telemetry
from alikms.shared.store import get_store
from alikms.shared.store.observed import ObservedStore
from tests import support
from tests.ops.helpers import events, json_lines, stop

SECRET = "s3cret-plaintext-that-must-not-leak"


def fire(job: str, when: float | None = None) -> dict:
    spec = next(j for j in registry.JOBS if j.name == job)
    event = {"triggerTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when or time.time())),
             "triggerName": f"{job}-timer", "payload": spec.payload}
    return importlib.import_module(spec.module).handler(json.dumps(event).encode(), None)


@pytest.mark.internal_failure_expected
def test_an_internal_failure_logs_its_request_id_and_frames_only(invoke, monkeypatch, capfd):
    def parse_request(model, params):
        held_in_a_local = params["Plaintext"]  # a frame's variable: must not be logged
        raise ValueError(f"cannot use {base64.b64decode(held_in_a_local).decode()}")

    monkeypatch.setattr(runtime, "parse_request", parse_request)
    capfd.readouterr()
    status, body = invoke("Encrypt", {"KeyId": "alias/x", "Plaintext": base64.b64encode(SECRET.encode()).decode()})
    assert (status, body["Code"], body["Message"]) == (500, "InternalFailure", "Internal Failure.")
    err = capfd.readouterr().err
    (line,) = events(err, "request.internal_failure")
    assert (line["level"], line["request_id"], line["action"], line["error"]) == \
        ("error", body["RequestId"], "Encrypt", "ValueError")
    assert 'in parse_request' in line["traceback"] and "raise ValueError(" in line["traceback"]
    assert line["traceback"].rstrip().endswith("builtins.ValueError")
    assert SECRET not in err and base64.b64encode(SECRET.encode()).decode() not in err
    assert all(isinstance(x, dict) for x in json_lines(err))  # every line on stderr is JSON


def test_a_traceback_keeps_causes_but_no_message():
    def inner():
        raise KeyError(SECRET)

    try:
        try:
            inner()
        except KeyError as exc:
            raise RuntimeError(f"wrapped {SECRET}") from exc
    except RuntimeError as exc:
        text = log.safe_traceback(exc)
    assert SECRET not in text
    assert "builtins.KeyError" in text and "builtins.RuntimeError" in text and "in inner" in text
    assert text.index("KeyError") < text.index("RuntimeError")  # the cause first, as Python prints it


def test_a_timer_run_is_logged_counted_and_kept(local_env, invoke, monkeypatch, capfd, tmp_path):
    (tmp_path / "m").mkdir()
    recorder = metrics.Recorder(tmp_path / "m" / "1.map")
    monkeypatch.setattr(telemetry, "sink", recorder)
    for _ in range(2):
        invoke("CreateKey", {"EnableAutomaticRotation": "true", "RotationInterval": "604800s"})
    capfd.readouterr()
    later = time.time() + 8 * 86400
    result = fire("RotateKeys", later)
    assert len(result["Rotated"]) == 2
    (line,) = events(capfd.readouterr().err, "timer.run")
    assert (line["level"], line["job"], line["ok"], line["trigger_time"]) == \
        ("info", "RotateKeys", True, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(later)))
    assert line["summary"] == {"Scanned": 2, "Rotated": 2, "Failed": 0}  # lists become their length
    run = ops.last_timer_runs(get_store())["RotateKeys"]
    assert (run["ok"], run["trigger_time"], run["summary"]["Rotated"]) == (True, int(later) * 1.0, 2)

    def broken(ctx, payload):
        raise OSError(f"disk gone {SECRET}")

    spec = registry.job_for_module("alikms.functions.jobs.delete_expired_keys")
    failing = runtime.timer_handler("alikms.functions.jobs.delete_expired_keys", broken)
    with pytest.raises(OSError):
        failing(json.dumps({"triggerTime": "2030-01-01T00:00:00Z", "payload": spec.payload}).encode(), None)
    err = capfd.readouterr().err
    (line,) = events(err, "timer.run")
    assert (line["level"], line["job"], line["ok"], line["error"]) == ("error", "DeleteExpiredKeys", False, "OSError")
    assert SECRET not in err
    assert ops.last_timer_runs(get_store())["DeleteExpiredKeys"]["error"] == "OSError"
    totals = metrics.collect(tmp_path / "m")
    assert totals['alikms_timer_runs_total{job="RotateKeys",result="ok"}'] == [1.0]
    assert totals['alikms_timer_runs_total{job="DeleteExpiredKeys",result="error"}'] == [1.0]


def test_a_later_run_is_never_overwritten_by_an_earlier_one(local_env, invoke):
    invoke("DescribeRegions")
    fire("ExpireKeyMaterial", 2_000_000_000)
    fire("ExpireKeyMaterial", 1_900_000_000)  # a slower duplicate run finishing last
    assert ops.last_timer_runs(get_store())["ExpireKeyMaterial"]["trigger_time"] == 2_000_000_000


def test_the_level_is_configurable(local_env, invoke, monkeypatch, capfd):
    monkeypatch.setenv("KMS_LOG_LEVEL", "warning")
    invoke("DescribeRegions")
    capfd.readouterr()
    fire("ExpireKeyMaterial")
    assert events(capfd.readouterr().err, "timer.run") == []  # info is below the level


def test_a_store_fault_is_logged_and_raised(tmp_path, capfd, monkeypatch):
    class Broken:
        def get(self, table, pk, sk=""):
            raise sqlite3.OperationalError(f"database is locked ({SECRET})")

    (tmp_path / "m").mkdir()
    monkeypatch.setattr(telemetry, "sink", metrics.Recorder(tmp_path / "m" / "1.map"))
    store = ObservedStore.__new__(ObservedStore)
    store.inner = Broken()
    with pytest.raises(sqlite3.OperationalError):
        store.get("keys", "1234/cn-hangzhou", "key-1")
    err = capfd.readouterr().err
    (line,) = events(err, "store.fault")
    assert (line["op"], line["table"], line["error"]) == ("get", "keys", "OperationalError")
    assert SECRET not in err and "key-1" not in err
    assert metrics.collect(tmp_path / "m")['alikms_store_faults_total{op="get"}'] == [1.0]


def test_tablestore_retries_are_logged_and_its_sdk_stays_quiet(ots_backend, ots_client, capfd, monkeypatch, tmp_path):
    from alikms.shared.store import Conflict
    from alikms.shared.store.tablestore import TablestoreStore
    from alikms.testing import _ots_wire as wire
    from alikms.testing import fake_tablestore as fake

    (tmp_path / "m").mkdir()
    monkeypatch.setattr(telemetry, "sink", metrics.Recorder(tmp_path / "m" / "1.map"))
    client = fake.fake_client(ots_backend)
    busy = [1]

    class Busy(fake.InProcessConnection):
        def send_receive(self, url, headers, body):
            if busy and url.endswith("GetRow"):
                busy.pop()
                return wire.reply("GetRow", 503, wire.error_body("OTSServerBusy", "busy"), None, None)
            return super().send_receive(url, headers, body)

    client.connection = Busy(ots_backend)
    store = TablestoreStore(client)
    store.put_new("keys", "a", "k", {"n": 1})
    with pytest.raises(Conflict):  # which the SDK would log at ERROR: kept quiet
        store.put_new("keys", "a", "k", {"n": 2})
    assert store.get("keys", "a", "k").data == {"n": 1}  # after one retry
    err = capfd.readouterr().err
    (line,) = events(err, "store.retry")
    assert (line["table"], line["attempt"], line["error"]) == ("keys", 1, "OTSServerBusy")
    assert len(err.splitlines()) == 1
    assert metrics.collect(tmp_path / "m")['alikms_store_retries_total{table="keys"}'] == [1.0]


def test_nonce_table_pressure_is_a_warning(caplog):
    class Full:
        def nonce_usage(self, now):
            return 600, 1000

    stop_event = threading.Event()
    with caplog.at_level("WARNING", logger="kms"):
        watcher = threading.Thread(target=listener.watch_nonces, args=(Full(), stop_event, 0.01))
        watcher.start()
        deadline = time.time() + 10
        while (not [r for r in caplog.records if getattr(r, "event", "") == "nonces.pressure"]
               and time.time() < deadline):
            time.sleep(0.01)
        stop_event.set()
        watcher.join()
    (record,) = [r for r in caplog.records if getattr(r, "event", "") == "nonces.pressure"]  # once, not per check
    assert (record.live, record.slots, record.fill) == (600, 1000, 0.6)


def test_the_runner_logs_its_settings_at_start_and_no_secret(server_factory):
    root = base64.b64encode(bytes(range(32))).decode()
    srv = server_factory({"KMS_ROOT_KEY": f"r7:{root}", "KMS_LOG_LEVEL": "info"}, workers=2)
    assert support.call(srv, "DescribeRegions")[0] == 200
    err = stop(srv)
    lines = json_lines(err)
    start = lines[0]
    assert (start["event"], start["level"], start["logger"]) == ("runner.start", "info", "kms.runner")
    assert (start["region"], start["store"], start["workers"], start["root_key_ids"], start["metrics"]) == \
        ("cn-hangzhou", "sqlite", 2, ["r7"], None)
    assert start["data_dir"] == str(srv.data_dir) and start["log_level"] == "info"
    assert root not in err and support.TEST_SECRET not in err
    assert "access_key_secret" not in start and "root_keys" not in start
    assert lines[-1]["event"] == "runner.stop"
