"""TagResource: add or overwrite tags on a key (KeyId: id, ARN or alias) or a secret (SecretName).

Exactly one of KeyId, SecretName, CertificateId. Tags: JSON array of {"TagKey","TagValue"}, keys and
values up to 128 characters of `A-Za-z0-9 /\\_-.+=:@`, keys not starting with `aliyun` or `acs:`;
at most 10 tags per resource after the change.
Errors: MissingParameter, InvalidParameter, Rejected.LimitExceeded, Forbidden.KeyNotFound,
Forbidden.AliasNotFound, Forbidden.ResourceNotFound (secret, certificate), Rejected.PendingDeletion.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from alikms.shared import tagging, tags
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, ResourceTags, Response, SecretName
from alikms.shared.runtime import api_handler


class TagResourceRequest(ApiModel):
    key_id: KeyIdParam | None = None
    secret_name: SecretName | None = None
    certificate_id: Annotated[str, Field(max_length=128)] | None = None
    tags: ResourceTags


class TagResourceResponse(Response):
    pass


def tag_resource(req: TagResourceRequest, ctx: Context) -> TagResourceResponse:
    kind, name = tagging.one_resource(req.key_id, req.secret_name, req.certificate_id)
    change = tagging.merge(tags.MAX_PER_RESOURCE, req.tags)
    if kind == "KeyId":
        tagging.change_key_tags(ctx, name, change)
    else:
        tagging.change_secret_tags(ctx, name, change)
    return TagResourceResponse()


handler = api_handler(__name__, TagResourceRequest, tag_resource)
