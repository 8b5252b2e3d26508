"""CreateKeyVersion: a new version of a symmetric key, which becomes its primary version (manual
rotation); LastRotationDate moves to now.

The sources disagree: the 2021 reference allows this for asymmetric keys only, the later one for
symmetric keys only. Symmetric keys follow the later rule (Enabled, service-generated material; no
waiting period); asymmetric keys get the 2021 rules when they arrive.
Errors: MissingParameter, Forbidden.KeyNotFound, Rejected.UnsupportedOperation (imported material or
a non-symmetric key), Rejected.Disabled / PendingDeletion / PendingImport.
"""

from __future__ import annotations

from shared import envelope, errors, keys, lifecycle, versions
from shared.models import ApiModel, KeyIdParam, Response
from shared.runtime import Context, api_handler


class CreateKeyVersionRequest(ApiModel):
    key_id: KeyIdParam


class CreateKeyVersionResponse(Response):
    key_version: dict


def _allowed(key: dict) -> bool:
    if key["origin"] == "EXTERNAL" or key["key_spec"] not in envelope.SYMMETRIC_SPECS:
        raise errors.RejectedUnsupportedOperation()
    lifecycle.require("use", key)
    return True


def create_key_version(req: CreateKeyVersionRequest, ctx: Context) -> CreateKeyVersionResponse:
    key, _ = keys.get_key(ctx, req.key_id)
    for _ in range(8):
        vid = versions.rotate(ctx, key["key_id"], ctx.now, guard=_allowed)
        if vid is not None:
            return CreateKeyVersionResponse(key_version={"CreationDate": keys.iso(ctx.now), "KeyId": key["key_id"],
                                                         "KeyVersionId": vid})
    raise errors.StateModifiedFailed()


handler = api_handler(__name__, CreateKeyVersionRequest, create_key_version)
