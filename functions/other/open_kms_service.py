"""OpenKmsService: open KMS for the calling account. Once only.

Errors: Forbidden.Opened when the account has already opened it (the bootstrap account of a local
runner starts opened unless KMS_AUTO_OPEN=false).
"""

from __future__ import annotations

from alikms.shared import accounts
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Response
from alikms.shared.runtime import api_handler


class OpenKmsServiceRequest(ApiModel):
    pass


class OpenKmsServiceResponse(Response):
    pass


def open_kms_service(req: OpenKmsServiceRequest, ctx: Context) -> OpenKmsServiceResponse:
    accounts.open_service(ctx.store, ctx.config, ctx.account_id, ctx.now)
    return OpenKmsServiceResponse()


handler = api_handler(__name__, OpenKmsServiceRequest, open_kms_service)
