"""Timer job: keys whose imported material has expired go back to PendingImport and lose the
material (reads already treat them so); expired import tokens are deleted.

"Now" is the trigger time. Idempotent and safe to run twice at once: the material lives in the key record, which
changes in one conditional write, and deleting a missing row is not an error.
"""

from __future__ import annotations

from dataclasses import replace

from alikms.shared import lifecycle, versions
from alikms.shared.context import Context
from alikms.shared.records import ImportToken, Key
from alikms.shared.runtime import timer_handler
from alikms.shared.store import Conflict


def expire_key_material(ctx: Context, payload: dict) -> dict:
    expired, failed, tokens = [], [], 0
    for key in Key.scan(ctx.store, lambda item, exc: failed.append({"KeyId": item.sk, "Error": type(exc).__name__})):
        expires = key.material_expire_time
        if expires is None or expires > ctx.now or key.state not in (lifecycle.ENABLED, lifecycle.DISABLED):
            continue
        account, _, region = key.scope.partition("/")
        key_ctx = replace(ctx, account_id=account, region=region)
        try:
            versions.drop_imported(key)
            key.save(ctx.store)  # the material goes with this one write
            versions.delete_all(key_ctx, key.key_id)  # rows of material imported before it lived in the key
            expired.append(key.key_id)
        except Conflict:
            continue  # changed meanwhile (re-imported, or another sweep did it)
        except Exception as exc:  # noqa: BLE001 - collect and go on
            failed.append({"KeyId": key.key_id, "Error": type(exc).__name__})
    for token in ImportToken.scan(ctx.store):
        if token.expires <= ctx.now:
            token.remove(ctx.store, conditional=False)
            tokens += 1
    return {"Expired": expired, "TokensDeleted": tokens, "Failed": failed}


handler = timer_handler(__name__, expire_key_material)
