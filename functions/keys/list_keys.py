"""ListKeys: the account's keys in this region, in every state, paged, optionally filtered.

`Filters` is a JSON array of up to 10 `{"Key": ..., "Values": [...]}` (up to 10 values). Values of
one Key are OR-ed, different Keys AND-ed, a repeated Key adds to its OR (the documented example).
A Key with no Values constrains nothing. PageSize follows the 2021 reference (1-101, default 10).

Errors: InvalidParameter (paging or filters).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator

from alikms.shared import lifecycle
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, PageNumber, PageSize101, Response, page, parse_filters
from alikms.shared.records import Alias, Key
from alikms.shared.runtime import api_handler

FILTER_KEYS = {
    "KeyState": lambda k, aliases: [k.state],
    "KeySpec": lambda k, aliases: [k.key_spec],
    "KeyUsage": lambda k, aliases: [k.key_usage],
    "ProtectionLevel": lambda k, aliases: [k.protection_level],
    "CreatorType": lambda k, aliases: [k.creator_type],
    "DKMSInstanceId": lambda k, aliases: [],  # no KMS instances here: matches no key
    "keyId": lambda k, aliases: [k.key_id],  # lower-case k, as documented
    "AliasName": lambda k, aliases: aliases.get(k.key_id, []),
    "Creator": lambda k, aliases: [k.creator],
    "TagKey": lambda k, aliases: list(k.tags),
    "TagValue": lambda k, aliases: list(k.tags.values()),
}


class ListKeysRequest(ApiModel):
    page_number: PageNumber = 1
    page_size: PageSize101 = 10
    filters: Annotated[dict[str, set[str]], BeforeValidator(lambda v: parse_filters(v, FILTER_KEYS))] = {}


class ListKeysResponse(Response):
    keys: dict
    total_count: int
    page_number: int
    page_size: int


def list_keys(req: ListKeysRequest, ctx: Context) -> ListKeysResponse:
    aliases: dict[str, list[str]] = {}
    if "AliasName" in req.filters:
        for alias in Alias.all(ctx.store, ctx.scope):
            aliases.setdefault(alias.key_id, []).append(alias.name)
    matching = [
        key
        for key in Key.all(ctx.store, ctx.scope)
        if not lifecycle.is_gone(key, ctx.now)
        and all(set(FILTER_KEYS[name](key, aliases)) & wanted for name, wanted in req.filters.items())
    ]
    keys = [{"KeyId": k.key_id, "KeyArn": ctx.arn("key", k.key_id)}
            for k in page(matching, req.page_number, req.page_size)]
    return ListKeysResponse(
        keys={"Key": keys}, total_count=len(matching), page_number=req.page_number, page_size=req.page_size
    )


handler = api_handler(__name__, ListKeysRequest, list_keys)
