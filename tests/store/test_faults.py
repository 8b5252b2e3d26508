"""Store faults on Tablestore: retried where safe, recognised when our own write landed, reported
as StoreUnavailable (503 ServiceUnavailableTemporary) within a bounded number of attempts."""

from __future__ import annotations

import pytest
from tablestore.retry import DefaultRetryPolicy, NoRetryPolicy

from alikms.shared import errors
from alikms.shared.store import Conflict, StoreUnavailable
from alikms.shared.store.tablestore import TablestoreStore
from alikms.testing.fake_tablestore import http_client


@pytest.fixture
def store(ots_proxy, ots_backend):
    """A store through the proxy with short timeouts, so that giving up takes a fraction of a second."""
    made = TablestoreStore(http_client(ots_proxy.url, ots_backend), deadline=0.6, connect_timeout=0.2,
                           read_timeout=0.2)
    yield made
    made.close()


def test_store_is_the_only_retrying_layer(store):
    assert isinstance(store._client.retry_policy, NoRetryPolicy)
    client = http_client("http://127.0.0.1:1", retry_policy=DefaultRetryPolicy())
    TablestoreStore(client)
    assert isinstance(client.retry_policy, NoRetryPolicy)
    assert client.connection.pool.connection_pool_kw["retries"] is False


@pytest.mark.parametrize("fault", ["drop_before", "drop_after"])
def test_put_new_survives_a_lost_request_or_answer(store, ots_proxy, tablestore_store, fault):
    getattr(ots_proxy, fault)(action="PutRow", count=1)
    item = store.put_new("keys", "s", "a", {"v": 1})
    assert item.rev == 1
    assert tablestore_store.get("keys", "s", "a").data == {"v": 1}
    assert ots_proxy.stats[f"{fault}:PutRow"] == 1


@pytest.mark.parametrize("fault", ["drop_before", "drop_after"])
def test_update_survives_a_lost_request_or_answer(store, ots_proxy, tablestore_store, fault):
    store.put_new("keys", "s", "a", {"v": 1})
    getattr(ots_proxy, fault)(action="PutRow", count=1)
    assert store.update("keys", "s", "a", {"v": 2}, 1).rev == 2
    row = tablestore_store.get("keys", "s", "a")
    assert (row.rev, row.data) == (2, {"v": 2})


def test_a_dropped_answer_is_not_mistaken_for_a_conflict(store, ots_proxy):
    """The write landed, its answer was lost, the retry meets the row: our token says it was us."""
    ots_proxy.drop_after(action="PutRow", count=1)
    store.put_new("aliases", "s", "alias/a", {"key_id": "k"})
    assert ots_proxy.log.count(("PutRow", "drop_after")) == 1
    assert sum(1 for action, _ in ots_proxy.log if action == "PutRow") == 2  # one retry met the row


def test_a_real_conflict_after_a_lost_request_stays_a_conflict(store, ots_proxy, tablestore_store):
    tablestore_store.put_new("aliases", "s", "alias/a", {"key_id": "other"})
    ots_proxy.drop_before(action="PutRow", count=1)
    with pytest.raises(Conflict):
        store.put_new("aliases", "s", "alias/a", {"key_id": "mine"})
    tablestore_store.update("aliases", "s", "alias/a", {"key_id": "other2"}, 1)
    ots_proxy.drop_after(action="PutRow", count=1)
    with pytest.raises(Conflict):  # rev 1 is stale: the retry finds someone else's revision
        store.update("aliases", "s", "alias/a", {"key_id": "mine"}, 1)
    assert tablestore_store.get("aliases", "s", "alias/a").data == {"key_id": "other2"}


def test_conditional_delete_whose_answer_was_lost(store, ots_proxy, tablestore_store):
    store.put_new("aliases", "s", "alias/a", {"key_id": "k"})
    ots_proxy.drop_after(action="DeleteRow", count=1)
    store.delete("aliases", "s", "alias/a", 1)
    assert tablestore_store.get("aliases", "s", "alias/a") is None


@pytest.mark.parametrize("code", ["OTSServerBusy", "OTSTimeout", "OTSInternalServerError", "OTSPartitionUnavailable"])
def test_server_errors_are_retried(store, ots_backend, code):
    ots_backend.inject(code, action="GetRow", count=2)
    assert store.get("keys", "s", "a") is None
    ots_backend.inject(code, action="PutRow", count=1, after_apply=code == "OTSTimeout")
    assert store.put_new("keys", "s", "a", {"v": 1}).rev == 1
    ots_backend.inject(code, action="GetRange", count=1)
    assert [i.sk for i in store.query("keys", "s").items] == ["a"]
    assert store.count("keys", "s") == 1


def test_a_write_applied_behind_a_timeout_error_is_ours(store, ots_backend, tablestore_store):
    store.put_new("keys", "s", "a", {"v": 1})
    ots_backend.inject("OTSTimeout", action="PutRow", after_apply=True)
    assert store.update("keys", "s", "a", {"v": 2}, 1).rev == 2
    assert tablestore_store.get("keys", "s", "a").rev == 2


def test_non_transient_errors_are_not_retried(store, ots_backend):
    from tablestore import OTSServiceError

    with pytest.raises(OTSServiceError):
        store._client.get_row("no_such_table", [("pk", "s"), ("sk", "#a")], max_version=1)
    before = len(ots_backend.injected)
    ots_backend.inject("OTSNotEnoughCapacityUnit", action="GetRow", count=1)
    assert store.get("keys", "s", "a") is None  # throttling is transient
    assert len(ots_backend.injected) == before + 1


def test_an_unreachable_store_answers_503_after_a_bounded_number_of_attempts(store, ots_proxy):
    ots_proxy.drop_before()
    with pytest.raises(StoreUnavailable) as caught:
        store.get("keys", "s", "a")
    assert isinstance(caught.value, errors.ServiceUnavailableTemporary)
    assert (caught.value.code, caught.value.status) == ("ServiceUnavailableTemporary", 503)
    assert 2 <= ots_proxy.stats["requests"] <= 40
    with pytest.raises(StoreUnavailable):
        store.put_new("keys", "s", "a", {"v": 1})


def test_a_held_request_times_out_and_the_call_gives_up(store, ots_proxy, tablestore_store):
    ots_proxy.delay(30.0, action="PutRow")  # far beyond the deadline: every attempt is held
    with pytest.raises(StoreUnavailable):
        store.put_new("keys", "s", "a", {"v": 1})
    assert ots_proxy.stats["delay:PutRow"] >= 2  # the first attempt timed out and was retried
    ots_proxy.clear()
    assert tablestore_store.get("keys", "s", "a") is None  # held attempts never reached the server


def test_a_slow_but_answering_store_is_waited_for(store, ots_proxy):
    ots_proxy.delay(0.1, action="GetRow", count=1)  # below the read timeout
    assert store.get("keys", "s", "a") is None
    assert ots_proxy.stats["requests"] == 1
