"""Access keys: stored per key id, the secret wrapped under the root key, each with its account and
either no policy (the account's own key: full access to the account) or RAM-style policies.

A warm instance caches what it looked up, so a request costs no store read for a known key. Whether
a change (disable, delete, new policy) reaches the very next request depends on the store:
  - SQLite (local runner): the store keeps a count of writes to the access-key table shared by
    every process on it (`Store.changes`); a cached key is used only while the count is unchanged,
    so a change made by any worker or by `alikms admin` applies to the next request everywhere.
  - Tablestore (Function Compute): instances share nothing but the store, and reading the key row
    on every request would add a Tablestore round trip to each call; a cached key is used for at
    most CACHE_SECONDS, so a change applies everywhere within that time.
Deleting leaves a tombstone, so the bootstrap key of a local runner cannot come back by itself.
"""

from __future__ import annotations

import logging
import secrets as csprng
import string
import time
import weakref
from dataclasses import dataclass

from . import crypto, policy
from .config import Config, check_account_id
from .records import AccessKeyRow, retrying
from .store import Conflict, Store

ENABLED, DISABLED, DELETED = "Enabled", "Disabled", "Deleted"
CACHE_SECONDS = 5.0
# Per store object (a test may run several), per key id: (valid until, the store's access-key change
# count when read (None: the store keeps none), key or None). A plain dict, emptied when full: a
# cachetools.TTLCache measured many times slower per hit (docs/measurements.md), and this is read on
# every request.
_cache: weakref.WeakKeyDictionary[Store, dict[str, tuple[float, int | None, AccessKey | None]]] = (
    weakref.WeakKeyDictionary())


@dataclass(frozen=True)
class AccessKey:
    access_key_id: str
    secret: str
    account_id: str
    status: str
    policies: tuple | None  # parsed policies; None = the account's own key (no policy check)

    @property
    def enabled(self) -> bool:
        return self.status == ENABLED


def secret_aad(ak_id: str) -> bytes:
    return f"access-key/{ak_id}".encode()


def new_id() -> str:
    return "LTAI" + "".join(csprng.choice(string.ascii_letters + string.digits) for _ in range(20))


def create(store: Store, cfg: Config, account_id: str, policies: list[dict] | None, now: float,
           ak_id: str | None = None, secret: str | None = None) -> tuple[str, str]:
    check_account_id(account_id)  # ValueError: never a key for an account that cannot exist
    for doc in policies or ():
        policy.parse(doc)  # refuse a bad policy before anything is stored
    ak_id = ak_id or new_id()
    secret = secret or csprng.token_urlsafe(22)
    AccessKeyRow(access_key_id=ak_id, account_id=account_id,
                 secret=crypto.wrap(cfg, secret.encode(), secret_aad(ak_id)),
                 status=ENABLED, policies=policies, created=int(now)).insert(store)
    return ak_id, secret


def ensure_bootstrap(store: Store, cfg: Config, now: float) -> None:
    """The configured key pair is the first key of the default account (full access)."""
    if cfg.access_key_id and AccessKeyRow.get(store, cfg.access_key_id) is None:
        try:
            create(store, cfg, cfg.account_id, None, now, cfg.access_key_id, cfg.access_key_secret)
        except Conflict:
            pass  # another instance stored it first


def lookup(store: Store, cfg: Config, ak_id: str) -> AccessKey | None:
    now = time.monotonic()
    changes = store.changes("access_keys")  # read before the row: the entry is at least this fresh
    cache = _cache.get(store)
    if cache is None:
        cache = _cache.setdefault(store, {})
    hit = cache.get(ak_id)
    if hit is not None and hit[0] > now and hit[1] == changes:
        return hit[2]
    row = AccessKeyRow.get(store, ak_id)
    if row is None and ak_id == cfg.access_key_id:
        ensure_bootstrap(store, cfg, time.time())
        row = AccessKeyRow.get(store, ak_id)
    key = None
    if row is not None and row.status != DELETED:
        key = AccessKey(ak_id, crypto.unwrap(cfg, row.secret, secret_aad(ak_id)).decode(), row.account_id, row.status,
                        None if row.policies is None else _parsed(ak_id, row.policies))
    if len(cache) >= 10000:
        cache.clear()
    cache[ak_id] = (now + CACHE_SECONDS, changes, key)
    return key


def _parsed(ak_id: str, docs: list) -> tuple:
    """A key's stored policies, parsed. One this version refuses (stored by an older, laxer one, say
    with a NotResource it ignored) grants nothing: the key is denied everything, never given more
    than its policy meant, and every call is answered (Forbidden.NoPermission), not failed."""
    try:
        return tuple(policy.parse(d) for d in docs)
    except (policy.PolicyError, ValueError, TypeError) as exc:
        logging.getLogger("kms.identity").warning("access key %s has a policy that no longer parses: it is denied "
                                                  "everything until its policy is set again (%s)", ak_id, exc)
        return ((),)


def update(store: Store, ak_id: str, **changes) -> dict:
    """Change a stored key's status or policies (conditional write); KeyError if unknown."""
    for doc in changes.get("policies") or ():
        policy.parse(doc)

    def attempt() -> dict:
        row = AccessKeyRow.get(store, ak_id)
        if row is None or row.status == DELETED:
            raise KeyError(ak_id)
        for name, value in changes.items():
            setattr(row, name, value)
        return row.save(store).data()

    return retrying(attempt)
