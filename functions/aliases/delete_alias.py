"""DeleteAlias: remove an alias (the key is untouched), whatever the key's state.

Errors: MissingParameter, InvalidParameter, Forbidden.AliasNotFound.
"""

from __future__ import annotations

from alikms.shared import errors
from alikms.shared.context import Context
from alikms.shared.models import AliasName, ApiModel, Response
from alikms.shared.records import Alias
from alikms.shared.runtime import api_handler
from alikms.shared.store import Conflict


class DeleteAliasRequest(ApiModel):
    alias_name: AliasName


class DeleteAliasResponse(Response):
    pass


def delete_alias(req: DeleteAliasRequest, ctx: Context) -> DeleteAliasResponse:
    alias = Alias.get(ctx.store, ctx.scope, req.alias_name)
    if alias is None:
        raise errors.AliasNotFound()
    try:
        alias.remove(ctx.store)
    except Conflict:  # deleted or re-pointed meanwhile: a concurrent delete already won
        raise errors.AliasNotFound() from None
    return DeleteAliasResponse()


handler = api_handler(__name__, DeleteAliasRequest, delete_alias)
