"""CreateAlias: give a key another name, `alias/<name>`, unique in the account and region.

Two instances creating the same alias at once race on a put-if-absent: one alias, one
AliasAlreadyExists. KeyId is a key id or key ARN (an alias here gets Unsupported.Alias).
Errors: MissingParameter, InvalidParameter (name rules, reserved `alias/acs` prefix),
AliasAlreadyExists, Rejected.LimitExceeded (300 aliases per account and region, KMS_ALIAS_QUOTA),
Forbidden.KeyNotFound, Rejected.StateModifiedFailed (key PendingDeletion).
"""

from __future__ import annotations

from pydantic import field_validator

from shared import errors, keys, lifecycle
from shared.models import AliasName, ApiModel, KeyIdParam, Response
from shared.runtime import Context, api_handler
from shared.store import Conflict


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
    key, _ = keys.get_key(ctx, req.key_id)
    lifecycle.require("create_alias", key)
    if ctx.store.get("aliases", ctx.scope, req.alias_name) is not None:
        raise errors.AliasAlreadyExists()
    if ctx.store.count("aliases", ctx.scope) >= ctx.config.alias_quota:
        raise errors.LimitExceeded()
    try:
        ctx.store.put_new("aliases", ctx.scope, req.alias_name, {"key_id": key["key_id"], "creation_date": int(ctx.now)})
    except Conflict:
        raise errors.AliasAlreadyExists() from None
    return CreateAliasResponse()


handler = api_handler(__name__, CreateAliasRequest, create_alias)
