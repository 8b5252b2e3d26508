"""Key versions: creation (initial, manual and automatic rotation) and their material.

Each service-made version is its own record (`records.KeyVersion`) holding the material wrapped
under the root key, with the key id and version id as AAD. Imported material (EXTERNAL keys, always
version 1) lives in the key record itself, so importing, deleting and expiring it are each one
conditional write.

Version ids are derived from the key id and the version's sequence number (UUIDv5), so two
instances rotating the same key at once compute the same next id: `insert` lets one create it,
the other adopts it, and the conditional key update lets exactly one move the primary pointer.

A version row is written before the key record that counts it, and is part of the key only once
that record is saved (`visible`: its sequence number is within the key's `version_count`). A call
that fails between the two writes therefore leaves nothing any caller can see: the next rotation
adopts the row, and the deletion sweep removes rows of a key that was never stored.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict

from . import crypto, errors, lifecycle
from .context import Context
from .records import Key, KeyVersion
from .store import Conflict

_NAMESPACE = uuid.UUID("6f1c3c59-3e8b-4c1e-9d55-9d7a2f6c1b10")
_CACHE_SIZE = 4096
# Unwrapped material of versions this warm instance has used. Versions never change, so entries
# never go stale; the key row (state) is still read on every call. Hand-written LRUs (OrderedDict)
# rather than cachetools.LRUCache, which measured slower per hit (docs/measurements.md); functools.lru_cache
# cannot serve here: a miss needs the request's context, and `delete_all` forgets single entries.
_material: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()
_loaded: OrderedDict[tuple[str, str, str], object] = OrderedDict()


def version_id(key_id: str, seq: int) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{key_id}/{seq}"))


def material_aad(key_id: str, vid: str) -> bytes:
    return f"key/{key_id}/{vid}".encode()


def visible(key: Key, version: KeyVersion) -> bool:
    """Whether a stored version row is part of the key (see the module docstring). Rows of EXTERNAL
    keys are from before imported material moved into the key record: part of the key while it
    points at them."""
    if key.origin == "EXTERNAL":
        return key.imported_material is None and key.primary_key_version == version.version_id
    return version.seq <= key.version_count


def create(ctx: Context, key: Key, seq: int, material: bytes, now: float) -> str:
    """Write version `seq` of `key` unless it exists already (then adopt it); return its id."""
    vid = version_id(key.key_id, seq)
    version = KeyVersion(scope=key.scope, key_id=key.key_id, version_id=vid, seq=seq, creation_date=int(now),
                         material=crypto.wrap(ctx.config, material, material_aad(key.key_id, vid)))
    try:
        version.insert(ctx.store)
    except Conflict:
        pass  # an earlier or concurrent run made it: adopt it
    return vid


def import_into(ctx: Context, key: Key, material: bytes, now: float) -> None:
    """Put imported material into the key record (the caller saves it): always version 1 with the
    same id, so ciphertexts made before an expiry or DeleteKeyMaterial decrypt again after a
    re-import. One record, so an import is one conditional write: it lands whole or not at all."""
    vid = version_id(key.key_id, 1)
    if key.imported_material is None:  # a key carrying material carries this same material (byok.bound_to)
        key.imported_material = crypto.wrap(ctx.config, material, material_aad(key.key_id, vid))
    key.primary_key_version, key.version_count = vid, 1
    key.last_rotation_date = key.last_rotation_date or int(now)


def drop_imported(key: Key) -> None:
    """Forget a key's imported material (DeleteKeyMaterial, expiry): PendingImport until the same
    material comes back; a key in PendingDeletion keeps its state and DeleteDate."""
    if key.state != lifecycle.PENDING_DELETION:
        key.state = lifecycle.PENDING_IMPORT
    key.imported_material = key.primary_key_version = key.material_expire_time = None


def imported_version(key: Key) -> KeyVersion | None:
    """The version an EXTERNAL key's record carries, as a version record (not stored on its own)."""
    if key.imported_material is None or key.primary_key_version is None:
        return None
    return KeyVersion(scope=key.scope, key_id=key.key_id, version_id=key.primary_key_version, seq=1,
                      creation_date=key.last_rotation_date or key.creation_date, material=key.imported_material)


def rotate(ctx: Context, key_id: str, now: float, guard=lambda key: True) -> str | None:
    """Make a new primary version for a key if `guard(key)` holds on the current record
    (it may also raise); None if it does not, or if another writer changed the key meanwhile."""
    key = Key.get(ctx.store, ctx.scope, key_id)
    if key is None or lifecycle.is_gone(key, now) or not guard(key):
        return None
    seq = key.version_count + 1
    vid = create(ctx, key, seq, crypto.new_key_material(key.key_spec), now)
    key.primary_key_version, key.version_count, key.last_rotation_date = vid, seq, int(now)
    try:
        key.save(ctx.store)
    except Conflict:
        return None
    return vid


def get(ctx: Context, key: Key, vid: str) -> KeyVersion:
    """A version that is part of `key`; Forbidden.KeyVersionNotFound otherwise."""
    carried = imported_version(key)
    version = carried if carried is not None else KeyVersion.get(ctx.store, ctx.scope, key.key_id, vid)
    if version is None or version.version_id != vid or (carried is None and not visible(key, version)):
        raise errors.KeyVersionNotFound()
    return version


def listed(ctx: Context, key: Key) -> list[KeyVersion]:
    """The versions that are part of `key`, oldest first."""
    carried = imported_version(key)
    if carried is not None:
        return [carried]
    return sorted((v for v in KeyVersion.all(ctx.store, ctx.scope, key.key_id) if visible(key, v)),
                  key=lambda v: v.seq)


def material(ctx: Context, key: Key, vid: str) -> bytes:
    """Plaintext material of a version (cached per warm instance). KeyVersionNotFound if absent."""
    cache_key = (ctx.scope, key.key_id, vid)
    found = _material.get(cache_key)
    if found is not None:
        try:
            _material.move_to_end(cache_key)
        except KeyError:  # evicted meanwhile by a call on another thread (the runner's call threads)
            pass
        return found
    if key.imported_material is not None and vid == key.primary_key_version:
        wrapped = key.imported_material  # imported material lives in the key record itself
    else:
        # Not `get`: the version named by a key's primary pointer or by one of our ciphertexts was
        # part of the key when it was used, and the key's state (checked by the caller) decides the rest.
        version = KeyVersion.get(ctx.store, ctx.scope, key.key_id, vid)
        if version is None:
            raise errors.KeyVersionNotFound()
        wrapped = version.material
    plain = crypto.unwrap(ctx.config, wrapped, material_aad(key.key_id, vid))
    _material[cache_key] = plain
    if len(_material) > _CACHE_SIZE:
        _material.popitem(last=False)
    return plain


def private_key(ctx: Context, key: Key, vid: str):
    """The loaded private key object of an asymmetric version, cached per warm instance so a
    signature costs what the primitive costs, not a DER parse."""
    cache_key = (ctx.scope, key.key_id, vid)
    found = _loaded.get(cache_key)
    if found is None:
        from .crypto import keypairs

        found = _loaded[cache_key] = keypairs.load_private(key.key_spec, material(ctx, key, vid))
        if len(_loaded) > _CACHE_SIZE:
            _loaded.popitem(last=False)
    else:
        try:
            _loaded.move_to_end(cache_key)
        except KeyError:  # evicted meanwhile by a call on another thread
            pass
    return found


def forget(ctx: Context, key_id: str, vid: str) -> None:
    """Drop this instance's cached copies of a version's material."""
    _material.pop((ctx.scope, key_id, vid), None)
    _loaded.pop((ctx.scope, key_id, vid), None)


def rotation_due(key: Key, now: float) -> bool:
    return (
        key.automatic_rotation and key.state == lifecycle.ENABLED
        and key.last_rotation_date is not None and key.rotation_interval is not None
        and key.last_rotation_date + key.rotation_interval <= now
    )


def delete_all(ctx: Context, key_id: str, keep=lambda version: False) -> int:
    """Remove the version rows of a key (imported material being deleted or expiring, a deleted
    key, rows no key counts) except those `keep(version)` spares, and forget cached copies in this
    instance. Returns how many were removed."""
    removed = 0
    for version in KeyVersion.all(ctx.store, ctx.scope, key_id):
        if keep(version):
            continue
        version.remove(ctx.store, conditional=False)
        forget(ctx, key_id, version.version_id)
        removed += 1
    return removed
