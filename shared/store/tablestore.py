"""Tablestore (OTS) backend: the scale-out store for Function Compute deployments.

Every logical table is one Tablestore table with primary key (pk STRING, sk STRING) and two
attribute columns, `rev` (INTEGER) and `data` (the dict as JSON text). Conditional writes map onto
Tablestore's own row conditions, checked atomically by the server: `put_new` expects the row not to
exist, `update` and `delete` expect it to exist with `rev` equal to what the caller read. A failed
check comes back as OTSConditionCheckFail and becomes `Conflict`.

Faults. A request can be lost before the server sees it, or its answer lost after the server
applied it; the client cannot tell which. Every call here is retried with jittered backoff on
transient failures (connection errors, socket timeouts, OTSServerBusy, OTSTimeout, 5xx...) until a
deadline, and then raises `StoreUnavailable` (the 503 ServiceUnavailableTemporary). Reads and
unconditional deletes repeat safely. A conditional write stores a random write token in the row
(column `w`), so a retry that meets a Conflict can recognise its own earlier write: the row holding
our token (at the revision we asked for) means the earlier attempt landed, and that is success, not
a conflict. A conditional delete whose retry finds the row gone counts as done (nothing records who
deleted it; a racing delete of the same revision wanted the same outcome).

This layer is the only one that retries: the SDK's retry policy is switched off (its default retries
writes on OTSServerBusy up to 20 times, 3 s apart, which stacked on ours would take minutes) and so
are urllib3's transport retries, and every attempt has socket timeouts, so a call that cannot be
served answers within about `deadline` + one attempt.

This and `_sdk` (which loads it) are the only modules that import the `tablestore` SDK.
"""

from __future__ import annotations

import http.client
import logging
import os
import random
import time
from urllib.parse import urlparse

import orjson
import urllib3

from ..config import ots_credentials
from ._sdk import (  # the SDK, imported without its asyncio client (see _sdk)
    INF_MAX,
    INF_MIN,
    CapacityUnit,
    ComparatorType,
    Condition,
    Credentials,
    CredentialsProvider,
    Direction,
    NoRetryPolicy,
    OTSClient,
    OTSServiceError,
    ReservedThroughput,
    Row,
    RowExistenceExpectation,
    SingleColumnCondition,
    TableMeta,
    TableOptions,
)
from .base import TABLES, Conflict, Item, Page, Store, StoreUnavailable

SCHEMA = [("pk", "STRING"), ("sk", "STRING")]
# Fault handling (see the module docstring). Per attempt: connect within CONNECT_TIMEOUT, and no
# more than READ_TIMEOUT between bytes of the answer. Per call: no new attempt after DEADLINE.
CONNECT_TIMEOUT, READ_TIMEOUT, DEADLINE = 0.5, 1.5, 2.5
_BACKOFF_BASE, _BACKOFF_CAP = 0.02, 0.4
# Server errors that say "not now" rather than "never": retried. Any 5xx too.
_TRANSIENT = frozenset({"OTSServerBusy", "OTSTimeout", "OTSServerUnavailable", "OTSPartitionUnavailable",
                        "OTSInternalServerError", "OTSRowOperationConflict", "OTSNotEnoughCapacityUnit",
                        "OTSTableNotReady", "OTSOperationThrottled", "OTSQuotaExhausted"})
_NETWORK = (urllib3.exceptions.HTTPError, http.client.HTTPException, OSError)
_COLUMNS = ["rev", "data"]
_PAGE_MAX = 5000  # GetRange never returns more rows than this per request anyway
_MIN_TTL = 86400  # Tablestore rejects a time_to_live below one day (other than -1)
_SDK_LOGGER = "alikms.shared.store.tablestore.sdk"
class EnvCredentialsProvider(CredentialsProvider):
    """Reads the keys from the environment on every request, the one setting read more than once.

    Function Compute rotates the role's STS keys under a warm instance (the new ones arrive in the
    environment), and the SDK asks its provider once per request, so a long-lived client keeps
    working across rotations. The variables and their pairing (each id with the secret and token
    of its own family) are the settings model's: `alikms.shared.config.ots_credentials`.
    """

    def __init__(self, fallback: tuple[str, str, str] = ("", "", "")) -> None:
        self._fallback = fallback

    def get_credentials(self) -> Credentials:
        akid, secret, token = ots_credentials(os.environ)
        if not (akid and secret):
            akid, secret, token = self._fallback
        if not (akid and secret):
            raise RuntimeError("no Tablestore credentials: set OTS_ACCESS_KEY_ID/OTS_ACCESS_KEY_SECRET "
                               "or ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET")
        # (the SDK's hint says str; None is its default: no token)
        return Credentials(akid, secret, token or None)  # type: ignore[arg-type]


def _instance_from_endpoint(endpoint: str) -> str:
    # Public and VPC endpoints are https://<instance>.<region>.ots.aliyuncs.com (or .tablestore.…).
    host = urlparse(endpoint).hostname or ""
    if host.endswith((".aliyuncs.com", ".aliyun.com")):
        return host.split(".", 1)[0]
    return ""


def client_from_config(cfg) -> OTSClient:
    """An OTSClient for `cfg` (alikms.shared.config.Config, or anything with its ots_* fields):
    endpoint, instance and the credentials to use when the environment has none."""
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
                     logger_name=_SDK_LOGGER)  # TablestoreStore replaces its retry policy; create_tables keeps it


def _one_retry_layer(client: OTSClient, connect: float, read: float) -> None:
    """Make the store the only layer that retries, with socket timeouts on every attempt."""
    client.retry_policy = NoRetryPolicy()
    pool = getattr(getattr(client, "connection", None), "pool", None)
    if isinstance(pool, urllib3.PoolManager):  # the SDK's HTTP transport (not an in-process fake)
        pool.connection_pool_kw.update(retries=False, timeout=urllib3.Timeout(connect=connect, read=read))
        pool.clear()  # pools made before this change keep their old settings


def _retrying(table: str, attempt: int, failure: Exception) -> None:
    """A retry is the first sign of an overloaded or failing instance: each one is logged and counted."""
    from .. import log, telemetry

    telemetry.sink.store_retry(table)
    code = failure.get_error_code() if isinstance(failure, OTSServiceError) else type(failure).__name__
    log.get("kms.store").warning("Tablestore request retried", extra={
        "event": "store.retry", "table": table, "attempt": attempt, "error": code})


def _transient(exc: Exception) -> bool:
    if isinstance(exc, OTSServiceError):
        return exc.get_error_code() in _TRANSIENT or exc.get_http_status() >= 500
    return isinstance(exc, _NETWORK)


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
    def __init__(self, client: OTSClient, *, deadline: float = DEADLINE, connect_timeout: float = CONNECT_TIMEOUT,
                 read_timeout: float = READ_TIMEOUT) -> None:
        _one_retry_layer(client, connect_timeout, read_timeout)
        self._client = client
        self.deadline = deadline

    @classmethod
    def from_config(cls, cfg) -> TablestoreStore:
        return cls(client_from_config(cfg))

    def _call(self, what: str, attempt, resolve=None):
        """`attempt()` with retries on transient faults until the deadline. For a conditional write,
        `resolve()` decides a Conflict met after an earlier attempt failed in transit: it returns
        the result if that attempt landed, or None (a real conflict)."""
        deadline = time.monotonic() + self.deadline
        tries, uncertain = 0, False
        while True:
            try:
                return attempt()
            except OTSServiceError as exc:
                if exc.get_error_code() == "OTSConditionCheckFail":
                    landed = resolve() if uncertain and resolve is not None else None
                    if landed is not None:
                        return landed
                    raise Conflict(f"{what}: row exists or changed") from None
                if not _transient(exc):
                    raise
                failure: Exception = exc
            except _NETWORK as exc:
                failure = exc
            uncertain = True
            tries += 1
            _retrying(what, tries, failure)
            pause = random.uniform(0, min(_BACKOFF_CAP, _BACKOFF_BASE * 2 ** tries))
            if time.monotonic() + pause >= deadline:
                raise StoreUnavailable() from failure
            time.sleep(pause)

    def _read_row(self, table: str, pk: str, sk: str, columns: list):
        _, row, _ = self._client.get_row(TABLES[table], _key(pk, sk), columns_to_get=columns, max_version=1)
        return row

    def _has_token(self, table: str, pk: str, sk: str, token: str, rev: int | None) -> bool:
        """Whether the row holds our write token (at revision `rev`, when given)."""
        row = self._call(table, lambda: self._read_row(table, pk, sk, ["rev", "w"]))
        if row is None:
            return False
        columns = {column[0]: column[1] for column in row.attribute_columns}
        return columns.get("w") == token and (rev is None or columns.get("rev") == rev)

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
        row = self._call(table, lambda: self._read_row(table, pk, sk, _COLUMNS))
        return None if row is None else _item(row)

    def _put(self, table: str, pk: str, sk: str, data: dict, rev: int, condition: Condition) -> Item:
        # PutRow for updates too: the row is exactly these columns, so replacing it whole is the same
        # write with a simpler request.
        token = os.urandom(12).hex()
        row = Row(_key(pk, sk), [("rev", rev), ("data", _dump(data)), ("w", token)])
        item = Item(pk, sk, data, rev)
        self._call(table, lambda: self._client.put_row(TABLES[table], row, condition),
                   lambda: item if self._has_token(table, pk, sk, token, rev) else None)
        return item

    def put_new(self, table: str, pk: str, sk: str, data: dict) -> Item:
        return self._put(table, pk, sk, data, 1, Condition(RowExistenceExpectation.EXPECT_NOT_EXIST))

    def update(self, table: str, pk: str, sk: str, data: dict, expected_rev: int) -> Item:
        return self._put(table, pk, sk, data, expected_rev + 1, _rev_is(expected_rev))

    def delete(self, table: str, pk: str, sk: str = "", expected_rev: int | None = None) -> None:
        condition = Condition(RowExistenceExpectation.IGNORE) if expected_rev is None else _rev_is(expected_rev)

        def gone() -> bool | None:
            return True if self._call(table, lambda: self._read_row(table, pk, sk, ["rev"])) is None else None

        self._call(table, lambda: self._client.delete_row(TABLES[table], _key(pk, sk), condition), gone)

    def query(self, table: str, pk: str, start_after: str | None = None, limit: int = 100) -> Page:
        start = _key(pk, INF_MIN if start_after is None else _after(start_after))
        # One row more than asked tells whether another page exists, so `next` is exact.
        rows = self._call(table, lambda: list(self._range(table, start, _key(pk, INF_MAX), limit + 1, _COLUMNS)))
        items = [_item(row) for row in rows[:limit]]
        return Page(items, items[-1].sk if len(rows) > limit and items else None)

    def scan(self, table: str, start_after: tuple[str, str] | None = None, limit: int = 100) -> list[Item]:
        start = _key(INF_MIN, INF_MIN) if start_after is None else _key(start_after[0], _after(start_after[1]))
        rows = self._call(table, lambda: list(self._range(table, start, _key(INF_MAX, INF_MAX), limit, _COLUMNS)))
        return [_item(row) for row in rows[:limit]]

    def count(self, table: str, pk: str) -> int:
        # Asking for the key column alone returns rows without their (possibly large) data.
        return self._call(table, lambda: sum(1 for _ in self._range(table, _key(pk, INF_MIN), _key(pk, INF_MAX),
                                                                     None, ["pk"])))
