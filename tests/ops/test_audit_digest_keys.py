"""`audit verify` must not accept a digest it cannot authenticate. Found by the attack pass after
issue 15: a digest naming a root key the ring does not hold was only a note, so anyone able to write
the trail's files (a log pipeline's operator, say, without the root key) could edit records, recompute
the chain and set every digest's KeyId to an unknown id: `verify` said "intact" and exited 0.

Now such a digest is a problem (`unverifiable`). What a rotation drops stays verifiable: before
`rotate-root-key` removes old root keys it records each one's digest key (derived, not the root key
itself) in the store, wrapped under the new primary, and verify uses those."""

from __future__ import annotations

import base64
import json

from alikms.shared import audit, audit_trail, rootkeys
from alikms.shared.audit_verify import verify
from alikms.shared.config import get_config, read_root_key_file
from alikms.shared.store import get_store
from tests import support
from tests.ops.helpers import rewrite, trail_lines
from tests.security.helpers import admin


def _closed(local_env, invoke, monkeypatch):
    monkeypatch.setenv("KMS_AUDIT_DIGEST_RECORDS", "4")
    for _ in range(10):
        assert invoke("DescribeRegions")[0] == 200
    audit.close()
    (name, lines), = trail_lines(local_env).items()
    return local_env / audit_trail.DIR_NAME / name, list(lines)


def _forge(lines: list[bytes], key_id: str) -> list[bytes]:
    """Edit record 3, recompute every hash after it, and name `key_id` in every digest (any Mac)."""
    lines = list(lines)
    lines[3] = lines[3].replace(b'"ResultCode":"OK"', b'"ResultCode":"Forbidden.NoPermission"')
    assert b"Forbidden.NoPermission" in lines[3]
    out = lines[:4]
    for line in lines[4:]:
        rec = json.loads(line)
        rec["Prev"] = audit_trail.line_hash(out[-1])
        if "Mac" in rec:
            rec["KeyId"], rec["Mac"] = key_id, "0" * 64
        out.append(json.dumps(rec, separators=(",", ":")).encode() + b"\n")
    return out


def test_a_digest_under_an_unknown_root_key_is_a_problem(local_env, invoke, monkeypatch):
    path, lines = _closed(local_env, invoke, monkeypatch)
    rewrite(path, _forge(lines, "r0"))
    report = verify(local_env, dict(get_config().root_keys))
    kinds = {f.kind for f in report.problems}
    assert kinds == {"unverifiable"}, report.findings
    bad = admin(local_env, "audit", "verify", check=False)
    assert bad.returncode == 1 and "intact" not in bad.stdout, bad.stdout


def test_digests_of_a_rotated_away_root_key_still_verify(local_env, invoke, monkeypatch):
    path, lines = _closed(local_env, invoke, monkeypatch)
    env = {**support.os.environ, "KMS_DATA_DIR": str(local_env)}
    admin(local_env, "rotate-root-key", env=env)
    ring = read_root_key_file(local_env / "root.key")
    assert list(ring) == ["r2"]  # r1, which sealed the trail, is gone from the ring
    ok = admin(local_env, "audit", "verify", env=env)
    assert ok.stdout.strip().endswith("intact"), ok.stdout
    # The retired key's digest key, not the root key: it opens only the trail's digests.
    old = base64.b64encode(get_config().root_keys["r1"])
    rows = [i for i in get_store().scan_all("ops") if i.pk.startswith("audit-key/")]
    assert [i.pk for i in rows] == ["audit-key/r1"] and old not in json.dumps(rows[0].data).encode()
    # A forged digest naming the retired key fails its Mac; one naming an unknown key is unverifiable.
    rewrite(path, _forge(lines, "r1"))
    forged = admin(local_env, "audit", "verify", "--json", env=env, check=False)
    assert forged.returncode == 1
    assert {f["kind"] for f in json.loads(forged.stdout)["findings"]} == {"forged"}
    # A second rotation keeps it verifiable (the retired keys are re-wrapped with everything else).
    rewrite(path, lines)
    admin(local_env, "rotate-root-key", env=env)
    assert list(read_root_key_file(local_env / "root.key")) == ["r3"]
    assert admin(local_env, "audit", "verify", env=env).stdout.strip().endswith("intact")
    get_config.cache_clear()
    assert rootkeys.remaining(get_store(), get_config()) == 0
