"""Keys: how a `KeyId` parameter finds one, changing one under the key-state rules, and its metadata.

A key record (`records.Key`) holds metadata only; versions live in `alikms.shared.versions`. Key ids
are UUIDs, as in the 2021 documentation era.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import errors, keyspecs, lifecycle
from .context import Context
from .records import Alias, Key, retrying
from .wire import iso

ARN_PREFIX = "acs:kms:"


def key_id_from(ctx: Context, value: str) -> str:
    """The key id a KeyId parameter names: a key id, this account's key ARN, or (where the action's
    reference allows it, see `registry.Action.key_aliases`) an alias name or alias ARN."""
    if value.startswith(ARN_PREFIX):
        parts = value.split(":", 4)
        # Another region's or account's ARN names nothing this caller can see.
        if len(parts) != 5 or parts[2] != ctx.region or parts[3] != ctx.account_id:
            raise errors.KeyNotFound()
        kind, _, name = parts[4].partition("/")
        if kind == "key":
            return name
        if kind != "alias":
            raise errors.KeyNotFound()
        value = "alias/" + name
    if value.startswith("alias/"):
        if ctx.action is not None and not ctx.action.key_aliases:
            raise errors.UnsupportedAlias()
        alias = Alias.get(ctx.store, ctx.scope, value)
        if alias is None:
            raise errors.AliasNotFound()
        return alias.key_id
    return value


def get_key(ctx: Context, key_id_param: str) -> Key:
    """The key as callers see it now (at the revision read); `Forbidden.KeyNotFound` if absent or
    past its DeleteDate."""
    key = Key.get(ctx.store, ctx.scope, key_id_from(ctx, key_id_param))
    if key is None or lifecycle.is_gone(key, ctx.now):
        raise errors.KeyNotFound()
    return lifecycle.effective(key, ctx.now)


def mutate(ctx: Context, key_id_param: str, operation: str, change: Callable[[Key], None]) -> Key:
    """Apply `change(key)` (which edits the record in place) under the state rule for `operation`,
    as a conditional write; re-read and re-check if another writer got there first."""
    def attempt() -> Key:
        key = get_key(ctx, key_id_param)
        lifecycle.require(operation, key)
        change(key)
        return key.save(ctx.store)

    return retrying(attempt)


def live(ctx: Context, key_id: str) -> bool:
    """Whether the key exists and is not past its deletion date."""
    key = Key.get(ctx.store, ctx.scope, key_id)
    return key is not None and not lifecycle.is_gone(key, ctx.now)


def metadata(ctx: Context, key: Key, *, describe: bool = False) -> dict:
    """`KeyMetadata` as CreateKey / DescribeKey return it (wire names)."""
    rotation = lifecycle.rotation_status(key)
    md: dict[str, Any] = {
        "Arn": ctx.arn("key", key.key_id),
        "AutomaticRotation": rotation,
        "CreationDate": iso(key.creation_date),
        "Creator": key.creator,
        "Description": key.description,
        "KeyId": key.key_id,
        "KeySpec": key.key_spec,
        "KeyState": key.state,
        "KeyUsage": key.key_usage,
        "LastRotationDate": iso(key.last_rotation_date) or "",
        "MaterialExpireTime": iso(key.material_expire_time) or "",
        "Origin": key.origin,
        "ProtectionLevel": key.protection_level,
    }
    if key.primary_key_version and key.key_spec in keyspecs.SYMMETRIC:
        # Asymmetric keys have no primary version (2021 model): every call names its version.
        md["PrimaryKeyVersion"] = key.primary_key_version
    if key.state == lifecycle.PENDING_DELETION:
        md["DeleteDate"] = iso(key.delete_date)
    if rotation != "Disabled":
        # (a key with automatic rotation has both: CreateKey / UpdateRotationPolicy set them)
        assert key.last_rotation_date is not None and key.rotation_interval is not None
        md["RotationInterval"] = f"{key.rotation_interval}s"
        md["NextRotationDate"] = iso(key.last_rotation_date + key.rotation_interval)
    if describe:
        md["DeletionProtection"] = "Enabled" if key.deletion_protection else "Disabled"
        md["DeletionProtectionDescription"] = key.deletion_protection_description
    return md
