"""Tablestore (OTS) backend: the scale-out store for Function Compute deployments.

Every logical table is one Tablestore table with primary key (pk STRING, sk STRING) and two
attribute columns, `rev` (INTEGER) and `data` (the dict as JSON text). Conditional writes map onto
Tablestore's own row conditions, checked atomically by the server: `put_new` expects the row not to
exist, `update` and `delete` expect it to exist with `rev` equal to what the caller read. A failed
check comes back as OTSConditionCheckFail and becomes `Conflict`.

This and `_sdk` (which loads it) are the only modules that import the `tablestore` SDK.
"""

from __future__ import annotations

import logging
import os
from urllib.parse import urlparse

import orjson

from ._sdk import (  # the SDK, imported without its asyncio client (see _sdk)
    INF_MAX,
    INF_MIN,
    CapacityUnit,
    ComparatorType,
    Condition,
    Credentials,
    CredentialsProvider,
    Direction,
    OTSClient,
    OTSServiceError,
    ReservedThroughput,
    Row,
    RowExistenceExpectation,
    SingleColumnCondition,
    TableMeta,
    TableOptions,
)
from .base import TABLES, Conflict, Item, Page, Store

SCHEMA = [("pk", "STRING"), ("sk", "STRING")]
_COLUMNS = ["rev", "data"]
_PAGE_MAX = 5000  # GetRange never returns more rows than this per request anyway
_MIN_TTL = 86400  # Tablestore rejects a time_to_live below one day (other than -1)
_SDK_LOGGER = "alikms.shared.store.tablestore.sdk"
# (access key id, secret, security token) variables, in order of preference. Function Compute
# puts the function role's temporary keys in ALIBABA_CLOUD_*; OTS_* lets a deployment override them.
_ENV_KEYS = (
    ("OTS_ACCESS_KEY_ID", "OTS_ACCESS_KEY_SECRET", "OTS_SECURITY_TOKEN"),
    ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN"),
)


class EnvCredentialsProvider(CredentialsProvider):
    """Reads the keys from the environment on every request.

    Function Compute rotates the role's STS keys under a warm instance, and the SDK asks its
    provider once per request, so a long-lived client keeps working across rotations. Each id is
    paired with the token of its own family: a static OTS_* key must not carry FC's STS token.
    """

    def __init__(self, fallback: tuple[str, str, str] = ("", "", "")) -> None:
        self._fallback = fallback

    def get_credentials(self) -> Credentials:
        env = os.environ
        for id_var, secret_var, token_var in _ENV_KEYS:
            if env.get(id_var) and env.get(secret_var):
                return Credentials(env[id_var], env[secret_var], env.get(token_var) or None)
        akid, secret, token = self._fallback
        if not (akid and secret):
            raise RuntimeError("no Tablestore credentials: set OTS_ACCESS_KEY_ID/OTS_ACCESS_KEY_SECRET "
                               "or ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        return Credentials(akid, secret, token or None)


def _instance_from_endpoint(endpoint: str) -> str:
    # Public and VPC endpoints are https://<instance>.<region>.ots.aliyuncs.com (or .tablestore.…).
    host = urlparse(endpoint).hostname or ""
    if host.endswith((".aliyuncs.com", ".aliyun.com")):
        return host.split(".", 1)[0]
    return ""


def client_from_config(cfg) -> OTSClient:
    """An OTSClient for `cfg` (alikms.shared.config.Config): endpoint, instance and credentials."""
    if not cfg.ots_endpoint:
        raise ValueError("OTS_ENDPOINT is not set")
    instance = cfg.ots_instance or _instance_from_endpoint(cfg.ots_endpoint)
    if not instance:
        raise ValueError("OTS_INSTANCE is not set and cannot be derived from OTS_ENDPOINT")
    logger = logging.getLogger(_SDK_LOGGER)
    if logger.level == logging.NOTSET:
        # With a NOTSET logger the SDK formats a full debug dump of every request and response
        # (its check is `logger.level <= DEBUG`), and it logs each expected Conflict at ERROR.
        logger.setLevel(logging.CRITICAL)
    provider = EnvCredentialsProvider((cfg.ots_access_key_id, cfg.ots_access_key_secret, cfg.ots_security_token))
    return OTSClient(cfg.ots_endpoint, instance_name=instance, credentials_provider=provider,
                     logger_name=_SDK_LOGGER)


def create_tables(client: OTSClient, ttl_nonces: int = _MIN_TTL) -> None:
    """Create every table in TABLES that is missing. Safe to run again, and from two places at once.

    Nonce rows expire through Tablestore's TTL (freshness itself is decided by the timestamp stored
    in the row, so expiry only has to be eventual); Tablestore's minimum TTL is one day, so smaller
    values are raised to that. On the real service a new table takes a while to load; the client's
    default retry policy retries OTSTableNotReady in the meantime.
    """
    existing = set(client.list_table())
    for logical, name in TABLES.items():
        if name in existing:
            continue
        ttl = -1
        if logical == "nonces":
            ttl = -1 if ttl_nonces == -1 else max(ttl_nonces, _MIN_TTL)
        try:
            client.create_table(TableMeta(name, SCHEMA), TableOptions(time_to_live=ttl, max_version=1),
                                ReservedThroughput(CapacityUnit(0, 0)))
        except OTSServiceError as exc:
            if exc.get_error_code() != "OTSObjectAlreadyExist":
                raise


def _key(pk, sk) -> list:
    # Every sort key is stored behind a "#" so that the store's empty sort key ("" for one-row
    # partitions) is never an empty primary-key value, which Tablestore may refuse. The prefix is
    # the same for every row, so order is unchanged.
    return [("pk", pk), ("sk", "#" + sk if isinstance(sk, str) else sk)]


def _after(value: str) -> str:
    return value + "\0"  # the smallest string sorting after `value`: turns "after" into "from"


def _dump(data: dict) -> str:
    return orjson.dumps(data).decode()


def _item(row) -> Item:
    columns = {column[0]: column[1] for column in row.attribute_columns}
    return Item(row.primary_key[0][1], row.primary_key[1][1][1:], orjson.loads(columns["data"]), columns["rev"])


def _rev_is(rev: int) -> Condition:
    # pass_if_missing=False: a row without `rev` is not "at revision rev".
    return Condition(RowExistenceExpectation.EXPECT_EXIST,
                     SingleColumnCondition("rev", rev, ComparatorType.EQUAL, pass_if_missing=False))


class TablestoreStore(Store):
    def __init__(self, client: OTSClient) -> None:
        self._client = client

    @classmethod
    def from_config(cls, cfg) -> TablestoreStore:
        return cls(client_from_config(cfg))

    def _write(self, method, table: str, *args) -> None:
        try:
            method(TABLES[table], *args)
        except OTSServiceError as exc:
            if exc.get_error_code() == "OTSConditionCheckFail":
                raise Conflict(f"{table} row exists or changed") from exc
            raise

    def _range(self, table: str, start: list, end: list, want: int | None, columns: list):
        """Rows from `start` (inclusive) to `end` (exclusive), at most `want`.

        A page can stop short of the limit (5000 rows or 4 MB), so follow next_start_primary_key
        until enough rows arrived or the range is exhausted.
        """
        while want is None or want > 0:
            limit = None if want is None else min(want, _PAGE_MAX)
            _, next_start, rows, _ = self._client.get_range(
                TABLES[table], Direction.FORWARD, start, end, columns_to_get=columns, limit=limit, max_version=1)
            yield from rows
            if want is not None:
                want -= len(rows)
            if next_start is None:
                return
            start = next_start

    def get(self, table: str, pk: str, sk: str = "") -> Item | None:
        _, row, _ = self._client.get_row(TABLES[table], _key(pk, sk), columns_to_get=_COLUMNS, max_version=1)
        return None if row is None else _item(row)

    def put_new(self, table: str, pk: str, sk: str, data: dict) -> Item:
        row = Row(_key(pk, sk), [("rev", 1), ("data", _dump(data))])
        self._write(self._client.put_row, table, row, Condition(RowExistenceExpectation.EXPECT_NOT_EXIST))
        return Item(pk, sk, data, 1)

    def update(self, table: str, pk: str, sk: str, data: dict, expected_rev: int) -> Item:
        # PutRow rather than UpdateRow: the row is exactly these two columns, so replacing it whole
        # is the same write with a simpler request.
        row = Row(_key(pk, sk), [("rev", expected_rev + 1), ("data", _dump(data))])
        self._write(self._client.put_row, table, row, _rev_is(expected_rev))
        return Item(pk, sk, data, expected_rev + 1)

    def delete(self, table: str, pk: str, sk: str = "", expected_rev: int | None = None) -> None:
        condition = Condition(RowExistenceExpectation.IGNORE) if expected_rev is None else _rev_is(expected_rev)
        self._write(self._client.delete_row, table, _key(pk, sk), condition)

    def query(self, table: str, pk: str, start_after: str | None = None, limit: int = 100) -> Page:
        start = _key(pk, INF_MIN if start_after is None else _after(start_after))
        # One row more than asked tells whether another page exists, so `next` is exact.
        rows = list(self._range(table, start, _key(pk, INF_MAX), limit + 1, _COLUMNS))
        items = [_item(row) for row in rows[:limit]]
        return Page(items, items[-1].sk if len(rows) > limit and items else None)

    def scan(self, table: str, start_after: tuple[str, str] | None = None, limit: int = 100) -> list[Item]:
        start = _key(INF_MIN, INF_MIN) if start_after is None else _key(start_after[0], _after(start_after[1]))
        rows = list(self._range(table, start, _key(INF_MAX, INF_MAX), limit, _COLUMNS))
        return [_item(row) for row in rows[:limit]]

    def count(self, table: str, pk: str) -> int:
        # Asking for the key column alone returns rows without their (possibly large) data.
        return sum(1 for _ in self._range(table, _key(pk, INF_MIN), _key(pk, INF_MAX), None, ["pk"]))
