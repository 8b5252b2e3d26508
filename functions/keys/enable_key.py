"""EnableKey: Enabled or Disabled -> Enabled (enabling an enabled key succeeds).

Errors: MissingParameter, Forbidden.KeyNotFound, Rejected.StateModifiedFailed (PendingDeletion,
PendingImport).
"""

from __future__ import annotations

from alikms.shared import keys, lifecycle
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.runtime import api_handler


class EnableKeyRequest(ApiModel):
    key_id: KeyIdParam


class EnableKeyResponse(Response):
    pass


def enable_key(req: EnableKeyRequest, ctx: Context) -> EnableKeyResponse:
    keys.mutate(ctx, req.key_id, "enable", lifecycle.set_state(lifecycle.ENABLED))
    return EnableKeyResponse()


handler = api_handler(__name__, EnableKeyRequest, enable_key)
