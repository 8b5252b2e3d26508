"""Root-key rotation with `alikms.runner.admin rotate-root-key`: interrupted (--stop-after), the service
reads everything while rows sit under two root keys, then completed: one key left in root.key, every
wrapped field under it, everything (old ciphertexts included) still readable. And a live 2-worker
runner keeps serving before, during and after a rotation."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import threading
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from alikms.shared import crypto, rootkeys, versions
from alikms.shared.config import get_config, parse_root_keys
from alikms.shared.crypto import root
from alikms.shared.store.base import TABLES
from alikms.shared.store.sqlite import SqliteStore
from tests import support
from tests.security.helpers import admin, allow, create_access_key, handler_call, policy, write_policy


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def ok(action: str, params: dict | None = None, **kw) -> dict:
    status, body, _ = handler_call(action, params, **kw)
    assert status == 200, (action, body)
    return body


def forget_caches() -> None:
    """Make the next calls read (and unwrap) everything from the store and the key file again."""
    from alikms.shared import identity

    versions._material.clear()
    versions._loaded.clear()
    identity._cache.clear()
    root._file_state.clear()


def wrapped_ids(store) -> dict[str, list[str]]:
    """Root key id of every wrapped field, per table."""
    found: dict[str, list[str]] = {}
    for table, field, _ in rootkeys.WRAPPED:
        found.setdefault(table, []).extend(crypto.root_key_id_of(i.data[field]) for i in store.scan_all(table)
                                           if i.data.get(field))
    return found


def old_key_anywhere(store, old: str) -> list[str]:
    """Any string in any row that is a root-wrapped blob under `old` (format 1, id length, id)."""
    prefix, hits = bytes([1, len(old)]) + old.encode(), []

    def walk(value, where):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{where}.{k}")
        elif isinstance(value, list):
            for v in value:
                walk(v, where)
        elif isinstance(value, str) and len(value) > 24:
            try:
                if base64.b64decode(value, validate=True).startswith(prefix):
                    hits.append(where)
            except ValueError:
                pass

    for table in TABLES:
        for item in store.scan_all(table):
            walk(item.data, f"{table}:{item.pk}:{item.sk}")
    return hits


def build(data_dir) -> dict:
    """Keys (several versions), BYOK, asymmetric keys, secrets and an access key, with ciphertexts."""
    s: dict = {}
    s["sym"] = ok("CreateKey")["KeyMetadata"]["KeyId"]
    s["blobs"] = {ok("Encrypt", {"KeyId": s["sym"], "Plaintext": b64(b"before v2")})["CiphertextBlob"]: b"before v2"}
    ok("CreateKeyVersion", {"KeyId": s["sym"]})
    s["blobs"][ok("Encrypt", {"KeyId": s["sym"], "Plaintext": b64(b"after v2")})["CiphertextBlob"]] = b"after v2"
    s["rsa"] = ok("CreateKey", {"KeySpec": "RSA_2048", "KeyUsage": "ENCRYPT/DECRYPT"})["KeyMetadata"]["KeyId"]
    s["rsa_ver"] = ok("ListKeyVersions", {"KeyId": s["rsa"]})["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]
    s["rsa_ct"] = ok("AsymmetricEncrypt", {"KeyId": s["rsa"], "KeyVersionId": s["rsa_ver"], "Plaintext": b64(b"asym"),
                                           "Algorithm": "RSAES_OAEP_SHA_256"})["CiphertextBlob"]
    s["ext"] = ok("CreateKey", {"Origin": "EXTERNAL"})["KeyMetadata"]["KeyId"]
    imp = ok("GetParametersForImport", {"KeyId": s["ext"], "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                                        "WrappingKeySpec": "RSA_2048"})
    public = serialization.load_der_public_key(base64.b64decode(imp["PublicKey"]))
    wrapped = public.encrypt(os.urandom(32), padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None))
    s["import"] = {"KeyId": s["ext"], "ImportToken": imp["ImportToken"], "EncryptedKeyMaterial": b64(wrapped)}
    ok("ImportKeyMaterial", s["import"])
    s["blobs"][ok("Encrypt", {"KeyId": s["ext"], "Plaintext": b64(b"byok")})["CiphertextBlob"]] = b"byok"
    ok("CreateSecret", {"SecretName": "text", "VersionId": "v1", "SecretData": "text value"})
    s["binary"] = os.urandom(40)
    ok("CreateSecret", {"SecretName": "bin", "VersionId": "v1", "SecretData": b64(s["binary"]),
                        "SecretDataType": "binary",
                        "EncryptionKeyId": s["sym"]})
    doc = policy(allow(["kms:DescribeKey", "kms:Decrypt"], "*"))
    out = admin(data_dir, "access-key", "create", "--json", "--policy", write_policy(data_dir, doc)).stdout
    s["ak"] = json.loads(out)
    return s


def read_everything(s: dict) -> None:
    for blob, plain in s["blobs"].items():
        assert base64.b64decode(ok("Decrypt", {"CiphertextBlob": blob})["Plaintext"]) == plain
    assert base64.b64decode(ok("AsymmetricDecrypt", {"KeyId": s["rsa"], "KeyVersionId": s["rsa_ver"],
                                                     "Algorithm": "RSAES_OAEP_SHA_256",
                                                     "CiphertextBlob": s["rsa_ct"]})["Plaintext"]) == b"asym"
    assert ok("GetSecretValue", {"SecretName": "text"})["SecretData"] == "text value"
    assert base64.b64decode(ok("GetSecretValue", {"SecretName": "bin"})["SecretData"]) == s["binary"]
    ok("ImportKeyMaterial", s["import"])  # the token's private key and the fingerprint unwrap
    ak = {"ak": s["ak"]["AccessKeyId"], "secret": s["ak"]["AccessKeySecret"]}
    assert ok("DescribeKey", {"KeyId": s["sym"]}, **ak)["KeyMetadata"]["KeyId"] == s["sym"]
    assert ok("DescribeKey", {"KeyId": s["sym"]})["KeyMetadata"]["KeyId"] == s["sym"]  # the bootstrap key


def test_interrupted_then_completed_rotation(invoke, local_env):
    s = build(local_env)
    store = SqliteStore(local_env / "kms.sqlite3")
    before = wrapped_ids(store)
    total = sum(len(v) for v in before.values())
    assert all(before.values()) and total >= 9 and {k for v in before.values() for k in v} == {"r1"}

    out = admin(local_env, "rotate-root-key", "--stop-after", "2").stdout
    assert "stopped early" in out
    ring = parse_root_keys((local_env / "root.key").read_text())
    assert list(ring) == ["r2", "r1"]
    mixed = [k for v in wrapped_ids(store).values() for k in v]
    assert (mixed.count("r2"), mixed.count("r1")) == (2, total - 2)
    assert rootkeys.remaining(store, get_config()) == total - 2

    forget_caches()
    read_everything(s)
    new_key = ok("CreateKey")["KeyMetadata"]["KeyId"]  # written meanwhile: under the new primary key
    s["blobs"][ok("Encrypt", {"KeyId": new_key, "Plaintext": b64(b"mid")})["CiphertextBlob"]] = b"mid"
    assert {crypto.root_key_id_of(i.data["material"]) for i in store.query_all(
        "key_versions", f"{support.TEST_ACCOUNT}/cn-hangzhou/{new_key}")} == {"r2"}

    # Resuming twice more in small steps is harmless, then the full run finishes.
    admin(local_env, "rotate-root-key", "--stop-after", "1")
    assert rootkeys.remaining(store, get_config()) == total - 3
    out = admin(local_env, "rotate-root-key").stdout
    assert "done" in out
    ring = parse_root_keys((local_env / "root.key").read_text())
    assert list(ring) == ["r2"]
    after = wrapped_ids(store)
    assert {k for v in after.values() for k in v} == {"r2"}
    assert {t: len(v) for t, v in after.items()} == {t: len(v) for t, v in before.items()} | {
        "key_versions": len(before["key_versions"]) + 1}
    assert old_key_anywhere(store, "r1") == []
    assert rootkeys.remaining(store, get_config()) == 0

    forget_caches()
    read_everything(s)
    assert ok("Encrypt", {"KeyId": s["sym"], "Plaintext": b64(b"x")})["KeyId"] == s["sym"]


def test_live_runner_keeps_serving_during_rotation(server_factory):
    srv = server_factory(env={"KMS_KEY_QUOTA": "100000"}, workers=2)
    key = support.call(srv, "CreateKey")[1]["KeyMetadata"]["KeyId"]
    assert support.call(srv, "CreateSecret", {"SecretName": "live", "VersionId": "v1", "SecretData": "live value"})[0] \
        == 200
    ak, secret = create_access_key(srv, policy(allow("kms:*", "*")))
    results: list[tuple[float, str, int, dict]] = []
    blobs: dict[str, bytes] = {}
    stop = threading.Event()

    def client(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            plain = f"{n}-{i}".encode()
            status, body = support.call(srv, "Encrypt", {"KeyId": key, "Plaintext": b64(plain)})
            results.append((time.time(), "Encrypt", status, body))
            if status == 200:
                blobs[body["CiphertextBlob"]] = plain
                status, body = support.call(srv, "Decrypt", {"CiphertextBlob": body["CiphertextBlob"]},
                                            ak=ak, secret=secret)
                results.append((time.time(), "Decrypt", status, body))
                assert status != 200 or base64.b64decode(body["Plaintext"]) == plain
            status, body = support.call(srv, "GetSecretValue", {"SecretName": "live"})
            results.append((time.time(), "GetSecretValue", status, body))
            if i % 5 == 0:  # new key material written while the rotation runs
                status, body = support.call(srv, "CreateKey", ak=ak, secret=secret)
                results.append((time.time(), "CreateKey", status, body))

    threads = [threading.Thread(target=client, args=(n,)) for n in range(2)]
    for t in threads:
        t.start()
    try:
        support.until(lambda: len(results) >= 5, 30, "no calls answered before the rotation")
        started = time.time()
        proc = subprocess.run([sys.executable, "-m", "alikms.runner.admin", "--data-dir", str(srv.data_dir),
                               "rotate-root-key"],
                              check=False, cwd=support.ROOT, env=srv.env, capture_output=True, text=True, timeout=60)
        finished = time.time()
        # Calls answered once every worker has re-read the key file (now one key) since the rotation.
        reread = finished + root.RECHECK_SECONDS
        support.until(lambda: sum(1 for t, *_ in results if t >= reread) >= 5, 30, "no calls after the rotation")
    finally:
        stop.set()
        for t in threads:
            t.join(30)
    assert proc.returncode == 0 and "done" in proc.stdout, (proc.stdout, proc.stderr)
    failures = [(action, status, body.get("Code")) for _, action, status, body in results if status != 200]
    assert failures == []
    phases = [sum(1 for t, *_ in results if lo <= t < hi) for lo, hi in
              ((0, started), (started, finished), (finished, float("inf")))]
    assert all(n >= 5 for n in phases), phases
    assert {a for _, a, *_ in results} == {"Encrypt", "Decrypt", "GetSecretValue", "CreateKey"}
    assert list(parse_root_keys((srv.data_dir / "root.key").read_text())) == ["r2"]
    store = SqliteStore(srv.data_dir / "kms.sqlite3")
    assert {k for v in wrapped_ids(store).values() for k in v} == {"r2"}
    # Everything made before, during and after still decrypts (sampled to keep the test short).
    for blob, plain in list(blobs.items())[:: max(1, len(blobs) // 40)]:
        status, body = support.call(srv, "Decrypt", {"CiphertextBlob": blob})
        assert status == 200 and base64.b64decode(body["Plaintext"]) == plain, body
