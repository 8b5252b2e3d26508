"""ExportDataKey: re-encrypt a data key (a blob from GenerateDataKey*) under a public key the caller
supplies, so it can be handed to another system that holds the private key.

WrappingKeySpec RSA_2048 with RSAES_OAEP_SHA_256 / RSAES_OAEP_SHA_1, or EC_SM2 with SM2PKE.
PublicKeyBlob is base64 DER SubjectPublicKeyInfo and must match the spec. KeyId / KeyVersionId
name the key version that decrypted the blob. A data key longer than the wrapping can carry (190
bytes for OAEP-SHA-256, 214 for OAEP-SHA-1 with RSA_2048) is refused.
Errors: MissingParameter, InvalidParameter (blob, context, public key, spec/algorithm pair),
Rejected.Disabled / PendingDeletion / PendingImport, DryRunOperationError.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from alikms.shared import asymmetric, envelope
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, EncryptionContext, Flag, Response
from alikms.shared.runtime import api_handler


class ExportDataKeyRequest(ApiModel):
    ciphertext_blob: Annotated[str, Field(min_length=1, max_length=16384)]
    public_key_blob: Annotated[str, Field(min_length=1, max_length=8192)]
    wrapping_key_spec: Literal["RSA_2048", "EC_SM2"]
    wrapping_algorithm: Literal["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "SM2PKE"]
    encryption_context: EncryptionContext = None
    dry_run: Flag = False


class ExportDataKeyResponse(Response):
    exported_data_key: str
    key_id: str
    key_version_id: str


def export_data_key(req: ExportDataKeyRequest, ctx: Context) -> ExportDataKeyResponse:
    key, vid, data_key = envelope.decrypt(ctx, req.ciphertext_blob, req.encryption_context)
    exported = asymmetric.export(req.public_key_blob, req.wrapping_key_spec, req.wrapping_algorithm, data_key,
                                 "CiphertextBlob")
    return ExportDataKeyResponse(exported_data_key=exported, key_id=key.key_id, key_version_id=vid)


handler = api_handler(__name__, ExportDataKeyRequest, export_data_key)
