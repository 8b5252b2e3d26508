"""Timer job: keys whose imported material has expired go back to PendingImport and lose the
material (reads already treat them so); expired import tokens are deleted.

"Now" is the trigger time. Idempotent and safe to run twice at once: the key row changes
conditionally before its version rows go, and deleting a missing row is not an error.
"""

from __future__ import annotations

from dataclasses import replace

from alikms.shared import lifecycle, versions
from alikms.shared.context import Context
from alikms.shared.runtime import timer_handler
from alikms.shared.store import Conflict


def expire_key_material(ctx: Context, payload: dict) -> dict:
    expired, failed, tokens = [], [], 0
    store = ctx.store
    for item in store.scan_all("keys"):
        key = item.data
        expires = key.get("material_expire_time")
        if expires is None or expires > ctx.now or key["state"] not in (lifecycle.ENABLED, lifecycle.DISABLED):
            continue
        account, _, region = item.pk.partition("/")
        key_ctx = replace(ctx, account_id=account, region=region)
        try:
            store.update("keys", item.pk, item.sk, {**key, "state": lifecycle.PENDING_IMPORT,
                                                    "primary_key_version": None, "material_expire_time": None},
                         item.rev)
            versions.delete_all(key_ctx, item.sk)
            expired.append(item.sk)
        except Conflict:
            continue  # changed meanwhile (re-imported, or another sweep did it)
        except Exception as exc:  # noqa: BLE001 - collect and go on
            failed.append({"KeyId": item.sk, "Error": type(exc).__name__})
    for token in store.scan_all("import_tokens"):
        if token.data["expires"] <= ctx.now:
            store.delete("import_tokens", token.pk, token.sk)
            tokens += 1
    return {"Expired": expired, "TokensDeleted": tokens, "Failed": failed}


handler = timer_handler(__name__, expire_key_material)
