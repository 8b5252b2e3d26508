"""UpdateSecretVersionStage: attach, detach or move a stage label between versions of a Generic secret.

MoveToVersion alone attaches the label (taking it off whichever version had it); RemoveFromVersion
alone detaches a custom label; both move it, and the label must be on RemoveFromVersion. ACSCurrent
and ACSPrevious can only be moved. Moving ACSCurrent leaves ACSPrevious on the version that was
current, as PutSecretValue does (the reference leaves this open).
Errors: MissingParameter, InvalidParameter, Rejected.InvalidRequest (label not on RemoveFromVersion),
Rejected.UnsupportedOperation, Rejected.LimitExceeded, Forbidden.ResourceNotFound (secret or version),
Rejected.ResourceInDeleteWindow.
"""

from __future__ import annotations

from alikms.shared import errors, secrets
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Response, SecretName, SecretVersionId, StageLabel
from alikms.shared.records import Secret
from alikms.shared.runtime import api_handler


class UpdateSecretVersionStageRequest(ApiModel):
    secret_name: SecretName
    version_stage: StageLabel
    remove_from_version: SecretVersionId | None = None
    move_to_version: SecretVersionId | None = None


class UpdateSecretVersionStageResponse(Response):
    secret_name: str


def _apply(req: UpdateSecretVersionStageRequest, secret: Secret) -> None:
    if secret.secret_type != "Generic":
        raise errors.RejectedUnsupportedOperation()
    known = {v["id"] for v in secret.versions}
    for vid in (req.remove_from_version, req.move_to_version):
        if vid is not None and vid not in known:
            raise errors.ResourceNotFound()
    holder = secret.stages.get(req.version_stage)
    if req.remove_from_version is not None and holder != req.remove_from_version:
        raise errors.InvalidRequest()
    if req.move_to_version is not None:
        secrets.move_label(secret, req.version_stage, req.move_to_version)
    else:
        del secret.stages[req.version_stage]


def update_secret_version_stage(req: UpdateSecretVersionStageRequest, ctx: Context) -> UpdateSecretVersionStageResponse:
    builtin = req.version_stage in (secrets.CURRENT, secrets.PREVIOUS)
    if req.move_to_version is None and (builtin or req.remove_from_version is None):
        raise errors.MissingParameter(name="MoveToVersion")
    secret = secrets.mutate(ctx, req.secret_name, lambda row: _apply(req, row))
    return UpdateSecretVersionStageResponse(secret_name=secret.name)


handler = api_handler(__name__, UpdateSecretVersionStageRequest, update_secret_version_stage)
