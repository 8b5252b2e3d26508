"""DescribeAccountKmsStatus: `Enabled` once the account opened KMS, else `NotEnabled`."""

from __future__ import annotations

from alikms.shared import accounts
from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Response
from alikms.shared.runtime import api_handler


class DescribeAccountKmsStatusRequest(ApiModel):
    pass


class DescribeAccountKmsStatusResponse(Response):
    account_status: str


def describe_account_kms_status(req: DescribeAccountKmsStatusRequest, ctx: Context) -> DescribeAccountKmsStatusResponse:
    return DescribeAccountKmsStatusResponse(account_status=accounts.status(ctx.store, ctx.config, ctx.account_id))


handler = api_handler(__name__, DescribeAccountKmsStatusRequest, describe_account_kms_status)
