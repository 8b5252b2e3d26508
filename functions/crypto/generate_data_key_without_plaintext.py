"""GenerateDataKeyWithoutPlaintext: like GenerateDataKey, but only the encrypted data key comes back.

Errors: as GenerateDataKey.
"""

from __future__ import annotations

from alikms.shared import crypto, envelope
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, DataKeyBytes, DataKeySpec, EncryptionContext, Flag, KeyIdParam, Response
from alikms.shared.runtime import api_handler


class GenerateDataKeyWithoutPlaintextRequest(ApiModel):
    key_id: KeyIdParam
    key_spec: DataKeySpec | None = None
    number_of_bytes: DataKeyBytes | None = None
    encryption_context: EncryptionContext = None
    dry_run: Flag = False


class GenerateDataKeyWithoutPlaintextResponse(Response):
    ciphertext_blob: str
    key_id: str
    key_version_id: str


def generate_data_key_without_plaintext(req: GenerateDataKeyWithoutPlaintextRequest,
                                        ctx: Context) -> GenerateDataKeyWithoutPlaintextResponse:
    key = envelope.encryption_key(ctx, req.key_id)
    data_key = crypto.random_bytes(envelope.data_key_size(req.number_of_bytes, req.key_spec))
    blob, vid = envelope.encrypt(ctx, key, data_key, req.encryption_context)
    return GenerateDataKeyWithoutPlaintextResponse(ciphertext_blob=blob, key_id=key.key_id,
                                                   key_version_id=vid)


handler = api_handler(__name__, GenerateDataKeyWithoutPlaintextRequest, generate_data_key_without_plaintext)
