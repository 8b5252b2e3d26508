"""Decrypt: decrypt a blob made by Encrypt, GenerateDataKey* or ReEncrypt. No KeyId: the blob names
its key and version, so ciphertexts from before any number of rotations keep decrypting.

Errors: MissingParameter, InvalidParameter (one detail-free error for any unknown, malformed,
tampered or foreign blob, or a different EncryptionContext), Rejected.Disabled / PendingDeletion /
PendingImport, UnsupportedOperation (Recipient: needs an attestation service this deployment
lacks), DryRunOperationError.
"""

from __future__ import annotations

import base64
from typing import Annotated

from pydantic import Field

from alikms.shared import envelope, errors
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, EncryptionContext, Flag, Recipient, Response
from alikms.shared.runtime import api_handler


class DecryptRequest(ApiModel):
    ciphertext_blob: Annotated[str, Field(min_length=1, max_length=16384)]
    encryption_context: EncryptionContext = None
    dry_run: Flag = False
    recipient: Recipient | None = None


class DecryptResponse(Response):
    key_id: str
    key_version_id: str
    plaintext: str


def decrypt(req: DecryptRequest, ctx: Context) -> DecryptResponse:
    if req.recipient is not None:
        raise errors.UnsupportedOperation()
    key, vid, plaintext = envelope.decrypt(ctx, req.ciphertext_blob, req.encryption_context)
    return DecryptResponse(key_id=key.key_id, key_version_id=vid, plaintext=base64.b64encode(plaintext).decode())


handler = api_handler(__name__, DecryptRequest, decrypt)
