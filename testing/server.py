"""The real local runner on a free port, for clients the in-process double cannot reach (Node, Java,
the CLI, anything in another process): `start_server()`, or the `kms_server` pytest fixture.

The runner is the same `alikms serve` a developer runs, with a temporary data directory (removed
when it stops), a generated access key pair and account, and optionally a seed file. Its endpoint
is plain HTTP on 127.0.0.1, so clients are pointed at it explicitly (`server.endpoint`,
`protocol="http"`); `server.env()` gives the variables for a child process. Needs the `serve` extra
(`pip install alikms[serve]`).
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class KmsServer:
    port: int
    access_key_id: str
    access_key_secret: str
    account_id: str
    region: str
    data_dir: Path
    process: subprocess.Popen = field(repr=False)
    owns_data_dir: bool = field(default=False, repr=False)

    @property
    def endpoint(self) -> str:
        """`host:port`, as the SDKs' `endpoint` setting takes it (with protocol "http")."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def env(self) -> dict[str, str]:
        """Variables for a child process: the default credential chain's pair, the endpoint, the region."""
        return {"ALIBABA_CLOUD_ACCESS_KEY_ID": self.access_key_id,
                "ALIBABA_CLOUD_ACCESS_KEY_SECRET": self.access_key_secret,
                "ALIBABA_CLOUD_REGION_ID": self.region, "KMS_ENDPOINT": self.url}

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.owns_data_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> KmsServer:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: str | Path | None = None, *, seed: str | Path | None = None,
                 region: str = "cn-hangzhou", timers: bool = True, workers: int = 1,
                 timeout: float = 30.0) -> KmsServer:
    """Start the runner and wait until it accepts connections. A port taken by someone else between
    choosing and binding it is retried with another."""
    owns = data_dir is None
    path = Path(tempfile.mkdtemp(prefix="alikms-server-") if data_dir is None else data_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    creds = {"KMS_ACCESS_KEY_ID": "LTAI" + secrets.token_hex(10), "KMS_ACCESS_KEY_SECRET": secrets.token_urlsafe(24),
             "KMS_ACCOUNT_ID": str(10**15 + secrets.randbelow(9 * 10**15)), "KMS_REGION": region}
    env = {**os.environ, **creds, "KMS_AUDIT_STDOUT": "false",
           # a test server needs no room for millions of nonces, and keeps them beside its data
           "KMS_NONCE_SLOTS": "65536", "KMS_NONCE_DIR": "data"}
    problems = []
    try:
        for _ in range(3):
            port = _free_port()
            args = [sys.executable, "-m", "alikms.runner", "serve", "--host", "127.0.0.1", "--port", str(port),
                    "--data-dir", str(path), "--workers", str(workers)]
            if not timers:
                args.append("--no-timers")
            if seed is not None:
                args += ["--seed", str(Path(seed).resolve())]
            log = open(path / "server.log", "wb")
            proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            log.close()
            if _wait(proc, port, timeout):
                return KmsServer(port, creds["KMS_ACCESS_KEY_ID"], creds["KMS_ACCESS_KEY_SECRET"],
                                 creds["KMS_ACCOUNT_ID"], region, path, proc, owns)
            problems.append((path / "server.log").read_text(errors="replace")[-2000:])
            if proc.poll() is None:
                proc.kill()
                proc.wait()
                break  # alive but never listening: another try would hang the same way
    except BaseException:
        if owns:
            shutil.rmtree(path, ignore_errors=True)
        raise
    if owns:
        shutil.rmtree(path, ignore_errors=True)
    raise RuntimeError("the KMS runner did not start:\n" + "\n---\n".join(problems))


def _wait(proc: subprocess.Popen, port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False
