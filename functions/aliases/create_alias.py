"""CreateAlias: give a key another name, `alias/<name>`, unique in the account and region.

Two instances creating the same alias at once race on a put-if-absent: one alias, one
AliasAlreadyExists. KeyId is a key id or key ARN (an alias here gets Unsupported.Alias).
Errors: MissingParameter, InvalidParameter (name rules, reserved `alias/acs` prefix),
AliasAlreadyExists, Rejected.LimitExceeded (300 aliases per account and region, KMS_ALIAS_QUOTA),
Forbidden.KeyNotFound, Rejected.StateModifiedFailed (key PendingDeletion).
"""

from __future__ import annotations

from pydantic import field_validator

from alikms.shared import aliases, errors, keys, lifecycle
from alikms.shared.context import Context
from alikms.shared.models import AliasName, ApiModel, KeyIdParam, Response
from alikms.shared.records import Alias
from alikms.shared.runtime import api_handler
from alikms.shared.store import Conflict


class CreateAliasRequest(ApiModel):
    alias_name: AliasName
    key_id: KeyIdParam

    @field_validator("alias_name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v.startswith("alias/acs"):  # reserved for service keys
            raise ValueError("AliasName")
        return v


class CreateAliasResponse(Response):
    pass


def create_alias(req: CreateAliasRequest, ctx: Context) -> CreateAliasResponse:
    key = keys.get_key(ctx, req.key_id)
    lifecycle.require("create_alias", key)
    alias = Alias(scope=ctx.scope, name=req.alias_name, key_id=key.key_id, creation_date=int(ctx.now))
    existing = Alias.get(ctx.store, ctx.scope, req.alias_name)
    if existing is not None and keys.live(ctx, existing.key_id):
        raise errors.AliasAlreadyExists()
    if existing is None and len(aliases.live(ctx)) >= ctx.config.alias_quota:
        raise errors.LimitExceeded()
    try:
        if existing is None:
            alias.insert(ctx.store)
        else:  # the name still belongs to a key past its deletion date: the sweep just has not run
            alias.rev = existing.rev
            alias.save(ctx.store)
    except Conflict:
        raise errors.AliasAlreadyExists() from None
    return CreateAliasResponse()


handler = api_handler(__name__, CreateAliasRequest, create_alias)
