"""ListAliasesByKeyId: the aliases of one key, by name, paged (PageSize 1-101 as documented, default 10).

KeyId is a key id or key ARN. Errors: MissingParameter, InvalidParameter, Forbidden.KeyNotFound.
"""

from __future__ import annotations

from alikms.shared import aliases, keys
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, PageNumber, PageSize101, Response, page
from alikms.shared.runtime import api_handler


class ListAliasesByKeyIdRequest(ApiModel):
    key_id: KeyIdParam
    page_number: PageNumber = 1
    page_size: PageSize101 = 10


class ListAliasesByKeyIdResponse(Response):
    aliases: dict
    total_count: int
    page_number: int
    page_size: int


def list_aliases_by_key_id(req: ListAliasesByKeyIdRequest, ctx: Context) -> ListAliasesByKeyIdResponse:
    key = keys.get_key(ctx, req.key_id)
    rows = aliases.of_key(ctx, key.key_id)
    return ListAliasesByKeyIdResponse(
        aliases={"Alias": [aliases.entry(ctx, r) for r in page(rows, req.page_number, req.page_size)]},
        total_count=len(rows), page_number=req.page_number, page_size=req.page_size)


handler = api_handler(__name__, ListAliasesByKeyIdRequest, list_aliases_by_key_id)
