"""ListAliases: the account's aliases in this region, by name, paged (PageSize 1-100, default 10).

Aliases of keys past their deletion date are left out: the key is already gone.
Errors: InvalidParameter.
"""

from __future__ import annotations

from alikms.shared import aliases
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, PageNumber, PageSize100, Response, page
from alikms.shared.runtime import api_handler


class ListAliasesRequest(ApiModel):
    page_number: PageNumber = 1
    page_size: PageSize100 = 10


class ListAliasesResponse(Response):
    aliases: dict
    total_count: int
    page_number: int
    page_size: int


def list_aliases(req: ListAliasesRequest, ctx: Context) -> ListAliasesResponse:
    rows = aliases.live(ctx)
    listed = [aliases.entry(ctx, r) for r in page(rows, req.page_number, req.page_size)]
    return ListAliasesResponse(aliases={"Alias": listed},
                               total_count=len(rows), page_number=req.page_number, page_size=req.page_size)


handler = api_handler(__name__, ListAliasesRequest, list_aliases)
