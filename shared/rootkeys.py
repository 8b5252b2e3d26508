"""Root-key rotation: re-wrap everything stored under the root key with the new primary root key.

What is wrapped directly under the root key: key version material, import-token private keys,
imported-material fingerprints and access-key secrets. (Secret values are encrypted under KMS keys,
whose material is in the first group, so they need no change.) Each row is re-wrapped with a
conditional write, so the pass is safe beside a running service and safe to interrupt: a rerun
skips rows already under the new key. The service reads under every key in its ring meanwhile.

The audit trail's digests stay verifiable after a root key leaves the ring: before the old keys are
dropped, each one's digest key (derived for that purpose alone, `audit_trail.digest_key`) is kept
in the store's `ops` table, wrapped like everything else (`retire_digest_keys`).
"""

from __future__ import annotations

import time
from collections.abc import Callable

from . import audit_trail, byok, crypto, identity, versions
from .config import Config, ConfigError
from .crypto import root
from .store import Conflict, Item, Store

# (table, field, AAD of the row); the AADs are the ones the writers use.
WRAPPED: tuple[tuple[str, str, Callable[[Item], bytes]], ...] = (
    ("key_versions", "material", lambda i: versions.material_aad(i.pk.rsplit("/", 1)[1], i.sk)),
    ("import_tokens", "private", lambda i: byok.token_aad(i.pk.rsplit("/", 1)[1], i.sk)),
    ("keys", "material_fingerprint", lambda i: byok.fingerprint_aad(i.sk)),
    # imported material is always version 1 of its key (versions.import_into)
    ("keys", "imported_material", lambda i: versions.material_aad(i.sk, versions.version_id(i.sk, 1))),
    ("access_keys", "secret", lambda i: identity.secret_aad(i.pk)),
)
def check_ring(store: Store, cfg: Config) -> None:
    """Refuse (ConfigError) a root-key ring that opens none of the stored access keys: it is not the
    ring this data was written under (a lost root.key made anew, a wrong KMS_ROOT_KEY). Serving with
    it would fail every call, and write new rows under a key whose id may collide with the real one."""
    rows = store.scan("access_keys", limit=8)
    for item in rows:
        try:
            crypto.unwrap(cfg, item.data["secret"], identity.secret_aad(item.pk))
            return
        except (crypto.UnwrapError, KeyError, ValueError):
            continue
    if rows:
        where = (f"the data in {cfg.data_dir}" if cfg.store == "sqlite"
                 else f"the Tablestore instance {cfg.ots_instance}")
        raise ConfigError(f"the root key ring ({', '.join(root.keys(cfg))}) opens none of {where}: it is not the ring "
                          "the data was written under. If root.key was lost and has just been made anew, put the "
                          "old root.key back; if KMS_ROOT_KEY is set, set it to the ring the data was written with")


RETIRED = "audit-key/"  # ops rows: the digest key of each retired root key, by its id


def digest_key_aad(pk: str) -> bytes:
    return pk.encode()


def retire_digest_keys(store: Store, cfg: Config, ring: dict[str, bytes]) -> list[str]:
    """Keep the digest key of every root key of `ring` but the primary (about to be dropped), wrapped
    under the primary, so `audit verify` can still authenticate what they sealed; and re-wrap those
    kept by earlier rotations under the primary too. Returns the ids of the root keys retired now."""
    primary = next(iter(ring))
    for item in list(store.scan_all("ops")):
        wrapped = item.data.get("digest_key")
        if item.pk.startswith(RETIRED) and wrapped and crypto.root_key_id_of(wrapped) != primary:
            _rewrap_row(store, cfg, "ops", "digest_key", lambda i: digest_key_aad(i.pk), item, primary)
    kept = []
    for kid, key in ring.items():
        if kid == primary:
            continue
        pk = RETIRED + kid
        wrapped = crypto.wrap(cfg, audit_trail.digest_key(key), digest_key_aad(pk))
        try:
            store.put_new("ops", pk, "", {"digest_key": wrapped, "retired": int(time.time())})
        except Conflict:
            pass  # kept by an earlier run (and re-wrapped above)
        kept.append(kid)
    return kept


def retired_digest_keys(store: Store, cfg: Config) -> dict[str, bytes]:
    """The digest keys of retired root keys, by root key id (those that no longer unwrap are left out:
    their digests are then reported as unverifiable, never taken on trust)."""
    found = {}
    for item in store.scan_all("ops"):
        if item.pk.startswith(RETIRED) and item.data.get("digest_key"):
            try:
                found[item.pk[len(RETIRED):]] = crypto.unwrap(cfg, item.data["digest_key"], digest_key_aad(item.pk))
            except (crypto.UnwrapError, ValueError):
                continue
    return found


def _rewrap_row(store: Store, cfg: Config, table: str, field: str, aad_of, item: Item, primary: str) -> bool:
    for _ in range(8):
        value = item.data.get(field)
        if not value or crypto.root_key_id_of(value) == primary:
            return False
        fresh = crypto.wrap(cfg, crypto.unwrap(cfg, value, aad_of(item)), aad_of(item))
        try:
            store.update(table, item.pk, item.sk, {**item.data, field: fresh}, item.rev)
            return True
        except Conflict:
            current = store.get(table, item.pk, item.sk)
            if current is None:
                return False
            item = current
    raise RuntimeError(f"{table} row kept changing")


def rewrap(store: Store, cfg: Config, limit: int | None = None,
           progress: Callable[[int], None] | None = None) -> dict[str, int]:
    """Re-wrap up to `limit` rows (all by default) under the primary root key; counts per table.
    `progress(rows re-wrapped so far)` is called after each row re-wrapped."""
    primary = next(iter(root.keys(cfg, force=True)))
    done: dict[str, int] = {}
    for table, field, aad_of in WRAPPED:
        for item in store.scan_all(table):
            if limit is not None and sum(done.values()) >= limit:
                return done
            if _rewrap_row(store, cfg, table, field, aad_of, item, primary):
                done[table] = done.get(table, 0) + 1
                if progress is not None:
                    progress(sum(done.values()))
    return done


def remaining(store: Store, cfg: Config) -> int:
    """Rows still wrapped under another root key than the primary."""
    primary = next(iter(root.keys(cfg, force=True)))
    return sum(1 for table, field, _ in WRAPPED for item in store.scan_all(table)
               if item.data.get(field) and crypto.root_key_id_of(item.data[field]) != primary)
