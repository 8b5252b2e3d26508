"""GenerateDataKey: a random data key, returned in plaintext (base64) and encrypted under the key's
primary version. NumberOfBytes (1-1024) wins over KeySpec (AES_256 = 32, AES_128 = 16); default 32.
The service keeps no copy of the data key.

Errors: MissingParameter, InvalidParameter, Forbidden.KeyNotFound, UnsupportedOperation (wrong key
type, or Recipient), Rejected.Disabled / PendingDeletion / PendingImport, DryRunOperationError.
"""

from __future__ import annotations

import base64

from alikms.shared import crypto, envelope, errors
from alikms.shared.context import Context
from alikms.shared.models import (
    ApiModel,
    DataKeyBytes,
    DataKeySpec,
    EncryptionContext,
    Flag,
    KeyIdParam,
    Recipient,
    Response,
)
from alikms.shared.runtime import api_handler


class GenerateDataKeyRequest(ApiModel):
    key_id: KeyIdParam
    key_spec: DataKeySpec | None = None
    number_of_bytes: DataKeyBytes | None = None
    encryption_context: EncryptionContext = None
    dry_run: Flag = False
    recipient: Recipient | None = None


class GenerateDataKeyResponse(Response):
    ciphertext_blob: str
    key_id: str
    key_version_id: str
    plaintext: str


def generate_data_key(req: GenerateDataKeyRequest, ctx: Context) -> GenerateDataKeyResponse:
    if req.recipient is not None:
        raise errors.UnsupportedOperation()
    key = envelope.encryption_key(ctx, req.key_id)
    data_key = crypto.random_bytes(envelope.data_key_size(req.number_of_bytes, req.key_spec))
    blob, vid = envelope.encrypt(ctx, key, data_key, req.encryption_context)
    return GenerateDataKeyResponse(ciphertext_blob=blob, key_id=key.key_id,
                                   key_version_id=vid,
                                   plaintext=base64.b64encode(data_key).decode())


handler = api_handler(__name__, GenerateDataKeyRequest, generate_data_key)
