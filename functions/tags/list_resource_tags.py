"""ListResourceTags: the tags of a key (KeyId: id or ARN), in every key state, sorted by tag key.

Errors: MissingParameter, InvalidParameter, Forbidden.KeyNotFound.
"""

from __future__ import annotations

from alikms.shared import keys
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.runtime import api_handler


class ListResourceTagsRequest(ApiModel):
    key_id: KeyIdParam


class ListResourceTagsResponse(Response):
    tags: dict


def list_resource_tags(req: ListResourceTagsRequest, ctx: Context) -> ListResourceTagsResponse:
    key = keys.get_key(ctx, req.key_id)
    items = [{"KeyId": key.key_id, "TagKey": k, "TagValue": v} for k, v in sorted((key.tags or {}).items())]
    return ListResourceTagsResponse(tags={"Tag": items})


handler = api_handler(__name__, ListResourceTagsRequest, list_resource_tags)
