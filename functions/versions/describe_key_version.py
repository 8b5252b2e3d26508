"""DescribeKeyVersion: one version of a key (any key state).

Errors: MissingParameter, Forbidden.KeyNotFound, Forbidden.KeyVersionNotFound.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from alikms.shared import keys, versions
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.runtime import api_handler


class DescribeKeyVersionRequest(ApiModel):
    key_id: KeyIdParam
    key_version_id: Annotated[str, Field(min_length=1, max_length=128)]


class DescribeKeyVersionResponse(Response):
    key_version: dict


def describe_key_version(req: DescribeKeyVersionRequest, ctx: Context) -> DescribeKeyVersionResponse:
    key = keys.get_key(ctx, req.key_id)
    version = versions.get(ctx, key, req.key_version_id)
    return DescribeKeyVersionResponse(key_version={"CreationDate": keys.iso(version.creation_date),
                                                   "KeyId": key.key_id, "KeyVersionId": version.version_id})


handler = api_handler(__name__, DescribeKeyVersionRequest, describe_key_version)
