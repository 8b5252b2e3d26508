"""CreateKeyVersion: a new version of a key, created here with fresh material.

The sources disagree on scope. Asymmetric keys follow the 2021 reference: the key must be Enabled,
at least 7 days after its last version (LastRotationDate), at most 50 versions; the new version is
used by naming its KeyVersionId. Symmetric keys follow the later reference (the 2021 one did not
allow them): the new version becomes the primary version at once (manual rotation), no waiting
period, but at most MAX_SYMMETRIC_VERSIONS versions (the later reference counts each version against the
instance's quota; without a bound a caller could make versions without end, and ListKeyVersions reads
them all). LastRotationDate moves to now either way. Keys with imported material cannot get versions.
Errors: MissingParameter, Forbidden.KeyNotFound, Forbidden.AliasNotFound,
Rejected.UnsupportedOperation (imported material; a new asymmetric version within 7 days),
Rejected.LimitExceeded (50 asymmetric or 1,000 symmetric versions), Rejected.Disabled / PendingDeletion /
PendingImport.
"""

from __future__ import annotations

from alikms.shared import errors, keys, keyspecs, lifecycle, versions
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.records import Key, retrying
from alikms.shared.runtime import api_handler
from alikms.shared.store import Conflict

MIN_ASYMMETRIC_GAP = 7 * 86400
MAX_ASYMMETRIC_VERSIONS = 50
MAX_SYMMETRIC_VERSIONS = 1000  # a new version a day for almost three years; automatic rotation is not counted


class CreateKeyVersionRequest(ApiModel):
    key_id: KeyIdParam


class CreateKeyVersionResponse(Response):
    key_version: dict


def _allowed(key: Key, now: float) -> bool:
    lifecycle.require("use", lifecycle.effective(key, now))  # the key-state table comes first
    if key.origin == "EXTERNAL":
        raise errors.RejectedUnsupportedOperation()
    if key.key_spec in keyspecs.ASYMMETRIC:
        assert key.last_rotation_date is not None  # set when the key and each version are made
        if key.last_rotation_date + MIN_ASYMMETRIC_GAP > now:
            raise errors.RejectedUnsupportedOperation("A new version needs 7 days since the last one.")
        if key.version_count >= MAX_ASYMMETRIC_VERSIONS:
            raise errors.LimitExceeded()
    elif key.version_count >= MAX_SYMMETRIC_VERSIONS:
        raise errors.LimitExceeded()
    return True


def create_key_version(req: CreateKeyVersionRequest, ctx: Context) -> CreateKeyVersionResponse:
    key = keys.get_key(ctx, req.key_id)

    def rotate() -> str:
        vid = versions.rotate(ctx, key.key_id, ctx.now, guard=lambda k: _allowed(k, ctx.now))
        if vid is None:
            if not keys.live(ctx, key.key_id):
                raise errors.KeyNotFound()
            raise Conflict("the key changed meanwhile")
        return vid

    vid = retrying(rotate)
    return CreateKeyVersionResponse(key_version={"CreationDate": keys.iso(ctx.now), "KeyId": key.key_id,
                                                 "KeyVersionId": vid})


handler = api_handler(__name__, CreateKeyVersionRequest, create_key_version)
