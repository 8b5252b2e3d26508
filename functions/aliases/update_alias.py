"""UpdateAlias: point an existing alias at another key. Only the new target's state matters.

Errors: MissingParameter, InvalidParameter, Forbidden.AliasNotFound, Forbidden.KeyNotFound,
Rejected.PendingDeletion (new target PendingDeletion).
"""

from __future__ import annotations

from alikms.shared import errors, keys, lifecycle
from alikms.shared.context import Context
from alikms.shared.models import AliasName, ApiModel, KeyIdParam, Response
from alikms.shared.records import Alias, retrying
from alikms.shared.runtime import api_handler


class UpdateAliasRequest(ApiModel):
    alias_name: AliasName
    key_id: KeyIdParam


class UpdateAliasResponse(Response):
    pass


def update_alias(req: UpdateAliasRequest, ctx: Context) -> UpdateAliasResponse:
    key = keys.get_key(ctx, req.key_id)
    lifecycle.require("alias_target", key)
    def repoint() -> None:
        alias = Alias.get(ctx.store, ctx.scope, req.alias_name)
        if alias is None:
            raise errors.AliasNotFound()
        alias.key_id = key.key_id
        alias.save(ctx.store)

    retrying(repoint)
    return UpdateAliasResponse()


handler = api_handler(__name__, UpdateAliasRequest, update_alias)
