"""PutSecretValue: store a new version of a Generic secret.

Without VersionStages the new version becomes ACSCurrent and the old current becomes ACSPrevious.
VersionStages is a JSON array (`["ACSCurrent","MyLabel"]`); the 2021 example's
`{"VersionStage": [...]}` form is accepted too. The same VersionId with the same data succeeds
again without change; with other data it is refused. Beyond 10 versions the oldest unlabelled one
is dropped (2021 rule).
Errors: MissingParameter, InvalidParameter, Forbidden.ResourceNotFound, Rejected.ResourceExist,
Rejected.ResourceInDeleteWindow, Rejected.LimitExceeded, key errors as GetSecretValue.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from alikms.shared import errors, jsonparam, secrets
from alikms.shared.models import ApiModel, Response, SecretData, SecretName, SecretVersionId, StageLabel
from alikms.shared.context import Context
from alikms.shared.runtime import api_handler


Stages = Annotated[list[StageLabel], Field(min_length=1, max_length=32)]


class _Wrapped(BaseModel):  # the 2021 example's form
    model_config = ConfigDict(extra="forbid", strict=True)
    VersionStage: Stages  # noqa: N815 - the wire name


def _unique(doc: list[str] | _Wrapped) -> list[str]:
    stages = doc.VersionStage if isinstance(doc, _Wrapped) else doc
    if len(stages) != len(set(stages)):
        raise ValueError("VersionStages")
    return stages


class PutSecretValueRequest(ApiModel):
    secret_name: SecretName
    version_id: SecretVersionId
    secret_data: SecretData
    secret_data_type: Literal["text", "binary"] = "text"
    version_stages: Annotated[list[str] | None, jsonparam.param(jsonparam.shape(Stages | _Wrapped), 16384, _unique)] = None


class PutSecretValueResponse(Response):
    secret_name: str
    version_id: str
    version_stages: dict


def put_secret_value(req: PutSecretValueRequest, ctx: Context) -> PutSecretValueResponse:
    secrets.check_data(req.secret_data, req.secret_data_type)
    secret, _ = secrets.get_live(ctx, req.secret_name)
    if secret["secret_type"] != "Generic":
        raise errors.UnsupportedOperation()
    key = secrets.encryption_key(ctx, secret["encryption_key_id"])
    # The value row first: if the stage update below never lands, the row is invisible and a retry
    # with the same VersionId and data adopts it.
    created = secrets.write_version(ctx, secret, req.version_id, req.secret_data, req.secret_data_type, key)
    stages = req.version_stages or [secrets.CURRENT]
    dropped: list[str] = []

    def add(row: dict) -> None:
        if any(v["id"] == req.version_id for v in row["versions"]):
            return  # the same version was stored before: an idempotent repeat changes nothing
        dropped[:] = secrets.attach(row, req.version_id, stages, int(ctx.now))

    try:
        secret = secrets.mutate(ctx, req.secret_name, add)
    except errors.KmsError:
        if created:  # a refused put leaves nothing behind, not even the value row it wrote
            secrets.delete_version_rows(ctx, secret["name"], [req.version_id])
        raise
    secrets.delete_version_rows(ctx, secret["name"], dropped)
    return PutSecretValueResponse(secret_name=secret["name"], version_id=req.version_id,
                                  version_stages={"VersionStage": secrets.labels_of(secret, req.version_id)})


handler = api_handler(__name__, PutSecretValueRequest, put_secret_value)
