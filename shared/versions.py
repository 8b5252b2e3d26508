"""Key versions: creation (initial, manual and automatic rotation) and their material.

Each version is its own row (`key_versions`, partition = account/region/key id, sort key = version
id) holding the material wrapped under the root key, with the key id and version id as AAD.

Version ids are derived from the key id and the version's sequence number (UUIDv5), so two
instances rotating the same key at once compute the same next id: `put_new` lets one create it,
the other adopts it, and the conditional key update lets exactly one move the primary pointer.
A run that dies between the two writes leaves a version the next run adopts, never an orphan.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict

from . import crypto, errors, lifecycle
from .context import Context
from .store import Conflict

_NAMESPACE = uuid.UUID("6f1c3c59-3e8b-4c1e-9d55-9d7a2f6c1b10")
_CACHE_SIZE = 4096
# Unwrapped material of versions this warm instance has used. Versions never change, so entries
# never go stale; the key row (state) is still read on every call.
_material: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
_loaded: OrderedDict[tuple[str, str, str], object] = OrderedDict()


def version_id(key_id: str, seq: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{key_id}/{seq}"))


def material_aad(key_id: str, vid: str) -> bytes:
    return f"key/{key_id}/{vid}".encode()


def versions_pk(ctx: Context, key_id: str) -> str:
    return f"{ctx.scope}/{key_id}"


def create(ctx: Context, key: dict, seq: int, material: bytes, now: float) -> str:
    """Write version `seq` of `key` unless it exists already; return its id."""
    vid = version_id(key["key_id"], seq)
    row = {"version_id": vid, "seq": seq, "creation_date": int(now),
           "material": crypto.wrap(ctx.config, material, material_aad(key["key_id"], vid))}
    try:
        ctx.store.put_new("key_versions", versions_pk(ctx, key["key_id"]), vid, row)
    except Conflict:
        pass  # an earlier or concurrent run made it; adopt it
    return vid


def rotate(ctx: Context, key_id: str, now: float, guard=lambda key: True) -> str | None:
    """Make a new primary version for a key if `guard(key)` holds on the current row
    (it may also raise); None if it does not, or if another writer changed the key meanwhile."""
    item = ctx.store.get("keys", ctx.scope, key_id)
    if item is None or lifecycle.is_gone(item.data, now) or not guard(item.data):
        return None
    key, rev = item.data, item.rev
    seq = key["version_count"] + 1
    vid = create(ctx, key, seq, crypto.new_key_material(key["key_spec"]), now)
    key.update(primary_key_version=vid, version_count=seq, last_rotation_date=int(now))
    try:
        ctx.store.update("keys", ctx.scope, key_id, key, rev)
    except Conflict:
        return None
    return vid


def get(ctx: Context, key_id: str, vid: str) -> dict:
    item = ctx.store.get("key_versions", versions_pk(ctx, key_id), vid)
    if item is None:
        raise errors.KeyVersionNotFound()
    return item.data


def material(ctx: Context, key_id: str, vid: str) -> bytes:
    """Plaintext material of a version (cached per warm instance). KeyVersionNotFound if absent."""
    cache_key = (ctx.scope, key_id, vid)
    found = _material.get(cache_key)
    if found is not None:
        _touch(_material, cache_key)
        return found
    row = get(ctx, key_id, vid)
    plain = crypto.unwrap(ctx.config, row["material"], material_aad(key_id, vid))
    _material[cache_key] = plain
    if len(_material) > _CACHE_SIZE:
        _material.popitem(last=False)
    return plain


def private_key(ctx: Context, key_id: str, key_spec: str, vid: str):
    """The loaded private key object of an asymmetric version, cached per warm instance so a
    signature costs what the primitive costs, not a DER parse."""
    cache_key = (ctx.scope, key_id, vid)
    found = _loaded.get(cache_key)
    if found is None:
        from .crypto import _asymmetric

        found = _loaded[cache_key] = _asymmetric.load_private(key_spec, material(ctx, key_id, vid))
        if len(_loaded) > _CACHE_SIZE:
            _loaded.popitem(last=False)
    else:
        _touch(_loaded, cache_key)
    return found


def _touch(cache: OrderedDict, key) -> None:
    """Mark `key` recently used. With instance concurrency another thread may have evicted it since
    this one read it (found in a test hammering a two-entry cache): the value in hand is still right."""
    try:
        cache.move_to_end(key)
    except KeyError:
        pass


def rotation_due(key: dict, now: float) -> bool:
    return (
        bool(key.get("automatic_rotation")) and key["state"] == lifecycle.ENABLED
        and key.get("last_rotation_date") is not None
        and key["last_rotation_date"] + key["rotation_interval"] <= now
    )


def delete_all(ctx: Context, key_id: str) -> None:
    """Remove every version row of a key (imported material being deleted or expiring) and forget
    cached copies in this instance."""
    pk = versions_pk(ctx, key_id)
    for item in ctx.store.query_all("key_versions", pk):
        ctx.store.delete("key_versions", pk, item.sk)
        _material.pop((ctx.scope, key_id, item.sk), None)
        _loaded.pop((ctx.scope, key_id, item.sk), None)
