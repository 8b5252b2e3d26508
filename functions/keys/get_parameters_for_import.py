"""GetParametersForImport: a wrapping public key (base64 DER) and an import token for an EXTERNAL key.

RSA_2048 with RSAES_PKCS1_V1_5, RSAES_OAEP_SHA_1 or RSAES_OAEP_SHA_256 (MGF1 with the same hash),
or EC_SM2 with SM2PKE. The token is bound to this key, valid 24 hours and reusable meanwhile; every
call makes a new pair. Allowed in every key state.
Errors: MissingParameter, InvalidParameter (spec/algorithm), Unsupported.Origin, Forbidden.KeyNotFound.
"""

from __future__ import annotations

import base64
from typing import Literal

from alikms.shared import byok, errors, keys
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.runtime import api_handler


class GetParametersForImportRequest(ApiModel):
    key_id: KeyIdParam
    wrapping_algorithm: Literal["RSAES_PKCS1_V1_5", "RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"]
    wrapping_key_spec: Literal["RSA_2048", "EC_SM2"]


class GetParametersForImportResponse(Response):
    import_token: str
    key_id: str
    public_key: str
    token_expire_time: str


def get_parameters_for_import(req: GetParametersForImportRequest, ctx: Context) -> GetParametersForImportResponse:
    key = keys.get_key(ctx, req.key_id)
    if key.origin != "EXTERNAL":
        raise errors.UnsupportedOrigin()
    token, public_der, expires = byok.new_token(ctx, key.key_id, req.wrapping_key_spec, req.wrapping_algorithm)
    return GetParametersForImportResponse(import_token=token, key_id=key.key_id,
                                          public_key=base64.b64encode(public_der).decode(),
                                          token_expire_time=keys.iso(expires))


handler = api_handler(__name__, GetParametersForImportRequest, get_parameters_for_import)
