"""RestoreSecret: cancel a scheduled deletion while the recovery window is open.

Errors: MissingParameter, Forbidden.ResourceNotFound (unknown, force-deleted or window passed),
Rejected.ResourceInUse (not scheduled for deletion).
"""

from __future__ import annotations

from alikms.shared import errors, secrets
from alikms.shared.models import ApiModel, Response, SecretName
from alikms.shared.context import Context
from alikms.shared.runtime import api_handler
from alikms.shared.store import Conflict


class RestoreSecretRequest(ApiModel):
    secret_name: SecretName


class RestoreSecretResponse(Response):
    secret_name: str


def restore_secret(req: RestoreSecretRequest, ctx: Context) -> RestoreSecretResponse:
    for _ in range(16):
        secret, rev = secrets.get(ctx, req.secret_name)
        if not secrets.in_window(secret):
            raise errors.ResourceInUse()
        secret.update(planned_delete_time=None, update_time=int(ctx.now))
        try:
            ctx.store.update("secrets", ctx.scope, secret["name"], secret, rev)
            return RestoreSecretResponse(secret_name=secret["name"])
        except Conflict:
            continue
    raise errors.InternalFailure()


handler = api_handler(__name__, RestoreSecretRequest, restore_secret)
