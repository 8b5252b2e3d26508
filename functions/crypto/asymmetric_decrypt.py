"""AsymmetricDecrypt: decrypt an RSA-OAEP or SM2 ciphertext with an ENCRYPT/DECRYPT key version.

Any ciphertext that does not decrypt gets one detail-free InvalidParameter on CiphertextBlob.
Errors: MissingParameter, InvalidParameter, Forbidden.KeyNotFound, Forbidden.AliasNotFound,
Forbidden.KeyVersionNotFound, Rejected.UnsupportedOperation (also Recipient: it needs an attestation
service this deployment lacks), Rejected.Disabled / PendingDeletion / PendingImport, DryRunOperationError.
"""

from __future__ import annotations

import base64

from alikms.shared import asymmetric, errors, keyspecs
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Base64Bytes, Flag, KeyIdParam, KeyVersionIdParam, Name, Recipient, Response
from alikms.shared.runtime import api_handler


class AsymmetricDecryptRequest(ApiModel):
    key_id: KeyIdParam
    key_version_id: KeyVersionIdParam
    algorithm: Name
    ciphertext_blob: Base64Bytes(8192)  # type: ignore[valid-type]  # (a type made per action: models.py)
    dry_run: Flag = False
    recipient: Recipient | None = None


class AsymmetricDecryptResponse(Response):
    key_id: str
    key_version_id: str
    plaintext: str


def asymmetric_decrypt(req: AsymmetricDecryptRequest, ctx: Context) -> AsymmetricDecryptResponse:
    if req.recipient is not None:
        raise errors.RejectedUnsupportedOperation()
    key, private = asymmetric.usable(ctx, req.key_id, req.key_version_id, keyspecs.ENCRYPT_DECRYPT, req.algorithm)
    plaintext = asymmetric.decrypt(private, req.algorithm, req.ciphertext_blob)
    return AsymmetricDecryptResponse(key_id=key.key_id, key_version_id=req.key_version_id,
                                     plaintext=base64.b64encode(plaintext).decode())


handler = api_handler(__name__, AsymmetricDecryptRequest, asymmetric_decrypt)
