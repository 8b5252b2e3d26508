"""ListKeyVersions: a key's versions, oldest first, paged (PageSize 1-101 as documented, default 10).

Errors: MissingParameter, InvalidParameter, Forbidden.KeyNotFound.
"""

from __future__ import annotations

from alikms.shared import keys, versions
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, PageNumber, PageSize101, Response, page
from alikms.shared.runtime import api_handler


class ListKeyVersionsRequest(ApiModel):
    key_id: KeyIdParam
    page_number: PageNumber = 1
    page_size: PageSize101 = 10


class ListKeyVersionsResponse(Response):
    key_versions: dict
    total_count: int
    page_number: int
    page_size: int


def list_key_versions(req: ListKeyVersionsRequest, ctx: Context) -> ListKeyVersionsResponse:
    key = keys.get_key(ctx, req.key_id)
    rows = versions.listed(ctx, key)
    listed = [{"CreationDate": keys.iso(v.creation_date), "KeyId": key.key_id, "KeyVersionId": v.version_id}
              for v in page(rows, req.page_number, req.page_size)]
    return ListKeyVersionsResponse(key_versions={"KeyVersion": listed}, total_count=len(rows),
                                   page_number=req.page_number, page_size=req.page_size)


handler = api_handler(__name__, ListKeyVersionsRequest, list_key_versions)
