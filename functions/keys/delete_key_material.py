"""DeleteKeyMaterial: delete an EXTERNAL key's imported material. The key stays, in PendingImport,
until the same material is imported again; a key in PendingDeletion keeps its state and DeleteDate.

Errors: MissingParameter, Unsupported.Origin, Forbidden.KeyNotFound.
"""

from __future__ import annotations

from alikms.shared import errors, keys, lifecycle, versions
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.context import Context
from alikms.shared.runtime import api_handler


class DeleteKeyMaterialRequest(ApiModel):
    key_id: KeyIdParam


class DeleteKeyMaterialResponse(Response):
    pass


def delete_key_material(req: DeleteKeyMaterialRequest, ctx: Context) -> DeleteKeyMaterialResponse:
    key, _ = keys.get_key(ctx, req.key_id)
    if key["origin"] != "EXTERNAL":
        raise errors.UnsupportedOrigin()

    def forget(row: dict) -> None:
        if row["state"] != lifecycle.PENDING_DELETION:
            row["state"] = lifecycle.PENDING_IMPORT
        row.update(primary_key_version=None, material_expire_time=None)

    keys.mutate(ctx, key["key_id"], "describe", forget)
    # The key row no longer points at the material, so removing the rows last is safe to retry.
    versions.delete_all(ctx, key["key_id"])
    return DeleteKeyMaterialResponse()


handler = api_handler(__name__, DeleteKeyMaterialRequest, delete_key_material)
