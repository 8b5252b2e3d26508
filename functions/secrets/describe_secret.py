"""DescribeSecret: a secret's metadata (never its value), also during its recovery window.

Errors: MissingParameter, InvalidParameter, Forbidden.ResourceNotFound.
"""

from __future__ import annotations

from alikms.shared import secrets
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Flag, Response, SecretName
from alikms.shared.runtime import api_handler


class DescribeSecretRequest(ApiModel):
    secret_name: SecretName
    fetch_tags: Flag = False


class DescribeSecretResponse(Response):
    arn: str
    secret_name: str
    secret_type: str
    description: str
    encryption_key_id: str
    create_time: str
    update_time: str
    planned_delete_time: str | None = None
    tags: dict | None = None


def describe_secret(req: DescribeSecretRequest, ctx: Context) -> DescribeSecretResponse:
    secret = secrets.get(ctx, req.secret_name)
    return DescribeSecretResponse.model_validate({
        "Arn": ctx.arn("secret", secret.name), "Description": secret.description,
        "EncryptionKeyId": secret.encryption_key_id, **secrets.public(ctx, secret, req.fetch_tags)})


handler = api_handler(__name__, DescribeSecretRequest, describe_secret)
