"""Alibaba's Node client `@alicloud/pop-core` (RPC v1; GET by default, POST with everything in the
form body) drives the running local runner. Installed with npm into .venv/node-popcore on first use."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess

import pytest

from tests import support

POP_CORE = "1.8.0"
NODE_DIR = support.ROOT / ".venv" / "node-popcore"

SCRIPT = r"""
const RPCClient = require('@alicloud/pop-core').RPCClient;
const [endpoint, ak, sk] = process.argv.slice(2);
const client = new RPCClient({accessKeyId: ak, accessKeySecret: sk, endpoint, apiVersion: '2016-01-20'});
(async () => {
  const out = {};
  const ctx = JSON.stringify({purpose: 'unit test', user: "alice/bob*~'()!"});
  const key = await client.request('CreateKey', {Description: 'from node é中'}, {method: 'POST'});
  out.keyId = key.KeyMetadata.KeyId;
  out.description = key.KeyMetadata.Description;
  const enc = await client.request('Encrypt', {KeyId: out.keyId, Plaintext: 'aGVsbG8gd29ybGQ=',
                                               EncryptionContext: ctx});
  const dec = await client.request('Decrypt', {CiphertextBlob: enc.CiphertextBlob, EncryptionContext: ctx},
                                   {method: 'POST'});
  out.plaintext = dec.Plaintext;
  const sec = await client.request('CreateSecret', {SecretName: 'node/secret', VersionId: 'v1',
                                                    SecretData: 'p@ss w0rd!*~\'()é'}, {method: 'POST'});
  const val = await client.request('GetSecretValue', {SecretName: 'node/secret'});
  out.secret = val.SecretData;
  try { await client.request('DescribeKey', {KeyId: 'no-such-key'}); } catch (err) { out.error = err.code; }
  console.log(JSON.stringify(out));
})().catch((err) => { console.error(err && err.stack || err); process.exit(1); });
"""


def _install() -> None:
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` is not on PATH: this test runs Alibaba's Node client @alicloud/pop-core")
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    package = NODE_DIR / "node_modules" / "@alicloud" / "pop-core" / "package.json"
    with open(NODE_DIR / ".install.lock", "w") as lock:  # xdist workers share the folder
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (package.exists() and json.loads(package.read_text())["version"] == POP_CORE):
            done = subprocess.run(["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund",
                                   "--loglevel=error", f"@alicloud/pop-core@{POP_CORE}"],
                                  capture_output=True, text=True, timeout=600)
            if done.returncode != 0:
                pytest.fail(f"npm install @alicloud/pop-core failed:\n{done.stdout}\n{done.stderr}")


def test_pop_core_get_and_post(server, tmp_path):
    _install()
    script = tmp_path / "popcore.js"
    script.write_text(SCRIPT)
    done = subprocess.run(["node", str(script), f"http://{server.endpoint}", server.access_key_id, server.secret],
                          cwd=NODE_DIR, capture_output=True, text=True, timeout=120,
                          env={"PATH": support.os.environ["PATH"], "NODE_PATH": str(NODE_DIR / "node_modules")})
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["description"] == "from node é中"
    assert out["plaintext"] == "aGVsbG8gd29ybGQ="
    assert out["secret"] == "p@ss w0rd!*~'()é"
    assert out["error"] == "Forbidden.KeyNotFound"
