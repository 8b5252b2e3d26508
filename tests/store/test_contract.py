"""One contract for every Store backend, plus checks of the Tablestore wire fake itself.

The contract runs against SQLite (a file in tmp_path), against TablestoreStore driving the real
`tablestore` SDK into the wire-level fake, and against the in-memory store of the test double.
Concurrency tests give every thread its own store object on the same file / the same fake backend,
so the conditional writes themselves have to decide."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
import tablestore as ots
from tablestore.auth import RequestContext
from tablestore.protobuf import table_store_pb2 as pb
from tablestore.retry import NoRetryPolicy

from alikms.shared.store.base import TABLES, Conflict, Item
from alikms.shared.store.memory import MemoryData, MemoryStore
from alikms.shared.store.sqlite import SqliteStore
from alikms.shared.store.tablestore import EnvCredentialsProvider, TablestoreStore, client_from_config, create_tables
from alikms.testing.fake_tablestore import SDK_LOGGER, FakeTablestore, fake_client
from tests.fakes.tablestore_fixtures import ots_backend, ots_client, ots_http, tablestore_store  # noqa: F401

THREADS = 8


@pytest.fixture
def sqlite(tmp_path):
    """Opens another SqliteStore on the same file each call."""
    return lambda: SqliteStore(tmp_path / "kms.sqlite3")


@pytest.fixture
def tablestore(ots_backend, ots_client):  # noqa: F811 - ots_client creates the tables
    """Opens another TablestoreStore (own OTSClient) on the same fake backend each call."""
    return lambda: TablestoreStore(fake_client(ots_backend))


@pytest.fixture
def memory():
    """Opens another MemoryStore on the same data each call."""
    data = MemoryData()
    return lambda: MemoryStore(data)


@pytest.fixture(params=["sqlite", "tablestore", "memory"])
def open_store(request):
    return request.getfixturevalue(request.param)


@pytest.fixture
def store(open_store):
    s = open_store()
    yield s
    s.close()


def race(open_store, attempt) -> list:
    """Run attempt(store, i) on THREADS threads released together; returns the ones that won."""
    barrier, winners, errors = threading.Barrier(THREADS, timeout=20), [], []
    stores = [open_store() for _ in range(THREADS)]

    def run(i: int) -> None:
        try:
            barrier.wait()
            attempt(stores[i], i)
            winners.append(i)
        except Conflict:
            pass
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            stores[i].close()

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    return winners


# --- single-row operations -----------------------------------------------------------------------

def test_get_missing_row(store):
    assert store.get("keys", "scope", "absent") is None
    assert store.get("accounts", "nobody") is None


def test_put_new_then_conflict(store):
    item = store.put_new("keys", "scope", "k1", {"state": "Enabled"})
    assert item == Item("scope", "k1", {"state": "Enabled"}, 1)
    assert store.get("keys", "scope", "k1") == item
    with pytest.raises(Conflict):
        store.put_new("keys", "scope", "k1", {"state": "Other"})
    assert store.get("keys", "scope", "k1").data == {"state": "Enabled"}
    # The same key in another table or partition is a different row.
    assert store.put_new("aliases", "scope", "k1", {}).rev == 1
    assert store.put_new("keys", "other", "k1", {}).rev == 1


def test_update_checks_revision(store):
    store.put_new("secrets", "scope", "s", {"v": 1})
    assert store.update("secrets", "scope", "s", {"v": 2}, 1) == Item("scope", "s", {"v": 2}, 2)
    assert store.get("secrets", "scope", "s") == Item("scope", "s", {"v": 2}, 2)
    for stale in (1, 3):
        with pytest.raises(Conflict):
            store.update("secrets", "scope", "s", {"v": "stale"}, stale)
    with pytest.raises(Conflict):
        store.update("secrets", "scope", "missing", {"v": 1}, 1)
    assert store.get("secrets", "scope", "missing") is None
    assert store.update("secrets", "scope", "s", {"v": 3}, 2).rev == 3
    assert store.get("secrets", "scope", "s") == Item("scope", "s", {"v": 3}, 3)


def test_a_write_through_another_store_object_is_read_at_once(open_store):
    """Each store object may cache reads (SQLite does, per process); no cache may hide a write."""
    a, b = open_store(), open_store()
    try:
        a.put_new("keys", "scope", "k", {"v": 1})
        assert b.get("keys", "scope", "k") == Item("scope", "k", {"v": 1}, 1)
        a.update("keys", "scope", "k", {"v": 2}, 1)
        assert b.get("keys", "scope", "k") == Item("scope", "k", {"v": 2}, 2)
        a.delete("keys", "scope", "k", expected_rev=2)
        assert b.get("keys", "scope", "k") is None
        a.put_new("keys", "scope", "k", {"v": 3})
        assert b.get("keys", "scope", "k") == Item("scope", "k", {"v": 3}, 1)
        a.delete("keys", "scope", "k")
        assert b.get("keys", "scope", "k") is None
    finally:
        a.close()
        b.close()


def test_changing_a_row_read_changes_nothing_stored(store):
    store.put_new("keys", "scope", "k", {"v": 1, "tags": ["a"]})
    first = store.get("keys", "scope", "k")
    first.data["v"] = "changed"
    first.data["tags"].append("b")
    assert store.get("keys", "scope", "k").data == {"v": 1, "tags": ["a"]}


def test_delete_with_and_without_revision(store):
    store.delete("keys", "scope", "absent")  # no error without expected_rev
    with pytest.raises(Conflict):
        store.delete("keys", "scope", "absent", expected_rev=1)
    store.put_new("keys", "scope", "k", {})
    store.update("keys", "scope", "k", {"n": 1}, 1)
    with pytest.raises(Conflict):
        store.delete("keys", "scope", "k", expected_rev=1)
    assert store.get("keys", "scope", "k").rev == 2
    store.delete("keys", "scope", "k", expected_rev=2)
    assert store.get("keys", "scope", "k") is None
    store.put_new("keys", "scope", "k", {"again": True})
    assert store.get("keys", "scope", "k").rev == 1
    store.delete("keys", "scope", "k")
    assert store.get("keys", "scope", "k") is None


# --- ranges ---------------------------------------------------------------------------------------

SKS = ["", "0", "10", "9", "A", "a", "a\u00e9", "ab", "b", "z", "\u00e9", "\u4e2d", "\U0001f511"]


def fill(store, pk: str, sks) -> None:
    for sk in random.Random(7).sample(list(sks), len(sks)):
        store.put_new("keys", pk, sk, {"sk": sk})


def test_query_order_limit_and_paging(store):
    fill(store, "p1", SKS)
    fill(store, "p0", ["x"])
    fill(store, "p2", ["", "y"])
    expected = sorted(SKS)  # code-point order, the same as UTF-8 byte order
    page = store.query("keys", "p1")
    assert [i.sk for i in page.items] == expected and page.next is None
    assert all(i.pk == "p1" and i.data == {"sk": i.sk} and i.rev == 1 for i in page.items)

    seen, start, pages = [], None, 0
    while True:
        page = store.query("keys", "p1", start_after=start, limit=3)
        pages += 1
        assert len(page.items) <= 3
        seen += [i.sk for i in page.items]
        if page.next is None:
            break
        assert page.next == page.items[-1].sk
        start = page.next
    assert seen == expected and pages == 5

    exact = store.query("keys", "p1", limit=len(SKS))
    assert len(exact.items) == len(SKS) and exact.next is None
    short = store.query("keys", "p1", limit=len(SKS) - 1)
    assert short.next == expected[-2]
    last = store.query("keys", "p1", start_after=short.next, limit=len(SKS))
    assert [i.sk for i in last.items] == expected[-1:] and last.next is None

    assert [i.sk for i in store.query("keys", "p1", start_after="").items] == expected[1:]
    assert [i.sk for i in store.query("keys", "p1", start_after="a0").items] == [s for s in expected if s > "a0"]
    assert store.query("keys", "p1", start_after=expected[-1]).items == []
    assert store.query("keys", "nobody").items == [] and store.query("keys", "nobody").next is None
    assert [i.sk for i in store.query_all("keys", "p1", page_size=2)] == expected


def test_scan_across_partitions(store):
    rows = {("a", ""), ("a", "x"), ("b", ""), ("b", "m"), ("b", "z"), ("c", "k"), ("c\u00e9", "")}
    for pk, sk in random.Random(3).sample(sorted(rows), len(rows)):
        store.put_new("key_versions", pk, sk, {"at": [pk, sk]})
    expected = sorted(rows)
    assert [(i.pk, i.sk) for i in store.scan("key_versions")] == expected
    assert all(i.data == {"at": [i.pk, i.sk]} for i in store.scan("key_versions"))
    assert [(i.pk, i.sk) for i in store.scan("key_versions", limit=3)] == expected[:3]
    assert [(i.pk, i.sk) for i in store.scan("key_versions", start_after=("b", ""))] == expected[3:]
    after_bn = store.scan("key_versions", start_after=("b", "n"), limit=2)
    assert [(i.pk, i.sk) for i in after_bn] == [("b", "z"), ("c", "k")]
    assert [(i.pk, i.sk) for i in store.scan("key_versions", start_after=("bb", ""))] == expected[5:]
    assert store.scan("key_versions", start_after=expected[-1]) == []
    assert [(i.pk, i.sk) for i in store.scan_all("key_versions", page_size=2)] == expected
    assert store.scan("secret_versions") == []


def test_count(store):
    fill(store, "p1", SKS)
    fill(store, "p2", ["a", "b"])
    assert store.count("keys", "p1") == len(SKS)
    assert store.count("keys", "p2") == 2
    assert store.count("keys", "p") == 0
    store.delete("keys", "p2", "a")
    assert store.count("keys", "p2") == 1


def test_remember_nonce(store):
    assert store.remember_nonce("ak/n1", 1000, 60) is True
    assert store.remember_nonce("ak/n1", 1010, 60) is False  # replay inside the window
    assert store.remember_nonce("ak/n1", 1059, 60) is False
    assert store.remember_nonce("ak/n2", 1010, 60) is True  # another nonce
    assert store.remember_nonce("ak/n1", 1060, 60) is True  # the first use is a window old
    assert store.remember_nonce("ak/n1", 1070, 60) is False  # and now it counts from 1060


def test_unicode_and_large_values(store):
    big = {
        "name": "ключ 🔑 密钥 \u00e9\u0301 \"quoted\" \\ \n\t\x00",
        "blob": "x" * 30000 + "€" * 3000,  # ~40 KB of JSON
        "nested": {"list": [1, 2.5, None, True, {"k": "v"}], "empty": {}},
    }
    item = store.put_new("secret_versions", "scope/\u5bc6", "v\u00e9", big)
    assert item.data == big
    assert store.get("secret_versions", "scope/\u5bc6", "v\u00e9") == Item("scope/\u5bc6", "v\u00e9", big, 1)
    bigger = dict(big, blob=big["blob"] * 2)
    store.update("secret_versions", "scope/\u5bc6", "v\u00e9", bigger, 1)
    assert store.query("keys", "scope/\u5bc6").items == []
    assert store.query("secret_versions", "scope/\u5bc6").items == [Item("scope/\u5bc6", "v\u00e9", bigger, 2)]


# --- concurrency ----------------------------------------------------------------------------------

def test_racing_put_new_has_one_winner(open_store):
    winners = race(open_store, lambda s, i: s.put_new("keys", "scope", "race", {"by": i}))
    assert len(winners) == 1
    s = open_store()
    assert s.get("keys", "scope", "race") == Item("scope", "race", {"by": winners[0]}, 1)
    s.close()


def test_racing_update_has_one_winner(open_store):
    s = open_store()
    s.put_new("keys", "scope", "race", {"by": None})
    winners = race(open_store, lambda st, i: st.update("keys", "scope", "race", {"by": i}, 1))
    assert len(winners) == 1
    assert s.get("keys", "scope", "race") == Item("scope", "race", {"by": winners[0]}, 2)
    winners = race(open_store, lambda st, i: st.delete("keys", "scope", "race", expected_rev=2))
    assert len(winners) == 1 and s.get("keys", "scope", "race") is None
    s.close()


def test_racing_nonce_has_one_winner(open_store):
    assert len(race(open_store, lambda s, i: s.remember_nonce("ak/n", 1000, 60) or _lose())) == 1
    assert len(race(open_store, lambda s, i: s.remember_nonce("ak/n", 2000, 60) or _lose())) == 1


def _lose():
    raise Conflict("nonce seen")


# --- the Tablestore fake and transports -----------------------------------------------------------

def service_error(call, *args, **kwargs) -> ots.OTSServiceError:
    with pytest.raises(ots.OTSServiceError) as info:
        call(*args, **kwargs)
    return info.value


def test_wrong_credentials_are_rejected(ots_backend, ots_client):  # noqa: F811
    for kwargs in ({"access_key_secret": "wrong"}, {"access_key_id": "other"}, {"instance": "elsewhere"}):
        err = service_error(fake_client(ots_backend, **kwargs).list_table)
        assert (err.get_http_status(), err.get_error_code()) == (403, "OTSAuthFailed")
    err = service_error(fake_client(ots_backend, access_key_secret="wrong", region="cn-hangzhou").list_table)
    assert (err.get_http_status(), err.get_error_code()) == (403, "OTSAuthFailed")
    assert len(fake_client(ots_backend, region="cn-hangzhou").list_table()) == len(TABLES)


def test_request_tampering_is_detected(ots_backend, ots_client):  # noqa: F811
    ctx = RequestContext(ots_client.credentials_provider.get_credentials())
    query, headers, body = ots_client.protocol.make_request("DescribeTable", ots_client._signer, ctx, "kms_keys")
    assert ots_backend.handle(query, headers, body)[0] == 200
    assert ots_backend.handle(query, headers, body + b"\0")[0] == 403  # body no longer matches its MD5
    for name, value in (("x-ots-instancename", "kmsfake2"), ("x-ots-date", "2000-01-01T00:00:00.000Z")):
        status, _, _, out = ots_backend.handle(query, dict(headers, **{name: value}), body)
        assert status == 403 and pb.Error.FromString(out).code == "OTSAuthFailed"
    status, _, reply_headers, out = ots_backend.handle("/Nope", headers, body)
    assert status == 400 and pb.Error.FromString(out).code == "OTSUnsupportOperation"
    assert "authorization" not in reply_headers


@pytest.mark.parametrize("region", [None, "cn-hangzhou"])  # V2 and V4 signing
def test_http_transport_end_to_end(ots_http, region):  # noqa: F811
    client = ots.OTSClient(ots_http, "test-akid", "test-secret", "kmsfake", region=region,
                           retry_policy=NoRetryPolicy(), logger_name="alikms.testing.fake_tablestore.sdk")
    store = TablestoreStore(client)
    store.put_new("keys", "scope", "k", {"region": region})
    with pytest.raises(Conflict):
        store.put_new("keys", "scope", "k", {})
    assert store.update("keys", "scope", "k", {"n": 2}, 1).rev == 2
    assert store.query("keys", "scope").items == [Item("scope", "k", {"n": 2}, 2)]
    assert store.count("keys", "scope") == 1
    bad = ots.OTSClient(ots_http, "test-akid", "nope", "kmsfake", region=region, retry_policy=NoRetryPolicy(),
                        logger_name="alikms.testing.fake_tablestore.sdk")
    err = service_error(bad.list_table)
    assert (err.get_http_status(), err.get_error_code()) == (403, "OTSAuthFailed")


def test_http_transport_races(ots_http):  # noqa: F811
    def open_store():
        return TablestoreStore(ots.OTSClient(ots_http, "test-akid", "test-secret", "kmsfake",
                                             retry_policy=NoRetryPolicy(), logger_name=SDK_LOGGER))
    assert len(race(open_store, lambda s, i: s.put_new("keys", "scope", "race", {"by": i}))) == 1


def test_unknown_table_and_bad_keys(ots_client):  # noqa: F811
    err = service_error(ots_client.get_row, "no_such_table", [("pk", "a"), ("sk", "")])
    assert (err.get_http_status(), err.get_error_code()) == (404, "OTSObjectNotExist")
    err = service_error(ots_client.put_row, "kms_keys", ots.Row([("pk", "a")], [("rev", 1)]))
    assert (err.get_http_status(), err.get_error_code()) == (400, "OTSInvalidPK")
    err = service_error(ots_client.get_row, "kms_keys", [("pk", "a"), ("sk", 5)])
    assert err.get_error_code() == "OTSInvalidPK"


def test_table_ddl(ots_client):  # noqa: F811
    assert set(ots_client.list_table()) == set(TABLES.values())
    nonces = ots_client.describe_table("kms_nonces")
    assert nonces.table_meta.schema_of_primary_key == [("pk", "STRING"), ("sk", "STRING")]
    assert (nonces.table_options.time_to_live, nonces.table_options.max_version) == (86400, 1)
    assert ots_client.describe_table("kms_keys").table_options.time_to_live == -1
    create_tables(ots_client)  # idempotent
    meta, options = ots.TableMeta("kms_keys", [("pk", "STRING")]), ots.TableOptions()
    throughput = ots.ReservedThroughput(ots.CapacityUnit(0, 0))
    assert service_error(ots_client.create_table, meta, options, throughput).get_error_code() == "OTSObjectAlreadyExist"
    short_ttl = ots.TableOptions(time_to_live=1800)
    err = service_error(ots_client.create_table, ots.TableMeta("t2", [("pk", "STRING")]), short_ttl, throughput)
    assert (err.get_http_status(), err.get_error_code()) == (400, "OTSParameterInvalid")
    ots_client.delete_table("kms_aliases")
    assert "kms_aliases" not in ots_client.list_table()
    assert service_error(ots_client.describe_table, "kms_aliases").get_error_code() == "OTSObjectNotExist"
    create_tables(ots_client)
    assert "kms_aliases" in ots_client.list_table()


def test_store_follows_short_server_pages(ots_backend, tablestore_store):  # noqa: F811
    ots_backend.page_rows = 2  # the server stops every page after two rows
    fill(tablestore_store, "p", SKS)
    page = tablestore_store.query("keys", "p", limit=5)
    assert [i.sk for i in page.items] == sorted(SKS)[:5] and page.next == sorted(SKS)[4]
    assert tablestore_store.count("keys", "p") == len(SKS)
    assert [i.sk for i in tablestore_store.scan("keys", limit=7)] == sorted(SKS)[:7]


def test_column_conditions_and_update_operations(ots_client):  # noqa: F811
    key = [("pk", "c"), ("sk", "")]
    ots_client.put_row("kms_keys", ots.Row(key, [("rev", 3), ("n", 10), ("s", "on"), ("b", bytearray(b"\x00\xff"))]))
    both = ots.CompositeColumnCondition(ots.LogicalOperator.AND)
    both.add_sub_condition(ots.SingleColumnCondition("rev", 3, ots.ComparatorType.EQUAL))
    both.add_sub_condition(ots.SingleColumnCondition("s", "on", ots.ComparatorType.EQUAL))
    change = ots.Row(key, {"put": [("s", "off")], "increment": [("n", 5)], "delete_all": ["b"]})
    ots_client.update_row("kms_keys", change, ots.Condition(ots.RowExistenceExpectation.EXPECT_EXIST, both))
    _, row, _ = ots_client.get_row("kms_keys", key)
    assert {c[0]: c[1] for c in row.attribute_columns} == {"rev": 3, "n": 15, "s": "off"}
    err = service_error(ots_client.update_row, "kms_keys", change, ots.Condition("IGNORE", both))
    assert (err.get_http_status(), err.get_error_code()) == (403, "OTSConditionCheckFail")
    either = ots.CompositeColumnCondition(ots.LogicalOperator.OR)
    either.add_sub_condition(ots.SingleColumnCondition("n", 100, ots.ComparatorType.GREATER_THAN))
    either.add_sub_condition(ots.SingleColumnCondition("missing", 1, ots.ComparatorType.EQUAL, pass_if_missing=True))
    ots_client.delete_row("kms_keys", key, ots.Condition(ots.RowExistenceExpectation.IGNORE, either))
    assert ots_client.get_row("kms_keys", key)[1] is None


def test_unsupported_requests_fail_loudly(ots_client):  # noqa: F811
    reads = ots.BatchGetRowRequest()
    reads.add(ots.TableInBatchGetRowItem("kms_keys", [[("pk", "a"), ("sk", "")]], max_version=1))
    err = service_error(ots_client.batch_get_row, reads)
    assert (err.get_http_status(), err.get_error_code()) == (400, "OTSUnsupportOperation")
    start, end = [("pk", ots.INF_MAX), ("sk", ots.INF_MAX)], [("pk", ots.INF_MIN), ("sk", ots.INF_MIN)]
    err = service_error(ots_client.get_range, "kms_keys", ots.Direction.BACKWARD, start, end)
    assert (err.get_http_status(), err.get_error_code()) == (400, "OTSUnsupportOperation")
    err = service_error(ots_client.get_row, "kms_keys", [("pk", "a"), ("sk", "")], max_version=2)
    assert (err.get_http_status(), err.get_error_code()) == (400, "OTSUnsupportOperation")


def test_backend_is_isolated_per_instance():
    first, second = FakeTablestore(), FakeTablestore()
    create_tables(fake_client(first))
    assert fake_client(second).list_table() == ()


def test_store_from_config_reads_rotating_keys(ots_http, monkeypatch):  # noqa: F811
    for name in ("OTS_ACCESS_KEY_ID", "OTS_ACCESS_KEY_SECRET", "OTS_SECURITY_TOKEN", "ALIBABA_CLOUD_ACCESS_KEY_ID",
                 "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    cfg = SimpleNamespace(ots_endpoint=ots_http, ots_instance="kmsfake", ots_access_key_id="test-akid",
                          ots_access_key_secret="test-secret", ots_security_token="")
    store = TablestoreStore.from_config(cfg)
    store.put_new("accounts", "acct", "", {"open": True})  # the config's keys
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", "test-akid")
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", "rotated-away")
    err = service_error(store.get, "accounts", "acct")  # the environment wins, read on every call
    assert (err.get_http_status(), err.get_error_code()) == (403, "OTSAuthFailed")
    monkeypatch.setenv("OTS_ACCESS_KEY_ID", "test-akid")
    monkeypatch.setenv("OTS_ACCESS_KEY_SECRET", "test-secret")
    monkeypatch.setenv("ALIBABA_CLOUD_SECURITY_TOKEN", "sts-token-of-the-other-pair")
    assert store.get("accounts", "acct").data == {"open": True}  # OTS_* first, without FC's token
    assert EnvCredentialsProvider().get_credentials().get_security_token() is None
    monkeypatch.setenv("OTS_SECURITY_TOKEN", "tok")
    assert EnvCredentialsProvider().get_credentials().get_security_token() == "tok"
    with pytest.raises(ValueError):
        client_from_config(SimpleNamespace(**dict(vars(cfg), ots_instance="", ots_endpoint="http://127.0.0.1:1")))
    endpoint = "https://inst1.cn-hangzhou.ots.aliyuncs.com"
    derived = client_from_config(SimpleNamespace(**dict(vars(cfg), ots_instance="", ots_endpoint=endpoint)))
    assert derived.protocol.instance_name == "inst1"


def test_command_line_server():
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen([sys.executable, "-m", "alikms.testing.fake_tablestore", "--port", "0", "--access-key-id",
                             "cli-id",
                             "--access-key-secret", "cli-secret"], cwd=root, stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:")
        client = ots.OTSClient(url, "cli-id", "cli-secret", "kmsfake", retry_policy=NoRetryPolicy(),
                               logger_name="alikms.testing.fake_tablestore.sdk")
        create_tables(client)
        store = TablestoreStore(client)
        store.put_new("keys", "scope", "k", {"via": "cli"})
        assert store.scan("keys") == [Item("scope", "k", {"via": "cli"}, 1)]
    finally:
        proc.terminate()
        proc.wait(10)
