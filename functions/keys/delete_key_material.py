"""DeleteKeyMaterial: delete an EXTERNAL key's imported material. The key stays, in PendingImport,
until the same material is imported again; a key in PendingDeletion keeps its state and DeleteDate.

Errors: MissingParameter, Unsupported.Origin, Forbidden.KeyNotFound.
"""

from __future__ import annotations

from alikms.shared import errors, keys, versions
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, KeyIdParam, Response
from alikms.shared.runtime import api_handler


class DeleteKeyMaterialRequest(ApiModel):
    key_id: KeyIdParam


class DeleteKeyMaterialResponse(Response):
    pass


def delete_key_material(req: DeleteKeyMaterialRequest, ctx: Context) -> DeleteKeyMaterialResponse:
    key = keys.get_key(ctx, req.key_id)
    if key.origin != "EXTERNAL":
        raise errors.UnsupportedOrigin()
    keys.mutate(ctx, key.key_id, "describe", versions.drop_imported)
    # Rows of material imported before it moved into the key record: no longer part of the key
    # once the record above is saved, so removing them last is safe to repeat.
    versions.delete_all(ctx, key.key_id)
    return DeleteKeyMaterialResponse()


handler = api_handler(__name__, DeleteKeyMaterialRequest, delete_key_material)
