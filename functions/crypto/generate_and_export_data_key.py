"""GenerateAndExportDataKey: a new data key, returned encrypted twice: under the KMS key's primary
version (CiphertextBlob) and under the caller's public key (ExportedDataKey). Never in plaintext.

Sizes as GenerateDataKey (NumberOfBytes 1-1024 wins over KeySpec AES_256/AES_128; default 32),
but no longer than the wrapping can carry; wrapping as ExportDataKey.
Errors: MissingParameter, InvalidParameter, Forbidden.KeyNotFound, Forbidden.AliasNotFound,
UnsupportedOperation (not a symmetric key), Rejected.Disabled / PendingDeletion / PendingImport,
DryRunOperationError.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from alikms.shared import asymmetric, crypto, envelope
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, DataKeyBytes, DataKeySpec, EncryptionContext, Flag, KeyIdParam, Response
from alikms.shared.runtime import api_handler


class GenerateAndExportDataKeyRequest(ApiModel):
    key_id: KeyIdParam
    key_spec: DataKeySpec | None = None
    number_of_bytes: DataKeyBytes | None = None
    public_key_blob: Annotated[str, Field(min_length=1, max_length=8192)]
    wrapping_key_spec: Literal["RSA_2048", "EC_SM2"]
    wrapping_algorithm: Literal["RSAES_OAEP_SHA_256", "RSAES_OAEP_SHA_1", "SM2PKE"]
    encryption_context: EncryptionContext = None
    dry_run: Flag = False


class GenerateAndExportDataKeyResponse(Response):
    ciphertext_blob: str
    exported_data_key: str
    key_id: str
    key_version_id: str


def generate_and_export_data_key(req: GenerateAndExportDataKeyRequest,
                                 ctx: Context) -> GenerateAndExportDataKeyResponse:
    key = envelope.encryption_key(ctx, req.key_id)
    data_key = crypto.random_bytes(envelope.data_key_size(req.number_of_bytes, req.key_spec))
    exported = asymmetric.export(req.public_key_blob, req.wrapping_key_spec, req.wrapping_algorithm, data_key,
                                 "NumberOfBytes")
    blob, vid = envelope.encrypt(ctx, key, data_key, req.encryption_context)
    return GenerateAndExportDataKeyResponse(ciphertext_blob=blob, exported_data_key=exported, key_id=key.key_id,
                                            key_version_id=vid)


handler = api_handler(__name__, GenerateAndExportDataKeyRequest, generate_and_export_data_key)
