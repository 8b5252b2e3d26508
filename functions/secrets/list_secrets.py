"""ListSecrets: the account's secrets in this region, by name, paged (PageSize 1-100, default 10).

Filters: up to 10 `{"Key", "Values"}`; Keys SecretName and Description match when a value is a
substring (the console's fuzzy search), TagKey, TagValue, SecretType, Creator and DKMSInstanceId
match exactly. Values of one Key are OR-ed, Keys AND-ed. Secrets in their recovery window are
listed with PlannedDeleteTime.
Errors: InvalidParameter.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BeforeValidator

from alikms.shared import secrets
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Flag, PageNumber, PageSize100, Response, page, parse_filters
from alikms.shared.records import Secret
from alikms.shared.runtime import api_handler

_FIELDS = {
    "SecretName": lambda s: [s.name],
    "Description": lambda s: [s.description],
    "TagKey": lambda s: list(s.tags),
    "TagValue": lambda s: list(s.tags.values()),
    "SecretType": lambda s: [s.secret_type],
    "Creator": lambda s: [s.creator],
    "DKMSInstanceId": lambda s: [],
}
_FUZZY = ("SecretName", "Description")


def _matches(secret: Secret, name: str, wanted: set[str]) -> bool:
    have = _FIELDS[name](secret)
    if name in _FUZZY:
        return any(w in h for w in wanted for h in have)
    return bool(set(have) & wanted)


class ListSecretsRequest(ApiModel):
    page_number: PageNumber = 1
    page_size: PageSize100 = 10
    fetch_tags: Flag = False
    filters: Annotated[dict[str, set[str]], BeforeValidator(lambda v: parse_filters(v, _FIELDS, 256))] = {}


class ListSecretsResponse(Response):
    secret_list: dict
    total_count: int
    page_number: int
    page_size: int


def list_secrets(req: ListSecretsRequest, ctx: Context) -> ListSecretsResponse:
    rows = [s for s in Secret.all(ctx.store, ctx.scope)
            if not secrets.is_gone(s, ctx.now) and all(_matches(s, n, w) for n, w in req.filters.items())]
    listed = [secrets.public(ctx, s, req.fetch_tags) for s in page(rows, req.page_number, req.page_size)]
    return ListSecretsResponse(secret_list={"Secret": listed}, total_count=len(rows), page_number=req.page_number,
                               page_size=req.page_size)


handler = api_handler(__name__, ListSecretsRequest, list_secrets)
