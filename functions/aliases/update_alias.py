"""UpdateAlias: point an existing alias at another key. Only the new target's state matters.

Errors: MissingParameter, InvalidParameter, Forbidden.AliasNotFound, Forbidden.KeyNotFound,
Rejected.PendingDeletion (new target PendingDeletion).
"""

from __future__ import annotations

from alikms.shared import errors, keys, lifecycle
from alikms.shared.models import AliasName, ApiModel, KeyIdParam, Response
from alikms.shared.context import Context
from alikms.shared.runtime import api_handler
from alikms.shared.store import Conflict


class UpdateAliasRequest(ApiModel):
    alias_name: AliasName
    key_id: KeyIdParam


class UpdateAliasResponse(Response):
    pass


def update_alias(req: UpdateAliasRequest, ctx: Context) -> UpdateAliasResponse:
    key, _ = keys.get_key(ctx, req.key_id)
    lifecycle.require("alias_target", key)
    for _ in range(8):
        alias = ctx.store.get("aliases", ctx.scope, req.alias_name)
        if alias is None:
            raise errors.AliasNotFound()
        try:
            ctx.store.update("aliases", ctx.scope, req.alias_name, {**alias.data, "key_id": key["key_id"]}, alias.rev)
            return UpdateAliasResponse()
        except Conflict:
            continue
    raise errors.StateModifiedFailed()


handler = api_handler(__name__, UpdateAliasRequest, update_alias)
