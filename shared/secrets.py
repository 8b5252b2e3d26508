"""Secrets: the secret row, its versions and stage labels, and how values are protected.

A secret row (`secrets`, partition = account/region, sort key = name) holds the metadata AND the
version list with the stage labels: `versions` = [{"id", "created"}] oldest first, `stages` =
{label: version id}. Labels and the version list therefore change in one conditional write, so a
label can never sit on two versions and two racing writers cannot lose a version: the loser's
update fails on the revision, it re-reads and re-applies.

Each version's value lives in its own row (`secret_versions`, partition = account/region/name,
sort key = version id), envelope-encrypted: a fresh data key encrypts the value (AES-256-GCM) and
the data key is encrypted under the secret's EncryptionKeyId (a symmetric KMS key), with the secret
name and version id as EncryptionContext. The store never holds a value in plaintext, and a
disabled or deleted encryption key makes reads fail until it is usable again.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import uuid
from collections import OrderedDict
from typing import Callable

from . import crypto, envelope, errors, keys, lifecycle
from .crypto import _primitives
from .context import Context
from .store import Conflict

CURRENT, PREVIOUS = "ACSCurrent", "ACSPrevious"
MAX_DATA = 30720  # bytes
MAX_VERSIONS = 10
MAX_LABELS_PER_VERSION = 20
_SERVICE_KEY_NS = uuid.UUID("2b8e0d3a-5f0c-4c59-8a0e-3a9b6d1f7e21")


def name_from(ctx: Context, value: str) -> str:
    """A SecretName parameter: the name, or this account's secret ARN (names may contain `/`)."""
    if value.startswith(keys.ARN_PREFIX):
        parts = value.split(":", 4)
        if len(parts) != 5 or parts[2] != ctx.region or parts[3] != ctx.account_id \
                or not parts[4].startswith("secret/"):
            raise errors.ResourceNotFound()
        return parts[4][len("secret/"):]
    return value


def in_window(secret: dict) -> bool:
    return secret.get("planned_delete_time") is not None


def is_gone(secret: dict, now: float) -> bool:
    """Past its recovery window: already deleted as far as any caller can tell."""
    return in_window(secret) and secret["planned_delete_time"] <= now


def get(ctx: Context, name_param: str) -> tuple[dict, int]:
    item = ctx.store.get("secrets", ctx.scope, name_from(ctx, name_param))
    if item is None or is_gone(item.data, ctx.now):
        raise errors.ResourceNotFound()
    return item.data, item.rev


def get_live(ctx: Context, name_param: str) -> tuple[dict, int]:
    """As `get`, but refuse a secret in its recovery window (writes and value reads)."""
    secret, rev = get(ctx, name_param)
    if in_window(secret):
        raise errors.ResourceInDeleteWindow()
    return secret, rev


def mutate(ctx: Context, name_param: str, change: Callable[[dict], None]) -> dict:
    """Conditional read-modify-write of a live secret row; re-read and re-apply on a race."""
    for _ in range(16):
        secret, rev = get_live(ctx, name_param)
        change(secret)
        secret["update_time"] = int(ctx.now)
        try:
            ctx.store.update("secrets", ctx.scope, secret["name"], secret, rev)
            return secret
        except Conflict:
            continue
    raise errors.InternalFailure()


def check_data(data: str, data_type: str) -> None:
    """SecretData: at most 30720 bytes; `binary` values travel as base64 text."""
    if len(data.encode()) > MAX_DATA:
        raise errors.InvalidParameter(name="SecretData")
    if data_type == "binary":
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise errors.InvalidParameter(name="SecretData") from None


def labels_of(secret: dict, vid: str) -> list[str]:
    return sorted(label for label, target in secret["stages"].items() if target == vid)


def versions_pk(ctx: Context, name: str) -> str:
    return f"{ctx.scope}/{name}"


# --- encryption key -------------------------------------------------------------------------------

def service_key(ctx: Context) -> dict:
    """The account's service-created secrets key (CreatorType Service), made on first use. Its id is
    derived from the account and region, so concurrent first uses create one key."""
    key_id = str(uuid.uuid5(_SERVICE_KEY_NS, ctx.scope))
    item = ctx.store.get("keys", ctx.scope, key_id)
    if item is not None:
        return item.data
    from . import versions  # late: versions imports this module

    now = int(ctx.now)
    key = {"key_id": key_id, "creation_date": now, "creator": ctx.account_id, "creator_type": "Service",
           "description": "Default key of Secrets Manager", "key_spec": "Aliyun_AES_256",
           "key_usage": envelope.ENCRYPT_DECRYPT, "origin": "Aliyun_KMS", "protection_level": "SOFTWARE",
           "state": lifecycle.ENABLED, "delete_date": None, "automatic_rotation": False,
           "rotation_interval": None, "last_rotation_date": now, "primary_key_version": None,
           "version_count": 1, "material_expire_time": None, "tags": {}, "policy": None}
    key["primary_key_version"] = versions.create(ctx, key, 1, crypto.new_symmetric_material("Aliyun_AES_256"), now)
    try:
        ctx.store.put_new("keys", ctx.scope, key_id, key)
    except Conflict:
        return ctx.store.get("keys", ctx.scope, key_id).data
    return key


def encryption_key(ctx: Context, key_id_param: str | None) -> dict:
    """A symmetric ENCRYPT/DECRYPT key of this account, usable now."""
    if key_id_param is None:
        key = service_key(ctx)
    else:
        key, _ = keys.get_key(ctx, key_id_param)
    envelope.require_symmetric(key)
    lifecycle.require("use", key)
    return key


def _value_context(name: str, vid: str) -> dict[str, str]:
    return {"SecretName": name, "VersionId": vid}


def seal_value(ctx: Context, key: dict, name: str, vid: str, data: str) -> dict:
    data_key = crypto.random_bytes(32)
    iv = crypto.random_bytes(_primitives.NONCE_SIZE)
    sealed = _primitives.aes_gcm_seal(data_key, iv, data.encode(), f"secret/{name}/{vid}".encode())
    return {"key_id": key["key_id"], "data_key": envelope.encrypt(ctx, key, data_key, _value_context(name, vid)),
            "iv": base64.b64encode(iv).decode(), "value": base64.b64encode(sealed).decode()}


def _usable_key(ctx: Context, key_id: str) -> dict:
    """The encryption key row, checked: reads fail while it is disabled or deleted."""
    item = ctx.store.get("keys", ctx.scope, key_id)
    if item is None or lifecycle.is_gone(item.data, ctx.now):
        raise errors.KeyNotFound()
    key = lifecycle.effective(item.data, ctx.now)
    lifecycle.require("use", key)
    return key


# Decrypted values of versions this warm instance has read, by (scope, name, incarnation, version):
# a version's data never changes, and `incarnation` (random per CreateSecret) keeps a secret deleted
# and created again under the same name from ever matching. The key's state is still checked on
# every read. In memory only, never in the store or on disk.
_values: OrderedDict[tuple, tuple[str, str]] = OrderedDict()
_VALUES_MAX = 1024


def read_value(ctx: Context, secret: dict, vid: str) -> tuple[str, str]:
    """(SecretData, SecretDataType) of a version of `secret`."""
    key = _usable_key(ctx, secret["encryption_key_id"])
    slot = (ctx.scope, secret["name"], secret.get("incarnation"), vid)
    found = _values.get(slot) if slot[2] else None
    if found is not None:
        try:
            _values.move_to_end(slot)
        except KeyError:  # evicted by another thread since the read (instance concurrency): still right
            pass
        return found
    row = version_row(ctx, secret, vid)
    found = (open_value(ctx, secret, row, key if row["key_id"] == key["key_id"] else None), row["data_type"])
    if slot[2]:
        _values[slot] = found
        if len(_values) > _VALUES_MAX:
            _values.popitem(last=False)
    return found


def open_value(ctx: Context, secret: dict, row: dict, key: dict | None = None) -> str:
    """Decrypt a version's value; the encryption key's state and existence are checked on the way
    (or were, by the caller that passes the checked `key` row)."""
    key = key or _usable_key(ctx, row["key_id"])
    try:
        _, _, data_key = envelope.decrypt(ctx, row["data_key"], _value_context(secret["name"], row["version_id"]), key)
        plain = _primitives.aes_gcm_open(data_key, base64.b64decode(row["iv"]), base64.b64decode(row["value"]),
                                         f"secret/{secret['name']}/{row['version_id']}".encode())
    except (errors.InvalidParameter, _primitives.InvalidTag):
        raise errors.InternalFailure() from None  # a stored value that no longer opens is our fault
    return plain.decode()


# --- versions and stages --------------------------------------------------------------------------

def write_version(ctx: Context, secret: dict, vid: str, data: str, data_type: str, key: dict) -> bool:
    """Store a version's value row. False if the version exists with the same data (idempotent
    retry); Rejected.ResourceExist if it exists with other data."""
    row = {"version_id": vid, "created": int(ctx.now), "data_type": data_type,
           **seal_value(ctx, key, secret["name"], vid, data)}
    try:
        ctx.store.put_new("secret_versions", versions_pk(ctx, secret["name"]), vid, row)
        return True
    except Conflict:
        existing = ctx.store.get("secret_versions", versions_pk(ctx, secret["name"]), vid)
        if existing is None or existing.data["data_type"] != data_type \
                or not hmac.compare_digest(open_value(ctx, secret, existing.data).encode(), data.encode()):
            raise errors.ResourceExist() from None
        return False


def attach(secret: dict, vid: str, stages: list[str], created: int) -> list[str]:
    """Add version `vid` (if new) carrying `stages`; ACSCurrent moving here sends ACSPrevious to the
    version that was current. Rolls off the oldest unlabelled versions beyond 10 (2021 rule) and
    returns the ids of versions that were dropped."""
    if all(v["id"] != vid for v in secret["versions"]):
        secret["versions"].append({"id": vid, "created": created})
    for label in stages:
        move_label(secret, label, vid)
    dropped = []
    while len(secret["versions"]) > MAX_VERSIONS:
        victim = next((v for v in secret["versions"] if not labels_of(secret, v["id"])), None)
        if victim is None:
            raise errors.LimitExceeded("exceed secret limits error")
        secret["versions"].remove(victim)
        dropped.append(victim["id"])
    return dropped


def move_label(secret: dict, label: str, vid: str) -> None:
    old = secret["stages"].get(label)
    if old == vid:
        return
    if label == CURRENT and old is not None:
        # Moving ACSCurrent keeps ACSPrevious on the version that was current, as PutSecretValue does.
        secret["stages"][PREVIOUS] = old
    secret["stages"][label] = vid
    if len(labels_of(secret, vid)) > MAX_LABELS_PER_VERSION:
        raise errors.LimitExceeded("exceed secret limits error")


def delete_version_rows(ctx: Context, name: str, vids: list[str] | None) -> None:
    """Delete the value rows of `vids`, or every value row of the secret when `vids` is None."""
    pk = versions_pk(ctx, name)
    for vid in vids if vids is not None else [i.sk for i in ctx.store.query_all("secret_versions", pk)]:
        ctx.store.delete("secret_versions", pk, vid)


def version_row(ctx: Context, secret: dict, vid: str) -> dict:
    if all(v["id"] != vid for v in secret["versions"]):
        raise errors.ResourceNotFound()
    item = ctx.store.get("secret_versions", versions_pk(ctx, secret["name"]), vid)
    if item is None:
        raise errors.ResourceNotFound()
    return item.data


def public(ctx: Context, secret: dict, fetch_tags: bool) -> dict:
    """Fields DescribeSecret and ListSecrets share (wire names)."""
    out = {"SecretName": secret["name"], "SecretType": secret["secret_type"],
           "CreateTime": keys.iso(secret["create_time"]), "UpdateTime": keys.iso(secret["update_time"])}
    if in_window(secret):
        out["PlannedDeleteTime"] = keys.iso(secret["planned_delete_time"])
    if fetch_tags:
        out["Tags"] = {"Tag": [{"TagKey": k, "TagValue": v} for k, v in sorted(secret["tags"].items())]}
    return out
