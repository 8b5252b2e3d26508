"""The Function Compute event path (shared/wire.py `decode_event`): an event of any shape or size is
answered with a documented 4xx and an audit record, never a 500, and bounded like the runner's
requests before anything in it is used."""

from __future__ import annotations

import json

import pytest

from alikms.shared import audit
from tests import support
from tests.conftest import make_event


def handle(event) -> tuple[int, dict]:
    import importlib

    from alikms.shared import registry

    result = importlib.import_module(registry.action("DescribeRegions").module).handler(event, None)
    return result["statusCode"], json.loads(result["body"])


def event_with(**changes) -> dict:
    ev = json.loads(make_event("DescribeRegions", {}))
    ev.update(changes)
    return ev


@pytest.mark.parametrize("label,event", [
    ("not JSON", b"{"),
    ("a list", b"[]"),
    ("over the event limit", json.dumps(event_with(body="A=" + "x" * 3_000_000)).encode()),
    ("headers a list", event_with(headers=[["host", "x"]])),
    ("a header value a number", event_with(headers={"host": 1})),
    ("a header value an object", event_with(headers={"authorization": {"a": 1}})),
    ("query a string", event_with(queryParameters="Action=DescribeRegions")),
    ("a query value a number", event_with(queryParameters={"Action": 5})),
    ("requestContext a list", event_with(requestContext=[1])),
    ("http a string", event_with(requestContext={"http": "x"})),
    ("body a number", event_with(body=5)),
    ("body bad base64", event_with(body="!!!", isBase64Encoded=True)),
    ("5,000 query parameters", event_with(queryParameters={f"p{i}": "v" for i in range(5000)})),
    ("600 KB of query", event_with(queryParameters={"p": "v" * 600_000})),
    ("200 headers", event_with(headers={f"x-h{i}": "v" for i in range(200)})),
    ("40 KB of headers", event_with(headers={"host": "h", "x-big": "v" * 40_000})),
])
def test_a_malformed_or_oversized_event_is_a_documented_4xx(local_env, monkeypatch, label, event):
    monkeypatch.setenv("KMS_AUDIT_STDOUT", "false")
    status, body = handle(event)
    assert (status, body["Code"]) == (400, "ParseRequestParameterException"), (label, body)
    assert [r["RequestId"] for r in audit.events(local_env)] == [body["RequestId"]]


def test_the_largest_legal_event_is_served(local_env):
    """A gateway event carrying a query at the classic SDK's largest (about 330 KB) is served."""
    params = {"Description": "\u6587" * 8192, "Tags": json.dumps([{"TagKey": f"k{i}", "TagValue": "v" * 128}
                                                                 for i in range(20)])}
    event = make_event("CreateKey", params)
    assert len(event) > 40_000
    import importlib

    from alikms.shared import registry

    result = importlib.import_module(registry.action("CreateKey").module).handler(event, None)
    assert result["statusCode"] == 200, result["body"]
    assert json.loads(result["body"])["KeyMetadata"]["Description"] == params["Description"]
    assert support.TEST_ACCOUNT in result["body"]
