"""What the reliability tests check after a fault: what a caller can see, the invariants every
reachable key and secret keeps, and rows no record points at."""

from __future__ import annotations

import json
import time

from alikms.shared import aliases, lifecycle, secrets, versions
from alikms.shared.config import get_config
from alikms.shared.context import Context
from alikms.shared.records import Alias, Key, KeyVersion, Secret, SecretVersion
from tests import support

DAY = 86400


def context(store, days: float = 0) -> Context:
    """A context on `store`, "now" `days` from now (a timer job fired in the future sees that day)."""
    cfg = get_config()
    return Context("check", support.TEST_ACCOUNT, cfg.region, "", "", time.time() + days * DAY, store, cfg)


def visible(kms, days: float = 0) -> dict:
    """Everything a caller can observe (at `days` from now), read through the domain rules (not raw
    rows): a key past its deletion date, its aliases and a secret past its window are already gone."""
    ctx = context(kms.store, days)
    keys = {}
    for key in Key.all(kms.store, ctx.scope):
        if lifecycle.is_gone(key, ctx.now):
            continue
        keys[key.key_id] = (key.state, key.primary_key_version, key.description, sorted(key.tags.items()),
                            key.automatic_rotation, key.rotation_interval, key.material_expire_time,
                            key.delete_date, [v.version_id for v in versions.listed(ctx, key)])
    found = {
        "keys": keys,
        "aliases": {a.name: a.key_id for a in aliases.live(ctx)},
        "secrets": {s.name: ([v["id"] for v in s.versions], sorted(s.stages.items()), sorted(s.tags.items()),
                             s.planned_delete_time, s.description) for s in Secret.all(kms.store, ctx.scope)
                    if not secrets.is_gone(s, ctx.now)},
    }
    return json.loads(json.dumps(found))


def check_invariants(kms, days: float = 0) -> None:
    """Structure every key and secret a caller can still reach must have (a key past its deletion
    date can never come back, so its rows may be half removed)."""
    ctx = context(kms.store, days)
    all_keys = {k.key_id: k for k in Key.all(kms.store, ctx.scope)}
    for key in all_keys.values():
        if lifecycle.is_gone(key, ctx.now):
            continue
        listed = versions.listed(ctx, key)
        if key.origin == "EXTERNAL":
            assert [v.version_id for v in listed] == ([key.primary_key_version] if key.imported_material else [])
            assert (key.primary_key_version is None) == (key.imported_material is None)
            if key.imported_material is None:
                assert key.state in (lifecycle.PENDING_IMPORT, lifecycle.PENDING_DELETION)
        else:
            assert [v.seq for v in listed] == list(range(1, key.version_count + 1))
            assert key.primary_key_version in {v.version_id for v in listed}
        if key.primary_key_version:
            assert versions.material(ctx, key, key.primary_key_version)
        assert len(key.tags) <= 20
    for alias in Alias.all(kms.store, ctx.scope):
        assert alias.key_id in all_keys
    for secret in Secret.all(kms.store, ctx.scope):
        if secrets.is_gone(secret, ctx.now):
            continue
        ids = [v["id"] for v in secret.versions]
        assert len(ids) == len(set(ids)) <= secrets.MAX_VERSIONS
        assert set(secret.stages.values()) <= set(ids)
        assert (secrets.CURRENT in secret.stages) == bool(ids)
        for vid in ids:
            value = secrets.version_row(ctx, secret, vid)  # every listed version has its value
            assert value.version_id == vid
        if ids and not secrets.in_window(secret):
            secrets.read_value(ctx, secret, secret.stages[secrets.CURRENT])


def leftovers(kms) -> dict:
    """Rows no record points at: version rows of keys that do not exist or beyond a key's count
    (the next rotation adopts a row at count + 1), value rows no secret lists."""
    ctx = context(kms.store)
    keys = {k.key_id: k for k in Key.all(kms.store, ctx.scope)}
    rows = {"versions": [], "adoptable": [], "values": []}
    for version in KeyVersion.scan(kms.store):
        key = keys.get(version.key_id)
        if key is None:
            if version.key_id != secrets.service_key_id(ctx.scope):
                rows["versions"].append(version.version_id)
        elif not versions.visible(key, version):
            assert key.origin != "EXTERNAL" and version.seq == key.version_count + 1, version
            rows["adoptable"].append(version.version_id)
    listed = {s.name: {secrets.row_of(v) for v in s.versions} for s in Secret.all(kms.store, ctx.scope)}
    for value in SecretVersion.scan(kms.store):
        if value.row not in listed.get(value.name, set()):
            rows["values"].append(value.row)
    return rows
