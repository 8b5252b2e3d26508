"""GetPublicKey: the public key of an asymmetric key version, as PEM (SubjectPublicKeyInfo).

Errors: MissingParameter, Forbidden.KeyNotFound, Forbidden.AliasNotFound, Forbidden.KeyVersionNotFound,
Rejected.UnsupportedOperation (symmetric key), Rejected.Disabled / PendingDeletion / PendingImport,
DryRunOperationError.
"""

from __future__ import annotations

from alikms.shared import asymmetric
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Flag, KeyIdParam, KeyVersionIdParam, Response
from alikms.shared.runtime import api_handler


class GetPublicKeyRequest(ApiModel):
    key_id: KeyIdParam
    key_version_id: KeyVersionIdParam
    dry_run: Flag = False


class GetPublicKeyResponse(Response):
    key_id: str
    key_version_id: str
    public_key: str


def get_public_key(req: GetPublicKeyRequest, ctx: Context) -> GetPublicKeyResponse:
    key, private = asymmetric.any_usage(ctx, req.key_id, req.key_version_id)
    return GetPublicKeyResponse(key_id=key.key_id, key_version_id=req.key_version_id,
                                public_key=asymmetric.public_pem(private))


handler = api_handler(__name__, GetPublicKeyRequest, get_public_key)
