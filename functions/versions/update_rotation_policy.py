"""UpdateRotationPolicy: turn automatic rotation on (with RotationInterval, 7-730 days as in the 2021
reference) or off. NextRotationDate = LastRotationDate + interval; when that is already past, the
key rotates now rather than waiting for the next sweep.

Errors: MissingParameter (EnableAutomaticRotation; RotationInterval when enabling), InvalidParameter
("RotationInterval"), Forbidden.KeyNotFound, Rejected.UnsupportedOperation (imported or asymmetric
keys), Rejected.Disabled / PendingDeletion / PendingImport.
"""

from __future__ import annotations

from alikms.shared import errors, keys, keyspecs, versions
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Flag, KeyIdParam, KeyRotationInterval, Response
from alikms.shared.records import Key
from alikms.shared.runtime import api_handler


class UpdateRotationPolicyRequest(ApiModel):
    key_id: KeyIdParam
    enable_automatic_rotation: Flag
    rotation_interval: KeyRotationInterval | None = None


class UpdateRotationPolicyResponse(Response):
    pass


def _apply(req: UpdateRotationPolicyRequest, key: Key) -> None:
    if key.origin == "EXTERNAL" or key.key_spec not in keyspecs.SYMMETRIC:
        raise errors.RejectedUnsupportedOperation()
    if req.enable_automatic_rotation:
        key.automatic_rotation, key.rotation_interval = True, req.rotation_interval
    else:
        key.automatic_rotation, key.rotation_interval = False, None


def update_rotation_policy(req: UpdateRotationPolicyRequest, ctx: Context) -> UpdateRotationPolicyResponse:
    if req.enable_automatic_rotation and req.rotation_interval is None:
        raise errors.MissingParameter(name="RotationInterval")
    key = keys.mutate(ctx, req.key_id, "rotation_policy", lambda k: _apply(req, k))
    versions.rotate(ctx, key.key_id, ctx.now, guard=lambda k: versions.rotation_due(k, ctx.now))
    return UpdateRotationPolicyResponse()


handler = api_handler(__name__, UpdateRotationPolicyRequest, update_rotation_policy)
