"""Instructions per signed call through the runner's ASGI app in process (no socket), counted by
valgrind, for this tree and optionally an older checkout: a measure the machine's load cannot disturb.

    python -m bench.instructions [--baseline DIR] [--actions DescribeKey,Encrypt,GetSecretValue]

DIR is a checkout with its own .venv (`scripts/test` there makes one); a checkout from before the
`alikms` namespace (commit f9c240f, runner in scripts/runner.py) works too. The per-call figure is
(instructions with N2 calls - with N1 calls) / (N2 - N1), so imports and setup cancel out. Run it
from a directory of its own: the script's folder goes first on the import path, and a busy shared
/tmp re-listed on imports adds noise. Needs `valgrind` (Debian package).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import quote

AK, SECRET, ACCOUNT = "LTAIbenchAccessKey01", "BenchSecret0123456789", "1234567890123456"
ROOT = Path(__file__).resolve().parent.parent
N1, N2 = 50, 350


def _modules(tree: str):
    """(runner app module, signing module) of `tree`, in either layout."""
    if (Path(tree) / "scripts" / "runner.py").exists():  # before the alikms namespace
        sys.path.insert(0, tree)
        return importlib.import_module("scripts.runner"), importlib.import_module("shared.signing")
    return importlib.import_module("alikms.runner.app"), importlib.import_module("alikms.shared.signing")


def child(tree: str, n: int, action: str) -> None:
    """Make a key and a secret, warm up, then make `n` calls of `action` (run under valgrind)."""
    os.environ.update(KMS_DATA_DIR=tempfile.mkdtemp(), KMS_ACCESS_KEY_ID=AK, KMS_ACCESS_KEY_SECRET=SECRET,
                      KMS_ACCOUNT_ID=ACCOUNT, KMS_AUDIT_STDOUT="false", KMS_NONCE_DIR="data",
                      KMS_NONCE_SLOTS=str(1 << 20), KMS_METRICS_PORT="0")
    runner, signing = _modules(tree)

    async def call(name: str, query: dict[str, str]) -> tuple[int, bytes]:
        headers = {"host": "kms.local", "x-acs-action": name, "x-acs-version": "2016-01-20",
                   "x-acs-date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                   "x-acs-signature-nonce": uuid.uuid4().hex, "x-acs-content-sha256": signing.EMPTY_SHA256}
        signed = sorted(headers)
        canonical = signing.acs3_canonical_request("POST", "/", query, headers, signed, signing.EMPTY_SHA256)
        signature = signing.acs3_signature(SECRET, signing.acs3_string_to_sign(canonical))
        headers["authorization"] = (f"ACS3-HMAC-SHA256 Credential={AK},SignedHeaders={';'.join(signed)},"
                                    f"Signature={signature}")
        qs = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in query.items())
        scope = {"type": "http", "method": "POST", "path": "/", "query_string": qs.encode(),
                 "headers": [(k.encode(), v.encode()) for k, v in headers.items()], "client": ("127.0.0.1", 5000)}
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await runner.app(scope, receive, send)
        return sent[0]["status"], sent[1]["body"]

    async def run() -> None:
        status, body = await call("CreateKey", {})
        assert status == 200, body
        key = json.loads(body)["KeyMetadata"]["KeyId"]
        status, body = await call("CreateSecret", {"SecretName": "s1", "VersionId": "v1", "SecretData": "x" * 4096})
        assert status == 200, body
        query = {"Encrypt": {"KeyId": key, "Plaintext": "aGVsbG8gd29ybGQgaGVsbG8gd29ybGQgaGVsbG8gd29ybGQ="},
                 "DescribeKey": {"KeyId": key}, "GetSecretValue": {"SecretName": "s1"}}[action]
        for _ in range(20):  # imports and caches
            status, body = await call(action, query)
            assert status == 200, body
        for _ in range(n):
            await call(action, query)

    asyncio.run(run())


def count(tree: str, n: int, action: str) -> int:
    python = Path(tree) / ".venv" / "bin" / "python"
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", str(python), __file__,
                          "--child", tree, str(n), action], cwd=tree, capture_output=True, text=True, check=False)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if not found:
        raise SystemExit(out.stderr[-3000:])
    return int(found.group(1))


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", help="an older checkout (with its own .venv) to compare against")
    parser.add_argument("--actions", default="DescribeKey,Encrypt,GetSecretValue")
    opts = parser.parse_args()
    trees = {"now": str(ROOT)} | ({"before": str(Path(opts.baseline).resolve())} if opts.baseline else {})
    for action in opts.actions.split(","):
        per = {name: (count(tree, N2, action) - count(tree, N1, action)) / (N2 - N1) for name, tree in trees.items()}
        line = f"{action:15} now {per['now'] / 1e3:8.1f}k instructions per call"
        if "before" in per:
            line += f"   before {per['before'] / 1e3:8.1f}k   now/before {per['now'] / per['before']:.3f}"
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
