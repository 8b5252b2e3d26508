"""CancelKeyDeletion: PendingDeletion -> Enabled (whatever the state before), except that a key whose
imported material is absent returns to PendingImport: it cannot be used until material arrives.

Errors: MissingParameter, Forbidden.KeyNotFound (also once the window has passed),
Rejected.StateModifiedFailed (not PendingDeletion).
"""

from __future__ import annotations

from alikms.shared import keys, lifecycle
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.records import Key
from alikms.shared.runtime import api_handler


class CancelKeyDeletionRequest(ApiModel):
    key_id: KeyIdParam


class CancelKeyDeletionResponse(Response):
    pass


def cancel_key_deletion(req: CancelKeyDeletionRequest, ctx: Context) -> CancelKeyDeletionResponse:
    def cancel(key: Key) -> None:
        key.state = lifecycle.ENABLED if key.primary_key_version else lifecycle.PENDING_IMPORT
        key.delete_date = None

    keys.mutate(ctx, req.key_id, "cancel_deletion", cancel)
    return CancelKeyDeletionResponse()


handler = api_handler(__name__, CancelKeyDeletionRequest, cancel_key_deletion)
