"""Timer job: delete keys whose PendingDeletion window has passed, with their versions, aliases and
tags (tags live in the key row). Reads already treat such keys as gone; this removes the rows.

Order matters for a crash halfway: aliases and versions go first, the key row last (conditionally on
the revision that was seen overdue), so a rerun finds the key again and finishes the job. Idempotent
and safe to run twice at once: deleting a missing row is not an error.
"""

from __future__ import annotations

from alikms.shared import lifecycle
from alikms.shared.context import Context
from alikms.shared.runtime import timer_handler
from alikms.shared.store import Conflict


def delete_expired_keys(ctx: Context, payload: dict) -> dict:
    deleted, failed, seen = [], [], 0
    store = ctx.store
    for item in store.scan_all("keys"):
        seen += 1
        key_id = item.sk
        try:
            if not lifecycle.is_gone(item.data, ctx.now):
                continue
            for alias in store.query_all("aliases", item.pk):
                if alias.data.get("key_id") == key_id:
                    store.delete("aliases", item.pk, alias.sk, alias.rev)
            for version in store.query_all("key_versions", f"{item.pk}/{key_id}"):
                store.delete("key_versions", version.pk, version.sk)
            store.delete("keys", item.pk, key_id, item.rev)
            deleted.append(key_id)
        except Conflict:
            # Someone changed the row meanwhile (a concurrent sweep deleted it, or an alias moved):
            # the next run looks again.
            continue
        except Exception as exc:  # noqa: BLE001 - collect and go on
            failed.append({"KeyId": key_id, "Error": type(exc).__name__})
    return {"Scanned": seen, "Deleted": deleted, "Failed": failed}


handler = timer_handler(__name__, delete_expired_keys)
