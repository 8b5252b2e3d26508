"""Bounded work for every request (issue 11 §2), through a running local runner.

Hostile requests of every shape are answered with the documented error (ParseRequestParameterException,
InvalidParameter, ...) well inside a socket timeout, before the service decodes what it refuses, and
the worker that answered them goes on answering: the same process, no restart. The largest legal
requests of the official SDKs still pass. No timing assertion beyond "answered before the socket
timeout" (the machine is shared).
"""

from __future__ import annotations

import json
import socket
import threading

import pytest

from alikms.shared import audit
from tests import support
from tests.security.helpers import allow, create_access_key, deny, policy

TIMEOUT = 20  # seconds: an answer later than this is a stalled worker


def exchange(port: int, head: bytes, body_source=(), timeout: float = TIMEOUT) -> tuple[int, dict, dict]:
    """Send `head` then the chunks of `body_source` while reading the answer concurrently, as a
    client that keeps sending after the server has answered does. (status, headers, JSON body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)

    def send():
        try:
            sock.sendall(head)
            for chunk in body_source:
                sock.sendall(chunk)
        except OSError:
            pass  # the server answered and stopped reading: expected for a refused request

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    data = b""
    try:
        while b"\r\n\r\n" not in data or len(data) < _expected_length(data):
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    head_part, _, body = data.partition(b"\r\n\r\n")
    lines = head_part.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return status, headers, json.loads(body[: int(headers["content-length"])])


def _expected_length(data: bytes) -> int:
    head, sep, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + len(sep) + int(line.split(b":")[1])
    return 1 << 62


def request(target: str, headers: dict | None = None, body: bytes = b"") -> bytes:
    hdrs = {"host": "kms.test", "x-acs-action": "DescribeRegions", **(headers or {})}
    if body:
        hdrs.setdefault("content-type", "application/x-www-form-urlencoded")
        hdrs.setdefault("content-length", str(len(body)))
    return (f"POST {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in hdrs.items()) + "\r\n").encode(
        "latin-1") + body


def still_serving(srv: support.Server, pid: int) -> None:
    """The same worker process answers a normal signed call."""
    status, body = support.call(srv, "DescribeRegions")
    assert status == 200, body
    assert srv.proc.poll() is None and srv.proc.pid == pid


def audit_ids(srv: support.Server) -> list[str]:
    return [rec["RequestId"] for rec in audit.events(srv.data_dir)]


@pytest.fixture
def srv(server_factory):
    return server_factory()


def test_hostile_request_shapes_are_answered_and_audited(srv):
    """Each refused before its parts are decoded, with the documented error and one audit record."""
    pid = srv.proc.pid
    huge = request("/?" + "&".join(f"p{i}=" + "%41" * 60 for i in range(100_000)))  # 18 MB, percent-escaped
    cases = {
        "18 MB query": (huge[:65536], (huge[i:i + 65536] for i in range(65536, len(huge), 65536)), "line"),
        "100,000 parameters": (request("/?" + "a=1&" * 100_000 + "b=1"), [], "parameters"),
        "request line past the limit": (request("/" + "a" * 600_000), [], "line"),
        "one 1 MB header": (request("/", {"x-big": "v" * 1_000_000}), [], "header block"),
        "1,000 headers": (request("/", {f"x-h{i}": "v" for i in range(1000)}), [], "header block"),
        "declared 100 MB body": (request("/", {"content-length": str(100 << 20),
                                               "content-type": "application/x-www-form-urlencoded"}),
                                 (b"a" * 65536 for _ in range(1600)), "body"),
        "malformed percent-escape": (request("/?Action=DescribeRegions&X=%ZZ"), [], None),
        "cut-off percent-escape": (request("/?Action=DescribeRegions&X=%4"), [], None),
        "overlong UTF-8": (request("/?Action=DescribeRegions&X=%C0%AF"), [], None),
        "UTF-8 of a surrogate": (request("/?Action=DescribeRegions&X=%ED%A0%80"), [], None),
        "a field without '='": (request("/?Action=DescribeRegions&X"), [], None),
        "a NUL in the request line": (b"POST /?A=\x00 HTTP/1.1\r\nhost: kms.test\r\n\r\n", [], None),
        "a body that is not a form": (request("/?Action=DescribeRegions", {"content-type": "application/json"},
                                              b'{"a":1}'), [], None),
        "unknown action": (request("/?Action=NoSuchAction", {"x-acs-action": "NoSuchAction"}), [], None),
        "not HTTP": (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(200) + b"\r\n\r\n", [], None),
    }
    for label, (head, rest, what) in cases.items():
        before = audit_ids(srv)
        status, headers, body = exchange(srv.port, head, rest)
        assert status in (400, 404), (label, status, body)
        expected = "InvalidAction.NotFound" if label == "unknown action" else "ParseRequestParameterException"
        assert body["Code"] == expected, (label, body)
        if what:
            assert what in body["Message"], (label, body)
        assert headers["x-acs-request-id"] == body["RequestId"]
        # The audit write follows the answer in the same turn of the worker's loop.
        support.until(lambda seen=before: len(audit_ids(srv)) > len(seen), what=label)
        new = audit_ids(srv)[len(before):]
        assert new == [body["RequestId"]], (label, new)  # exactly one record, this one
        still_serving(srv, pid)


def test_signed_callers_get_bounded_parameters(srv):
    """A signed caller with 100,000 tags or filters, a 60,000-':' KeyId against wildcard policies, an
    over-long value for every kind of parameter: the documented 4xx, no stall."""
    pid = srv.proc.pid
    ak, secret = create_access_key(srv, policy(allow("kms:*", ["acs:kms:*:*:key/*", "acs:kms:*:*:*:*:*:*:*"]),
                                               deny("kms:*", "acs:kms:*:*:key/*:*:*:*:*:*:*:x")))
    key = support.call(srv, "CreateKey", {})[1]["KeyMetadata"]["KeyId"]
    many_tags = json.dumps([{"TagKey": f"k{i}", "TagValue": "v"} for i in range(100_000)])
    many_filters = json.dumps([{"Key": "KeyState", "Values": ["Enabled"]}] * 100_000)
    some_tags = json.dumps([{"TagKey": f"k{i}", "TagValue": "v"} for i in range(1500)])  # 40 KB: inside the query
    cases = [
        ("TagResource", {"KeyId": key, "Tags": many_tags}, 400, "ParseRequestParameterException"),
        ("TagResource", {"KeyId": key, "Tags": some_tags}, 400, "InvalidParameter"),
        ("ListKeys", {"Filters": many_filters}, 400, "ParseRequestParameterException"),
        ("ListKeys", {"Filters": json.dumps([{"Key": "KeyState", "Values": ["Enabled"]}] * 2000)}, 400,
         "InvalidParameter"),
        ("TagResource", {"KeyId": ":" * 60_000, "Tags": "[]"}, 400, "InvalidParameter"),
        ("TagResource", {"KeyId": "acs:kms:cn-hangzhou:" + ":" * 450, "Tags": '[{"TagKey":"a","TagValue":"b"}]'},
         404, "Forbidden.KeyNotFound"),
        ("Encrypt", {"KeyId": key, "Plaintext": "QUFB" * 3000}, 400, "InvalidParameter"),
        ("UpdateKeyDescription", {"KeyId": key, "Description": "d" * 8193}, 400, "InvalidParameter"),
        ("CreateSecret", {"SecretName": "s", "VersionId": "v", "SecretData": "x" * 30721}, 400, "InvalidParameter"),
    ]
    for scheme in ("v1", "acs3"):
        for action, params, status, code in cases:
            got, body = support.call(srv, action, params, ak=ak, secret=secret, scheme=scheme)
            assert (got, body["Code"]) == (status, code), (action, scheme, {k: v[:40] for k, v in params.items()},
                                                           body)
    still_serving(srv, pid)


def test_an_anonymous_2mb_access_key_id_is_bounded_in_the_audit_trail(srv):
    """A claimed AccessKeyId of any length costs a bounded record (and is refused unlooked-up)."""
    for ak in ("A" * 400_000, "LTAI" + "é" * 50_000):
        status, body = support.call(srv, "DescribeRegions", ak=ak)
        assert (status, body["Code"]) == (404, "InvalidAccessKeyId.NotFound")
    status, body = support.call(srv, "DescribeRegions", ak="B" * 30_000, scheme="acs3")
    assert (status, body["Code"]) == (404, "InvalidAccessKeyId.NotFound")
    support.until(lambda: len(list(audit.events(srv.data_dir))) >= 3)  # written after the answers left
    lines = [line for path in audit.files(srv.data_dir) for line in path.read_bytes().splitlines()]
    assert lines and all(len(line) < 2048 for line in lines)
    claimed = [rec["AccessKeyId"] for rec in list(audit.events(srv.data_dir))[-3:]]
    assert claimed[0].startswith("A" * 64) and "truncated, 400000 characters" in claimed[0]
    assert claimed[2].startswith("B" * 64) and "truncated, 30000 characters" in claimed[2]


def test_the_largest_legal_requests_of_the_sdks_pass(srv):
    """The classic SDK puts every parameter in the query: a CreateSecret at every documented maximum,
    in characters that percent-encode to 9 bytes each, still fits; so does the Tea SDK's."""
    from aliyunsdkkms.request.v20160120 import CreateSecretRequest

    data = "\u4e2d" * 10240  # 30,720 bytes of UTF-8
    description = "\u6587" * 8192
    tags = json.dumps([{"TagKey": f"key/{i:02d}:" + "k" * 120, "TagValue": "v=" + "w" * 126} for i in range(20)])
    doc = {"Version": "1", "Statement": [{"Effect": "Allow", "Action": ["kms:*"], "Resource": ["*"],
                                          "Principal": {"RAM": ["acs:ram::" + "1" * 16 + ":root"]}}]}
    statement = doc["Statement"][0]
    while len(json.dumps(doc)) + len(json.dumps(statement)) + 2 <= 32768:  # as near the limit as it goes
        doc["Statement"].append(statement)
    policy_text = json.dumps(doc)
    assert 30000 < len(policy_text.encode()) <= 32768
    client = support.classic_client(srv)
    req = CreateSecretRequest.CreateSecretRequest()
    for setter, value in (("set_SecretName", "big/classic"), ("set_VersionId", "v" * 64), ("set_SecretData", data),
                          ("set_Description", description), ("set_Tags", tags), ("set_Policy", policy_text)):
        getattr(req, setter)(value)
    assert support.classic_do(srv, client, req)["SecretName"] == "big/classic"

    from alibabacloud_kms20160120 import models

    tea = support.tea_client(srv)
    tea.create_secret(models.CreateSecretRequest(secret_name="big/tea", version_id="v1", secret_data=data,
                                                 description=description, tags=tags, policy=policy_text))
    for name in ("big/classic", "big/tea"):
        got = support.call(srv, "GetSecretValue", {"SecretName": name})[1]
        assert got["SecretData"] == data
