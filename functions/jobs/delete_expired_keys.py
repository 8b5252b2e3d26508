"""Timer job: delete keys whose PendingDeletion window has passed, with their versions, aliases and
tags (tags live in the key row). Reads already treat such keys as gone; this removes the rows.

Order matters for a crash halfway: aliases and versions go first, the key row last (conditionally on
the revision that was seen overdue), so a rerun finds the key again and finishes the job. Idempotent
and safe to run twice at once: deleting a missing row is not an error. Version rows left behind by a
CreateKey that failed after writing them (no key ever pointed at them) go too, once old enough.
"""

from __future__ import annotations

from alikms.shared import lifecycle, secrets
from alikms.shared.context import Context
from alikms.shared.records import Alias, Key, KeyVersion
from alikms.shared.runtime import timer_handler
from alikms.shared.store import Conflict

# A version row without its key is left by a CreateKey whose key write failed; younger ones may
# belong to a CreateKey still under way.
ORPHAN_AGE = 3600


def delete_expired_keys(ctx: Context, payload: dict) -> dict:
    deleted, failed, seen = [], [], 0
    store = ctx.store
    for key in Key.scan(store, lambda item, exc: failed.append({"KeyId": item.sk, "Error": type(exc).__name__})):
        seen += 1
        try:
            if not lifecycle.is_gone(key, ctx.now):
                continue
            for alias in Alias.all(store, key.scope):
                if alias.key_id == key.key_id:
                    alias.remove(store)
            for version in KeyVersion.all(store, key.scope, key.key_id):
                version.remove(store, conditional=False)
            key.remove(store)
            deleted.append(key.key_id)
        except Conflict:
            # Someone changed the row meanwhile (a concurrent sweep deleted it, or an alias moved):
            # the next run looks again.
            continue
        except Exception as exc:  # noqa: BLE001 - collect and go on
            failed.append({"KeyId": key.key_id, "Error": type(exc).__name__})
    return {"Scanned": seen, "Deleted": deleted, "Failed": failed, "Orphans": _orphans(ctx)}


def _orphans(ctx: Context) -> int:
    """Remove version rows whose key was never stored (see ORPHAN_AGE). The secrets service key's
    id is fixed per account, so its rows are adopted by the next creation rather than removed."""
    removed, known = 0, {}
    for version in KeyVersion.scan(ctx.store):
        slot = (version.scope, version.key_id)
        if slot not in known:
            known[slot] = (Key.get(ctx.store, *slot) is not None
                           or version.key_id == secrets.service_key_id(version.scope))
        if known[slot] or version.creation_date + ORPHAN_AGE > ctx.now:
            continue
        try:
            version.remove(ctx.store)
            removed += 1
        except Conflict:
            continue
    return removed


handler = timer_handler(__name__, delete_expired_keys)
