"""Test helpers shared by every area: start the local runner on a free port, sign raw requests, build
SDK clients, checked calls, and the small conversions every area's tests use."""

from __future__ import annotations

import base64
import calendar
import hashlib
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

from alikms.shared import signing

ROOT = Path(__file__).resolve().parent.parent
EVENTS = Path(__file__).resolve().parent / "events"
TEST_AK = "LTAItestAccessKey0001"
TEST_SECRET = "TestAccessKeySecret0123456789"
TEST_ACCOUNT = "1234567890123456"
REGION = "cn-hangzhou"
SCOPE = f"{TEST_ACCOUNT}/{REGION}"  # the store's partition of the test account's region
DAY = 86400


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str) -> bytes:
    return base64.b64decode(text)


def unique(prefix: str = "s") -> str:
    """A name no other test uses (tests share runners and stores)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def epoch(text: str) -> int:
    """The epoch second of an API time (`2024-01-01T00:00:00Z`); `timestamp` is the inverse."""
    return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))


def event(name: str, **fields) -> dict:
    """A sample FC event from tests/events/ (`apigateway`, `fc3-http`, `timer`) with `fields` replacing
    its top-level fields."""
    ev = json.loads((EVENTS / f"{name}.json").read_text(encoding="utf-8"))
    ev.update(fields)
    return ev


def gateway_event(action: str, query: dict, method: str = "POST", headers: dict | None = None,
                  body: str = "") -> bytes:
    """The API Gateway event of one request to `action`, as JSON bytes (what FC hands the handler)."""
    hdrs = {"host": "kms.test", "x-acs-action": action} if headers is None else headers
    return json.dumps(event("apigateway", httpMethod=method, headers=hdrs, queryParameters=query,
                            body=body)).encode()


def timer_event(job: str, when: float, payload: str = "{}") -> bytes:
    """The timer event that fires `job` at epoch `when`."""
    return json.dumps(event("timer", triggerTime=timestamp(when), triggerName=f"{job}-timer",
                            payload=payload)).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timestamp(epoch: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if epoch is None else epoch))


@dataclass
class Server:
    port: int
    data_dir: Path
    proc: subprocess.Popen
    access_key_id: str = TEST_AK
    secret: str = TEST_SECRET
    account_id: str = TEST_ACCOUNT
    region: str = "cn-hangzhou"
    env: dict = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(data_dir: Path, env: dict | None = None, workers: int = 1, timers: bool = False) -> Server:
    port = free_port()
    full_env = {
        **os.environ,
        "KMS_ACCESS_KEY_ID": TEST_AK,
        "KMS_ACCESS_KEY_SECRET": TEST_SECRET,
        "KMS_ACCOUNT_ID": TEST_ACCOUNT,
        **(env or {}),
    }
    args = [sys.executable, "-m", "alikms.runner", "serve", "--port", str(port), "--data-dir", str(data_dir),
            "--workers", str(workers)]
    if not timers:
        args.append("--no-timers")
    proc = subprocess.Popen(args, cwd=ROOT, env=full_env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 30
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError("runner exited: " + proc.stderr.read().decode(errors="replace"))
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return Server(port, data_dir, proc, env=full_env)
        except OSError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("runner did not start")


def sign_v1_params(action: str, params: dict, ak: str, secret: str, method: str = "POST",
                   ts: str | None = None, nonce: str | None = None, body: dict | None = None) -> dict:
    """Add the RPC v1 common parameters and Signature (signature covers query and body params)."""
    full = {"Action": action, "Version": "2016-01-20", "Format": "JSON", "AccessKeyId": ak,
            "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
            "SignatureNonce": nonce or secrets.token_hex(16), "Timestamp": ts or timestamp(), **params}
    full["Signature"] = signing.rpc_v1_sign(secret, method, {**full, **(body or {})})
    return full


def call(server: Server, action: str, params: dict | None = None, *, scheme: str = "v1", method: str = "POST",
         body: dict | None = None, ts: str | None = None, nonce: str | None = None, secret: str | None = None,
         ak: str | None = None, raw_query: str | None = None, raw_body: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict]:
    """Send one signed request the way the SDKs do; return (HTTP status, parsed JSON body)."""
    params = dict(params or {})
    ak = ak or server.access_key_id
    secret = secret or server.secret
    hdrs = {"host": server.endpoint, "x-acs-action": action, "x-acs-version": "2016-01-20"}
    payload = raw_body if raw_body is not None else (urlencode(body).encode() if body else b"")
    if payload:
        hdrs["content-type"] = "application/x-www-form-urlencoded"
    if scheme == "v1":
        query = sign_v1_params(action, params, ak, secret, method, ts, nonce, body)
    else:
        query = params
        hdrs.update({"x-acs-date": ts or timestamp(), "x-acs-signature-nonce": nonce or secrets.token_hex(16),
                     "x-acs-content-sha256": hashlib.sha256(payload).hexdigest()})
        signed = sorted(h for h in hdrs if h.startswith("x-acs-") or h in ("host", "content-type"))
        hdrs["Authorization"] = signing.acs3_authorization(ak, secret, method, "/", query, hdrs, signed,
                                                           hdrs["x-acs-content-sha256"])
    hdrs.update(headers or {})
    qs = raw_query if raw_query is not None else "&".join(f"{quote(k, safe='')}={quote(v, safe='')}"
                                                          for k, v in query.items())
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, "/?" + qs if qs else "/", body=payload or None, headers=hdrs)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, json.loads(data) if data else {}
    finally:
        conn.close()


def tea_client(server: Server, v2: bool = False, secret: str | None = None, ak: str | None = None):
    from alibabacloud_kms20160120.client import Client
    from alibabacloud_tea_openapi import models as open_api_models

    cfg = open_api_models.Config(access_key_id=ak or server.access_key_id,
                                 access_key_secret=secret or server.secret,
                                 endpoint=server.endpoint, protocol="http", region_id=server.region)
    if v2:
        cfg.signature_algorithm = "v2"
    return Client(cfg)


def classic_client(server: Server, secret: str | None = None, ak: str | None = None):
    """`aliyun-python-sdk-core` AcsClient; call `classic_do(client, request)`."""
    from aliyunsdkcore.client import AcsClient

    return AcsClient(ak or server.access_key_id, secret or server.secret, server.region)


def classic_do(server: Server, client, request) -> dict:
    request.set_endpoint(server.endpoint)
    request.set_protocol_type("http")
    return json.loads(client.do_action_with_exception(request))


def until(condition, seconds: float = 10.0, what: str = "timed out") -> None:
    """Wait for `condition()` to hold, polling, failing the test after `seconds`: for what a test
    waits on (a worker noticing a change, a record written after its answer), never a fixed sleep."""
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.02)


def run_together(functions, timeout: float = 30) -> list:
    """Run callables in threads released at the same instant; return their results or the
    exceptions they raised, in order. Fails if a thread hangs."""
    import threading

    start = threading.Barrier(len(functions))
    results: list = [None] * len(functions)

    def body(i, fn):
        start.wait(timeout)
        try:
            results[i] = fn()
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            results[i] = exc

    threads = [threading.Thread(target=body, args=(i, fn)) for i, fn in enumerate(functions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
        assert not t.is_alive(), "a thread hung"
    return results


def smx_encrypt(plaintext: bytes, public_point) -> bytes:
    """SM2 encryption by snowland-smx (the independent oracle): raw x || y || C3 || C2. Its Encrypt
    returns None for a small fraction of its random nonces (about 3 in 1,000), so draw again."""
    from pysmx import SM2 as smx

    for _ in range(100):
        raw = smx.Encrypt(plaintext, public_point, 64)
        if raw is not None:
            return raw
    raise AssertionError("snowland-smx failed to encrypt 100 times in a row")


# --- in-process calls through the `kms` fixture (tests/conftest.py) ---

def ok(kms, action: str, params: dict | None = None) -> dict:
    status, body = kms.call(action, params or {})
    assert status == 200, (action, params, body)
    assert body["RequestId"]
    return body


def create_key(kms, **params) -> str:
    """CreateKey (checked); the new key's id."""
    return ok(kms, "CreateKey", params)["KeyMetadata"]["KeyId"]


def describe_key(kms, key_id: str) -> dict:
    """DescribeKey (checked); the key's KeyMetadata."""
    return ok(kms, "DescribeKey", {"KeyId": key_id})["KeyMetadata"]


def edit_key(store, key_id: str, **fields) -> None:
    """Rewrite fields of a key row of the test account directly (white box: moves a key in time)."""
    item = store.get("keys", SCOPE, key_id)
    store.update("keys", SCOPE, key_id, {**item.data, **fields}, item.rev)


def err(kms, action: str, params: dict | None, code: str, status: int, param: str | None = None) -> dict:
    """Assert the call fails with `code` / HTTP `status` (and, if given, names parameter `param`)."""
    got_status, body = kms.call(action, params or {})
    assert (got_status, body.get("Code")) == (status, code), (action, params, got_status, body)
    assert body["HttpStatus"] == status and body["RequestId"]
    if param is not None:
        assert f'"{param}"' in body["Message"], body["Message"]
    return body
