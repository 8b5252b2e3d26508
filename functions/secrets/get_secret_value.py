"""GetSecretValue: a secret's value, by VersionId or VersionStage (ACSCurrent when neither is given).

When both are given the version must carry the stage. A secret in its recovery window refuses reads
(the reference leaves this open; refusing is what makes the window useful for finding callers).
Errors: MissingParameter, InvalidParameter, Forbidden.ResourceNotFound (secret, version or stage),
Rejected.ResourceInDeleteWindow, Forbidden.KeyNotFound / Rejected.Disabled / Rejected.PendingDeletion
(encryption key), UnsupportedOperation (Recipient), DryRunOperationError.
"""

from __future__ import annotations

from alikms.shared import errors, keys, secrets
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Flag, Recipient, Response, SecretName, SecretVersionId, StageLabel
from alikms.shared.runtime import api_handler


class GetSecretValueRequest(ApiModel):
    secret_name: SecretName
    version_id: SecretVersionId | None = None
    version_stage: StageLabel | None = None
    fetch_extended_config: Flag = False
    dry_run: Flag = False
    recipient: Recipient | None = None


class GetSecretValueResponse(Response):
    secret_name: str
    secret_type: str
    secret_data: str
    secret_data_type: str
    version_id: str
    version_stages: dict
    create_time: str


def get_secret_value(req: GetSecretValueRequest, ctx: Context) -> GetSecretValueResponse:
    if req.recipient is not None:
        raise errors.UnsupportedOperation()
    secret = secrets.get_live(ctx, req.secret_name)
    if req.version_id is not None:
        vid = req.version_id
        if req.version_stage is not None and secret.stages.get(req.version_stage) != vid:
            raise errors.ResourceNotFound()
    else:
        staged = secret.stages.get(req.version_stage or secrets.CURRENT)
        if staged is None:
            raise errors.ResourceNotFound()
        vid = staged
    data, data_type = secrets.read_value(ctx, secret, vid)
    return GetSecretValueResponse(
        secret_name=secret.name, secret_type=secret.secret_type,
        secret_data=data, secret_data_type=data_type, version_id=vid,
        version_stages={"VersionStage": secrets.labels_of(secret, vid)}, create_time=keys.iso(secret.create_time))


handler = api_handler(__name__, GetSecretValueRequest, get_secret_value)
