"""UntagResource: remove tags by key from a key (KeyId: id or ARN) or a secret (SecretName).

TagKeys is documented as comma-separated but every example is a JSON array: both are accepted.
Removing a tag the resource does not have is not an error.
Errors: MissingParameter, InvalidParameter, Forbidden.KeyNotFound, Forbidden.ResourceNotFound,
Rejected.PendingDeletion.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from alikms.shared import jsonparam, tagging
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response, SecretName
from alikms.shared.runtime import api_handler

# Up to 50 keys of 1-128 characters: more than a resource can hold (20), fewer than costs anything.
_TAG_KEYS = jsonparam.shape(Annotated[list[Annotated[str, Field(min_length=1, max_length=128)]],
                                      Field(min_length=1, max_length=50)])


def _tag_keys(value: Any) -> Any:
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            value = jsonparam.decode(text, 16384)
        elif len(text) <= 16384:
            value = [p.strip() for p in text.split(",")]
        else:
            raise ValueError("TagKeys")
    return _TAG_KEYS.validate_python(value)


class UntagResourceRequest(ApiModel):
    key_id: KeyIdParam | None = None
    secret_name: SecretName | None = None
    certificate_id: Annotated[str, Field(max_length=128)] | None = None
    tag_keys: Annotated[list[str], BeforeValidator(_tag_keys)]


class UntagResourceResponse(Response):
    pass


def untag_resource(req: UntagResourceRequest, ctx: Context) -> UntagResourceResponse:
    kind, name = tagging.one_resource(req.key_id, req.secret_name, req.certificate_id)
    if kind == "KeyId":
        tagging.change_key_tags(ctx, name, tagging.remove(req.tag_keys))
    else:
        tagging.change_secret_tags(ctx, name, tagging.remove(req.tag_keys))
    return UntagResourceResponse()


handler = api_handler(__name__, UntagResourceRequest, untag_resource)
