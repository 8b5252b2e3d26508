"""DescribeKey: a key's metadata, in every key state. KeyId is a key id or key ARN.

Errors: MissingParameter, InvalidParameter, Forbidden.KeyNotFound.
"""

from __future__ import annotations

from alikms.shared import keys
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.runtime import api_handler


class DescribeKeyRequest(ApiModel):
    key_id: KeyIdParam


class DescribeKeyResponse(Response):
    key_metadata: dict


def describe_key(req: DescribeKeyRequest, ctx: Context) -> DescribeKeyResponse:
    key = keys.get_key(ctx, req.key_id)
    return DescribeKeyResponse(key_metadata=keys.metadata(ctx, key, describe=True))


handler = api_handler(__name__, DescribeKeyRequest, describe_key)
