"""UntagResource: remove tags by key from a key (KeyId: id or ARN) or a secret (SecretName).

TagKeys is documented as comma-separated but every example is a JSON array: both are accepted.
Removing a tag the resource does not have is not an error.
Errors: MissingParameter, InvalidParameter, Forbidden.KeyNotFound, Forbidden.ResourceNotFound,
Rejected.PendingDeletion.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BeforeValidator

from alikms.shared import tagging
from alikms.shared.models import ApiModel, Response
from alikms.shared.context import Context
from alikms.shared.runtime import api_handler


def _tag_keys(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        value = json.loads(text) if text.startswith("[") else [p.strip() for p in text.split(",")]
    if not isinstance(value, list) or not value or not all(isinstance(k, str) and 1 <= len(k) <= 128 for k in value):
        raise ValueError("TagKeys")
    return value


class UntagResourceRequest(ApiModel):
    key_id: str | None = None
    secret_name: str | None = None
    certificate_id: str | None = None
    tag_keys: Annotated[list[str], BeforeValidator(_tag_keys)]


class UntagResourceResponse(Response):
    pass


def untag_resource(req: UntagResourceRequest, ctx: Context) -> UntagResourceResponse:
    kind = tagging.one_resource(req.key_id, req.secret_name, req.certificate_id)
    if kind == "KeyId":
        tagging.change_key_tags(ctx, req.key_id, tagging.remove(req.tag_keys))
    else:
        tagging.change_secret_tags(ctx, req.secret_name, tagging.remove(req.tag_keys))
    return UntagResourceResponse()


handler = api_handler(__name__, UntagResourceRequest, untag_resource)
