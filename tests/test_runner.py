"""The local runner (runner/app.py: invoke, build_request/build_event, route, the ASGI app) and the timer
schedules of runner/cron.py."""

from __future__ import annotations

import asyncio
import base64
import calendar
import json
import os
import subprocess
import sys
from urllib.parse import quote

import pytest

from alikms.runner import app as runner
from alikms.runner.cron import Schedule
from alikms.shared import errors, registry, wire
from tests import support


def signed_query(action: str, params: dict | None = None, method: str = "POST") -> str:
    full = support.sign_v1_params(action, params or {}, support.TEST_AK, support.TEST_SECRET, method)
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in full.items())


def gateway_event_file(path, action: str, params: dict | None = None) -> str:
    query = support.sign_v1_params(action, params or {}, support.TEST_AK, support.TEST_SECRET, "POST")
    path.write_bytes(support.gateway_event(action, query))
    return str(path)


def run_invoke(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KMS_ACCESS_KEY_ID": support.TEST_AK, "KMS_ACCESS_KEY_SECRET": support.TEST_SECRET,
           "KMS_ACCOUNT_ID": support.TEST_ACCOUNT}
    for name in ("KMS_DATA_DIR", "KMS_STORE", "KMS_AUTO_OPEN", "KMS_ROOT_KEY"):
        env.pop(name, None)
    return subprocess.run([sys.executable, "-m", "alikms.runner", "invoke", *args, "--data-dir",
                           str(tmp_path / "data")], cwd=support.ROOT, env=env, capture_output=True, text=True,
                          timeout=60)


# --- invoke ---


def test_invoke_describe_regions_with_an_event_file(tmp_path):
    proc = run_invoke(tmp_path, "DescribeRegions", "--event", gateway_event_file(tmp_path / "ev.json",
                                                                                 "DescribeRegions"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["statusCode"] == 200
    assert result["isBase64Encoded"] is False
    assert json.loads(result["body"])["Regions"]["Region"] == [{"RegionId": "cn-hangzhou"}]


def test_invoke_uses_the_data_dir(tmp_path):
    proc = run_invoke(tmp_path, "CreateKey", "--event", gateway_event_file(tmp_path / "c.json", "CreateKey",
                                                                           {"Description": "invoked"}))
    assert proc.returncode == 0, proc.stderr
    key_id = json.loads(json.loads(proc.stdout)["body"])["KeyMetadata"]["KeyId"]
    assert (tmp_path / "data" / "kms.sqlite3").exists()
    proc = run_invoke(tmp_path, "DescribeKey", "--event", gateway_event_file(tmp_path / "d.json", "DescribeKey",
                                                                             {"KeyId": key_id}))
    body = json.loads(json.loads(proc.stdout)["body"])
    assert body["KeyMetadata"]["Description"] == "invoked"


def test_invoke_event_for_another_function_is_refused(tmp_path):
    proc = run_invoke(tmp_path, "DescribeRegions", "--event", gateway_event_file(tmp_path / "ev.json", "CreateKey"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["statusCode"] == 404
    assert json.loads(result["body"])["Code"] == "InvalidAction.NotFound"


def test_invoke_unknown_function(tmp_path):
    proc = run_invoke(tmp_path, "NoSuchFunction", "--event", str(tmp_path / "missing.json"))
    assert proc.returncode == 2
    assert "NoSuchFunction" in proc.stderr


# --- build_event, route, dispatch ---


def test_request_ids_are_unique_version_4_uuids():
    import re
    import uuid

    ids = [runner.new_request_id() for _ in range(20000)]
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", i) for i in ids)
    assert uuid.UUID(ids[0]).version == 4


def test_build_event_shape():
    ev = runner.build_event("POST", "/", "A=1&B=x+y%20z&C=&D=%C3%A9", [("Host", "h:1"), ("X-Acs-Action", "Foo")],
                            b"E=2", "10.1.2.3")
    assert ev == {"path": "/", "httpMethod": "POST",
                  "headers": {"host": "h:1", "x-acs-action": "Foo", "x-forwarded-for": "10.1.2.3"},
                  "queryParameters": {"A": "1", "B": "x y z", "C": "", "D": "é"},
                  "pathParameters": {}, "body": "E=2", "isBase64Encoded": False}


def test_build_event_keeps_duplicate_query_names_as_lists():
    ev = runner.build_event("POST", "/", "A=1&B=2&A=3&A=", [], b"", "")
    assert ev["queryParameters"] == {"A": ["1", "3", ""], "B": "2"}


def test_build_event_joins_repeated_headers_and_sets_forwarded_for():
    ev = runner.build_event("GET", "/", "", [("Accept", "a"), ("accept", "b"), ("X-Forwarded-For", "6.6.6.6")], b"",
                            "127.0.0.1")
    assert ev["headers"]["accept"] == "a,b"
    assert ev["headers"]["x-forwarded-for"] == "127.0.0.1"  # the client cannot choose its own address
    assert ev["queryParameters"] == {}


def test_build_event_base64_encodes_a_binary_body():
    raw = b"\xff\x00binary"
    ev = runner.build_event("POST", "/", "", [], raw, "")
    assert ev["isBase64Encoded"] is True
    assert base64.b64decode(ev["body"]) == raw
    assert wire.decode_event(json.dumps(ev)).body == raw


@pytest.mark.parametrize("body", [b"E=2&F=%C3%A9", b"\xff\x00binary", b""])
def test_build_request_is_what_the_event_decodes_to(body):
    """The runner hands functions the parsed request; FC hands them the event. Both must agree."""
    args = ("POST", "/p", "A=1&B=x+y&A=2", [("Host", "h:1"), ("X-Forwarded-For", "6.6.6.6"), ("Accept", "a"),
                                          ("accept", "b")], body, "10.1.2.3")
    assert runner.build_request(*args) == wire.decode_event(json.dumps(runner.build_event(*args)))


@pytest.mark.parametrize("query", ["A=%ZZ", "A=%FF", "A=1&&B=2", "A"])
def test_build_event_refuses_a_bad_query(query):
    with pytest.raises(errors.ParseRequestParameterException):
        runner.build_event("GET", "/", query, [], b"", "")


def call_handler(action: str, ev: dict) -> tuple[int, dict]:
    handler = runner.function_handler(registry.action(action).module)
    result = handler(json.dumps(ev).encode(), runner.fc_context(action))
    return result["statusCode"], json.loads(result["body"])


def test_function_refuses_duplicate_query_names_from_build_event(local_env):
    qs = signed_query("DescribeRegions") + "&Format=XML"
    ev = runner.build_event("POST", "/", qs, [("host", "kms.test"), ("x-acs-action", "DescribeRegions")], b"", "")
    assert ev["queryParameters"]["Format"] == ["JSON", "XML"]
    status, body = call_handler("DescribeRegions", ev)
    assert (status, body["Code"]) == (400, "ParseRequestParameterException")
    assert "Format" in body["Message"]
    # the same request without the duplicate goes through
    ev = runner.build_event("POST", "/", signed_query("DescribeRegions"),
                            [("host", "kms.test"), ("x-acs-action", "DescribeRegions")], b"", "")
    assert call_handler("DescribeRegions", ev)[0] == 200


def test_route_reads_header_then_query_then_form_body():
    def ev(headers=(), query="", body=b""):
        return runner.build_request("POST", "/", query, list(headers), body, "")

    assert runner.route(ev([("x-acs-action", "CreateKey")], "Action=ListKeys", b"Action=DescribeKey")) == "CreateKey"
    assert runner.route(ev(query="Action=ListKeys", body=b"Action=DescribeKey")) == "ListKeys"
    assert runner.route(ev(body=b"Action=DescribeKey&X=1")) == "DescribeKey"
    assert runner.route(ev()) == ""
    assert runner.route(ev(query="Action=A&Action=B")) == ""  # a repeated Action names nothing
    assert runner.route(ev(body=b"\xffAction=DescribeKey")) == ""  # binary bodies are not parsed


def test_dispatch_unknown_action_is_not_found(local_env):
    req = runner.build_request("POST", "/", "Action=NoSuchAction", [("host", "h")], b"", "")
    result = runner.dispatch(req)
    assert result["statusCode"] == 404
    body = json.loads(result["body"])
    assert body["Code"] == "InvalidAction.NotFound"
    assert body["HostId"] == "h"


def test_dispatch_routes_to_the_function(local_env):
    req = runner.build_request("POST", "/", signed_query("DescribeRegions"), [("host", "kms.test")], b"", "")
    result = runner.dispatch(req)
    assert result["statusCode"] == 200
    assert json.loads(result["body"])["Regions"]["Region"] == [{"RegionId": "cn-hangzhou"}]


# --- the ASGI app ---


def asgi(method: str, query: str, chunks: list[bytes], headers: list[tuple[str, str]]) -> tuple[int, dict, dict]:
    messages = [{"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)]
    sent: list[dict] = []

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/", "query_string": query.encode(),
             "headers": [(k.encode(), v.encode()) for k, v in headers], "client": ("127.0.0.1", 40000)}
    asyncio.run(runner.app(scope, receive, send))
    start, body = sent
    out_headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert int(out_headers["content-length"]) == len(body["body"])
    return start["status"], out_headers, json.loads(body["body"])


def test_asgi_app_serves_a_signed_request(local_env):
    status, headers, body = asgi("POST", signed_query("DescribeRegions"), [b""], [("host", "kms.test"),
                                                                                  ("x-acs-action", "DescribeRegions")])
    assert status == 200
    assert headers["x-acs-request-id"] == body["RequestId"]
    assert body["Regions"]["Region"] == [{"RegionId": "cn-hangzhou"}]


def test_asgi_app_rejects_an_oversized_chunked_body(local_env, monkeypatch):
    from alikms.shared.config import get_config

    monkeypatch.setenv("KMS_MAX_BODY", "1000")
    get_config.cache_clear()
    status, _, body = asgi("POST", signed_query("DescribeRegions"), [b"A=" + b"x" * 500, b"x" * 500, b"x" * 10],
                           [("host", "kms.test"), ("content-type", "application/x-www-form-urlencoded")])
    assert (status, body["Code"]) == (400, "ParseRequestParameterException")
    assert body["Message"] == "The request body is too large."
    assert body["HostId"] == "kms.test"


def test_asgi_app_rejects_a_bad_query(local_env):
    status, _, body = asgi("GET", "Action=DescribeRegions&X=%ZZ", [b""], [("host", "kms.test")])
    assert (status, body["Code"]) == (400, "ParseRequestParameterException")


def test_runner_rejects_an_oversized_body_over_http(server):
    status, body = support.call(server, "DescribeRegions", raw_body=b"A=" + b"x" * (128 * 1024))
    assert (status, body["Code"]) == (400, "ParseRequestParameterException")
    assert body["Message"] == "The request body is too large."
    # a body just under the limit is parsed (and then refused only because it is not signed)
    status, body = support.call(server, "DescribeRegions", raw_body=b"A=" + b"x" * (128 * 1024 - 3))
    assert body["Code"] == "SignatureDoesNotMatch"


# --- cron schedules ---


def at(text: str) -> int:
    """Epoch of a UTC time written `YYYY-MM-DD HH:MM:SS`."""
    return calendar.timegm(tuple(int(x) for x in text.replace("-", " ").replace(":", " ").split()) + (0, 0, 0))


def matching(schedule: str, start: str, seconds: int) -> list[int]:
    s, t0 = Schedule.parse(schedule), at(start)
    return [t - t0 for t in range(t0, t0 + seconds) if s.matches(t)]


def test_cron_fixed_time_of_day():
    s = Schedule.parse("0 0 4 * * *")
    assert s.matches(at("2024-01-01 04:00:00"))
    assert not s.matches(at("2024-01-01 04:00:01"))
    assert not s.matches(at("2024-01-01 16:00:00"))
    assert s.matches(at("2024-07-15 04:00:00"))


def test_cron_every_second_and_star_question_mark():
    assert matching("* * * * * *", "2024-01-01 00:00:00", 5) == [0, 1, 2, 3, 4]
    assert Schedule.parse("0 0 0 ? * *").matches(at("2024-03-09 00:00:00"))


def test_cron_steps():
    assert matching("*/15 * * * * *", "2024-01-01 00:00:00", 60) == [0, 15, 30, 45]
    assert matching("5/20 * * * * *", "2024-01-01 00:00:00", 60) == [5, 25, 45]
    assert matching("10-40/10 * * * * *", "2024-01-01 00:00:00", 60) == [10, 20, 30, 40]
    s = Schedule.parse("0 */10 * * * *")
    assert [m for m in range(60) if s.matches(at("2024-01-01 03:00:00") + 60 * m)] == [0, 10, 20, 30, 40, 50]


def test_cron_ranges_and_lists():
    s = Schedule.parse("0 0 9-17 * * *")
    assert [h for h in range(24) if s.matches(at("2024-01-01 00:00:00") + 3600 * h)] == list(range(9, 18))
    s = Schedule.parse("0,30 5 1,13 * * *")
    assert s.matches(at("2024-01-01 01:05:30"))
    assert s.matches(at("2024-01-01 13:05:00"))
    assert not s.matches(at("2024-01-01 02:05:00"))
    assert not s.matches(at("2024-01-01 01:05:15"))


def test_cron_day_of_month_and_month():
    s = Schedule.parse("0 0 0 1 * *")
    assert s.matches(at("2024-02-01 00:00:00"))
    assert not s.matches(at("2024-02-02 00:00:00"))
    s = Schedule.parse("0 0 0 29 2 *")
    assert s.matches(at("2024-02-29 00:00:00"))


def test_cron_month_and_weekday_names():
    s = Schedule.parse("0 0 12 * JAN,dec MON-FRI")
    assert s.matches(at("2024-01-03 12:00:00"))  # a Wednesday in January
    assert not s.matches(at("2024-01-06 12:00:00"))  # a Saturday
    assert not s.matches(at("2024-02-07 12:00:00"))  # February
    assert s.matches(at("2024-12-02 12:00:00"))  # a Monday in December
    assert Schedule.parse("0 0 0 * * SUN").matches(at("2024-01-07 00:00:00"))


@pytest.mark.parametrize("dow", ["0", "7", "SUN"])
def test_cron_sunday_is_0_and_7(dow):
    s = Schedule.parse(f"0 0 0 * * {dow}")
    assert s.matches(at("2024-01-07 00:00:00"))  # Sunday
    assert not s.matches(at("2024-01-08 00:00:00"))  # Monday
    assert not s.matches(at("2024-01-06 00:00:00"))  # Saturday


def test_cron_weekday_range_across_the_week():
    s = Schedule.parse("0 0 0 * * 5-7")  # Friday, Saturday, Sunday
    days = [d for d in range(7) if s.matches(at("2024-01-01 00:00:00") + 86400 * d)]  # 2024-01-01 is a Monday
    assert days == [4, 5, 6]


@pytest.mark.parametrize("spec, period", [("@every 30s", 30), ("@every 5m", 300), ("@every 2h", 7200),
                                          ("  @every 10m  ", 600)])
def test_cron_every(spec, period):
    s = Schedule.parse(spec)
    t0 = at("2024-01-01 00:00:00")
    hits = [t for t in range(t0, t0 + 3 * period) if s.matches(t)]
    assert hits == [t0, t0 + period, t0 + 2 * period]


@pytest.mark.parametrize(
    "spec",
    [
        "", "0 0 4 * *", "0 0 4 * * * *", "60 * * * * *", "* 60 * * * *", "* * 24 * * *", "* * * 0 * *",
        "* * * 32 * *", "* * * * 0 *", "* * * * 13 *", "* * * * * 8", "*/0 * * * * *", "a * * * * *",
        "5-1 * * * * *", "1,,2 * * * * *", "* * * * FOO *", "* * * * * MON-FOO", "* * * * MON *", "-1 * * * * *",
        "@every", "@every 5", "@every 5x", "@every m", "@every 0s", "@every -5m", "@every 1.5h", "@hourly",
    ],
)
def test_cron_bad_input_raises_value_error(spec):
    with pytest.raises(ValueError):
        Schedule.parse(spec)


def test_registered_job_schedules_parse():
    for job in registry.JOBS:
        assert isinstance(Schedule.parse(job.cron), Schedule)


# --- the HTTP protocol (runner/http_protocol.py) over a real socket ---


def _raw_request(server, action: str, in_body: bool = False, extra: str = "") -> bytes:
    """A signed v1 request, its parameters in the query or in a form body."""
    qs = signed_query(action)
    body = qs.encode() if in_body else b""
    head = (f"POST /{'' if in_body else '?' + qs} HTTP/1.1\r\nhost: {server.endpoint}\r\n"
            f"x-acs-action: {action}\r\ncontent-length: {len(body)}\r\n{extra}")
    if body:
        head += "content-type: application/x-www-form-urlencoded\r\n"
    return (head + "\r\n").encode() + body


def _read_response(f) -> tuple[int, dict]:
    status = int(f.readline().split()[1])
    length = 0
    while (line := f.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        if name.lower() == "content-length":
            length = int(value)
    return status, json.loads(f.read(length))


def test_runner_answers_expect_100_continue_before_the_body(server):
    import socket

    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock, sock.makefile("rb") as f:
        request = _raw_request(server, "DescribeRegions", in_body=True, extra="expect: 100-continue\r\n")
        head, body = request[: request.index(b"\r\n\r\n") + 4], request[request.index(b"\r\n\r\n") + 4:]
        sock.sendall(head)
        assert f.readline().startswith(b"HTTP/1.1 100 ")  # sent before the body arrives
        assert f.readline() == b"\r\n"
        sock.sendall(body)
        status, answer = _read_response(f)
    assert (status, answer["Regions"]["Region"]) == (200, [{"RegionId": "cn-hangzhou"}])


def test_runner_answers_pipelined_requests_in_order(server):
    import socket

    actions = ["DescribeRegions", "NoSuchAction", "DescribeRegions", "DescribeAccountKmsStatus"]
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock, sock.makefile("rb") as f:
        sock.sendall(b"".join(_raw_request(server, a) for a in actions))  # all before any answer
        answers = [_read_response(f) for _ in actions]
    assert [s for s, _ in answers] == [200, 404, 200, 200]
    assert "Regions" in answers[0][1] and answers[1][1]["Code"] == "InvalidAction.NotFound"
    assert answers[3][1]["AccountStatus"] == "Enabled"


def test_an_idle_worker_releases_its_read_snapshot(monkeypatch):
    released, scheduled = [], []

    class Loop:
        def call_later(self, delay, fn, *args):
            scheduled.append((delay, fn, args))

    class Store:
        def release(self):
            released.append(True)

    monkeypatch.setattr(runner, "get_store", lambda: Store())
    monkeypatch.setattr(runner, "_idle", [True, True])  # armed, and a request came
    runner._release_when_idle(Loop())
    assert released == [] and scheduled[0][0] == 1.0  # busy: look again in a second
    runner._release_when_idle(Loop())
    assert released == [True] and runner._idle == [False, False]  # a quiet second: released, disarmed


# --- where calls run (runner/app.py call_pool) ---


def test_sqlite_calls_run_on_the_event_loop(local_env):
    assert runner.call_pool() is None


def test_remote_store_calls_run_in_the_call_threads(local_env, ots_http, monkeypatch):
    from concurrent.futures import ThreadPoolExecutor

    from tests.conftest import reset_caches

    for name, value in {"KMS_STORE": "tablestore", "OTS_ENDPOINT": ots_http, "OTS_INSTANCE": "kmsfake",
                        "OTS_ACCESS_KEY_ID": "test-akid", "OTS_ACCESS_KEY_SECRET": "test-secret"}.items():
        monkeypatch.setenv(name, value)
    reset_caches()
    pool = runner.call_pool()
    assert isinstance(pool, ThreadPoolExecutor) and pool._max_workers == runner.CALL_THREADS
    assert runner.call_pool() is pool  # one pool per process
    status, _, body = asgi("POST", signed_query("DescribeRegions"), [b""], [("host", "kms.test")])
    assert (status, body["Regions"]["Region"]) == (200, [{"RegionId": "cn-hangzhou"}])


def test_a_call_thread_ends_its_read_snapshot_before_it_waits(monkeypatch):
    import threading

    released, ran = [], []

    class Store:
        def release(self):
            released.append(threading.get_ident())

    def dispatch(req):
        ran.append(threading.get_ident())
        return {"statusCode": 200}

    monkeypatch.setattr(runner, "get_store", lambda: Store())
    monkeypatch.setattr(runner, "dispatch", dispatch)
    worker = threading.Thread(target=runner.dispatch_in_thread, args=(None,))
    worker.start()
    worker.join()
    assert released == ran == [worker.ident]  # on the thread that ran the call, after it


def test_asgi_app_runs_nothing_for_a_client_that_left_mid_body(local_env, monkeypatch):
    dispatched, sent = [], []
    monkeypatch.setattr(runner, "dispatch", lambda req: dispatched.append(req))
    messages = [{"type": "http.request", "body": b"Action=CreateKey&Descr", "more_body": True},
                {"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0)

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": "/", "query_string": signed_query("CreateKey").encode(),
             "headers": [(b"host", b"kms.test"), (b"content-type", b"application/x-www-form-urlencoded")],
             "client": ("127.0.0.1", 40000)}
    asyncio.run(runner.app(scope, receive, send))
    assert dispatched == [] and sent == []  # the truncated request is not run, and nobody is there to answer
