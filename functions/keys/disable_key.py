"""DisableKey: Enabled or Disabled -> Disabled. A disabled key neither encrypts nor decrypts until
it is enabled again; automatic rotation shows as Suspended meanwhile.

Errors: MissingParameter, Forbidden.KeyNotFound, Rejected.StateModifiedFailed (PendingDeletion,
PendingImport), Rejected.UnsupportedOperation (the secrets service's own key).
"""

from __future__ import annotations

from alikms.shared import keys, lifecycle
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.runtime import api_handler


class DisableKeyRequest(ApiModel):
    key_id: KeyIdParam


class DisableKeyResponse(Response):
    pass


def disable_key(req: DisableKeyRequest, ctx: Context) -> DisableKeyResponse:
    keys.mutate(ctx, req.key_id, "disable", lifecycle.set_state(lifecycle.DISABLED))
    return DisableKeyResponse()


handler = api_handler(__name__, DisableKeyRequest, disable_key)
