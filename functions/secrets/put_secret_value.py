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
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Response, SecretData, SecretName, SecretVersionId, StageLabel
from alikms.shared.records import Secret
from alikms.shared.runtime import api_handler
from alikms.shared.store import StoreUnavailable

Stages = Annotated[list[StageLabel], Field(min_length=1, max_length=32)]


class _Wrapped(BaseModel):  # the 2021 example's form
    model_config = ConfigDict(extra="forbid", strict=True)
    VersionStage: Stages


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
    version_stages: Annotated[list[str] | None,
                              jsonparam.param(jsonparam.shape(Stages | _Wrapped), 16384, _unique)] = None


class PutSecretValueResponse(Response):
    secret_name: str
    version_id: str
    version_stages: dict


class _Listed(Exception):
    """The version appeared meanwhile (a racing put of the same VersionId)."""


def put_secret_value(req: PutSecretValueRequest, ctx: Context) -> PutSecretValueResponse:
    secrets.check_data(req.secret_data, req.secret_data_type)
    secret = secrets.get_live(ctx, req.secret_name)
    if secret.secret_type != "Generic":
        raise errors.UnsupportedOperation()
    key = secrets.encryption_key(ctx, secret.encryption_key_id)
    if secrets.listed(secret, req.version_id) is None:
        # The value first, under a row key of its own: until the secret lists it, it is part of
        # nothing, and a refused put takes it away again.
        value = secrets.store_value(ctx, secret, req.version_id, req.secret_data, req.secret_data_type, key)
        stages = req.version_stages or [secrets.CURRENT]
        dropped: list[dict] = []

        def add(row: Secret) -> None:
            if secrets.listed(row, req.version_id) is not None:
                raise _Listed()
            dropped[:] = secrets.attach(row, req.version_id, value.row, stages, int(ctx.now))

        try:
            secret = secrets.mutate(ctx, req.secret_name, add)
        except StoreUnavailable:
            raise  # the update may still have landed: the value stays (the sweep removes it if unlisted)
        except (errors.KmsError, _Listed) as exc:
            value.remove(ctx.store)
            if not isinstance(exc, _Listed):
                raise
            secret = secrets.get_live(ctx, req.secret_name)
        else:
            secrets.delete_values(ctx, secret.name, dropped)
            return _answer(secret, req.version_id)
    # The version exists: a repeat of the same put succeeds and changes nothing.
    if not secrets.same_value(ctx, secret, req.version_id, req.secret_data, req.secret_data_type):
        raise errors.ResourceExist()
    return _answer(secret, req.version_id)


def _answer(secret: Secret, vid: str) -> PutSecretValueResponse:
    return PutSecretValueResponse(secret_name=secret.name, version_id=vid,
                                  version_stages={"VersionStage": secrets.labels_of(secret, vid)})


handler = api_handler(__name__, PutSecretValueRequest, put_secret_value)
