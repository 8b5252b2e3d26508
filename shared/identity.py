"""Access keys: stored per key id, the secret wrapped under the root key, each with its account and
either no policy (the account's own key: full access to the account) or RAM-style policies.

A warm instance caches what it looked up for a few seconds, so a request costs no store read for a
known key; disabling or deleting a key takes effect within that time everywhere. Deleting leaves a
tombstone, so the bootstrap key of a local runner cannot come back by itself.
"""

from __future__ import annotations

import secrets as csprng
import string
import time
import weakref
from dataclasses import dataclass

from . import crypto, policy
from .config import Config
from .records import AccessKeyRow, retrying
from .store import Conflict, Store

ENABLED, DISABLED, DELETED = "Enabled", "Disabled", "Deleted"
CACHE_SECONDS = 5.0
# Per store object (a test may run several), per key id: (valid until, key or None).
_cache: "weakref.WeakKeyDictionary[Store, dict[str, tuple[float, AccessKey | None]]]" = weakref.WeakKeyDictionary()


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
    for doc in policies or ():
        policy.parse(doc)  # refuse a bad policy before anything is stored
    ak_id = ak_id or new_id()
    secret = secret or csprng.token_urlsafe(22)
    AccessKeyRow(access_key_id=ak_id, account_id=account_id, secret=crypto.wrap(cfg, secret.encode(), secret_aad(ak_id)),
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
    cache = _cache.setdefault(store, {})
    hit = cache.get(ak_id)
    if hit is not None and hit[0] > now:
        return hit[1]
    row = AccessKeyRow.get(store, ak_id)
    if row is None and ak_id == cfg.access_key_id:
        ensure_bootstrap(store, cfg, time.time())
        row = AccessKeyRow.get(store, ak_id)
    key = None
    if row is not None and row.status != DELETED:
        docs = row.policies
        key = AccessKey(ak_id, crypto.unwrap(cfg, row.secret, secret_aad(ak_id)).decode(), row.account_id, row.status,
                        None if docs is None else tuple(policy.parse(d) for d in docs))
    cache[ak_id] = (now + CACHE_SECONDS, key)
    if len(cache) > 10000:
        cache.clear()
    return key


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
