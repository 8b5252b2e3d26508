"""Throughput benchmark: signed KMS calls through the local runner against a trivial endpoint on the
same HTTP stack, the handlers in process, and (when installed) moto's KMS server.

`scripts/bench [--quick] [--json PATH] [--only NAME,...] [--profile [NAME]]` (the bash wrapper installs
what is needed). Everything runs on 127.0.0.1 in one invocation, so every ratio compares numbers
taken minutes apart on the same machine. Nothing here asserts a timing; the table marks each
ratio's target met or not met.

Method:
* Load comes from one generator for every server: wrk replaying pre-built raw HTTP/1.1 requests
  (`bench/replay.lua`) over keep-alive connections. Signed requests are ACS3-HMAC-SHA256
  with a fresh nonce each, signed before the timed window, so signing costs the client nothing
  while it is timed. A list that runs out would replay nonces; the Lua script counts wraps and
  the run is then redone with a longer list. Non-2xx answers are counted; a run with any is
  invalid and is reported as such.
* The trivial endpoint is a raw ASGI app served through the runner's own `serve` code path with
  only the app swapped (same uvicorn protocol class, uvloop, worker count, shared listening socket),
  and is sent the very same signed DescribeKey requests, so request sizes and parsing match.
* Scenarios are interleaved round by round (each round runs every scenario once), so slow drift
  of the machine hits all of them alike.
* The machine may be shared (other people's tests and builds). Before each run the harness waits
  (briefly, within a budget) for other processes to go idle, records the CPU they used during the
  run ("other" column), redoes a noisy run within a budget, and reports the median of the quiet
  runs (all runs, marked NOISY, when none was quiet). The server's CPU per request is reported too:
  it is less sensitive to interference than req/s.
* With 2 workers sharing one listening socket, a few long-lived keep-alive connections can all land
  on one worker (docs/performance.md §4). Every 200th request therefore carries `connection:
  close` (unsigned), so wrk reconnects and the idle worker picks the new connection up; each run
  also records the CPU each worker used and is redone if one did less than half of the other's.
* Keys: each data set has its own runner and data directory. `10 keys` are created through the
  API; the large set is bulk-seeded in process with the CreateKey function's own code inside one
  SQLite transaction (rows are exactly what CreateKey writes), and requests pick keys at random.
  DescribeKey at 10 keys and at 100k keys run on separate runners whose nonce tables grow alike;
  the crypto actions use a third one.
* Nonce store: the runner as built and the same app with the nonce store swapped for a per-worker
  set (a lower bound: not replay-safe across workers), and `bench/nonce.py`
  microbenchmarks of the shared table against the SQLite upsert it replaced.
* A slow store: the runner on Tablestore (the wire fake, in its own process) through the fault proxy
  (testing/ots_proxy.py, in the runner's supervisor process), once as it is and once with 10 ms added
  to every store request, 64 clients each. With its latency the store allows at most 64 / (round
  trips per call x 10 ms) calls/s, the round trips counted by the proxy during the runs; the ratio
  line sets the slow scenario against the lesser of that bound and the scenario without the latency.
* In process: the FC handler called in a loop on pre-signed events (one core, no HTTP), plus, for
  DescribeKey and Encrypt, the runner's ASGI app without a socket; `--profile [NAME]` adds a cProfile
  listing of one scenario (default DescribeKey).

Adding an action is one `Scenario(...)` line in SCENARIOS (plus a setup function if it needs
resources) and, if it has a target, one `Ratio(...)` line.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import dataclasses
import hashlib
import http.client
import importlib
import json
import os
import platform
import random
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
LUA = Path(__file__).resolve().parent / "replay.lua"
AK = "LTAIbenchAccessKey0001"
SECRET = "BenchAccessKeySecret0123456789"
ACCOUNT = "1234567890123456"
REGION = "cn-hangzhou"
FORM = "application/x-www-form-urlencoded"
PLAINTEXT = base64.b64encode(b"bench plaintext: 32 bytes long!!").decode()
DIGEST = base64.b64encode(hashlib.sha256(b"bench").digest()).decode()
SECRET_VALUE = "s" * 4096

# ---------------------------------------------------------------------------------------------
# Served apps (imported by uvicorn workers: keep this module's top level light)
# ---------------------------------------------------------------------------------------------

_TRIVIAL_BODY = b'{"RequestId":"4A3D2F6E-0000-4000-8000-000000000000","Ok":true}'
_TRIVIAL_HEADERS = [(b"content-type", b"application/json;charset=utf-8"),
                    (b"content-length", str(len(_TRIVIAL_BODY)).encode())]


async def trivial_app(scope, receive, send) -> None:
    """The baseline: read the request body like the runner does, answer a small fixed JSON body."""
    more = True
    while more:
        msg = await receive()
        more = msg.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": _TRIVIAL_HEADERS})
    await send({"type": "http.response.body", "body": _TRIVIAL_BODY})


def nonce_off_app():
    """uvicorn factory: the runner's app with the nonce store replaced by a per-worker set.

    Only for measuring what the nonce store costs: a replay to the other worker would pass.
    """
    from alikms.shared.store import sqlite

    seen: set[str] = set()

    def remember_nonce(self, key: str, now: int, ttl: int) -> bool:
        if key in seen:
            return False
        seen.add(key)
        return True

    sqlite.SqliteStore.remember_nonce = remember_nonce  # this worker process only
    from alikms.runner import app as runner

    return runner.app


def serve(app: str, factory: bool, runner_args: list[str]) -> int:
    """Serve `app` through the runner's own `serve` code path, so the uvicorn settings (protocol class,
    loop, worker supervisor, socket) are whatever the runner uses today: only the app is swapped."""
    import uvicorn

    from alikms.runner import cli

    real_config = uvicorn.Config

    def same_settings_other_app(_runner_app, *args, **kwargs):
        kwargs["factory"] = factory
        print(f"bench serve: {app} with the runner's uvicorn settings {kwargs}", flush=True)
        return real_config(app, *args, **kwargs)

    uvicorn.Config = same_settings_other_app
    return cli.main(["serve", *runner_args])


def serve_ots(latency: float, count_file: str, runner_args: list[str]) -> int:
    """The runner on Tablestore: the wire fake in a child process, the fault proxy in front of it in
    this one (adding `latency` seconds to every request), the runner's own `serve` here as well, all
    in one process group so the server's CPU counts all of it. The proxy's request count is written
    to `count_file` every 50 ms (the bench reads it around each run)."""
    import threading

    from tablestore import OTSClient
    from tablestore.retry import NoRetryPolicy

    from alikms.runner import cli
    from alikms.shared.store.tablestore import create_tables
    from alikms.testing import fake_tablestore
    from alikms.testing.ots_proxy import OtsProxy

    fake = subprocess.Popen([sys.executable, "-m", "alikms.testing.fake_tablestore", "--port", "0"],
                            stdout=subprocess.PIPE, text=True)
    url = fake.stdout.readline().strip()
    create_tables(OTSClient(url, fake_tablestore.ACCESS_KEY_ID, fake_tablestore.ACCESS_KEY_SECRET,
                            fake_tablestore.INSTANCE, retry_policy=NoRetryPolicy()))
    proxy = OtsProxy(url, seed=1)
    proxy.latency = latency
    proxy.start()
    os.environ.update(KMS_STORE="tablestore", OTS_ENDPOINT=proxy.url, OTS_INSTANCE=fake_tablestore.INSTANCE,
                      OTS_ACCESS_KEY_ID=fake_tablestore.ACCESS_KEY_ID,
                      OTS_ACCESS_KEY_SECRET=fake_tablestore.ACCESS_KEY_SECRET)
    done = threading.Event()

    def count() -> None:
        while not done.wait(0.05):
            tmp = f"{count_file}.tmp"
            Path(tmp).write_text(str(proxy.stats["requests"]))
            os.replace(tmp, count_file)

    threading.Thread(target=count, daemon=True).start()
    try:
        return cli.main(["serve", *runner_args])
    finally:
        done.set()
        proxy.stop()
        fake.terminate()


# ---------------------------------------------------------------------------------------------
# Requests: ACS3-signed KMS calls and AWS JSON calls, as raw bytes (wrk) and as FC events
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One KMS RPC call: parameters go in the query (as the Tea SDK sends them), or in a form body."""
    action: str
    query: dict[str, str]
    form: dict[str, str] | None = None


@dataclass(frozen=True)
class AwsCall:
    """One AWS JSON 1.1 call (moto)."""
    operation: str
    body: dict


@dataclass(frozen=True)
class Wire:
    method: str
    target: str  # path and query
    headers: list[tuple[str, str]]
    body: bytes

    def raw(self, close: bool = False) -> bytes:
        head = "".join(f"{k}: {v}\r\n" for k, v in self.headers)
        if close:  # not signed; the server answers and closes, wrk reconnects
            head += "connection: close\r\n"
        return (f"{self.method} {self.target} HTTP/1.1\r\n{head}content-length: {len(self.body)}\r\n\r\n"
                .encode("latin-1") + self.body)


def sign_acs3(call: Call, host: str, nonce: str, date: str) -> Wire:
    """ACS3-HMAC-SHA256 as the Alibaba Cloud SDKs send it (headers signed, params in the query),
    signed by the service's own signer."""
    from alikms.shared import signing

    payload = urlencode(call.form).encode() if call.form else b""
    body_hash = hashlib.sha256(payload).hexdigest() if payload else signing.EMPTY_SHA256
    hdrs = {"host": host, "x-acs-action": call.action, "x-acs-version": "2016-01-20", "x-acs-date": date,
            "x-acs-signature-nonce": nonce, "x-acs-content-sha256": body_hash}
    if payload:
        hdrs["content-type"] = FORM
    hdrs["authorization"] = signing.acs3_authorization(AK, SECRET, "POST", "/", call.query, hdrs, sorted(hdrs),
                                                       body_hash)
    qs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in call.query.items())
    return Wire("POST", "/?" + qs if qs else "/", list(hdrs.items()), payload)


def aws_json(call: AwsCall, host: str) -> Wire:
    """What boto3 sends for a KMS call (SigV4 header included; moto does not check it)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    body = json.dumps(call.body).encode()
    req = AWSRequest(method="POST", url=f"http://{host}/", data=body,
                     headers={"Content-Type": "application/x-amz-json-1.1",
                              "X-Amz-Target": f"TrentService.{call.operation}", "Host": host})
    SigV4Auth(Credentials("testing", "testing"), "kms", "us-east-1").add_auth(req)
    headers = [(k, v) for k, v in req.headers.items() if k.lower() != "content-length"]
    return Wire("POST", "/", headers, body)


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def sign_many(calls, host: str) -> list[Wire]:
    """Sign each call with its own nonce (unique across the whole run: random prefix + counter)."""
    prefix, date = secrets.token_hex(8), utc_now()
    return [sign_acs3(c, host, f"{prefix}{n:010d}", date) for n, c in enumerate(calls)]


def send(port: int, wire: Wire, timeout: float = 30) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(wire.method, wire.target, body=wire.body, headers=dict(wire.headers))
        resp = conn.getresponse()
        data = resp.read()
        try:
            return resp.status, json.loads(data) if data else {}
        except ValueError:
            return resp.status, {"raw": data[:200].decode(errors="replace")}
    finally:
        conn.close()


# ---------------------------------------------------------------------------------------------
# Processes: servers in their own process group, stopped on every exit path
# ---------------------------------------------------------------------------------------------

_LIVE: list[Server] = []
CLK = os.sysconf("SC_CLK_TCK")
NOISY = 0.3  # cores used by other processes during a run that make it noisy


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _proc_stat(pid: int) -> tuple[int, int] | None:
    """(process group, CPU ticks user+system) of a live process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()
    return int(fields[2]), int(fields[11]) + int(fields[12])


def machine_busy() -> float:
    """CPU seconds all processes have used since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / CLK


# What the whole run may spend on waiting for a quiet machine and on redoing noisy runs.
BUDGET = {"quiet_s": 60.0, "noisy_redos": 8}


def wait_quiet(limit: float, max_wait: float) -> tuple[float, float]:
    """Wait (up to max_wait s, within the run's budget) until processes other than ours use less than
    `limit` cores: our servers are idle between runs, so what is busy then is someone else's
    (on a shared machine: other people's tests and builds). Returns (seconds waited, last load)."""
    t0 = time.monotonic()
    max_wait = min(max_wait, BUDGET["quiet_s"])
    while True:
        b0, s0 = machine_busy(), time.monotonic()
        time.sleep(0.25)
        load = (machine_busy() - b0) / (time.monotonic() - s0)
        waited = time.monotonic() - t0
        if load < limit or waited >= max_wait:
            BUDGET["quiet_s"] = max(0.0, BUDGET["quiet_s"] - waited)
            return waited, load


def group_cpu(pgid: int) -> dict[int, int]:
    """CPU ticks of every process in a process group."""
    out = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = _proc_stat(int(name))
            if st and st[0] == pgid:
                out[int(name)] = st[1]
    return out


class Server:
    def __init__(self, name: str, argv: list[str], env: dict, port: int, log_dir: Path, workers: int,
                 count_file: Path | None = None) -> None:
        self.name, self.argv, self.env, self.port, self.workers = name, argv, env, port, workers
        self.log_path = log_dir / f"server-{name.replace(' ', '_').replace('/', '_')}.log"
        self.proc: subprocess.Popen | None = None
        self.count_file = count_file  # where a Tablestore runner's proxy writes its request count

    def store_requests(self) -> int | None:
        """Requests the server's store proxy has forwarded so far (None: no proxy)."""
        if self.count_file is None:
            return None
        time.sleep(0.15)  # the count is written every 50 ms
        try:
            return int(self.count_file.read_text())
        except (OSError, ValueError):
            return None

    def start(self, timeout: float = 60) -> Server:
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        _LIVE.append(self)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited at start:\n{self.log_path.read_text()[-3000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        else:
            raise RuntimeError(f"{self.name} did not listen on {self.port}")
        # uvicorn's supervisor listens before its workers are up: wait until they are all there.
        while self.workers > 1 and len(group_cpu(self.proc.pid)) < self.workers + 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cpu(self) -> dict[int, int]:
        return group_cpu(self.proc.pid) if self.proc else {}

    def terminate(self) -> None:
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)

    def stop(self) -> None:
        """SIGTERM to the process group, SIGKILL after 10 s; returns when every process of it is gone."""
        if self.proc is None:
            return
        pgid = self.proc.pid
        self.terminate()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(0.05)
            if self.proc.poll() is not None and not group_cpu(pgid):
                break
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
        if self in _LIVE:
            _LIVE.remove(self)


_T0 = time.monotonic()


def progress(msg: str) -> None:
    print(f"bench: [{time.monotonic() - _T0:4.0f}s] {msg}", file=sys.__stdout__, flush=True)


def stop_all() -> None:
    for srv in _LIVE:  # all at once: each takes a moment to shut its workers down
        srv.terminate()
    for srv in _LIVE.copy():  # stop() removes it from _LIVE
        srv.stop()


# ---------------------------------------------------------------------------------------------
# Data sets, fixture, scenario table
# ---------------------------------------------------------------------------------------------


@dataclass
class Dataset:
    name: str
    dir: Path
    keys: list[str] = field(default_factory=list)
    server: Server | None = None

    def env(self) -> dict:
        return {"KMS_DATA_DIR": str(self.dir)}


@dataclass
class Fixture:
    """What the scenarios' request builders and setups read: data sets, servers, resources made in setup."""
    sets: dict[str, Dataset]
    servers: dict[str, Server]
    rng: random.Random = field(default_factory=lambda: random.Random(1))
    blobs: list[str] = field(default_factory=list)
    secret_name: str = ""
    rsa_key: str = ""
    rsa_version: str = ""
    ec_key: str = ""
    ec_version: str = ""
    old_blob: str = ""  # made before 10 rotations of its key
    fresh_blob: str = ""  # made by the newest version of the same key
    moto_key: str = ""
    moto_blob: str = ""

    def key(self, ds: str, i: int) -> str:
        keys = self.sets[ds].keys
        return keys[i % len(keys)]

    def random_key(self, ds: str, i: int) -> str:
        keys = self.sets[ds].keys
        return keys[self.rng.randrange(len(keys))]

    def call(self, server: str, call: Call) -> dict:
        """One signed call through a runner (setup only); raises unless it succeeds."""
        srv = self.servers[server]
        status, body = send(srv.port, sign_many([call], srv.host)[0])
        if status != 200:
            raise RuntimeError(f"{call.action} -> {status} {body}")
        return body


@dataclass(frozen=True)
class Scenario:
    name: str
    server: str  # key in Fixture.servers: trivial, kms10, kms100k, kms10-nonce-off, crypto, moto
    build: Callable[[Fixture, int], Call | AwsCall]  # the i-th request
    actions: tuple[str, ...] = ()  # registered actions it needs (else skipped)
    setup: Callable[[Fixture], None] | None = None
    unique: bool = True  # requests carry nonces: never replay one
    in_process: bool = False  # also time the FC handler in process (on the server's data set)
    quick: bool = True  # part of --quick
    rounds: int = 0  # at most this many measured runs (0: every round)
    connections: int = 0  # wrk connections (0: the run's --connections)
    note: str = ""


@dataclass(frozen=True)
class Ratio:
    name: str
    num: str
    den: str
    target: float | None  # met when value >= target
    target_text: str = ""
    source: str = "http"  # http: req/s through the servers; inproc: handler calls/s in process;
    # store-bound: num against the lesser of den and the store's bound (store_bound)


def setup_blobs(fx: Fixture) -> None:
    fx.blobs = [fx.call("decrypt", Call("Encrypt", {"KeyId": k, "Plaintext": PLAINTEXT}))["CiphertextBlob"]
                for k in fx.sets["decrypt"].keys]


def setup_secret(fx: Fixture) -> None:
    fx.secret_name = "bench-secret-" + secrets.token_hex(4)
    fx.call("secrets", Call("CreateSecret", {"SecretName": fx.secret_name, "VersionId": "v1",
                                             "EncryptionKeyId": fx.sets["secrets"].keys[0]},
                           {"SecretData": SECRET_VALUE}))


def _signing_key(fx: Fixture, spec: str) -> tuple[str, str]:
    key = fx.call("secrets", Call("CreateKey", {"KeySpec": spec, "KeyUsage": "SIGN/VERIFY"}))["KeyMetadata"]["KeyId"]
    versions = fx.call("secrets", Call("ListKeyVersions", {"KeyId": key}))
    return key, versions["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]


def setup_rsa(fx: Fixture) -> None:
    fx.rsa_key, fx.rsa_version = _signing_key(fx, "RSA_2048")


def setup_rotated(fx: Fixture) -> None:
    if fx.old_blob:
        return
    key = fx.sets["rotation"].keys[0]
    fx.old_blob = fx.call("rotation", Call("Encrypt", {"KeyId": key, "Plaintext": PLAINTEXT}))["CiphertextBlob"]
    for _ in range(10):
        fx.call("rotation", Call("CreateKeyVersion", {"KeyId": key}))
    fx.fresh_blob = fx.call("rotation", Call("Encrypt", {"KeyId": key, "Plaintext": PLAINTEXT}))["CiphertextBlob"]


def setup_ec(fx: Fixture) -> None:
    fx.ec_key, fx.ec_version = _signing_key(fx, "EC_P256")


def setup_moto(fx: Fixture) -> None:
    if fx.moto_key:
        return
    srv = fx.servers["moto"]
    status, body = send(srv.port, aws_json(AwsCall("CreateKey", {}), srv.host))
    if status != 200:
        raise RuntimeError(f"moto CreateKey -> {status} {body}")
    fx.moto_key = body["KeyMetadata"]["KeyId"]
    status, body = send(srv.port, aws_json(AwsCall("Encrypt", {"KeyId": fx.moto_key, "Plaintext": PLAINTEXT}),
                                           srv.host))
    if status != 200:
        raise RuntimeError(f"moto Encrypt -> {status} {body}")
    fx.moto_blob = body["CiphertextBlob"]


def _describe(ds: str) -> Callable[[Fixture, int], Call]:
    return lambda fx, i: Call("DescribeKey", {"KeyId": fx.key(ds, i)})


DATASETS = ("kms10", "kms100k", "crypto", "decrypt", "datakey", "secrets", "rotation", "ots", "ots10")
STORE_LATENCY = 0.010  # seconds the proxy adds to every store request in the slow-store scenario

# Server name -> (what it serves, its data set (data directory) or None, another server it needs).
# A data set's first server creates its 10 keys; "runner" is `python -m alikms.runner serve`, as users
# run it. DescribeKey at 10 keys and at 100k keys get a data set each so that their nonce tables grow
# alike; the nonce variants get their own too (nonce-off writes no nonces, so it shares kms10's). The
# other scenarios get a data set (a runner) each, or share one in pairs, so that no runner's nonce
# table (by default 1M nonces, the last 15 minutes' worth) fills during a run.
SERVERS: dict[str, tuple[str, str | None, str | None]] = {
    "kms10": ("runner", "kms10", None),
    "kms100k": ("runner", "kms100k", None),
    "crypto": ("runner", "crypto", None),
    "decrypt": ("runner", "decrypt", None),
    "datakey": ("runner", "datakey", None),
    "secrets": ("runner", "secrets", None),
    "rotation": ("runner", "rotation", None),
    "kms10-nonce-off": ("bench.suite:nonce_off_app", "kms10", "kms10"),
    "trivial": ("bench.suite:trivial_app", None, "kms10"),  # sent kms10's DescribeKey requests
    "moto": ("moto", None, None),
    # The runner on the Tablestore fake through the fault proxy (serve_ots): "ots:LATENCY".
    "ots": ("ots:0", "ots", None),
    "ots-10ms": (f"ots:{STORE_LATENCY}", "ots10", None),
}

# The scenario table. `server` names which process answers (SERVERS above).
SCENARIOS: tuple[Scenario, ...] = (
    Scenario("trivial", "trivial", _describe("kms10"), unique=False,
             note="raw ASGI app, same uvicorn config, sent the same signed DescribeKey requests"),
    Scenario("DescribeKey", "kms10", _describe("kms10"), ("DescribeKey",), in_process=True, note="10 keys"),
    Scenario("DescribeKey@100k", "kms100k", lambda fx, i: Call("DescribeKey", {"KeyId": fx.random_key("kms100k", i)}),
             ("DescribeKey",), in_process=True, note="random key of the large set"),
    Scenario("DescribeKey nonce-off", "kms10-nonce-off", _describe("kms10"), ("DescribeKey",),
             note="runner app, nonce store swapped for a per-worker set"),
    Scenario("Encrypt", "crypto", lambda fx, i: Call("Encrypt", {"KeyId": fx.key("crypto", i), "Plaintext": PLAINTEXT}),
             ("Encrypt",), in_process=True, note="32 B"),
    Scenario("Decrypt", "decrypt", lambda fx, i: Call("Decrypt", {"CiphertextBlob": fx.blobs[i % len(fx.blobs)]}),
             ("Encrypt", "Decrypt"), setup=setup_blobs, in_process=True, note="32 B"),
    Scenario("Decrypt fresh", "rotation", lambda fx, i: Call("Decrypt", {"CiphertextBlob": fx.fresh_blob}),
             ("Encrypt", "Decrypt", "CreateKeyVersion"), setup=setup_rotated, note="newest of 11 versions"),
    Scenario("Decrypt old", "rotation", lambda fx, i: Call("Decrypt", {"CiphertextBlob": fx.old_blob}),
             ("Encrypt", "Decrypt", "CreateKeyVersion"), setup=setup_rotated, note="made before 10 rotations"),
    Scenario("GenerateDataKey", "datakey",
             lambda fx, i: Call("GenerateDataKey", {"KeyId": fx.key("datakey", i), "NumberOfBytes": "32"}),
             ("GenerateDataKey",), in_process=True, note="32 B"),
    Scenario("GetSecretValue", "secrets", lambda fx, i: Call("GetSecretValue", {"SecretName": fx.secret_name}),
             ("CreateSecret", "GetSecretValue"), setup=setup_secret, in_process=True, note="4 KB value"),
    Scenario("AsymmetricSign", "secrets",
             lambda fx, i: Call("AsymmetricSign", {"KeyId": fx.rsa_key, "KeyVersionId": fx.rsa_version,
                                                   "Algorithm": "RSA_PSS_SHA_256", "Digest": DIGEST}),
             ("CreateKey", "AsymmetricSign"), setup=setup_rsa, in_process=True, note="RSA_2048 PSS"),
    Scenario("AsymmetricSign EC_P256", "secrets",
             lambda fx, i: Call("AsymmetricSign", {"KeyId": fx.ec_key, "KeyVersionId": fx.ec_version,
                                                   "Algorithm": "ECDSA_SHA_256", "Digest": DIGEST}),
             ("CreateKey", "AsymmetricSign"), setup=setup_ec, in_process=True, note="ECDSA P-256"),
    Scenario("moto Encrypt", "moto", lambda fx, i: AwsCall("Encrypt", {"KeyId": fx.moto_key, "Plaintext": PLAINTEXT}),
             setup=setup_moto, unique=False, note="moto_server, AWS JSON"),
    Scenario("moto Decrypt", "moto", lambda fx, i: AwsCall("Decrypt", {"CiphertextBlob": fx.moto_blob}),
             setup=setup_moto, unique=False, quick=False, rounds=2),
    Scenario("moto GenerateDataKey", "moto",
             lambda fx, i: AwsCall("GenerateDataKey", {"KeyId": fx.moto_key, "NumberOfBytes": 32}),
             setup=setup_moto, unique=False, quick=False, rounds=2),
    Scenario("DescribeKey OTS", "ots", _describe("ots"), ("DescribeKey",), connections=64,
             note="Tablestore fake through the proxy, 64 clients"),
    Scenario("DescribeKey OTS +10ms", "ots-10ms", _describe("ots10"), ("DescribeKey",), connections=64,
             note="the same, 10 ms added to every store request"),
)

RATIOS: tuple[Ratio, ...] = (
    Ratio("DescribeKey / trivial", "DescribeKey", "trivial", 0.25, ">= 0.25"),
    Ratio("DescribeKey 100k keys / 10 keys", "DescribeKey@100k", "DescribeKey", 0.90, "~1.0 (>= 0.90)"),
    Ratio("DescribeKey 100k / 10 keys, in process", "DescribeKey@100k", "DescribeKey", 0.90, "~1.0 (>= 0.90)",
          "inproc"),
    Ratio("DescribeKey nonce store on / off", "DescribeKey", "DescribeKey nonce-off", None, "(cost of the store)"),
    Ratio("Encrypt / trivial", "Encrypt", "trivial", 0.25, ">= 0.25"),
    Ratio("Encrypt / moto Encrypt", "Encrypt", "moto Encrypt", 10.0, ">= 10"),
    Ratio("Decrypt / moto Decrypt", "Decrypt", "moto Decrypt", 10.0, ">= 10"),
    Ratio("Decrypt before 10 rotations / fresh", "Decrypt old", "Decrypt fresh", 0.90, "~1.0 (>= 0.90)"),
    Ratio("GenerateDataKey / moto GenerateDataKey", "GenerateDataKey", "moto GenerateDataKey", 10.0, ">= 10"),
    Ratio("GetSecretValue / trivial", "GetSecretValue", "trivial", 0.20, ">= 0.20"),
    # Raw primitive: cryptography signing alone in as many processes as the runner has workers.
    Ratio("AsymmetricSign RSA_2048 / raw primitive", "AsymmetricSign", "RSA_2048", 0.60, ">= 0.60", "primitive"),
    # EC_P256 signing against the stack's signed DescribeKey (the asymmetric issue's target); the
    # old target, 60% of raw P-256 signing, is retired: the trivial endpoint itself reaches only ~0.58.
    Ratio("AsymmetricSign EC_P256 / DescribeKey", "AsymmetricSign EC_P256", "DescribeKey", 0.60, ">= 0.60"),
    Ratio("AsymmetricSign EC_P256 / raw primitive", "AsymmetricSign EC_P256", "EC_P256", None, "(retired target)",
          "primitive"),
    # What an endpoint doing no work at all reaches against the same primitive: no signing endpoint
    # on this HTTP stack can do better, so this bounds the line above.
    Ratio("ceiling: trivial endpoint / raw EC_P256", "trivial", "EC_P256", None, "(bound for the line above)",
          "primitive"),
    # A store 10 ms away: throughput bounded by the store, not by one call at a time per worker.
    Ratio("OTS +10ms / min(store bound, no latency)", "DescribeKey OTS +10ms", "DescribeKey OTS", 0.50, ">= 0.50",
          "store-bound"),
)


# ---------------------------------------------------------------------------------------------
# In-process helpers: the environment a runner worker has, the handlers, bulk seeding
# ---------------------------------------------------------------------------------------------

BASE_ENV = {
    "KMS_ACCESS_KEY_ID": AK,
    "KMS_ACCESS_KEY_SECRET": SECRET,
    "KMS_ACCOUNT_ID": ACCOUNT,
    "KMS_REGION": REGION,
    "KMS_KEY_QUOTA": "10000000",
    "KMS_STORE": "sqlite",
}


def use_dataset(ds: Dataset, root_key: str) -> None:
    """Point this process's warm-instance caches at a data set (as a runner worker with that env)."""
    # The runners keep their default audit lines on stdout (to their log files); in this process
    # they would only flood the console, and they still go to the data set's audit.log.
    os.environ.update(BASE_ENV, KMS_ROOT_KEY=root_key, KMS_AUDIT_STDOUT="false", **ds.env())
    from alikms.shared import accounts
    from alikms.shared.config import get_config
    from alikms.shared.store import get_store

    with contextlib.suppress(Exception):
        get_store().close()
    get_config.cache_clear()
    get_store.cache_clear()
    accounts._opened.clear()


def handler_for(action: str):
    from alikms.shared import registry

    return importlib.import_module(registry.action(action).module).handler


def registered(action: str) -> bool:
    from alikms.shared import registry

    return registry.action(action) is not None


def bulk_seed(ds: Dataset, root_key: str, count: int) -> float:
    """Add `count` Aliyun_AES_256 keys with CreateKey's own code, in one SQLite transaction."""
    from alikms.shared.config import get_config
    from alikms.shared.context import Context
    from alikms.shared.models import parse_request
    from alikms.shared.store import get_store

    use_dataset(ds, root_key)
    handler = handler_for("CreateKey")
    store, cfg = get_store(), get_config()
    store.count = lambda table, pk: 0  # the quota check counts the partition: O(n) per key
    values = {"request_id": "bench-seed", "account_id": cfg.account_id, "region": cfg.region,
              "access_key_id": AK, "source_ip": "127.0.0.1", "now": time.time(), "store": store, "config": cfg,
              "action": handler.action}
    ctx = Context(**{f.name: values[f.name] for f in dataclasses.fields(Context)
                     if f.name in values or f.default is dataclasses.MISSING})
    request = parse_request(handler.request_model, {})
    conn = store.inner._conn()  # the SQLite backend under the metrics wrapper
    t0 = time.perf_counter()
    conn.execute("BEGIN")
    try:
        for _ in range(count):
            ds.keys.append(handler.run(request, ctx).key_metadata["KeyId"])
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    elapsed = time.perf_counter() - t0
    use_dataset(ds, root_key)  # drop the patched store
    return elapsed


def asgi_scope(wire: Wire) -> tuple[dict, bytes]:
    path, _, qs = wire.target.partition("?")
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in wire.headers]
    headers.append((b"content-length", str(len(wire.body)).encode()))
    return ({"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": wire.method,
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": qs.encode("latin-1"),
             "headers": headers, "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8080)}, wire.body)


def fc_event(wire: Wire) -> bytes:
    """The API Gateway event the runner builds for this request (alikms.runner.app.build_event)."""
    from alikms.runner import app as runner

    path, _, qs = wire.target.partition("?")
    return json.dumps(runner.build_event(wire.method, path, qs, list(wire.headers), wire.body, "127.0.0.1")).encode()


def time_handler(handler, events: list[bytes]) -> tuple[float, int]:
    """(seconds, non-200 count) for calling the handler once per event."""
    global LAST_BAD
    bad = 0
    t0 = time.perf_counter()
    for ev in events:
        result = handler(ev, None)
        if result["statusCode"] != 200:
            if not bad:
                LAST_BAD = result.get("body", "")[:300]
            bad += 1
    return time.perf_counter() - t0, bad


LAST_BAD = ""


def time_asgi(app, items: list[tuple[dict, bytes]]) -> tuple[float, int]:
    """(seconds, non-200 count) for driving the runner's ASGI app without a socket."""
    import uvloop

    async def drive() -> tuple[float, int]:
        bad = 0
        status = [0]

        async def send_(msg):
            if msg["type"] == "http.response.start":
                status[0] = msg["status"]

        t0 = time.perf_counter()
        for scope, body in items:
            msg = {"type": "http.request", "body": body, "more_body": False}

            async def receive(m=msg):
                return m

            await app(scope, receive, send_)
            if status[0] != 200:
                bad += 1
        return time.perf_counter() - t0, bad

    return uvloop.run(drive())


# ---------------------------------------------------------------------------------------------
# Load runs
# ---------------------------------------------------------------------------------------------


@dataclass
class Opts:
    rounds: int
    duration: int
    warmup: int
    threads: int
    connections: int
    workers: int
    big_keys: int
    inproc_seconds: float
    recycle: int
    quiet_wait: float
    quick: bool
    profile: str | None
    tmp: Path


def write_lists(wires: list[Wire], prefix: Path, threads: int, recycle: int) -> None:
    """One file per wrk thread. Every `recycle`-th request asks the server to close the connection
    afterwards: wrk reconnects, and the listening socket hands the new connection to whichever worker
    is free, so a few long-lived connections cannot stay piled on one worker for the whole run."""
    for t in range(threads):
        with open(f"{prefix}.{t}", "wb") as f:
            f.write(b"".join(w.raw(close=recycle > 0 and n % recycle == recycle - 1) + b"\0"
                             for n, w in enumerate(wires[t::threads])))


def build_wires(sc: Scenario, fx: Fixture, n: int) -> list[Wire]:
    srv = fx.servers[sc.server]
    calls = [sc.build(fx, i) for i in range(n)]
    if isinstance(calls[0], AwsCall):
        return [aws_json(c, srv.host) for c in calls]
    return sign_many(calls, srv.host)


def wrk(srv: Server, prefix: Path, opts: Opts, duration: int, connections: int = 0) -> dict:
    """One wrk run against srv replaying the lists at prefix; wrk's numbers plus CPU accounting."""
    cmd = ["wrk", f"-t{opts.threads}", f"-c{connections or opts.connections}", f"-d{duration}s", "--timeout", "5s",
           "--latency", "-s", str(LUA), srv.url, "--", str(prefix)]
    waited, idle_load = wait_quiet(0.25, opts.quiet_wait)
    store0 = srv.store_requests()
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    busy0 = machine_busy()
    cpu0, t0 = srv.cpu(), time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=duration + 60)
    except BaseException as exc:  # a timeout, or the bench itself interrupted: wrk must not outlive it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if isinstance(exc, subprocess.TimeoutExpired):
            raise RuntimeError("wrk did not finish") from None
        raise
    wall = time.monotonic() - t0
    cpu1 = srv.cpu()
    busy1 = machine_busy()
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    store1 = srv.store_requests()
    line = next((ln for ln in out.decode().splitlines() if ln.startswith("BENCH_JSON ")), None)
    if proc.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {err.decode()[-2000:]} {out.decode()[-2000:]}")
    r = json.loads(line[len("BENCH_JSON "):])
    per_pid = {pid: (cpu1.get(pid, 0) - cpu0.get(pid, 0)) / CLK for pid in cpu1}
    busy = sorted((v for v in per_pid.values() if v > 0.02 * wall), reverse=True)
    secs = r["duration_us"] / 1e6
    r["rps"] = r["requests"] / secs if secs else 0.0
    r["server_cores"] = sum(per_pid.values()) / wall
    r["wrk_cores"] = (ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime) / wall
    r["cpu_us_per_req"] = sum(per_pid.values()) / r["requests"] * 1e6 if r["requests"] else 0.0
    r["worker_cores"] = [round(v / wall, 2) for v in busy]
    r["non_2xx"] = r["status_errors"]
    r["socket_errors"] = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
    r["wall_s"] = wall
    # Everything else the machine ran meanwhile (other people's tests, builds): a noisy run shows here.
    r["other_cores"] = max(0.0, (busy1 - busy0) / wall - r["server_cores"] - r["wrk_cores"])
    r["quiet_wait_s"] = waited
    r["load_before"] = idle_load
    if store0 is not None and store1 is not None:
        r["store_requests"] = store1 - store0  # through the proxy, the calls in flight at the end included
    return r


def balanced(r: dict, workers: int) -> bool:
    """False when one worker did less than half of what the busiest did (keep-alive imbalance)."""
    w = r["worker_cores"][:workers]
    if workers < 2:
        return True
    return len(w) >= workers and w[-1] >= 0.5 * w[0]


@dataclass
class Result:
    scenario: Scenario
    runs: list[dict] = field(default_factory=list)
    discarded_imbalanced: int = 0
    redone_wrapped: int = 0
    redone_noisy: int = 0
    warmup: dict | None = None
    inproc: list[dict] = field(default_factory=list)
    skipped: str = ""
    error: str = ""

    def valid_runs(self) -> list[dict]:
        return [r for r in self.runs if r["non_2xx"] == 0 and r["socket_errors"] == 0
                and not (self.scenario.unique and r["wraps"])]

    def clean_runs(self) -> list[dict]:
        """The runs other processes left alone; when none was, the least disturbed one (marked NOISY)."""
        clean = [r for r in self.runs if r["other_cores"] <= NOISY]
        return clean or sorted(self.runs, key=lambda r: (r["other_cores"], -r["rps"]))[:1]

    def median(self, key: str = "rps") -> float | None:
        runs = self.clean_runs()
        return statistics.median(r[key] for r in runs) if runs else None

    @property
    def invalid(self) -> bool:
        return bool(self.runs) and len(self.valid_runs()) != len(self.runs)


def load_round(sc: Scenario, fx: Fixture, opts: Opts, res: Result, est: float, workers: int) -> float:
    """One measured run, redone when its list ran out (a replay), when one worker sat idle (keep-alive
    imbalance), or when other processes took CPU meanwhile (within the run's budget); returns the new
    rate estimate."""
    srv = fx.servers[sc.server]
    prefix = opts.tmp / f"req-{sc.name.replace(' ', '_').replace('@', '_')}"
    n = 4000 if not sc.unique else int(est * opts.duration * 2.0) + 2000
    attempts = 0
    while True:
        attempts += 1
        write_lists(build_wires(sc, fx, n), prefix, opts.threads, opts.recycle)
        r = wrk(srv, prefix, opts, opts.duration, sc.connections)
        r["listed_n"] = n
        if sc.unique and r["wraps"] and attempts < 4:
            res.redone_wrapped += 1
            n = int(n * 2.5)
            continue
        if not balanced(r, workers) and attempts < 3:
            res.discarded_imbalanced += 1
            continue
        if r["other_cores"] > NOISY and attempts < 3 and BUDGET["noisy_redos"] > 0:
            BUDGET["noisy_redos"] -= 1
            res.redone_noisy += 1
            continue
        r["balanced"] = balanced(r, workers)
        res.runs.append(r)
        return max(est, r["rps"])


def warm(sc: Scenario, fx: Fixture, opts: Opts, res: Result, cap: float) -> float:
    """A first, untimed run: starts the function's cold path and gives the rate for sizing lists."""
    srv = fx.servers[sc.server]
    prefix = opts.tmp / "warm"
    n = 4000 if not sc.unique else int(cap * opts.warmup * 1.1) + 2000
    write_lists(build_wires(sc, fx, n), prefix, opts.threads, opts.recycle)
    r = wrk(srv, prefix, opts, opts.warmup, sc.connections)
    res.warmup = r
    return r["rps"] if not r["wraps"] else cap


def check_once(sc: Scenario, fx: Fixture) -> None:
    """One request before any load: the scenario must answer 200 (a wrong setup fails loudly here)."""
    srv = fx.servers[sc.server]
    status, body = send(srv.port, build_wires(sc, fx, 1)[0])
    if status != 200:
        raise RuntimeError(f"{sc.name}: smoke request -> HTTP {status} {json.dumps(body)[:300]}")


class InProcess:
    """One scenario's FC handler called in this process on pre-signed events (one core, no HTTP).

    Extra layers for DescribeKey show where a call's time goes outside the handler and what candidate
    changes would save; they patch only this process's objects, never shared/. Rounds of all
    scenarios are interleaved like the load runs; each layer reports its best round (as timeit does:
    interference only ever slows a loop down).
    """

    def __init__(self, sc: Scenario, fx: Fixture, opts: Opts, root_key: str) -> None:
        self.sc, self.fx, self.opts, self.root_key = sc, fx, opts, root_key
        self.ds = fx.sets[sc.server]
        self.handler = handler_for(sc.build(fx, 0).action)
        from alikms.runner import app as runner

        self.layers: list[tuple[str, Callable, Callable, Callable | None]] = [
            ("handler", self.events, time_handler, None)]
        if sc.name in ("DescribeKey", "Encrypt"):
            self.layers += [
                ("runner.app (ASGI, no socket)", self.asgi_items, lambda h, it: time_asgi(runner.app, it), None)]
        if sc.name == "DescribeKey":
            self.layers += [
                ("handler, event as dict (no JSON)", self.dict_events, time_handler, None),
                ("handler, nonce store off", self.events, time_handler, self.nonce_off)]
        if sc.name == "DescribeKey@100k":
            self.layers += [("handler, PRAGMA mmap_size=1GB", self.events, time_handler, self.mmap_on)]
        self.n = 0

    def events(self, n: int) -> list[bytes]:
        return [fc_event(w) for w in build_wires(self.sc, self.fx, n)]

    def dict_events(self, n: int) -> list[dict]:
        return [json.loads(fc_event(w)) for w in build_wires(self.sc, self.fx, n)]

    def asgi_items(self, n: int) -> list[tuple[dict, bytes]]:
        return [asgi_scope(w) for w in build_wires(self.sc, self.fx, n)]

    def nonce_off(self) -> Callable:
        from alikms.shared.store import get_store

        store = get_store()
        store.remember_nonce = lambda key, now, ttl: True  # this process's store object only
        return lambda: delattr(store, "remember_nonce")

    def mmap_on(self) -> Callable:
        from alikms.shared.store import get_store

        get_store().inner._conn().execute("PRAGMA mmap_size=1073741824")
        return lambda: use_dataset(self.ds, self.root_key)  # a fresh store, default pragmas

    def round(self) -> list[dict]:
        """Switch this process to the data set, warm up, time each layer once."""
        use_dataset(self.ds, self.root_key)
        for _ in range(1 if self.n else 2):  # cold start + warm-up; the first time also sizes the loops
            secs, bad = time_handler(self.handler, self.events(300))
            if bad:
                raise RuntimeError(f"{self.sc.name}: in-process handler answered non-200 ({bad} of 300): {LAST_BAD}")
        if not self.n:
            self.n = max(500, min(300_000, int(300 / secs * self.opts.inproc_seconds)))
        out = []
        for name, make, timer, patch in self.layers:
            items = make(self.n)
            wait_quiet(0.25, self.opts.quiet_wait)
            undo = patch() if patch else None
            try:
                secs, bad = timer(self.handler, items)
            finally:
                if undo:
                    undo()
            out.append({"layer": name, "calls": self.n, "seconds": secs, "rate": self.n / secs,
                        "us": secs / self.n * 1e6, "non_200": bad, "first_error": LAST_BAD if bad else None})
        return out


def profile_inproc(fx: Fixture, opts: Opts, root_key: str, n: int = 20000) -> str:
    """cProfile of runner.app driving one scenario (`--profile NAME`) in process: where a call's time goes."""
    import cProfile
    import io
    import pstats

    from alikms.runner import app as runner

    sc = next(s for s in SCENARIOS if s.name == opts.profile)
    n = n // 5 if sc.name.startswith("AsymmetricSign") else n  # ~300 us a call
    use_dataset(fx.sets[sc.server], root_key)
    time_asgi(runner.app, [asgi_scope(w) for w in build_wires(sc, fx, 500)])
    items = [asgi_scope(w) for w in build_wires(sc, fx, n)]
    prof = cProfile.Profile()
    prof.enable()
    time_asgi(runner.app, items)
    prof.disable()
    buf = io.StringIO()
    st = pstats.Stats(prof, stream=buf)
    st.sort_stats("tottime").print_stats(30)
    st.sort_stats("cumulative").print_stats(45)
    return buf.getvalue()


# ---------------------------------------------------------------------------------------------
# Report
# ---------------------------------------------------------------------------------------------


def fmt_int(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def render(results: list[Result], ratios: list[dict], nonce: dict | None, meta: dict, opts: Opts) -> str:
    lines = []
    w = lines.append
    w("")
    w(f"KMS benchmark  {meta['when']}  {meta['cpus']} CPUs  Python {meta['python']}  workers {opts.workers}  "
      f"wrk -t{opts.threads} -c{opts.connections} -d{opts.duration}s x {opts.rounds} rounds")
    w("")
    hdr = (f"{'scenario':<24} {'req/s':>9} {'spread':>7} {'p50 ms':>7} {'p99 ms':>7} {'srv cores':>9} "
           f"{'CPU us/req':>10} {'wrk cores':>9} {'other':>6} {'non-2xx':>8}  notes")
    w(hdr)
    w("-" * len(hdr))
    for res in results:  # medians over the quiet rounds; "other": fewest cores other processes used in a run
        sc = res.scenario
        if res.skipped or res.error:
            w(f"{sc.name:<24} {'-':>9}  {res.skipped or 'ERROR: ' + res.error}")
            continue
        rps = [r["rps"] for r in res.clean_runs()]
        med = statistics.median(rps)
        spread = (max(rps) - min(rps)) / med * 100 if med else 0
        notes = [sc.note] if sc.note else []
        if res.discarded_imbalanced:
            notes.append(f"{res.discarded_imbalanced} imbalanced run(s) redone")
        if res.redone_wrapped:
            notes.append(f"{res.redone_wrapped} run(s) redone: list too short")
        if res.redone_noisy:
            notes.append(f"{res.redone_noisy} noisy run(s) redone")
        if res.invalid:
            notes.append("INVALID: errors or replays")
        clean = sum(1 for r in res.runs if r["other_cores"] <= NOISY)
        if clean == 0:
            notes.append("NOISY: other processes busy in every run; shows the least disturbed")
        elif clean < len(res.runs):
            notes.append(f"median of the {clean} quiet run(s) of {len(res.runs)}")
        bad = sum(r["non_2xx"] + r["socket_errors"] for r in res.runs)
        w(f"{sc.name:<24} {med:>9,.0f} {spread:>6.1f}% {res.median('p50_us') / 1000:>7.2f} "
          f"{res.median('p99_us') / 1000:>7.2f} {res.median('server_cores'):>9.2f} "
          f"{res.median('cpu_us_per_req'):>10.1f} {res.median('wrk_cores'):>9.2f} "
          f"{min(r['other_cores'] for r in res.runs):>6.2f} {bad:>8}  {'; '.join(notes)}")
    inproc = [(res.scenario.name, x) for res in results for x in res.inproc]
    if inproc:
        w("")
        w("In process (this process, one core, no HTTP; best of the rounds)")
        hdr = f"{'scenario':<24} {'layer':<30} {'calls/s':>9} {'us/call':>8} {'non-200':>8}"
        w(hdr)
        w("-" * len(hdr))
        seen = []
        for name, x in inproc:
            if (name, x["layer"]) in seen:
                continue
            seen.append((name, x["layer"]))
            same = [y for n, y in inproc if n == name and y["layer"] == x["layer"]]
            rate = max(y["rate"] for y in same)
            w(f"{name:<24} {x['layer']:<30} {rate:>9,.0f} {1e6 / rate:>8.1f} {sum(y['non_200'] for y in same):>8}")
    if nonce:
        w("")
        w("Nonce store (bench/nonce.py: remember_nonce alone)")
        hdr = (f"{'variant':<66} {'procs':>5} {'calls/s':>9} {'us/call':>8} {'p99 us':>8} {'max ms':>8} "
               f"{'stalls':>7}")
        w(hdr)
        w("-" * len(hdr))
        for row in nonce["rows"]:
            w(f"{row['variant']:<66} {row['procs']:>5} {row['rate']:>9,.0f} {row['us_per_call']:>8.1f} "
              f"{row['p99_us']:>8.1f} {row['max_ms']:>8.2f} {row['stalls_per_10k']:>7.1f}")
        for note in nonce.get("notes", []):
            w(f"  {note}")
    w("")
    w("Ratios (same run)")
    hdr = f"{'ratio':<42} {'req/s':>8} {'by CPU':>8} {'target':>16}  status (on req/s)"
    w(hdr)
    w("-" * len(hdr))

    def num(v: float | None) -> str:
        return "-" if v is None else f"{v:.3f}" if v < 10 else f"{v:.1f}"

    for r in ratios:
        w(f"{r['name']:<42} {num(r['value']):>8} {num(r.get('cpu_ratio')):>8} {r['target_text']:>16}  "
          f"{r['status']}")
    w("by CPU: the same ratio from the servers' CPU time per request (in process: calls/s ratio)")
    for r in ratios:
        if r.get("store_bound"):
            w(f"{r['name']}: store bound {r['connections']} clients / ({r['round_trips']:.2f} round trips x "
              f"{r['latency_s'] * 1000:.0f} ms) = {r['store_bound']:,.0f} calls/s; without the latency "
              f"{r['den_rps']:,.0f} req/s; with it {r['num_rps']:,.0f} req/s")
    if meta.get("primitive_rates"):
        w("raw primitive (cryptography alone, " + str(opts.workers) + " processes): " + ", ".join(
            f"{spec} {r:,.0f} signatures/s" for spec, r in meta["primitive_rates"].items()))
    w("")
    return "\n".join(lines)


def inproc_rate(res: Result, layer: str = "handler") -> float | None:
    """Best round of an in-process layer."""
    rates = [x["rate"] for x in res.inproc if x["layer"] == layer]
    return max(rates) if rates else None


def store_bound_ratio(ra: Ratio, num: Result | None, den: Result | None) -> dict:
    """num's req/s against the lesser of den's and the bound the store's latency sets: each of num's
    connections has one call in flight, and a call waits its round trips to the store one after
    another, so calls/s <= connections / (round trips per call x latency)."""
    out = {"name": ra.name, "value": None, "target": ra.target, "target_text": ra.target_text,
           "source": "store-bound"}
    runs = [r for r in (num.runs if num else []) if "store_requests" in r and r["requests"]]
    if num is None or den is None or not runs:
        return {**out, "status": "not measured"}
    latency = float(SERVERS[num.scenario.server][0].partition(":")[2])
    trips = sum(r["store_requests"] for r in runs) / sum(r["requests"] for r in runs)
    bound = (num.scenario.connections or 16) / (trips * latency)
    value = num.median() / min(bound, den.median())
    status = "INVALID (errors in a run)" if num.invalid or den.invalid else "met" if value >= ra.target else "NOT MET"
    return {**out, "value": value, "status": status, "round_trips": trips, "store_bound": bound,
            "latency_s": latency, "connections": num.scenario.connections, "num_rps": num.median(),
            "den_rps": den.median(), "cpu_ratio": None}


def compute_ratios(results: list[Result], primitives: dict[str, float] | None = None) -> list[dict]:
    by = {r.scenario.name: r for r in results if r.runs}
    out = []
    for ra in RATIOS:
        num, den = by.get(ra.num), by.get(ra.den)
        if ra.source == "primitive":
            base = (primitives or {}).get(ra.den)
            value = num.median() / base if num and base else None
            status = "not measured" if value is None else "INVALID (errors in a run)" if num.invalid else \
                "info" if ra.target is None else "met" if value >= ra.target else "NOT MET"
            out.append({"name": ra.name, "value": value, "target": ra.target, "target_text": ra.target_text,
                        "status": status, "source": "primitive", "primitive_rate": base})
            continue
        if ra.source == "store-bound":
            out.append(store_bound_ratio(ra, num, den))
            continue
        if ra.source == "inproc":
            a, b = (inproc_rate(num) if num else None), (inproc_rate(den) if den else None)
            value = a / b if a and b else None
            status = "not measured" if value is None else "info" if ra.target is None else \
                "met" if value >= ra.target else "NOT MET"
            out.append({"name": ra.name, "value": value, "cpu_ratio": value, "target": ra.target,
                        "target_text": ra.target_text, "status": status, "source": "inproc"})
            continue
        if num is None or den is None:
            missing = [n for n, r in ((ra.num, num), (ra.den, den)) if r is None]
            out.append({"name": ra.name, "value": None, "target": ra.target, "target_text": ra.target_text,
                        "status": f"not measured ({', '.join(missing)})"})
            continue
        value = num.median() / den.median()
        # Per round too: each round's pair was taken within seconds of each other.
        rounds = [a["rps"] / b["rps"] for a, b in zip(num.runs, den.runs, strict=False)]
        if num.invalid or den.invalid:
            status = "INVALID (errors in a run)"
        elif ra.target is None:
            status = "info"
        else:
            status = "met" if value >= ra.target else "NOT MET"
        out.append({"name": ra.name, "value": value, "per_round": rounds, "target": ra.target,
                    "target_text": ra.target_text, "status": status,
                    # The same ratio from server CPU per request (den / num): what the req/s ratio would be
                    # if both servers had the same CPU. Far less sensitive to other load than req/s, and
                    # free of wrk's share of the box, which is larger at the trivial endpoint's rate.
                    "cpu_ratio": den.median("cpu_us_per_req") / num.median("cpu_us_per_req")})
    return out


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def tool_version(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "?"


def pkg_version(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def run(opts: Opts, only: set[str] | None, json_path: str | None) -> int:
    started = time.time()
    meta = {"when": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)), "cpus": os.cpu_count(),
            "python": platform.python_version(), "wrk": tool_version(["wrk", "-v"]),
            "uvicorn": pkg_version("uvicorn"), "httptools": pkg_version("httptools"),
            "uvloop": pkg_version("uvloop"), "moto": pkg_version("moto"),
            "git": tool_version(["git", "-C", str(ROOT), "describe", "--always", "--dirty"]),
            "kernel": platform.release()}
    scenarios = [s for s in SCENARIOS if (only is None or s.name in only or s.name == "trivial")
                 and (s.quick or not opts.quick)]
    results = [Result(s) for s in scenarios]
    for res in results:
        missing = [a for a in res.scenario.actions if not registered(a)]
        if missing:
            res.skipped = f"skipped: {', '.join(missing)} not registered in shared/registry.py"
    need = {r.scenario.server for r in results if not r.skipped}
    if "moto" in need:
        try:
            importlib.import_module("moto.server")
            importlib.import_module("botocore.auth")
        except ImportError as exc:
            for r in results:
                if r.scenario.server == "moto":
                    r.skipped = f"skipped: moto[server] not installed ({exc})"
            need.discard("moto")

    root_key = "r1:" + base64.b64encode(secrets.token_bytes(32)).decode()
    sets = {name: Dataset(name, opts.tmp / name) for name in DATASETS}
    servers: dict[str, Server] = {}
    py = sys.executable
    need |= {SERVERS[n][2] for n in need if SERVERS[n][2]}  # a server whose keys another one is sent

    def env_for(ds: Dataset | None) -> dict:
        env = {**os.environ, **BASE_ENV, "KMS_ROOT_KEY": root_key, "PYTHONDONTWRITEBYTECODE": "1"}
        env.pop("KMS_DATA_DIR", None)
        return {**env, **(ds.env() if ds else {})}

    fx = Fixture(sets, servers)
    out = sys.stdout
    progress(f"temp dir {opts.tmp}")
    for name, (app, ds_name, _) in SERVERS.items():  # data-set owners first: SERVERS lists them first
        if name not in need:
            continue
        port, workers = free_port(), opts.workers
        count_file = opts.tmp / f"store-requests-{name}" if app.startswith("ots:") else None
        if app == "runner":
            argv = [py, "-m", "alikms.runner", "serve", "--port", str(port), "--data-dir", str(sets[ds_name].dir),
                    "--workers", str(workers), "--no-timers"]
        elif app == "moto":
            argv, workers = [py, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)], 1
        elif count_file is not None:
            argv = [py, "-m", "bench.suite", "serve-ots", "--latency", app.partition(":")[2], "--count-file",
                    str(count_file), "--port", str(port), "--data-dir", str(sets[ds_name].dir),
                    "--workers", str(workers), "--no-timers"]
        else:  # the runner's serve path with another app; the variants are factories
            argv = [py, "-m", "bench.suite", "serve", app, *([] if app.endswith(":trivial_app") else ["--factory"]),
                    "--port", str(port), "--data-dir", str(sets[ds_name].dir if ds_name else opts.tmp / "trivial"),
                    "--workers", str(workers), "--no-timers"]
        ds = sets[ds_name] if ds_name else None
        servers[name] = Server(name, argv, env_for(ds), port, opts.tmp, workers, count_file).start()
        if ds is not None and ds.server is None:  # the first server on a data set makes its 10 keys
            ds.server = servers[name]
            for _ in range(10):
                md = fx.call(name, Call("CreateKey", {"Description": "bench"}))["KeyMetadata"]
                ds.keys.append(md["KeyId"])
    if "kms100k" in need and opts.big_keys > 10:
        progress(f"seeding {opts.big_keys - 10:,} more keys into the large set")
        secs = bulk_seed(sets["kms100k"], root_key, opts.big_keys - 10)
        meta["seed_seconds"] = secs
        meta["seed_keys"] = opts.big_keys
        progress(f"seeded in {secs:.1f} s ({(opts.big_keys - 10) / secs:,.0f} keys/s)")

    # Setup and one smoke request per scenario, before any load.
    for res in results:
        if res.skipped:
            continue
        try:
            if res.scenario.setup:
                res.scenario.setup(fx)
            check_once(res.scenario, fx)
        except Exception as exc:  # noqa: BLE001 - report the scenario, go on with the rest
            res.error = f"{type(exc).__name__}: {exc}"[:300]
    live = [r for r in results if not r.skipped and not r.error]

    # Warm-up (untimed), then interleaved rounds.
    est: dict[str, float] = {}
    cap = 60000.0
    for res in live:
        sc = res.scenario
        progress(f"warm-up {sc.name}")
        est[sc.name] = warm(sc, fx, opts, res, cap)
        if sc.name == "trivial":
            cap = max(est[sc.name] * 1.2, 5000.0)
    for rnd in range(opts.rounds):
        for res in live:
            sc = res.scenario
            if sc.rounds and len(res.runs) >= sc.rounds:
                continue
            workers = fx.servers[sc.server].workers
            est[sc.name] = load_round(sc, fx, opts, res, est[sc.name], workers)
            r = res.runs[-1]
            progress(f"round {rnd + 1}/{opts.rounds} {sc.name:<24} {r['rps']:>9,.0f} req/s  "
                  f"p99 {r['p99_us'] / 1000:6.2f} ms  non-2xx {r['non_2xx']}  workers {r['worker_cores']}  "
                     f"other {r['other_cores']:.2f}")

    # The FC handlers in process, on the same data sets (servers idle meanwhile).
    # Handlers may log to stdout (audit records): send it to a file, as the runners' stdout is.
    with open(opts.tmp / "in-process-stdout.log", "w") as sink, contextlib.redirect_stdout(sink):
        runs = {id(res): InProcess(res.scenario, fx, opts, root_key) for res in live if res.scenario.in_process}
        for rnd in range(opts.rounds):
            progress(f"in process, round {rnd + 1}/{opts.rounds}")
            for res in live:
                if id(res) in runs and not res.error:
                    try:
                        res.inproc += runs[id(res)].round()
                    except Exception as exc:  # noqa: BLE001 - report the scenario, go on with the rest
                        res.error = f"in process: {type(exc).__name__}: {exc}"[:300]
        profiled = next((r for r in live if r.scenario.name == opts.profile and not r.error), None)
        profile = profile_inproc(fx, opts, root_key) if profiled and profiled.scenario.in_process else None

    stop_all()

    nonce = None
    if only is None or "nonce" in only:
        progress("nonce store microbenchmarks")
        from bench import nonce as bench_nonce

        nonce = bench_nonce.run_all(opts.tmp / "nonce", quick=opts.quick, quiet_wait=opts.quiet_wait)

    primitives = {}
    if only is None or any(r.scenario.name.startswith("AsymmetricSign") for r in results if r.runs):
        progress("raw signing primitives")
        from bench import primitives as bench_primitives

        for spec in bench_primitives.SPECS:
            primitives[spec] = bench_primitives.rate(spec, opts.workers, 1.0 if opts.quick else 2.0)
        meta["primitive_rates"] = primitives
    ratios = compute_ratios(results, primitives)
    text = render(results, ratios, nonce, meta, opts)
    print(text, file=out)
    if profile:
        print(f"cProfile: runner.app driving signed {opts.profile} in process\n" + profile, file=out)
    meta["elapsed_s"] = time.time() - started
    print(f"bench: finished in {meta['elapsed_s']:.0f} s", file=out)
    if json_path:
        doc = {
            "meta": meta,
            "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(opts).items()},
            "scenarios": [{
                "name": r.scenario.name, "server": r.scenario.server, "note": r.scenario.note,
                "skipped": r.skipped or None, "error": r.error or None, "invalid": r.invalid,
                "rps_median": r.median() if r.runs else None,
                "p50_ms": r.median("p50_us") / 1000 if r.runs else None,
                "p99_ms": r.median("p99_us") / 1000 if r.runs else None,
                "server_cores": r.median("server_cores") if r.runs else None,
                "cpu_us_per_req": r.median("cpu_us_per_req") if r.runs else None,
                "discarded_imbalanced": r.discarded_imbalanced, "redone_wrapped": r.redone_wrapped,
                "redone_noisy": r.redone_noisy,
                "runs": r.runs, "warmup": r.warmup, "in_process": r.inproc,
            } for r in results],
            "ratios": ratios,
            "nonce": nonce,
            "profile": profile,
        }
        Path(json_path).write_text(json.dumps(doc, indent=2))
        print(f"bench: JSON written to {json_path}", file=out)
    return 1 if any(r.error for r in results) or any(r.invalid for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    s = sub.add_parser("serve", help="(internal) APP [--factory] RUNNER-SERVE-ARGS: serve an ASGI app with the "
                                     "runner's uvicorn settings")
    s.add_argument("app")
    s.add_argument("--factory", action="store_true")
    s = sub.add_parser("serve-ots", help="(internal) --latency S --count-file F RUNNER-SERVE-ARGS: the runner on "
                                         "the Tablestore fake through the fault proxy")
    s.add_argument("--latency", type=float, required=True)
    s.add_argument("--count-file", required=True)
    parser.add_argument("--quick", action="store_true",
                        help="1 round of 3 s, no moto Decrypt/GenerateDataKey, shorter in-process and nonce runs")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--rounds", type=int, help="measured runs per scenario (default 3, quick 1)")
    parser.add_argument("--duration", type=int, help="seconds per measured wrk run (default 4, quick 3)")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of untimed load per scenario first")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk keep-alive connections")
    parser.add_argument("--recycle", type=int, default=200,
                        help="every Nth request carries 'connection: close' so connections spread over the "
                             "workers (0: never)")
    parser.add_argument("--quiet-wait", type=float, default=5,
                        help="before each run wait up to this many seconds for other processes to go idle "
                             "(60 s in all at most)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="server worker processes")
    parser.add_argument("--keys", type=int, default=100_000, help="keys in the large data set")
    parser.add_argument("--only", help="comma-separated scenario names (trivial always runs); 'nonce' for the "
                                       "nonce microbenchmarks")
    parser.add_argument("--profile", nargs="?", const="DescribeKey", metavar="SCENARIO",
                        help="print a cProfile of the scenario (default DescribeKey) through runner.app in process")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args, rest = parser.parse_known_args(argv)
    if args.command == "serve":
        return serve(args.app, args.factory, rest)
    if args.command == "serve-ots":
        return serve_ots(args.latency, args.count_file, rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    if shutil.which("wrk") is None:
        print("wrk not found: run scripts/bench (it installs wrk), or apt-get install wrk", file=sys.stderr)
        return 2
    tmp = Path(tempfile.mkdtemp(prefix="kms-bench-"))
    opts = Opts(rounds=args.rounds or (1 if args.quick else 3), duration=args.duration or (3 if args.quick else 4),
                warmup=1 if args.quick else args.warmup, threads=args.threads, connections=args.connections,
                workers=args.workers, big_keys=args.keys, inproc_seconds=0.3 if args.quick else 0.6,
                recycle=args.recycle, quiet_wait=args.quiet_wait,
                quick=args.quick, profile=args.profile, tmp=tmp)

    def on_signal(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_signal)
    only = {x.strip() for x in args.only.split(",")} if args.only else None
    try:
        return run(opts, only, args.json)
    except KeyboardInterrupt:
        print("bench: interrupted", file=sys.stderr)
        return 130
    finally:
        stop_all()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            from alikms.shared.store import nonces

            if os.path.isdir(nonces.private_dir()):
                nonces.sweep(nonces.private_dir())  # the data sets' nonce tables in shared memory
        else:
            print(f"bench: kept {tmp}", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
