"""AsymmetricSign: sign a digest with a SIGN/VERIFY key version.

Digest is base64 of the 32-byte hash the algorithm uses: SHA-256 for RSA_PSS_SHA_256 (salt length
32), RSA_PKCS1_SHA_256 and ECDSA_SHA_256 (DER signature); SM3(Z_A || M) for SM2DSA (DER).
Errors: MissingParameter, InvalidParameter (Algorithm for the spec, Digest length/encoding),
Forbidden.KeyNotFound, Forbidden.AliasNotFound, Forbidden.KeyVersionNotFound,
Rejected.UnsupportedOperation (not a signing key), Rejected.Disabled / PendingDeletion /
PendingImport, DryRunOperationError.
"""

from __future__ import annotations

import base64

from alikms.shared import asymmetric, keyspecs
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Digest, Flag, KeyIdParam, KeyVersionIdParam, Name, Response
from alikms.shared.runtime import api_handler


class AsymmetricSignRequest(ApiModel):
    key_id: KeyIdParam
    key_version_id: KeyVersionIdParam
    algorithm: Name
    digest: Digest
    dry_run: Flag = False


class AsymmetricSignResponse(Response):
    key_id: str
    key_version_id: str
    value: str


def asymmetric_sign(req: AsymmetricSignRequest, ctx: Context) -> AsymmetricSignResponse:
    digest = asymmetric.digest(req.digest)
    key, private = asymmetric.usable(ctx, req.key_id, req.key_version_id, keyspecs.SIGN_VERIFY, req.algorithm)
    signature = asymmetric.sign(private, req.algorithm, digest)
    return AsymmetricSignResponse(key_id=key.key_id, key_version_id=req.key_version_id,
                                  value=base64.b64encode(signature).decode())


handler = api_handler(__name__, AsymmetricSignRequest, asymmetric_sign)
