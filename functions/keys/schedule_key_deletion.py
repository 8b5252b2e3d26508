"""ScheduleKeyDeletion: PendingDeletion until now + PendingWindowInDays, then the deletion sweep
removes the key with its versions, aliases and tags. There is no immediate deletion.

PendingWindowInDays is required, 7-30 days: the 2021 reference (the later instance era allows
7-366). Allowed from Enabled, Disabled and PendingImport.
Errors: MissingParameter, InvalidParameter, Forbidden.KeyNotFound,
Rejected.StateModifiedFailed (already PendingDeletion), Rejected.UnsupportedOperation (the secrets
service's own key: every secret created without an EncryptionKeyId depends on it).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from alikms.shared import keys, lifecycle
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.records import Key
from alikms.shared.runtime import api_handler


class ScheduleKeyDeletionRequest(ApiModel):
    key_id: KeyIdParam
    pending_window_in_days: Annotated[int, Field(ge=7, le=30)]


class ScheduleKeyDeletionResponse(Response):
    pass


def schedule_key_deletion(req: ScheduleKeyDeletionRequest, ctx: Context) -> ScheduleKeyDeletionResponse:
    delete_date = int(ctx.now) + req.pending_window_in_days * 86400
    def schedule(key: Key) -> None:
        key.state, key.delete_date = lifecycle.PENDING_DELETION, delete_date

    keys.mutate(ctx, req.key_id, "schedule_deletion", schedule)
    return ScheduleKeyDeletionResponse()


handler = api_handler(__name__, ScheduleKeyDeletionRequest, schedule_key_deletion)
