"""ListSecretVersionIds: a secret's versions, oldest first; unlabelled versions only with
IncludeDeprecated=true. Paged, 20 per page by default (1-100). Values are never returned.

Errors: MissingParameter, InvalidParameter, Forbidden.ResourceNotFound.
"""

from __future__ import annotations

from alikms.shared import keys, secrets
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Flag, PageNumber, PageSize100, Response, SecretName, page
from alikms.shared.runtime import api_handler


class ListSecretVersionIdsRequest(ApiModel):
    secret_name: SecretName
    include_deprecated: Flag = False
    page_number: PageNumber = 1
    page_size: PageSize100 = 20


class ListSecretVersionIdsResponse(Response):
    secret_name: str
    version_ids: dict
    total_count: int
    page_number: int
    page_size: int


def list_secret_version_ids(req: ListSecretVersionIdsRequest, ctx: Context) -> ListSecretVersionIdsResponse:
    secret = secrets.get(ctx, req.secret_name)
    entries = [{"VersionId": v["id"], "CreateTime": keys.iso(v["created"]),
                "VersionStages": {"VersionStage": secrets.labels_of(secret, v["id"])}}
               for v in secret.versions]
    if not req.include_deprecated:
        entries = [e for e in entries if e["VersionStages"]["VersionStage"]]
    return ListSecretVersionIdsResponse(secret_name=secret.name,
                                        version_ids={"VersionId": page(entries, req.page_number, req.page_size)},
                                        total_count=len(entries), page_number=req.page_number, page_size=req.page_size)


handler = api_handler(__name__, ListSecretVersionIdsRequest, list_secret_version_ids)
