"""Root-key rotation: re-wrap everything stored under the root key with the new primary root key.

What is wrapped directly under the root key: key version material, import-token private keys,
imported-material fingerprints and access-key secrets. (Secret values are encrypted under KMS keys,
whose material is in the first group, so they need no change.) Each row is re-wrapped with a
conditional write, so the pass is safe beside a running service and safe to interrupt: a rerun
skips rows already under the new key. The service reads under every key in its ring meanwhile.
"""

from __future__ import annotations

from typing import Callable

from . import byok, crypto, identity, versions
from .config import Config
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
            item = store.get(table, item.pk, item.sk)
            if item is None:
                return False
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
