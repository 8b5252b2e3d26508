"""CreateSecret: a Generic secret with its first version (labelled ACSCurrent).

The value is envelope-encrypted under EncryptionKeyId (a symmetric key of this account: id or ARN),
or under the account's service-created secrets key when none is given. SecretData is at
most 30720 bytes; `binary` data must be base64 text. Managed secret types (Rds, RAMCredentials, ECS,
Redis, PolarDB) rotate through other Alibaba services this deployment does not have.
Errors: MissingParameter, InvalidParameter, UnsupportedOperation (managed types, rotation),
Rejected.ResourceExist, Rejected.ResourceInDeleteWindow, Rejected.LimitExceeded (KMS_SECRET_QUOTA,
default 1000), Forbidden.KeyNotFound, Unsupported.Alias, Rejected.Disabled (key state),
Forbidden.DKMSInstanceNotFound.
"""

from __future__ import annotations

import re
import uuid
from typing import Annotated, Literal

from pydantic import Field, field_validator

from alikms.shared import errors, secrets
from alikms.shared.context import Context
from alikms.shared.models import (
    ApiModel,
    CreateTags,
    Description,
    Flag,
    JsonObject,
    KeyIdParam,
    PolicyDocument,
    Response,
    SecretData,
    SecretVersionId,
)
from alikms.shared.records import Secret
from alikms.shared.runtime import api_handler
from alikms.shared.store import Conflict

_NAME = re.compile(r"^[A-Za-z0-9_/+=.@\-]{1,192}$")


class CreateSecretRequest(ApiModel):
    secret_name: Annotated[str, Field(max_length=192)]
    version_id: SecretVersionId
    secret_data: SecretData
    secret_data_type: Literal["text", "binary"] = "text"
    encryption_key_id: KeyIdParam | None = None
    description: Description = ""
    tags: CreateTags = {}
    secret_type: Literal["Generic", "Rds", "RAMCredentials", "ECS", "Redis", "PolarDB", "RDS"] = "Generic"
    # At most 1024 characters (kms-api.md §11.1). (A type made per action: models.py.)
    extended_config: JsonObject(1024) | None = None  # type: ignore[valid-type]
    enable_automatic_rotation: Flag = False
    rotation_interval: Annotated[str, Field(max_length=32)] | None = None
    dkms_instance_id: Annotated[str, Field(max_length=128)] | None = Field(None, alias="DKMSInstanceId")
    policy: PolicyDocument | None = None

    @field_validator("secret_name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _NAME.match(v) or v.startswith("acs/"):
            raise ValueError("SecretName")
        return v


class CreateSecretResponse(Response):
    arn: str
    secret_name: str
    version_id: str
    secret_type: str


def create_secret(req: CreateSecretRequest, ctx: Context) -> CreateSecretResponse:
    if req.dkms_instance_id is not None:
        raise errors.ForbiddenDKMSInstanceNotFound()
    if req.secret_type != "Generic" or req.enable_automatic_rotation:
        raise errors.UnsupportedOperation()
    secrets.check_data(req.secret_data, req.secret_data_type)
    existing = Secret.get(ctx.store, ctx.scope, req.secret_name)
    if existing is not None and not secrets.is_gone(existing, ctx.now):
        raise errors.ResourceInDeleteWindow() if secrets.in_window(existing) else errors.ResourceExist()
    if Secret.count(ctx.store, ctx.scope) >= ctx.config.secret_quota:
        raise errors.LimitExceeded()
    key = secrets.encryption_key(ctx, req.encryption_key_id)
    now = int(ctx.now)
    secret = Secret(scope=ctx.scope, name=req.secret_name, secret_type="Generic", creator=ctx.account_id,
                    description=req.description, encryption_key_id=key.key_id, create_time=now, update_time=now,
                    tags=req.tags, policy=req.policy, incarnation=uuid.uuid4().hex)
    # The value first, under a row key of its own: until the secret record lists it, it is part of nothing.
    value = secrets.store_value(ctx, secret, req.version_id, req.secret_data, req.secret_data_type, key)
    secrets.attach(secret, req.version_id, value.row, [secrets.CURRENT], now)
    try:
        if existing is not None:  # an overdue secret the sweep has not removed yet: replace it
            secret.rev = existing.rev
            secret.save(ctx.store)
        else:
            secret.insert(ctx.store)
    except Conflict:
        value.remove(ctx.store)  # another CreateSecret of this name won; our value is nobody's
        raise errors.ResourceExist() from None
    if existing is not None:
        secrets.delete_values(ctx, existing.name, existing.versions)
    return CreateSecretResponse(arn=ctx.arn("secret", req.secret_name), secret_name=req.secret_name,
                                version_id=req.version_id, secret_type="Generic")


handler = api_handler(__name__, CreateSecretRequest, create_secret)
