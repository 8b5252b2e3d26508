"""CreateKey: create a customer master key in this account and region.

Every spec gets a first version whose material is generated here and stored wrapped under the root
key: symmetric (Aliyun_AES_256 default, Aliyun_AES_128, Aliyun_AES_192, Aliyun_SM4) and asymmetric
(RSA_2048, RSA_3072 for either usage; EC_P256, EC_P256K to sign; EC_SM2 for either). KeyUsage
defaults to ENCRYPT/DECRYPT where the spec allows it, else SIGN/VERIFY. `Origin=EXTERNAL` (symmetric
only) starts in PendingImport with no version. Automatic rotation (7-730 days, the 2021 range) is
for symmetric keys of service origin. The 200-key quota is the 2021 one (KMS_KEY_QUOTA).

Errors: InvalidParameter, MissingParameter (RotationInterval when rotation is enabled),
UnsupportedOperation (rotation of imported or asymmetric keys), Unsupported.ProtectionLevel (HSM:
there is none here), Forbidden.DKMSInstanceNotFound, Rejected.LimitExceeded.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator

from alikms.shared import crypto, errors, keys, keyspecs, lifecycle, versions
from alikms.shared.context import Context
from alikms.shared.models import (
    ApiModel,
    CreateTags,
    Description,
    Flag,
    KeyRotationInterval,
    Name,
    PolicyText,
    Response,
)
from alikms.shared.records import Key
from alikms.shared.runtime import api_handler


class CreateKeyRequest(ApiModel):
    description: Description = ""
    # (a Literal of the registry's key specs: built from tuples, which pydantic reads and mypy cannot)
    key_spec: Literal[keyspecs.SYMMETRIC + keyspecs.ASYMMETRIC] = "Aliyun_AES_256"  # type: ignore[valid-type]
    key_usage: Literal["ENCRYPT/DECRYPT", "SIGN/VERIFY"] | None = None
    origin: Literal["Aliyun_KMS", "EXTERNAL"] = "Aliyun_KMS"
    protection_level: Literal["SOFTWARE", "HSM"] = "SOFTWARE"
    enable_automatic_rotation: Flag = False
    rotation_interval: KeyRotationInterval | None = None
    tags: CreateTags = {}
    policy: PolicyText | None = None
    dkms_instance_id: Annotated[str, Field(max_length=128)] | None = Field(None, alias="DKMSInstanceId")
    key_storage_mechanism: Name | None = None

    @field_validator("key_usage")
    @classmethod
    def _usage(cls, v: str | None, info: Any) -> str | None:
        # A usage the spec cannot serve is a shape rule of the pair.
        spec = keyspecs.SPECS.get(info.data.get("key_spec", ""))
        if v is not None and spec is not None and v not in spec.usages:
            raise ValueError("KeyUsage")
        return v


class CreateKeyResponse(Response):
    key_metadata: dict


def create_key(req: CreateKeyRequest, ctx: Context) -> CreateKeyResponse:
    if req.dkms_instance_id is not None:
        raise errors.ForbiddenDKMSInstanceNotFound()
    if req.key_storage_mechanism is not None:  # only meaningful inside an HSM instance
        raise errors.InvalidParameter(name="KeyStorageMechanism")
    if req.protection_level == "HSM":
        raise errors.UnsupportedProtectionLevel()
    spec = keyspecs.SPECS[req.key_spec]
    if not crypto.spec_supported(req.key_spec):  # EC_SM2 on a host without OpenSSL 3
        raise errors.UnsupportedOperation()
    if req.origin == "EXTERNAL" and not spec.symmetric:  # only symmetric material can be imported
        raise errors.InvalidParameter(name="Origin")
    if req.enable_automatic_rotation:
        if req.rotation_interval is None:
            raise errors.MissingParameter(name="RotationInterval")
        if req.origin == "EXTERNAL" or not spec.symmetric:  # the service cannot rotate these
            raise errors.UnsupportedOperation()
    if Key.count(ctx.store, ctx.scope) >= ctx.config.key_quota:
        raise errors.LimitExceeded()

    now = int(ctx.now)
    key = Key(
        scope=ctx.scope,
        key_id=str(uuid.uuid4()),
        creation_date=now,
        creator=ctx.account_id,
        description=req.description,
        key_spec=req.key_spec,
        key_usage=req.key_usage or spec.default_usage,
        origin=req.origin,
        protection_level=req.protection_level,
        state=lifecycle.PENDING_IMPORT if req.origin == "EXTERNAL" else lifecycle.ENABLED,
        automatic_rotation=req.enable_automatic_rotation,
        rotation_interval=req.rotation_interval if req.enable_automatic_rotation else None,
        tags=req.tags,
        policy=req.policy,
    )
    if req.origin == "Aliyun_KMS":
        # The version row goes first: if the key write then fails, no key points at it (the
        # deletion sweep removes it later).
        key.primary_key_version = versions.create(ctx, key, 1, crypto.new_key_material(req.key_spec), now)
        key.version_count, key.last_rotation_date = 1, now
    key.insert(ctx.store)
    return CreateKeyResponse(key_metadata=keys.metadata(ctx, key))


handler = api_handler(__name__, CreateKeyRequest, create_key)
