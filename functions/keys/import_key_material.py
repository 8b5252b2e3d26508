"""ImportKeyMaterial: import key material wrapped with GetParametersForImport's public key.

Material size per spec: Aliyun_AES_256 32 bytes, Aliyun_AES_192 24, Aliyun_AES_128 and Aliyun_SM4 16.
KeyMaterialExpireUnix: 0 or omitted means never; otherwise not in the past. Import moves
PendingImport to Enabled; importing again (to change the expiry, or after expiry or
DeleteKeyMaterial) is allowed with the same material only. The material always becomes version 1
with the same id, so ciphertexts made before an expiry decrypt again after a re-import. The
material lives in the key record, so the whole import is one conditional write.
Errors: MissingParameter, InvalidParameter, InvalidKeyMaterial, InvalidImportToken,
ExpiredImportToken, Unsupported.Origin, Forbidden.KeyNotFound, Rejected.StateModifiedFailed
(PendingDeletion).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from alikms.shared import byok, errors, keys, lifecycle, versions
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response, UnixTime
from alikms.shared.records import Key
from alikms.shared.runtime import api_handler


class ImportKeyMaterialRequest(ApiModel):
    key_id: KeyIdParam
    encrypted_key_material: Annotated[str, Field(min_length=1, max_length=8192)]
    import_token: Annotated[str, Field(min_length=1, max_length=256)]
    key_material_expire_unix: UnixTime = 0


class ImportKeyMaterialResponse(Response):
    pass


def import_key_material(req: ImportKeyMaterialRequest, ctx: Context) -> ImportKeyMaterialResponse:
    key = keys.get_key(ctx, req.key_id)
    if key.origin != "EXTERNAL":
        raise errors.UnsupportedOrigin()
    lifecycle.require("import_material", key)
    if req.key_material_expire_unix and req.key_material_expire_unix < ctx.now:
        raise errors.InvalidParameter(name="KeyMaterialExpireUnix")
    material = byok.unwrap_material(ctx, key, req.import_token, req.encrypted_key_material)
    fingerprint = key.material_fingerprint or byok.fingerprint(ctx, key.key_id, material)

    def imported(row: Key) -> None:
        # Material, binding, state and expiry change in this one conditional write of the key record.
        if row.material_fingerprint and not byok.bound_to(ctx, row, material):
            raise errors.InvalidKeyMaterial()  # another import of different material won the race
        if row.state == lifecycle.PENDING_IMPORT:
            row.state = lifecycle.ENABLED
        versions.import_into(ctx, row, material, ctx.now)
        row.material_fingerprint = row.material_fingerprint or fingerprint
        row.material_expire_time = req.key_material_expire_unix or None

    keys.mutate(ctx, key.key_id, "import_material", imported)
    return ImportKeyMaterialResponse()


handler = api_handler(__name__, ImportKeyMaterialRequest, import_key_material)
