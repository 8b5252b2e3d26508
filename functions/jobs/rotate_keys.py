"""Timer job: give every key whose automatic rotation is due a new primary version.

"Now" is the trigger time, so a test can fire the job at any date. Idempotent and safe to run twice
at once (see `alikms.shared.versions`: deterministic version ids plus a conditional key update give
exactly one new version). One key's failure is recorded and the sweep goes on.
"""

from __future__ import annotations

from dataclasses import replace

from alikms.shared import versions
from alikms.shared.context import Context
from alikms.shared.records import Key
from alikms.shared.runtime import timer_handler


def rotate_keys(ctx: Context, payload: dict) -> dict:
    rotated, failed, seen = [], [], 0
    for key in Key.scan(ctx.store, lambda item, exc: failed.append({"KeyId": item.sk, "Error": type(exc).__name__})):
        seen += 1
        try:
            if not versions.rotation_due(key, ctx.now):
                continue
            account, _, region = key.scope.partition("/")
            key_ctx = replace(ctx, account_id=account, region=region)
            vid = versions.rotate(key_ctx, key.key_id, ctx.now, guard=lambda k: versions.rotation_due(k, ctx.now))
            if vid is not None:
                rotated.append(key.key_id)
        except Exception as exc:  # noqa: BLE001 - collect and go on, like Vault's multierror
            failed.append({"KeyId": key.key_id, "Error": type(exc).__name__})
    return {"Scanned": seen, "Rotated": rotated, "Failed": failed}


handler = timer_handler(__name__, rotate_keys)
