"""DescribeRegions: the regions this service answers for (one per deployment: KMS_REGION).

A self-hosted service serves exactly the region it is configured for; listing Alibaba's other
regions would point clients at endpoints this deployment does not have.
"""

from __future__ import annotations

from alikms.shared.context import Context
from alikms.shared.models import ApiModel, Response
from alikms.shared.runtime import api_handler


class DescribeRegionsRequest(ApiModel):
    pass


class DescribeRegionsResponse(Response):
    regions: dict


def describe_regions(req: DescribeRegionsRequest, ctx: Context) -> DescribeRegionsResponse:
    return DescribeRegionsResponse(regions={"Region": [{"RegionId": ctx.region}]})


handler = api_handler(__name__, DescribeRegionsRequest, describe_regions)
