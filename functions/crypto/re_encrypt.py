"""ReEncrypt: move a ciphertext to another key (or to the newest version of the same key) without
the plaintext leaving the service.

The response's KeyId / KeyVersionId name the destination key and the version that now protects the
data (the reference leaves open whether source or destination ids come back; the destination is
what a caller needs to keep). Asymmetric source ciphertexts (SourceKeyId, SourceKeyVersionId,
SourceEncryptionAlgorithm, all three required together) are decrypted with that key version's
private key: for example an ExportedDataKey or anything encrypted outside with the public key.

Errors: MissingParameter, InvalidParameter (bad source ciphertext or context),
Forbidden.KeyNotFound (destination), UnsupportedOperation, Rejected.* key states on either side,
DryRunOperationError.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from pydantic import Field

from alikms.shared import asymmetric, envelope, errors, keyspecs
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, EncryptionContext, Flag, KeyIdParam, KeyVersionIdParam, Name, Response
from alikms.shared.runtime import api_handler


class ReEncryptRequest(ApiModel):
    ciphertext_blob: Annotated[str, Field(min_length=1, max_length=16384)]
    destination_key_id: KeyIdParam
    destination_encryption_context: EncryptionContext = None
    source_encryption_context: EncryptionContext = None
    source_key_id: KeyIdParam | None = None
    source_key_version_id: KeyVersionIdParam | None = None
    source_encryption_algorithm: Name | None = None
    dry_run: Flag = False


class ReEncryptResponse(Response):
    ciphertext_blob: str
    key_id: str
    key_version_id: str


def re_encrypt(req: ReEncryptRequest, ctx: Context) -> ReEncryptResponse:
    destination = envelope.encryption_key(ctx, req.destination_key_id)
    source = (req.source_key_id, req.source_key_version_id, req.source_encryption_algorithm)
    if any(v is not None for v in source):
        key_id, version_id, algorithm = source
        if key_id is None or version_id is None or algorithm is None:
            raise errors.MissingParameter(name=("SourceKeyId", "SourceKeyVersionId", "SourceEncryptionAlgorithm")
                                          [source.index(None)])
        _, private = asymmetric.usable(ctx, key_id, version_id, keyspecs.ENCRYPT_DECRYPT, algorithm,
                                       "SourceEncryptionAlgorithm")
        try:
            raw = base64.b64decode(req.ciphertext_blob, validate=True)
        except (binascii.Error, ValueError):
            raise envelope.bad_ciphertext() from None
        plaintext = asymmetric.decrypt(private, algorithm, raw)
    else:
        _, _, plaintext = envelope.decrypt(ctx, req.ciphertext_blob, req.source_encryption_context)
    blob, vid = envelope.encrypt(ctx, destination, plaintext, req.destination_encryption_context)
    return ReEncryptResponse(ciphertext_blob=blob, key_id=destination.key_id, key_version_id=vid)


handler = api_handler(__name__, ReEncryptRequest, re_encrypt)
