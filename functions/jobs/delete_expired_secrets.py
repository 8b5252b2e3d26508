"""Timer job: delete secrets whose recovery window has passed (the secret record first and
conditionally, then the value rows it lists), and value rows no secret lists. Reads already treat
such secrets as gone; a crash after the record went leaves value rows that are nobody's, which the
orphan pass of a later run removes. Idempotent, safe to run twice at once; "now" is the trigger time.
"""

from __future__ import annotations

from alikms.shared import secrets
from alikms.shared.context import Context
from alikms.shared.records import Secret, SecretVersion
from alikms.shared.runtime import timer_handler
from alikms.shared.store import Conflict

# A value row no secret lists is left by a call that failed between its two writes; younger ones
# may belong to a call still under way.
ORPHAN_AGE = 3600


def delete_expired_secrets(ctx: Context, payload: dict) -> dict:
    deleted, failed, seen = [], [], 0

    def unreadable(item, exc: Exception) -> None:
        failed.append({"SecretName": item.sk, "Error": type(exc).__name__})

    for secret in Secret.scan(ctx.store, unreadable):
        seen += 1
        if not secrets.is_gone(secret, ctx.now):
            continue
        try:
            secret.remove(ctx.store)
            for entry in secret.versions:
                SecretVersion.drop(ctx.store, secret.scope, secret.name, secrets.row_of(entry))
            deleted.append(secret.name)
        except Conflict:
            continue  # restored or deleted meanwhile; the next run looks again
        except Exception as exc:  # noqa: BLE001 - collect and go on
            failed.append({"SecretName": secret.name, "Error": type(exc).__name__})
    return {"Scanned": seen, "Deleted": deleted, "Failed": failed, "Orphans": _orphans(ctx)}


def _orphans(ctx: Context) -> int:
    """Remove value rows that no secret lists (see ORPHAN_AGE)."""
    removed, listed = 0, {}
    for value in SecretVersion.scan(ctx.store):
        slot = (value.scope, value.name)
        if slot not in listed:
            secret = Secret.get(ctx.store, *slot)
            listed[slot] = set() if secret is None else {secrets.row_of(v) for v in secret.versions}
        if value.row in listed[slot] or value.created + ORPHAN_AGE > ctx.now:
            continue
        try:
            value.remove(ctx.store)
            removed += 1
        except Conflict:
            continue
    return removed


handler = timer_handler(__name__, delete_expired_secrets)
