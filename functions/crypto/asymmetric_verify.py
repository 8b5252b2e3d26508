"""AsymmetricVerify: check a signature over a digest with a SIGN/VERIFY key version.

A signature that does not verify (or is not even well-formed) is a normal answer: 200 with
Value false. Errors as AsymmetricSign, plus InvalidParameter for a Value that is not base64.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from pydantic import Field

from alikms.shared import asymmetric, errors, keyspecs
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Digest, Flag, KeyIdParam, KeyVersionIdParam, Name, Response
from alikms.shared.runtime import api_handler


class AsymmetricVerifyRequest(ApiModel):
    key_id: KeyIdParam
    key_version_id: KeyVersionIdParam
    algorithm: Name
    digest: Digest
    value: Annotated[str, Field(max_length=2048)]  # base64 of a signature: RSA_3072's 384 bytes at most
    dry_run: Flag = False


class AsymmetricVerifyResponse(Response):
    key_id: str
    key_version_id: str
    value: bool


def asymmetric_verify(req: AsymmetricVerifyRequest, ctx: Context) -> AsymmetricVerifyResponse:
    digest = asymmetric.digest(req.digest)
    try:
        signature = base64.b64decode(req.value, validate=True)
    except (binascii.Error, ValueError):
        raise errors.InvalidParameter(name="Value") from None
    key, private = asymmetric.usable(ctx, req.key_id, req.key_version_id, keyspecs.SIGN_VERIFY, req.algorithm)
    return AsymmetricVerifyResponse(key_id=key.key_id, key_version_id=req.key_version_id,
                                    value=asymmetric.verify(private, req.algorithm, digest, signature))


handler = api_handler(__name__, AsymmetricVerifyRequest, asymmetric_verify)
