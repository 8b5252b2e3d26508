"""Nothing sensitive at rest, and an audit trail with one clean record per call.

A full workload runs in process on each store (SQLite, the Tablestore wire fake): symmetric and
asymmetric keys, BYOK import, data keys, secrets with text and binary values, access keys. Then every
row of every table, every file of the data directory (SQLite main, WAL and nonce files, audit log)
and the fake Tablestore's raw cells are searched for each plaintext, data key, secret value, imported
material, access-key secret and unwrapped key material, raw and encoded. The audit file and stdout get
one record per call with the documented fields, and `alikms.runner.admin audit` filters them."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import time
import uuid

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

from alikms.shared import audit, byok, crypto, identity, versions
from alikms.shared.config import get_config
from alikms.shared.context import Context
from alikms.shared.records import Key
from alikms.shared.store.base import TABLES
from tests import support
from tests.security.helpers import admin, handler_call

FIELDS = {"EventTime", "RequestId", "AccountId", "AccessKeyId", "SourceIp", "Action", "Resources", "ResultCode",
          "HttpStatus"}
OAEP256 = padding.OAEP(padding.MGF1(hashes.SHA256()), hashes.SHA256(), None)


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def forms(value: bytes) -> list[bytes]:
    """How a value could sit in a row or a log: raw, base64 (standard, URL-safe, unpadded), hex."""
    std = base64.b64encode(value)
    return [value, std, std.rstrip(b"="), base64.urlsafe_b64encode(value).rstrip(b"="), value.hex().encode()]


def present(value: bytes, hay: bytes) -> bool:
    """Whether any form of `value` is in `hay`. SQLite splits a long row over overflow pages (chunks of
    about 4 KB), so a value can straddle one page boundary in the raw file: one half is then whole."""
    for form in forms(value):
        half = len(form) // 2
        if form in hay or (half >= 8 and (form[:half] in hay or form[half:] in hay)):
            return True
    return False


class Run:
    """Calls the FC handlers in process as any access key; remembers every call and the sensitive values."""

    def __init__(self, kms) -> None:
        self.kms, self.calls, self.sensitive, self.signatures = kms, [], {}, []

    def secret(self, name: str, value: bytes) -> None:
        self.sensitive[name] = value

    def call(self, action: str, params: dict | None = None, ak: str = support.TEST_AK,
             secret: str = support.TEST_SECRET, **sign) -> tuple[int, dict]:
        status, body, signature = handler_call(action, params, ak, secret, **sign)
        self.signatures.append(signature)
        self.calls.append((action, ak, status, body))
        return status, body

    def ok(self, action: str, params: dict | None = None, **kw) -> dict:
        status, body = self.call(action, params, **kw)
        assert status == 200, (action, body)
        return body

    def fails(self, code: str, action: str, params: dict | None = None, **kw) -> dict:
        _, body = self.call(action, params, **kw)
        assert body.get("Code") == code, (action, body)
        return body


def workload(run: Run, store) -> None:
    def key(**p) -> str:
        return run.ok("CreateKey", p)["KeyMetadata"]["KeyId"]

    sym, sm4 = key(), key(KeySpec="Aliyun_SM4")
    rsa_key = key(KeySpec="RSA_2048", KeyUsage="ENCRYPT/DECRYPT")
    ec_key = key(KeySpec="EC_P256", KeyUsage="SIGN/VERIFY")
    run.ok("CreateAlias", {"AliasName": "alias/at-rest", "KeyId": sym})
    # BYOK
    ext = key(Origin="EXTERNAL")
    material = os.urandom(32)
    run.secret("imported material", material)
    imp = run.ok("GetParametersForImport", {"KeyId": ext, "WrappingAlgorithm": "RSAES_OAEP_SHA_256",
                                           "WrappingKeySpec": "RSA_2048"})
    wrapped = serialization.load_der_public_key(base64.b64decode(imp["PublicKey"])).encrypt(material, OAEP256)
    run.ok("ImportKeyMaterial", {"KeyId": ext, "ImportToken": imp["ImportToken"], "EncryptedKeyMaterial": b64(wrapped)})
    # envelope encryption
    for i, key_id in enumerate((sym, sm4, ext, "alias/at-rest")):
        plain = os.urandom(24) + f"plaintext number {i}".encode()
        run.secret(f"plaintext {i}", plain)
        blob = run.ok("Encrypt", {"KeyId": key_id, "Plaintext": b64(plain),
                                  "EncryptionContext": json.dumps({"n": str(i)})})["CiphertextBlob"]
        assert base64.b64decode(run.ok("Decrypt", {"CiphertextBlob": blob, "EncryptionContext": json.dumps(
            {"n": str(i)})})["Plaintext"]) == plain
    moved = run.ok("ReEncrypt", {"CiphertextBlob": blob, "DestinationKeyId": sm4,
                                 "SourceEncryptionContext": json.dumps({"n": "3"})})["CiphertextBlob"]
    assert base64.b64decode(run.ok("Decrypt", {"CiphertextBlob": moved})["Plaintext"]) == plain
    for i, params in enumerate(({"KeyId": sym}, {"KeyId": sm4, "NumberOfBytes": 16},
                                {"KeyId": ext, "KeySpec": "AES_128"})):
        run.secret(f"data key {i}", base64.b64decode(run.ok("GenerateDataKey", params)["Plaintext"]))
    bare = run.ok("GenerateDataKeyWithoutPlaintext", {"KeyId": sym})["CiphertextBlob"]
    run.secret("data key from Decrypt", base64.b64decode(run.ok("Decrypt", {"CiphertextBlob": bare})["Plaintext"]))
    run.ok("CreateKeyVersion", {"KeyId": sym})
    # asymmetric
    def versions_of(k: str) -> str:
        return run.ok("ListKeyVersions", {"KeyId": k})["KeyVersions"]["KeyVersion"][0]["KeyVersionId"]

    rsa_ver, ec_ver = versions_of(rsa_key), versions_of(ec_key)
    asym_plain = os.urandom(16) + b" asymmetric plaintext"
    run.secret("asymmetric plaintext", asym_plain)
    ct = run.ok("AsymmetricEncrypt", {"KeyId": rsa_key, "KeyVersionId": rsa_ver, "Algorithm": "RSAES_OAEP_SHA_256",
                                      "Plaintext": b64(asym_plain)})["CiphertextBlob"]
    assert base64.b64decode(run.ok("AsymmetricDecrypt", {"KeyId": rsa_key, "KeyVersionId": rsa_ver,
                                                         "Algorithm": "RSAES_OAEP_SHA_256",
                                                         "CiphertextBlob": ct})["Plaintext"]) == asym_plain
    run.ok("AsymmetricSign", {"KeyId": ec_key, "KeyVersionId": ec_ver, "Algorithm": "ECDSA_SHA_256",
                              "Digest": b64(hashlib.sha256(b"m").digest())})
    # secrets, text and binary
    text1, text2 = f"db-password-{uuid.uuid4().hex}", f"rotated-password-{uuid.uuid4().hex}"
    binary = os.urandom(48)
    for name, value in (("text secret", text1.encode()), ("text secret v2", text2.encode()), ("binary secret", binary)):
        run.secret(name, value)
    run.ok("CreateSecret", {"SecretName": "app/db", "VersionId": "v1", "SecretData": text1})
    run.ok("PutSecretValue", {"SecretName": "app/db", "VersionId": "v2", "SecretData": text2})
    run.ok("CreateSecret", {"SecretName": "blob", "VersionId": "v1", "SecretData": b64(binary),
                            "SecretDataType": "binary", "EncryptionKeyId": sym})
    assert run.ok("GetSecretValue", {"SecretName": "app/db"})["SecretData"] == text2
    assert run.ok("GetSecretValue", {"SecretName": "app/db", "VersionId": "v1"})["SecretData"] == text1
    assert base64.b64decode(run.ok("GetSecretValue", {"SecretName": "blob"})["SecretData"]) == binary
    # failures, one of them carrying a value that must not be kept anywhere
    refused = f"refused-value-{uuid.uuid4().hex}"
    run.secret("refused secret value", refused.encode())
    run.fails("Rejected.ResourceExist", "CreateSecret", {"SecretName": "app/db", "VersionId": "v1",
                                                         "SecretData": refused})
    run.fails("Forbidden.KeyNotFound", "DescribeKey", {"KeyId": str(uuid.uuid4())})
    run.fails("InvalidParameter", "Decrypt", {"CiphertextBlob": b64(os.urandom(70))})
    nonce = uuid.uuid4().hex
    run.ok("DescribeKey", {"KeyId": sym}, nonce=nonce)
    run.fails("SignatureNonceUsed", "DescribeKey", {"KeyId": sym}, nonce=nonce)
    run.fails("InvalidTimeStamp.Expired", "DescribeKey", {"KeyId": sym}, ts=support.timestamp(time.time() - 3600))
    # access keys
    cfg = get_config()
    run.secret("bootstrap access key secret", support.TEST_SECRET.encode())
    doc = {"Version": "1", "Statement": [{"Effect": "Allow", "Action": "kms:Describe*", "Resource": "*"}]}
    ak, ak_secret = identity.create(store, cfg, support.TEST_ACCOUNT, [doc], time.time())
    run.secret("created access key secret", ak_secret.encode())
    run.ok("DescribeKey", {"KeyId": sym}, ak=ak, secret=ak_secret)
    run.fails("Forbidden.NoPermission", "Encrypt", {"KeyId": sym, "Plaintext": b64(plain)}, ak=ak, secret=ak_secret)
    run.fails("SignatureDoesNotMatch", "DescribeKey", {"KeyId": sym}, ak=ak, secret="not-" + ak_secret)
    # everything wrapped under the root key, unwrapped
    ctx = Context("scan", support.TEST_ACCOUNT, cfg.region, "", "", time.time(), store, cfg)
    rows = list(store.scan_all("key_versions"))
    assert len(rows) >= 6
    for item in rows:
        key_id = item.pk.rsplit("/", 1)[1]
        run.secret(f"material {key_id}/{item.sk}", versions.material(ctx, Key.get(store, ctx.scope, key_id), item.sk))
    imported = Key.get(store, ctx.scope, ext)  # imported material lives in its key record
    assert imported.imported_material
    run.secret(f"material {ext}", versions.material(ctx, imported, imported.primary_key_version))
    for item in store.scan_all("import_tokens"):
        key_id = item.pk.rsplit("/", 1)[1]
        run.secret(f"import private key {key_id}",
                   crypto.unwrap(cfg, item.data["private"], byok.token_aad(key_id, item.sk)))
    fingerprint = crypto.unwrap(cfg, store.get("keys", ctx.scope, ext).data["material_fingerprint"],
                                byok.fingerprint_aad(ext))
    assert fingerprint == hashlib.sha256(material).digest()
    run.secret("material fingerprint", fingerprint)


def _flatten(obj, out: list[bytes]) -> None:
    if isinstance(obj, (bytes, bytearray)):
        out.append(bytes(obj))
    elif isinstance(obj, str):
        out.append(obj.encode())
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(k, out)
            _flatten(v, out)
    elif isinstance(obj, (list, tuple, set)):
        for v in obj:
            _flatten(v, out)
    else:
        out.append(str(obj).encode())


def haystacks(kms, data_dir, request) -> dict[str, bytes]:
    found = {}
    for table in TABLES:
        rows = [json.dumps([i.pk, i.sk, i.data]) for i in kms.store.scan_all(table)]
        found[f"table {table}"] = "\n".join(rows).encode()
    assert found["table keys"] and found["table key_versions"] and found["table secret_versions"]
    for path in sorted(data_dir.rglob("*")):  # the audit trail's files are in audit/
        if path.is_file():
            found[f"file {path.relative_to(data_dir)}"] = path.read_bytes()
    if "tablestore" in request.node.callspec.id:
        backend = request.getfixturevalue("ots_backend")
        for name, table in backend._tables.items():
            cells: list[bytes] = []
            _flatten(list(table.rows.items()), cells)
            found[f"tablestore {name}"] = b"\x00".join(cells)
    else:
        assert any(name.startswith("file kms.sqlite3") for name in found)
    return found


def test_nothing_sensitive_at_rest_and_a_clean_audit_trail(kms, local_env, request, capfd):
    run = Run(kms)
    workload(run, kms.store)
    assert len(run.sensitive) >= 20

    found = haystacks(kms, local_env, request)
    leaks = [(what, where) for where, hay in found.items()
             for what, value in run.sensitive.items() if present(value, hay)]
    assert leaks == []
    # Positive control: the raw bytes searched really hold the rows (a wrapped material is found there).
    wrapped = next(iter(kms.store.scan_all("key_versions"))).data["material"].encode()
    assert crypto.root_key_id_of(wrapped.decode()) == "r1"
    assert any(present(base64.b64decode(wrapped), hay) for where, hay in found.items()
               if where.startswith(("file kms.sqlite3", "tablestore ")))

    # --- the audit trail: one record per call, in order, on stdout and in the data directory ---
    stdout = [json.loads(line) for line in capfd.readouterr().out.splitlines() if line.startswith('{"EventTime"')]
    text = "".join(path.read_text() for path in audit.files(local_env))
    records = list(audit.events(local_env))
    assert records == [{k: v for k, v in r.items() if k not in audit.CHAIN_FIELDS} for r in stdout]
    assert len(records) == len(run.calls)
    for rec, (action, ak, status, body) in zip(records, run.calls, strict=True):
        assert set(rec) == FIELDS, rec
        assert (rec["RequestId"], rec["Action"], rec["HttpStatus"]) == (body["RequestId"], action, status), rec
        assert rec["ResultCode"] == ("OK" if status == 200 else body["Code"]), (rec, body)
        assert time.strptime(rec["EventTime"], "%Y-%m-%dT%H:%M:%SZ")
        assert isinstance(rec["Resources"], list) and isinstance(rec["SourceIp"], str)
        authenticated = body.get("Code") not in ("SignatureNonceUsed", "InvalidTimeStamp.Expired",
                                                 "SignatureDoesNotMatch")
        if authenticated:
            assert (rec["AccountId"], rec["AccessKeyId"]) == (support.TEST_ACCOUNT, ak), rec
            assert rec["Resources"] and all(r.startswith(f"acs:kms:cn-hangzhou:{support.TEST_ACCOUNT}:")
                                            for r in rec["Resources"]), rec
    codes = {r["ResultCode"] for r in records}
    assert {"OK", "Forbidden.KeyNotFound", "InvalidParameter", "SignatureNonceUsed", "Forbidden.NoPermission",
            "Rejected.ResourceExist", "InvalidTimeStamp.Expired", "SignatureDoesNotMatch"} <= codes
    raw = text.encode()
    assert [what for what, value in run.sensitive.items() if present(value, raw)] == []
    assert run.signatures and [s for s in run.signatures if s in text] == []
    assert '"Plaintext"' not in text and '"SecretData"' not in text and '"Signature"' not in text

    # --- scripts/admin audit reads and filters the same file ---
    def admin_audit(*filters: str) -> list[dict]:
        out = admin(local_env, "audit", *filters).stdout
        return [json.loads(line) for line in out.splitlines()]

    assert admin_audit() == records
    expect = [r for r in records if r["Action"] == "Decrypt" and r["ResultCode"] == "InvalidParameter"]
    assert len(expect) == 1 and admin_audit("--action", "Decrypt", "--code", "InvalidParameter") == expect
    assert admin_audit("--code", "Forbidden.NoPermission", "--access-key", records[-2]["AccessKeyId"]) == \
        [records[-2]]
    ok_encrypts = [r for r in records if r["Action"] == "Encrypt" and r["ResultCode"] == "OK"]
    assert len(ok_encrypts) == 4 and admin_audit("--action", "Encrypt", "--code", "OK") == ok_encrypts
    assert admin_audit("--account", support.TEST_ACCOUNT, "--action", "CreateSecret") == \
        [r for r in records if r["Action"] == "CreateSecret"]
    assert admin_audit("--action", "NoSuchAction") == []
    assert admin_audit("--since", "2999-01-01T00:00:00Z") == []


def test_refused_authentication_is_audited_with_who_and_where(server_factory):
    # Failed sign-ins are what an operator reads the trail for: the record must say which access key
    # was presented and from which address, even though the call was refused.
    srv = server_factory()
    _, wrong = support.call(srv, "ListKeys", secret="wrong-secret-value")
    _, unknown = support.call(srv, "ListKeys", ak="LTAInoSuchAccessKey0000")
    _, good = support.call(srv, "ListKeys")
    records = {r["RequestId"]: r for r in audit.events(srv.data_dir)}
    assert wrong["Code"] == "SignatureDoesNotMatch" and unknown["Code"] == "InvalidAccessKeyId.NotFound"
    assert records[good["RequestId"]]["SourceIp"] == "127.0.0.1"
    for body, ak in ((wrong, support.TEST_AK), (unknown, "LTAInoSuchAccessKey0000")):
        rec = records[body["RequestId"]]
        assert set(rec) == FIELDS and (rec["Action"], rec["ResultCode"]) == ("ListKeys", body["Code"])
        assert (rec["SourceIp"], rec["AccessKeyId"]) == ("127.0.0.1", ak), rec
    assert all("wrong-secret-value" not in path.read_text() for path in audit.files(srv.data_dir))


def test_secret_written_after_the_service_key_is_recreated_survives_a_restart(kms):
    """The secrets service key has a fixed id per account and region (and so a fixed first version id).
    If a user deletes it, the next CreateSecret makes it again with new material under the same ids; a
    warm instance must not keep encrypting with the material it cached for the old key, or the value
    is unreadable once the instance restarts. (Refusing to delete a service key would also do.)"""
    scope = f"{support.TEST_ACCOUNT}/cn-hangzhou"
    assert kms.call("CreateSecret", {"SecretName": "first", "VersionId": "v1", "SecretData": "one"})[0] == 200
    listed = kms.call("ListKeys", {"Filters": json.dumps([{"Key": "CreatorType", "Values": ["Service"]}])})[1]
    (service_key,) = [k["KeyId"] for k in listed["Keys"]["Key"]]
    status, body = kms.call("ScheduleKeyDeletion", {"KeyId": service_key, "PendingWindowInDays": "7"})
    if status != 200:  # the service refuses to delete its own key: nothing can go stale
        assert status < 500, body
        return
    row = kms.store.get("keys", scope, service_key)
    kms.store.update("keys", scope, service_key, {**row.data, "delete_date": int(time.time()) - 60}, row.rev)
    assert service_key in kms.fire("DeleteExpiredKeys", time.time())["Deleted"]
    assert kms.call("CreateSecret", {"SecretName": "second", "VersionId": "v1", "SecretData": "two"})[0] == 200
    assert kms.call("GetSecretValue", {"SecretName": "second"})[1].get("SecretData") == "two"
    versions._material.clear()  # a restart of this instance: material is read from the store again
    versions._loaded.clear()
    status, body = kms.call("GetSecretValue", {"SecretName": "second"})
    assert (status, body.get("SecretData")) == (200, "two"), body


def test_every_answer_under_concurrent_load_has_its_record_already(server_factory):
    # The runner writes the records of one event-loop turn together; none may trail its response.
    srv = server_factory()

    def calls(i: int) -> list[str]:
        missing = []
        for _ in range(25):
            status, body = support.call(srv, "DescribeRegions")
            assert status == 200, body
            if all(body["RequestId"] not in path.read_text() for path in audit.files(srv.data_dir)):
                missing.append(body["RequestId"])
        return missing

    assert support.run_together([lambda i=i: calls(i) for i in range(8)]) == [[]] * 8


def test_records_of_one_loop_turn_go_out_in_one_write_before_later_callbacks(local_env, monkeypatch):
    import asyncio

    from alikms.runner import turns
    from alikms.shared import audit
    from alikms.shared.config import get_config

    cfg = get_config()
    writes, order = [], []

    def write(cfg, lines):
        writes.append(lines)
        order.append("records")
        return True

    monkeypatch.setattr(audit, "write", write)
    monkeypatch.setattr(audit, "_holder", [])
    monkeypatch.setattr(turns, "_current", [])

    async def turn():
        turns.for_loop(asyncio.get_running_loop())
        for n in range(3):
            audit.record(cfg, {"n": n})
        asyncio.get_running_loop().call_soon(order.append, "response")  # as the runner's response flush
        assert writes == []  # held until the turn ends
        await asyncio.sleep(0)

    asyncio.run(turn())
    assert writes == [[{"n": 0}, {"n": 1}, {"n": 2}]]
    assert order == ["records", "response"]
    audit.record(cfg, {"n": 3})  # no loop running any more: written at once, not held
    assert len(writes) == 1 and json.loads(audit.files(local_env)[0].read_bytes().splitlines()[-1])["n"] == 3
