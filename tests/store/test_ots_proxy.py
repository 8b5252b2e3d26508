"""The fault-injecting proxy and the fake's injected errors do what tests rely on them for."""

from __future__ import annotations

import json

import pytest
import urllib3
from tablestore import Condition, OTSServiceError, Row, RowExistenceExpectation
from tablestore.retry import NoRetryPolicy

from alikms.testing.fake_tablestore import http_client
from alikms.testing.ots_proxy import OtsProxy

# What a client sees of a dropped connection: the server closed or reset it without an answer.
DROPPED = (urllib3.exceptions.ProtocolError, ConnectionError)


class RawStore:
    """Rows through a bare OTSClient: no retries anywhere, so every fault reaches the test."""

    def __init__(self, url, backend):
        self.client = http_client(url, backend, retry_policy=NoRetryPolicy())
        self.client.connection.pool.connection_pool_kw["retries"] = False

    def put_new(self, table, pk, sk, data):
        row = Row([("pk", pk), ("sk", "#" + sk)], [("rev", 1), ("data", json.dumps(data))])
        self.client.put_row("kms_" + table, row, Condition(RowExistenceExpectation.EXPECT_NOT_EXIST))

    def get(self, table, pk, sk):
        _, row, _ = self.client.get_row("kms_" + table, [("pk", pk), ("sk", "#" + sk)], max_version=1)
        return row


@pytest.fixture
def raw(ots_proxy, ots_backend):
    return RawStore(ots_proxy.url, ots_backend)


def _row(store, sk):
    return store.get("keys", "scope", sk)


def test_traffic_passes_unchanged(raw, ots_proxy):
    raw.put_new("keys", "scope", "a", {"v": 1})
    assert _row(raw, "a") is not None
    assert ots_proxy.stats["requests"] == 2
    assert [action for action, _ in ots_proxy.log] == ["PutRow", "GetRow"]


def test_drop_before_never_reaches_the_server(raw, ots_proxy, tablestore_store):
    ots_proxy.drop_before(action="PutRow", count=1)
    with pytest.raises(DROPPED):  # a connection error, not an answer
        raw.put_new("keys", "scope", "a", {"v": 1})  # a connection error, not an answer
    assert _row(tablestore_store, "a") is None  # same backend, read in process
    raw.put_new("keys", "scope", "a", {"v": 2})  # the rule fired once; traffic flows again
    assert _row(tablestore_store, "a") is not None
    assert ots_proxy.stats["drop_before:PutRow"] == 1


def test_drop_after_applies_but_loses_the_answer(raw, ots_proxy, tablestore_store):
    ots_proxy.drop_after(action="PutRow", count=1)
    with pytest.raises(DROPPED):  # a connection error, not an answer
        raw.put_new("keys", "scope", "a", {"v": 1})
    assert _row(tablestore_store, "a").data == {"v": 1}
    assert ots_proxy.stats["drop_after"] == 1


def test_held_request_outlasts_a_short_socket_timeout(ots_proxy, ots_backend):
    client = http_client(ots_proxy.url, ots_backend, socket_timeout=0.2, retry_policy=NoRetryPolicy())
    client.connection.pool.connection_pool_kw["retries"] = False
    ots_proxy.delay(5.0, action="GetRow", count=1)
    with pytest.raises(urllib3.exceptions.ReadTimeoutError):
        client.get_row("kms_keys", [("pk", "scope"), ("sk", "#a")], max_version=1)
    assert ots_proxy.stats["delay:GetRow"] == 1


def test_probabilities_follow_the_seed(ots_http, ots_backend):
    def pattern(seed):
        with OtsProxy(ots_http, seed=seed) as proxy:
            proxy.latency = 0.001
            proxy.delay(0.001, probability=0.5)
            client = http_client(proxy.url, ots_backend)
            for _ in range(20):
                client.list_table()
            return [fault for _, fault in proxy.log]

    first = pattern(7)
    assert first == pattern(7)
    assert 0 < first.count("delay") < 20


def test_rules_can_be_cleared_at_runtime(raw, ots_proxy):
    ots_proxy.drop_before()
    with pytest.raises(DROPPED):
        _row(raw, "a")
    ots_proxy.clear()
    assert _row(raw, "a") is None


@pytest.mark.parametrize("code,status", [("OTSServerBusy", 503), ("OTSTimeout", 503)])
def test_fake_answers_injected_errors(raw, tablestore_store, ots_backend, code, status):
    ots_backend.inject(code, action="PutRow")
    with pytest.raises(OTSServiceError) as caught:
        raw.put_new("keys", "scope", "a", {"v": 1})
    assert (caught.value.get_error_code(), caught.value.get_http_status()) == (code, status)
    assert _row(tablestore_store, "a") is None  # before applying: nothing written
    raw.put_new("keys", "scope", "a", {"v": 1})  # count=1: the next one goes through
    assert ots_backend.injected == [("PutRow", code)]


def test_fake_error_after_apply_keeps_the_write(raw, tablestore_store, ots_backend):
    ots_backend.inject("OTSTimeout", action="PutRow", after_apply=True)
    with pytest.raises(OTSServiceError):
        raw.put_new("keys", "scope", "a", {"v": 1})
    assert _row(tablestore_store, "a") is not None
