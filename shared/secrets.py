"""Secrets: the secret row, its versions and stage labels, and how values are protected.

A secret record (`records.Secret`) holds the metadata AND the
version list with the stage labels: `versions` = [{"id", "created"}] oldest first, `stages` =
{label: version id}. Labels and the version list therefore change in one conditional write, so a
label can never sit on two versions and two racing writers cannot lose a version: the loser's
update fails on the revision, it re-reads and re-applies.

Each version's value lives in its own row (`records.SecretVersion`, see "versions and stages"
below for its row key), envelope-encrypted: a fresh data key encrypts the value (AES-256-GCM) and
the data key is encrypted under the secret's EncryptionKeyId (a symmetric KMS key), with the secret
name and version id as EncryptionContext. The store never holds a value in plaintext, and a
disabled or deleted encryption key makes reads fail until it is usable again.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import secrets as csprng
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from . import crypto, envelope, errors, keys, lifecycle
from .context import Context
from .records import Key, Secret, SecretVersion, retrying
from .store import Conflict

CURRENT, PREVIOUS = "ACSCurrent", "ACSPrevious"
MAX_DATA = 30720  # bytes
MAX_VERSIONS = 10
MAX_LABELS_PER_VERSION = 20
_SERVICE_KEY_NS = uuid.UUID("2b8e0d3a-5f0c-4c59-8a0e-3a9b6d1f7e21")


def name_in(value: str, region: str, account_id: str) -> str | None:
    """A SecretName parameter's name: the value, or the name in a secret ARN of this account and
    region (names may contain `/`); None for any other ARN. The authorization reads it so too."""
    if value.startswith(keys.ARN_PREFIX):
        parts = value.split(":", 4)
        if len(parts) != 5 or parts[2] != region or parts[3] != account_id or not parts[4].startswith("secret/"):
            return None
        return parts[4][len("secret/"):]
    return value


def name_from(ctx: Context, value: str) -> str:
    """`name_in` for this call's account and region; another's ARN names no secret here."""
    name = name_in(value, ctx.region, ctx.account_id)
    if name is None:
        raise errors.ResourceNotFound()
    return name


def in_window(secret: Secret) -> bool:
    return secret.planned_delete_time is not None


def is_gone(secret: Secret, now: float) -> bool:
    """Past its recovery window: already deleted as far as any caller can tell."""
    return secret.planned_delete_time is not None and secret.planned_delete_time <= now


def get(ctx: Context, name_param: str) -> Secret:
    name = name_from(ctx, name_param)
    # The row the authorization read for this call, once: a retried write (mutate) reads afresh.
    secret = ctx.read.pop(name, None) if ctx.read else None
    if secret is None:
        secret = Secret.get(ctx.store, ctx.scope, name)
    if secret is None or is_gone(secret, ctx.now):
        raise errors.ResourceNotFound()
    return secret


def get_live(ctx: Context, name_param: str) -> Secret:
    """As `get`, but refuse a secret in its recovery window (writes and value reads)."""
    secret = get(ctx, name_param)
    if in_window(secret):
        raise errors.ResourceInDeleteWindow()
    return secret


def mutate(ctx: Context, name_param: str, change: Callable[[Secret], None], *, live: bool = True) -> Secret:
    """Conditional read-modify-write of a secret (a live one unless `live=False`); re-read and
    re-apply on a race (records.retrying)."""
    def attempt() -> Secret:
        secret = get_live(ctx, name_param) if live else get(ctx, name_param)
        change(secret)
        secret.update_time = int(ctx.now)
        return secret.save(ctx.store)

    return retrying(attempt)


def check_data(data: str, data_type: str) -> None:
    """SecretData: at most 30720 bytes; `binary` values travel as base64 text."""
    if len(data.encode()) > MAX_DATA:
        raise errors.InvalidParameter(name="SecretData")
    if data_type == "binary":
        try:
            base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise errors.InvalidParameter(name="SecretData") from None


def labels_of(secret: Secret, vid: str) -> list[str]:
    return sorted(label for label, target in secret.stages.items() if target == vid)


# --- encryption key -------------------------------------------------------------------------------

def service_key_id(scope: str) -> str:
    return str(uuid.uuid5(_SERVICE_KEY_NS, scope))


def service_key(ctx: Context) -> Key:
    """The account's service-created secrets key (CreatorType Service), made on first use. Its id is
    derived from the account and region, so concurrent first uses create one key (and a first use
    that failed after writing the version leaves a row the next one adopts)."""
    key_id = service_key_id(ctx.scope)
    key = Key.get(ctx.store, ctx.scope, key_id)
    if key is not None:
        return key
    from . import versions  # late: versions imports this module

    now = int(ctx.now)
    key = Key(scope=ctx.scope, key_id=key_id, creation_date=now, creator=ctx.account_id, creator_type="Service",
              description="Default key of Secrets Manager", key_spec="Aliyun_AES_256",
              key_usage=envelope.ENCRYPT_DECRYPT, origin="Aliyun_KMS", protection_level="SOFTWARE",
              state=lifecycle.ENABLED, last_rotation_date=now, version_count=1)
    key.primary_key_version = versions.create(ctx, key, 1, crypto.new_symmetric_material("Aliyun_AES_256"), now)
    try:
        key.insert(ctx.store)
    except Conflict:  # made by a call at the same moment: that one
        existing = Key.get(ctx.store, ctx.scope, key_id)
        if existing is None:  # (the service's default key is never deleted)
            raise
        return existing
    return key


def encryption_key(ctx: Context, key_id_param: str | None) -> Key:
    """A symmetric ENCRYPT/DECRYPT key of this account, usable now."""
    if key_id_param is None:
        key = service_key(ctx)
    else:
        key = keys.get_key(ctx, key_id_param)
    envelope.require_symmetric(key)
    lifecycle.require("use", key)
    return key


def _value_context(name: str, vid: str) -> dict[str, str]:
    return {"SecretName": name, "VersionId": vid}


def seal_value(ctx: Context, key: Key, name: str, vid: str, data: str) -> dict:
    data_key = crypto.random_bytes(32)
    iv, sealed = crypto.aead_seal(data_key, data.encode(), f"secret/{name}/{vid}".encode())
    return {"key_id": key.key_id, "data_key": envelope.encrypt(ctx, key, data_key, _value_context(name, vid))[0],
            "iv": base64.b64encode(iv).decode(), "value": base64.b64encode(sealed).decode()}


def _usable_key(ctx: Context, key_id: str) -> Key:
    """The encryption key, checked: reads fail while it is disabled or deleted."""
    key = Key.get(ctx.store, ctx.scope, key_id)
    if key is None or lifecycle.is_gone(key, ctx.now):
        raise errors.KeyNotFound()
    key = lifecycle.effective(key, ctx.now)
    lifecycle.require("use", key)
    return key


# Decrypted values of versions this warm instance has read, by (scope, name, incarnation, version):
# a version's data never changes, and `incarnation` (random per CreateSecret) keeps a secret deleted
# and created again under the same name from ever matching. The key's state is still checked on
# every read. In memory only, never in the store or on disk. An OrderedDict LRU, like the material
# cache in versions.py, for the same measured reason (cachetools.LRUCache is slower per hit).
_values: OrderedDict[tuple, tuple[str, str]] = OrderedDict()
_VALUES_MAX = 1024


def read_value(ctx: Context, secret: Secret, vid: str) -> tuple[str, str]:
    """(SecretData, SecretDataType) of a version of `secret`."""
    key = _usable_key(ctx, secret.encryption_key_id)
    slot = (ctx.scope, secret.name, secret.incarnation, vid)
    found = _values.get(slot) if slot[2] else None
    if found is not None:
        try:
            _values.move_to_end(slot)
        except KeyError:  # evicted meanwhile by a call on another thread (the runner's call threads)
            pass
        return found
    value = version_row(ctx, secret, vid)
    found = (open_value(ctx, secret, value, key if value.key_id == key.key_id else None), value.data_type)
    if slot[2]:
        _values[slot] = found
        if len(_values) > _VALUES_MAX:
            _values.popitem(last=False)
    return found


def open_value(ctx: Context, secret: Secret, value: SecretVersion, key: Key | None = None) -> str:
    """Decrypt a version's value; the encryption key's state and existence are checked on the way
    (or were, by the caller that passes the checked `key`)."""
    key = key or _usable_key(ctx, value.key_id)
    vid = value.version_id
    try:
        _, _, data_key = envelope.decrypt(ctx, value.data_key, _value_context(secret.name, vid), key)
        plain = crypto.aead_open(data_key, base64.b64decode(value.iv), base64.b64decode(value.value),
                                 f"secret/{secret.name}/{vid}".encode())
    except (errors.InvalidParameter, crypto.DecryptError):
        raise errors.InternalFailure() from None  # a stored value that no longer opens is our fault
    return plain.decode()


# --- versions and stages --------------------------------------------------------------------------
# A value is stored under a row key of its own (`<version id>@<random>`, recorded in the secret's
# version entry as "row"), written before the secret record that lists it. Until that record is
# saved the row is part of nothing: a call that fails in between leaves no visible trace, a retry
# or a racing call never adopts or overwrites another call's row, and the deletion sweep removes
# rows no secret lists once they are old enough. Rows from before this scheme are keyed by the
# version id alone (entries without "row").

def listed(secret: Secret, vid: str) -> dict | None:
    return next((v for v in secret.versions if v["id"] == vid), None)


def row_of(entry: dict) -> str:
    return entry.get("row", entry["id"])


def store_value(ctx: Context, secret: Secret, vid: str, data: str, data_type: str, key: Key) -> SecretVersion:
    """Encrypt and store a value under a fresh row key; nothing lists it yet."""
    value = SecretVersion(scope=ctx.scope, name=secret.name, row=f"{vid}@{csprng.token_hex(8)}", version_id=vid,
                          created=int(ctx.now), data_type=data_type, **seal_value(ctx, key, secret.name, vid, data))
    return value.insert(ctx.store)


def same_value(ctx: Context, secret: Secret, vid: str, data: str, data_type: str) -> bool:
    """Whether listed version `vid` holds exactly this value (an idempotent repeat of its put)."""
    stored = version_row(ctx, secret, vid)
    return stored.data_type == data_type and hmac.compare_digest(open_value(ctx, secret, stored).encode(),
                                                                 data.encode())


def attach(secret: Secret, vid: str, row: str, stages: list[str], created: int) -> list[dict]:
    """Add version `vid` (if new, its value in `row`) carrying `stages`; ACSCurrent moving here sends
    ACSPrevious to the version that was current. Rolls off the oldest unlabelled versions beyond 10
    (2021 rule) and returns the entries of versions that were dropped."""
    if listed(secret, vid) is None:
        secret.versions.append({"id": vid, "created": created, "row": row})
    for label in stages:
        move_label(secret, label, vid)
    dropped = []
    while len(secret.versions) > MAX_VERSIONS:
        victim = next((v for v in secret.versions if not labels_of(secret, v["id"])), None)
        if victim is None:
            raise errors.LimitExceeded("exceed secret limits error")
        secret.versions.remove(victim)
        dropped.append(victim)
    return dropped


def move_label(secret: Secret, label: str, vid: str) -> None:
    old = secret.stages.get(label)
    if old == vid:
        return
    if label == CURRENT and old is not None:
        # Moving ACSCurrent keeps ACSPrevious on the version that was current, as PutSecretValue does.
        secret.stages[PREVIOUS] = old
    secret.stages[label] = vid
    if len(labels_of(secret, vid)) > MAX_LABELS_PER_VERSION:
        raise errors.LimitExceeded("exceed secret limits error")


def delete_values(ctx: Context, name: str, entries: list[dict]) -> None:
    """Delete the value rows of version entries no secret lists any more."""
    for entry in entries:
        SecretVersion.drop(ctx.store, ctx.scope, name, row_of(entry))


def version_row(ctx: Context, secret: Secret, vid: str) -> SecretVersion:
    entry = listed(secret, vid)
    value = None if entry is None else SecretVersion.get(ctx.store, ctx.scope, secret.name, row_of(entry))
    if value is None:
        raise errors.ResourceNotFound()
    return value


def public(ctx: Context, secret: Secret, fetch_tags: bool) -> dict:
    """Fields DescribeSecret and ListSecrets share (wire names)."""
    out: dict[str, Any] = {"SecretName": secret.name, "SecretType": secret.secret_type,
           "CreateTime": keys.iso(secret.create_time), "UpdateTime": keys.iso(secret.update_time)}
    if in_window(secret):
        out["PlannedDeleteTime"] = keys.iso(secret.planned_delete_time)
    if fetch_tags:
        out["Tags"] = {"Tag": [{"TagKey": k, "TagValue": v} for k, v in sorted(secret.tags.items())]}
    return out
