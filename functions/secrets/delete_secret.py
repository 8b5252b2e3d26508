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
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Flag, Response, SecretName
from alikms.shared.records import Secret, retrying
from alikms.shared.runtime import api_handler


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
        def remove() -> Secret:
            secret = secrets.get_live(ctx, req.secret_name)
            secret.remove(ctx.store)
            return secret

        # The record first (conditionally, re-read on a race): once it is gone its values are part
        # of nothing, and a failure before they go leaves rows the deletion sweep removes.
        secret = retrying(remove)
        secrets.delete_values(ctx, secret.name, secret.versions)
        return DeleteSecretResponse(secret_name=secret.name, planned_delete_time=keys.iso(ctx.now))
    when = int(ctx.now) + (req.recovery_window_in_days or 30) * 86400
    secret = secrets.mutate(ctx, req.secret_name, _planned(when))
    return DeleteSecretResponse(secret_name=secret.name, planned_delete_time=keys.iso(when))


def _planned(when: int):
    def plan(secret: Secret) -> None:
        secret.planned_delete_time = when

    return plan


handler = api_handler(__name__, DeleteSecretRequest, delete_secret)
