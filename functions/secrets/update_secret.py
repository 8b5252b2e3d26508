"""UpdateSecret: change a secret's description. `ExtendedConfig.CustomData` belongs to managed secret
types (RDS, RAM, ECS...), which this service does not run; on a Generic secret it is refused.

Errors: MissingParameter, InvalidParameter, Forbidden.ResourceNotFound, Rejected.ResourceInDeleteWindow.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, model_validator

from alikms.shared import errors, secrets
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Response, SecretName
from alikms.shared.records import Secret
from alikms.shared.runtime import api_handler


class UpdateSecretRequest(ApiModel):
    secret_name: SecretName
    description: Annotated[str, Field(max_length=8192)] | None = None
    # Tea flattens the model to ExtendedConfig.CustomData.<k>; the classic SDK sends one JSON field.
    extended_config_custom_data: Annotated[str, Field(max_length=1024)] | None = Field(
        None, alias="ExtendedConfig.CustomData")

    @model_validator(mode="before")
    @classmethod
    def _flattened(cls, data: Any) -> Any:
        if isinstance(data, dict) and any(str(k).startswith("ExtendedConfig.CustomData.") for k in data):
            data = {**data, "ExtendedConfig.CustomData": "{}"}
        return data


class UpdateSecretResponse(Response):
    secret_name: str


def update_secret(req: UpdateSecretRequest, ctx: Context) -> UpdateSecretResponse:
    if req.extended_config_custom_data is not None:
        raise errors.InvalidParameter(name="ExtendedConfig.CustomData")
    def describe(secret: Secret) -> None:
        if req.description is not None:
            secret.description = req.description

    secret = secrets.mutate(ctx, req.secret_name, describe)
    return UpdateSecretResponse(secret_name=secret.name)


handler = api_handler(__name__, UpdateSecretRequest, update_secret)
