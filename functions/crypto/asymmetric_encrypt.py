"""AsymmetricEncrypt: encrypt a short plaintext with an ENCRYPT/DECRYPT key version's public key.

RSAES_OAEP_SHA_256 (MGF1-SHA-256) and RSAES_OAEP_SHA_1 (MGF1-SHA-1) for RSA, SM2PKE for EC_SM2;
plaintext caps 190/214 bytes (RSA_2048), 318/342 (RSA_3072), 6047 (SM2). The output is the
standard ciphertext, so anyone holding the public key could have made it.
Errors: MissingParameter, InvalidParameter (Algorithm, Plaintext encoding or size),
Forbidden.KeyNotFound, Forbidden.AliasNotFound, Forbidden.KeyVersionNotFound,
Rejected.UnsupportedOperation, Rejected.Disabled / PendingDeletion / PendingImport, DryRunOperationError.
"""

from __future__ import annotations

import base64

from alikms.shared import asymmetric, errors, keyspecs
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Base64Bytes, Flag, KeyIdParam, KeyVersionIdParam, Name, Response
from alikms.shared.runtime import api_handler


class AsymmetricEncryptRequest(ApiModel):
    key_id: KeyIdParam
    key_version_id: KeyVersionIdParam
    algorithm: Name
    # The cap for the key's spec and algorithm is checked below. (A type made per action: models.py.)
    plaintext: Base64Bytes(8192)  # type: ignore[valid-type]
    dry_run: Flag = False


class AsymmetricEncryptResponse(Response):
    ciphertext_blob: str
    key_id: str
    key_version_id: str


def asymmetric_encrypt(req: AsymmetricEncryptRequest, ctx: Context) -> AsymmetricEncryptResponse:
    key, private = asymmetric.usable(ctx, req.key_id, req.key_version_id, keyspecs.ENCRYPT_DECRYPT, req.algorithm)
    if not 1 <= len(req.plaintext) <= keyspecs.SPECS[key.key_spec].encrypt[req.algorithm]:
        raise errors.InvalidParameter(name="Plaintext")
    ciphertext = asymmetric.encrypt(private, req.algorithm, req.plaintext)
    return AsymmetricEncryptResponse(ciphertext_blob=base64.b64encode(ciphertext).decode(), key_id=key.key_id,
                                     key_version_id=req.key_version_id)


handler = api_handler(__name__, AsymmetricEncryptRequest, asymmetric_encrypt)
