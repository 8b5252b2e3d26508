"""Encrypt: encrypt up to 6 KB with the primary version of a symmetric key.

The 6 KB limit is taken as 6144 bytes of decoded plaintext (the reference says "up to 6KB").
Errors: MissingParameter, InvalidParameter (plaintext not base64, too long, bad context),
Forbidden.KeyNotFound, UnsupportedOperation (not a symmetric ENCRYPT/DECRYPT key),
Rejected.Disabled / PendingDeletion / PendingImport, DryRunOperationError.
"""

from __future__ import annotations

from alikms.shared import envelope
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Base64Bytes, EncryptionContext, Flag, KeyIdParam, Response
from alikms.shared.runtime import api_handler

MAX_PLAINTEXT = 6144


class EncryptRequest(ApiModel):
    key_id: KeyIdParam
    plaintext: Base64Bytes(MAX_PLAINTEXT)  # type: ignore[valid-type]  # (a type made per action: models.py)
    encryption_context: EncryptionContext = None
    dry_run: Flag = False


class EncryptResponse(Response):
    ciphertext_blob: str
    key_id: str
    key_version_id: str


def encrypt(req: EncryptRequest, ctx: Context) -> EncryptResponse:
    key = envelope.encryption_key(ctx, req.key_id)
    blob, vid = envelope.encrypt(ctx, key, req.plaintext, req.encryption_context)
    return EncryptResponse(ciphertext_blob=blob, key_id=key.key_id, key_version_id=vid)


handler = api_handler(__name__, EncryptRequest, encrypt)
