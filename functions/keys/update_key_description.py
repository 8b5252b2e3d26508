"""UpdateKeyDescription: replace a key's description (an empty one clears it).

Errors: MissingParameter, InvalidParameter (over 8192 characters), Forbidden.KeyNotFound,
Rejected.PendingDeletion.
"""

from __future__ import annotations

from alikms.shared import keys
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Description, KeyIdParam, Response
from alikms.shared.records import Key
from alikms.shared.runtime import api_handler


class UpdateKeyDescriptionRequest(ApiModel):
    key_id: KeyIdParam
    description: Description


class UpdateKeyDescriptionResponse(Response):
    pass


def update_key_description(req: UpdateKeyDescriptionRequest, ctx: Context) -> UpdateKeyDescriptionResponse:
    def describe(key: Key) -> None:
        key.description = req.description

    keys.mutate(ctx, req.key_id, "update_description", describe)
    return UpdateKeyDescriptionResponse()


handler = api_handler(__name__, UpdateKeyDescriptionRequest, update_key_description)
