"""RestoreSecret: cancel a scheduled deletion while the recovery window is open.

Errors: MissingParameter, Forbidden.ResourceNotFound (unknown, force-deleted or window passed),
Rejected.ResourceInUse (not scheduled for deletion).
"""

from __future__ import annotations

from alikms.shared import errors, secrets
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Response, SecretName
from alikms.shared.records import Secret
from alikms.shared.runtime import api_handler


class RestoreSecretRequest(ApiModel):
    secret_name: SecretName


class RestoreSecretResponse(Response):
    secret_name: str


def restore_secret(req: RestoreSecretRequest, ctx: Context) -> RestoreSecretResponse:
    def restore(secret: Secret) -> None:
        if not secrets.in_window(secret):
            raise errors.ResourceInUse()
        secret.planned_delete_time = None

    secret = secrets.mutate(ctx, req.secret_name, restore, live=False)
    return RestoreSecretResponse(secret_name=secret.name)


handler = api_handler(__name__, RestoreSecretRequest, restore_secret)
