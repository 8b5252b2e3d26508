"""Timer job: delete secrets whose recovery window has passed (value rows first, the secret row
last and conditionally, so a crash halfway is finished by the next run). Reads already treat such
secrets as gone. Idempotent, safe to run twice at once; "now" is the trigger time.
"""

from __future__ import annotations

from alikms.shared import secrets
from alikms.shared.context import Context
from alikms.shared.runtime import timer_handler
from alikms.shared.store import Conflict


def delete_expired_secrets(ctx: Context, payload: dict) -> dict:
    deleted, failed, seen = [], [], 0
    for item in ctx.store.scan_all("secrets"):
        seen += 1
        if not secrets.is_gone(item.data, ctx.now):
            continue
        try:
            pk = f"{item.pk}/{item.sk}"
            for row in ctx.store.query_all("secret_versions", pk):
                ctx.store.delete("secret_versions", pk, row.sk)
            ctx.store.delete("secrets", item.pk, item.sk, item.rev)
            deleted.append(item.sk)
        except Conflict:
            continue  # restored or deleted meanwhile; the next run looks again
        except Exception as exc:  # noqa: BLE001 - collect and go on
            failed.append({"SecretName": item.sk, "Error": type(exc).__name__})
    return {"Scanned": seen, "Deleted": deleted, "Failed": failed}


handler = timer_handler(__name__, delete_expired_secrets)
