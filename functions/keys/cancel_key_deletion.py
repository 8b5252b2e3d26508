"""CancelKeyDeletion: PendingDeletion -> Enabled (always Enabled, whatever the state before).

Errors: MissingParameter, Forbidden.KeyNotFound (also once the window has passed),
Rejected.StateModifiedFailed (not PendingDeletion).
"""

from __future__ import annotations

from shared import keys, lifecycle
from shared.models import ApiModel, KeyIdParam, Response
from shared.runtime import Context, api_handler


class CancelKeyDeletionRequest(ApiModel):
    key_id: KeyIdParam


class CancelKeyDeletionResponse(Response):
    pass


def cancel_key_deletion(req: CancelKeyDeletionRequest, ctx: Context) -> CancelKeyDeletionResponse:
    keys.mutate(ctx, req.key_id, "cancel_deletion",
                lambda key: key.update(state=lifecycle.ENABLED, delete_date=None))
    return CancelKeyDeletionResponse()


handler = api_handler(__name__, CancelKeyDeletionRequest, cancel_key_deletion)
