"""DeleteSecret: schedule deletion after a recovery window (RecoveryWindowInDays 7-30, default 30),
or delete at once and for good with ForceDeleteWithoutRecovery=true (not with a window).

A secret already in its window answers 409 Rejected.ResourceInDeleteWindow, force or not, as the
reference lists. The DeleteExpiredSecrets timer removes secrets whose window has passed; reads
treat them as gone before that.
Errors: MissingParameter, InvalidParameter, Forbidden.ResourceNotFound, Rejected.ResourceInDeleteWindow.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from alikms.shared import errors, keys, secrets
from alikms.shared.models import ApiModel, Flag, Response, SecretName
from alikms.shared.context import Context
from alikms.shared.runtime import api_handler
from alikms.shared.store import Conflict


class DeleteSecretRequest(ApiModel):
    secret_name: SecretName
    force_delete_without_recovery: Flag = False
    recovery_window_in_days: Annotated[int, Field(ge=7, le=30)] | None = None


class DeleteSecretResponse(Response):
    secret_name: str
    planned_delete_time: str


def delete_secret(req: DeleteSecretRequest, ctx: Context) -> DeleteSecretResponse:
    if req.force_delete_without_recovery and req.recovery_window_in_days is not None:
        raise errors.InvalidParameter(name="RecoveryWindowInDays")
    if req.force_delete_without_recovery:
        secret, rev = secrets.get_live(ctx, req.secret_name)
        # Values first, the row last (conditionally): a crash halfway leaves a secret whose later
        # deletion finishes the job, never a row without its values being reachable.
        try:
            secrets.delete_version_rows(ctx, secret["name"], None)
            ctx.store.delete("secrets", ctx.scope, secret["name"], rev)
        except Conflict:
            raise errors.ResourceNotFound() from None
        return DeleteSecretResponse(secret_name=secret["name"], planned_delete_time=keys.iso(ctx.now))
    when = int(ctx.now) + (req.recovery_window_in_days or 30) * 86400
    secret = secrets.mutate(ctx, req.secret_name, lambda row: row.update(planned_delete_time=when))
    return DeleteSecretResponse(secret_name=secret["name"], planned_delete_time=keys.iso(when))


handler = api_handler(__name__, DeleteSecretRequest, delete_secret)
