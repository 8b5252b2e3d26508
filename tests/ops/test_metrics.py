"""Metrics and health through a real runner with two workers: the scrape, read by the Prometheus
project's parser, counts exactly the calls made, across processes and across a worker's restart."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import time
from urllib.parse import quote

from alikms.runner import metrics
from alikms.shared import audit, telemetry
from alikms.shared.audit_verify import verify
from alikms.shared.store.observed import ObservedStore
from alikms.shared.store.sqlite import SqliteStore
from tests import support
from tests.ops.helpers import get, health, ring_of, scrape, start, stop, value
from tests.support import until


def histogram(samples, name: str, **labels: str) -> tuple[float, list[float]]:
    """(count, bucket values in order) of one histogram series."""
    buckets = sorted(((float(dict(lab)["le"]), v) for (n, lab), v in samples.items()
                      if n == f"{name}_bucket" and {k: v for k, v in lab if k != "le"} == labels))
    return value(samples, f"{name}_count", **labels), [v for _, v in buckets]


def workers_of(srv) -> list[int]:
    directory = srv.data_dir / "metrics" / str(srv.proc.pid)
    return sorted(int(p.stem) for p in directory.glob("*.map") if int(p.stem) != srv.proc.pid)


def test_a_scrape_counts_the_calls_made_across_two_workers(server_factory):
    srv, port = start(server_factory, workers=2)
    support.run_together([lambda: [support.call(srv, "DescribeRegions") for _ in range(5)]] * 8)
    keys = [support.call(srv, "CreateKey")[1]["KeyMetadata"]["KeyId"] for _ in range(3)]
    for _ in range(2):
        assert support.call(srv, "ListKeys", secret="wrong")[1]["Code"] == "SignatureDoesNotMatch"
        assert support.call(srv, "DescribeKey", {"KeyId": "no-such-key"})[1]["Code"] == "Forbidden.KeyNotFound"
    assert support.call(srv, "NoSuchAction")[1]["Code"] == "InvalidAction.NotFound"
    assert len(set(keys)) == 3

    samples = scrape(port)
    calls = {("DescribeRegions", "OK"): 40, ("CreateKey", "OK"): 3, ("ListKeys", "SignatureDoesNotMatch"): 2,
             ("DescribeKey", "Forbidden.KeyNotFound"): 2, ("", "InvalidAction.NotFound"): 1}
    got = {(dict(lab)["action"], dict(lab)["code"]): v for (n, lab), v in samples.items()
           if n == "alikms_requests_total"}
    assert got == calls
    for action, n in (("DescribeRegions", 40), ("CreateKey", 3), ("ListKeys", 2), ("DescribeKey", 2)):
        count, buckets = histogram(samples, "alikms_request_duration_seconds", action=action)
        assert count == n and buckets == sorted(buckets) and buckets[-1] == n
        assert 0 < value(samples, "alikms_request_duration_seconds_sum", action=action) < n * 10
    gets, _ = histogram(samples, "alikms_store_operation_duration_seconds", op="get")
    puts, _ = histogram(samples, "alikms_store_operation_duration_seconds", op="put_new")
    assert gets > 0 and puts >= 3 * 2  # each key: its row and its first version
    # Every call that passed the signature check left its nonce in the shared table.
    assert value(samples, "alikms_nonce_table_live") == 40 + 3 + 2
    assert value(samples, "alikms_nonce_table_slots") == int(os.environ["KMS_NONCE_SLOTS"])
    assert value(samples, "alikms_audit_blocked") == 0
    assert health(port) == (200, {"status": "ok", "audit_mode": "fail-closed", "store": "ok", "audit": "ok",
                                      "audit_blocked_workers": 0})

    # A worker killed and restarted takes none of its counts with it.
    victim = workers_of(srv)[0]
    os.kill(victim, signal.SIGKILL)
    until(lambda: len(workers_of(srv)) == 3)  # uvicorn started a replacement, which counts in a file of its own
    assert support.call(srv, "DescribeRegions")[0] == 200
    again = scrape(port)
    assert value(again, "alikms_requests_total", action="DescribeRegions", code="OK") == 41
    assert value(again, "alikms_requests_total", action="CreateKey", code="OK") == 3
    stop(srv)
    # The trail: every call once, each writer's chain whole; only the killed worker's file lacks its end.
    assert len([r for r in audit.events(srv.data_dir) if r["Action"] == "DescribeRegions"]) == 41
    problems = verify(srv.data_dir, ring_of(srv.data_dir)).problems
    assert [(f.kind, f"-{victim}-" in f.file) for f in problems] in ([], [("truncated", True)])


def test_the_listener_is_loopback_only_and_takes_no_api_path(server_factory):
    srv, port = start(server_factory)
    assert get(port, "/")[0] == 404 and get(port, "/metrics?x=1")[0] == 200
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.connect(("10.255.255.255", 1))  # no packet: only picks this host's outward address
    outward = probe.getsockname()[0]
    probe.close()
    assert not outward.startswith("127.")
    with socket.socket() as s:
        assert s.connect_ex((outward, port)) != 0  # not reachable from another host's side
    # On the API's port, /metrics is just another path for an API call.
    query = support.sign_v1_params("DescribeRegions", {}, srv.access_key_id, srv.secret, "GET")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    conn.request("GET", "/metrics?" + "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items()),
                 headers={"host": srv.endpoint})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert resp.status == 200 and body["Regions"]["Region"] == [{"RegionId": "cn-hangzhou"}]
    stop(srv)


def test_counts_of_several_processes_add_up_and_gauges_only_live_ones(tmp_path):
    (tmp_path / "m").mkdir()
    a, b = metrics.Recorder(tmp_path / "m" / "1.map"), metrics.Recorder(tmp_path / "m" / "2.map")
    for rec, n in ((a, 3), (b, 4)):
        for _ in range(n):
            rec.call("Encrypt", "OK", 0.0002)
        rec.audit_blocked(True)
        rec.timer("RotateKeys", True, 0.5, 1000.0 * n)
    b.call("Encrypt", "Throttling", 2.0)
    totals = metrics.collect(tmp_path / "m")
    assert totals['alikms_requests_total{action="Encrypt",code="OK"}'] == [7.0]
    assert totals["alikms_audit_blocked"] == [2.0]
    assert totals['alikms_timer_last_run_timestamp_seconds{job="RotateKeys"}'] == [4000.0]
    hist = totals['alikms_request_duration_seconds{action="Encrypt"}']
    assert sum(hist[:-1]) == 8 and hist[metrics.BOUNDS.index(2.5e-4)] == 7 and hist[metrics.BOUNDS.index(2.5)] == 1
    # A process that has exited: its counts stay, its gauges go.
    b.close()
    totals = metrics.collect(tmp_path / "m")
    assert totals['alikms_requests_total{action="Encrypt",code="OK"}'] == [7.0]
    assert totals["alikms_audit_blocked"] == [1.0]
    from prometheus_client.parser import text_string_to_metric_families

    families = {f.name: f for f in text_string_to_metric_families(metrics.exposition(totals, {}))}
    assert families["alikms_request_duration_seconds"].type == "histogram"
    assert families["alikms_requests"].type == "counter"


def test_store_operations_conflicts_and_faults_are_counted(tmp_path, monkeypatch):
    (tmp_path / "m").mkdir()
    recorder = metrics.Recorder(tmp_path / "m" / "1.map")
    monkeypatch.setattr(telemetry, "sink", recorder)
    store = ObservedStore(SqliteStore(tmp_path / "kms.sqlite3", nonce_path=tmp_path / "n.map", nonce_slots=1024))
    store.put_new("keys", "a", "k", {"n": 1})
    from alikms.shared.store import Conflict

    try:
        store.put_new("keys", "a", "k", {"n": 2})
        raise AssertionError("no conflict")
    except Conflict:
        pass
    assert store.get("keys", "a", "k").data == {"n": 1}
    totals = metrics.collect(tmp_path / "m")
    assert totals['alikms_store_conflicts_total{op="put_new"}'] == [1.0]
    assert sum(totals['alikms_store_operation_duration_seconds{op="put_new"}'][:-1]) == 2
    assert sum(totals['alikms_store_operation_duration_seconds{op="get"}'][:-1]) == 1
    assert store.nonce_usage(int(time.time())) == (0, 1024)  # backend extras pass through
    # and so do the backend's own versions of Store's defaults (the identity cache relies on `changes`)
    assert store.changes("keys") == store.inner.changes("keys") is not None
    store.close()


def test_threads_that_come_and_go_reuse_their_entries(tmp_path):
    """The listener starts a thread per request: their counts must not fill the file."""
    import threading

    (tmp_path / "m").mkdir()
    rec = metrics.Recorder(tmp_path / "m" / "1.map")
    for _ in range(300):
        worker = threading.Thread(target=rec.store, args=("get", 0.001))
        worker.start()
        worker.join()
    entries = [key for key, _ in metrics._entries(tmp_path / "m" / "1.map")]
    assert len(entries) <= 10  # one per thread alive at once (here one), not one per thread ever
    assert sum(metrics.collect(tmp_path / "m")['alikms_store_operation_duration_seconds{op="get"}'][:-1]) == 300
