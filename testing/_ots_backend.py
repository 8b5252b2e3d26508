"""The fake Tablestore's tables (testing/fake_tablestore.py): table DDL, row conditions and column
filters, Put/Get/Update/DeleteRow and forward GetRange with paging, in memory, and the server-side
errors a test injects. The wire (PlainBuffer, signatures, replies) is _ots_wire.py's."""

from __future__ import annotations

import bisect
import operator
import random
import re
import threading
import time
from dataclasses import dataclass

import tablestore.protobuf.table_store_filter_pb2 as fpb
import tablestore.protobuf.table_store_pb2 as pb
from google.protobuf.message import DecodeError
from tablestore.plainbuffer.plain_buffer_builder import PlainBufferBuilder

from . import _ots_wire as wire

ACCESS_KEY_ID, ACCESS_KEY_SECRET, INSTANCE = "test-akid", "test-secret", "kmsfake"
_PK_TYPES = {pb.INTEGER: int, pb.STRING: str, pb.BINARY: bytes}
_CMP = {fpb.CT_EQUAL: operator.eq, fpb.CT_NOT_EQUAL: operator.ne, fpb.CT_GREATER_THAN: operator.gt,
        fpb.CT_GREATER_EQUAL: operator.ge, fpb.CT_LESS_THAN: operator.lt, fpb.CT_LESS_EQUAL: operator.le}
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z")
_MAX_PK, _MAX_VALUE, _MIN_TTL = 1024, 2 * 1024 * 1024, 86400


# Server-side errors a test can inject: code -> (HTTP status, the service's message).
INJECTABLE = {
    "OTSServerBusy": (503, "Server is busy."),
    "OTSTimeout": (503, "Operation timeout."),
    "OTSServerUnavailable": (503, "Server is unavailable."),
    "OTSPartitionUnavailable": (503, "The partition is not available."),
    "OTSInternalServerError": (500, "Internal server error."),
    "OTSRowOperationConflict": (409, "Data is being modified by the other request."),
    "OTSNotEnoughCapacityUnit": (403, "Remaining capacity unit is not enough."),
}


@dataclass
class Injection:
    code: str
    action: str | None = None  # "PutRow", "GetRange"...; None = every action
    probability: float = 1.0
    count: int | None = 1  # answer at most this many requests; None = no limit
    after_apply: bool = False  # apply the request, then answer the error
    skip: int = 0  # let this many matching requests pass first
    fired: int = 0
    seen: int = 0


def _injected(code: str) -> tuple[int, str, str]:
    status, message = INJECTABLE[code]
    return status, code, message



class _Table:
    def __init__(self, meta: pb.TableMeta, options: pb.TableOptions, cu: pb.CapacityUnit) -> None:
        self.meta, self.options, self.cu, self.created = meta, options, cu, int(time.time())
        self.schema = [(c.name, c.type) for c in meta.primary_key]
        self.rows: dict[tuple, dict[str, tuple]] = {}  # key -> {column: (timestamp ms, value)}
        self.keys: list[tuple] = []  # sorted; a key is ((rank, value), ...), rank 0/2 for INF_MIN/MAX

    def key(self, pk: list, bound: bool = False) -> tuple:
        if len(pk) != len(self.schema):
            raise wire.OtsError(400, "OTSInvalidPK",
                                f"Validate PK size fail. Input: {len(pk)}, Meta: {len(self.schema)}.")
        key: list[tuple[int, object]] = []
        for (name, value), (meta_name, meta_type) in zip(pk, self.schema, strict=True):
            if name != meta_name:
                raise wire.OtsError(400, "OTSInvalidPK", f"Validate PK name fail. Input: {name}, Meta: {meta_name}.")
            if bound and value in (wire.INF_MIN, wire.INF_MAX):
                key.append((0 if value is wire.INF_MIN else 2, None))
                continue
            if type(value) is not _PK_TYPES.get(meta_type):
                raise wire.OtsError(400, "OTSInvalidPK", f"Validate PK type fail. Input: {type(value).__name__}, "
                                f"Meta: {pb.PrimaryKeyType.Name(meta_type)}.")
            if wire.too_long(value, _MAX_PK):
                raise wire.bad(f"The length of primary key column: '{name}' exceeds the MaxLength:{_MAX_PK}.")
            key.append((1, value))
        return tuple(key)

    def pk_of(self, key: tuple) -> list:
        return [(name, wire.cell_value(value)) for (name, _), (_, value) in zip(self.schema, key, strict=True)]

    def store(self, key: tuple, row: dict) -> None:
        if key not in self.rows:
            bisect.insort(self.keys, key)
        self.rows[key] = row

    def remove(self, key: tuple) -> None:
        if self.rows.pop(key, None) is not None:
            del self.keys[bisect.bisect_left(self.keys, key)]


class FakeTablestore:
    """One in-memory Tablestore instance; `handle(path, headers, body)` answers one HTTP request."""

    def __init__(self, access_key_id: str = ACCESS_KEY_ID, access_key_secret: str = ACCESS_KEY_SECRET,
                 instance: str | None = INSTANCE) -> None:
        self.access_key_id, self.access_key_secret = access_key_id, access_key_secret
        self.access_keys = {access_key_id: access_key_secret}  # add ids here if a test needs more
        self.instance = instance  # None accepts any instance name
        self.page_rows, self.page_bytes = 5000, 4 * 1024 * 1024  # GetRange page limits; tests may shrink them
        self._tables: dict[str, _Table] = {}
        self._lock = threading.Lock()
        self.injections: list[Injection] = []
        self.injected: list[tuple[str, str]] = []  # (action, code) of every injected error, in order
        self._rng = random.Random(0)
        self._ops = {"CreateTable": self._create_table, "DescribeTable": self._describe_table,
                     "ListTable": self._list_table, "DeleteTable": self._delete_table, "GetRow": self._get_row,
                     "PutRow": self._put_row, "UpdateRow": self._update_row, "DeleteRow": self._delete_row,
                     "GetRange": self._get_range}

    def inject(self, code: str, *, action: str | None = None, probability: float = 1.0, count: int | None = 1,
               after_apply: bool = False, skip: int = 0) -> Injection:
        """Answer matching requests with the server error `code` (a key of INJECTABLE)."""
        if code not in INJECTABLE:
            raise ValueError(f"cannot inject {code!r}; one of {sorted(INJECTABLE)}")
        injection = Injection(code, action, probability, count, after_apply, skip)
        with self._lock:
            self.injections.append(injection)
        return injection

    def clear_injections(self, seed: int = 0) -> None:
        with self._lock:
            self.injections.clear()
            self._rng = random.Random(seed)

    def _injection(self, action: str) -> Injection | None:
        with self._lock:
            for inj in self.injections:
                if inj.action not in (None, action) or (inj.count is not None and inj.fired >= inj.count):
                    continue
                inj.seen += 1
                if inj.seen <= inj.skip:
                    continue
                if inj.probability >= 1.0 or self._rng.random() < inj.probability:
                    inj.fired += 1
                    self.injected.append((action, inj.code))
                    return inj
        return None

    def handle(self, path: str, headers: dict, body: bytes) -> tuple[int, str, dict, bytes]:
        action = path.split("?", 1)[0].rstrip("/").rsplit("/", 1)[-1]
        h = {str(k).lower(): str(v) for k, v in headers.items()}
        akid = key = None
        try:
            op = self._ops.get(action)
            if op is None:
                raise wire.OtsError(400, "OTSUnsupportOperation", f"Unsupported operation: '{action}'.")
            akid, key = wire.authenticate(action, h, bytes(body), self.access_keys, self.instance)
            injection = self._injection(action) if self.injections else None
            if injection is not None and not injection.after_apply:
                raise wire.OtsError(*_injected(injection.code))
            status, out = 200, op(bytes(body)).SerializeToString()
            if injection is not None:
                raise wire.OtsError(*_injected(injection.code))
        except wire.OtsError as exc:
            status, out = exc.status, wire.error_body(exc.code, exc.message)
        except DecodeError as exc:
            status, out = 400, wire.error_body("OTSParameterInvalid", f"Malformed request body: {exc}.")
        except Exception as exc:  # noqa: BLE001 - a bug in the fake: show it to the test rather than hide it
            status, out = 500, wire.error_body("OTSInternalServerError", f"fake: {exc!r}")
        return wire.reply(action, status, out, akid, key)

    # table DDL ------------------------------------------------------------------------------------

    def _table(self, name: str) -> _Table:
        table = self._tables.get(name)
        if table is None:
            raise wire.OtsError(404, "OTSObjectNotExist", "Requested table does not exist.")
        return table

    def _create_table(self, body: bytes):
        req = pb.CreateTableRequest.FromString(body)
        meta, given = req.table_meta, req.table_options
        names = [c.name for c in meta.primary_key]
        if not _TABLE_NAME.match(meta.table_name) or not 1 <= len(names) <= 4 or len(set(names)) != len(names):
            raise wire.bad("Invalid table name or primary key (1 to 4 distinct columns).")
        if any(c.HasField("option") for c in meta.primary_key) or req.index_metas or meta.defined_column:
            raise wire.unsupported("auto-increment keys, defined columns or indexes")
        options = pb.TableOptions(time_to_live=given.time_to_live if given.HasField("time_to_live") else -1,
                                  max_versions=given.max_versions if given.HasField("max_versions") else 1,
                                  deviation_cell_version_in_sec=given.deviation_cell_version_in_sec or 86400)
        if options.time_to_live != -1 and options.time_to_live < _MIN_TTL:
            raise wire.bad(f"TimeToLive must be -1 or at least {_MIN_TTL} seconds.")
        if options.max_versions != 1:
            raise wire.unsupported("max_versions other than 1")
        with self._lock:
            if meta.table_name in self._tables:
                raise wire.OtsError(409, "OTSObjectAlreadyExist", "Requested table already exists.")
            self._tables[meta.table_name] = _Table(meta, options, req.reserved_throughput.capacity_unit)
        return pb.CreateTableResponse()

    def _describe_table(self, body: bytes):
        with self._lock:
            table = self._table(pb.DescribeTableRequest.FromString(body).table_name)
        resp = pb.DescribeTableResponse(table_meta=table.meta, table_options=table.options)
        resp.reserved_throughput_details.capacity_unit.CopyFrom(table.cu)
        resp.reserved_throughput_details.last_increase_time = table.created
        return resp

    def _list_table(self, body: bytes):
        with self._lock:
            return pb.ListTableResponse(table_names=sorted(self._tables))

    def _delete_table(self, body: bytes):
        name = pb.DeleteTableRequest.FromString(body).table_name
        with self._lock:
            self._table(name)
            del self._tables[name]
        return pb.DeleteTableResponse()

    # rows -----------------------------------------------------------------------------------------

    def _match(self, flt: fpb.Filter, row: dict) -> bool:
        if flt.type == fpb.FT_COMPOSITE_COLUMN_VALUE:
            comp = fpb.CompositeColumnValueFilter.FromString(flt.filter)
            results = [self._match(sub, row) for sub in comp.sub_filters]
            if comp.combinator == fpb.LO_NOT:
                if len(results) != 1:
                    raise wire.bad("NOT takes exactly one sub-condition.")
                return not results[0]
            return all(results) if comp.combinator == fpb.LO_AND else any(results)
        if flt.type != fpb.FT_SINGLE_COLUMN_VALUE:
            raise wire.unsupported("column pagination filters")
        single = fpb.SingleColumnValueFilter.FromString(flt.filter)
        if single.HasField("value_trans_rule"):
            raise wire.unsupported("regex column conditions")
        cell = row.get(single.column_name)
        if single.comparator in (fpb.CT_EXIST, fpb.CT_NOT_EXIST):
            return (cell is not None) == (single.comparator == fpb.CT_EXIST)
        if cell is None:
            return not single.filter_if_missing
        target = wire.variant(wire.Buf(single.column_value))[0]
        # Values of different types never match (and a bool is not an int here).
        return type(cell[1]) is type(target) and _CMP[single.comparator](cell[1], target)

    def _check(self, cond: pb.Condition, row: dict | None) -> None:
        if (cond.row_existence == pb.EXPECT_EXIST and row is None) or (
            cond.row_existence == pb.EXPECT_NOT_EXIST and row is not None) or (
            cond.column_condition and not self._match(fpb.Filter.FromString(cond.column_condition), row or {})
        ):
            raise wire.OtsError(403, "OTSConditionCheckFail", "Condition check failed.")

    def _view(self, table: _Table, key: tuple, row: dict, columns, flt: bytes) -> bytes:
        """The row as response PlainBuffer, or b"" when a filter or columns_to_get leaves nothing."""
        if flt and not self._match(fpb.Filter.FromString(flt), row):
            return b""
        wanted = set(columns)
        cells = [(name, wire.cell_value(row[name][1]), row[name][0])
                 for name in sorted(row) if not wanted or name in wanted]
        if wanted and not cells and not wanted & {name for name, _ in table.schema}:
            return b""
        return bytes(PlainBufferBuilder.serialize_for_put_row(table.pk_of(key), cells))

    def _write(self, table: _Table, kind: int, data: bytes, cond: pb.Condition, ret: pb.ReturnContent) -> bytes:
        """One PUT/UPDATE/DELETE row change, under the lock. Returns the RT_PK row if asked for."""
        pk, cells, deleted = wire.one_row(data)
        if deleted != (kind == pb.DELETE):
            raise wire.bad("The delete marker is only for DeleteRow.")
        key = table.key(pk)
        old = table.rows.get(key)
        self._check(cond, old)
        now = int(time.time() * 1000)
        if kind == pb.DELETE:
            table.remove(key)
        else:
            row = dict(old or {}) if kind == pb.UPDATE else {}
            for name, value, op, ts in cells:
                if op == 4 and type(value) is int:  # increment
                    current = row.get(name, (0, 0))[1]
                    if type(current) is not int:
                        raise wire.bad(f"Column '{name}' is not an integer.")
                    value, op, ts = current + value, None, None
                if op is None and value is not None:
                    if wire.too_long(value, _MAX_VALUE):
                        raise wire.bad(f"The length of attribute column: '{name}' exceeds the MaxLength:{_MAX_VALUE}.")
                    row[name] = (now if ts is None else ts, value)
                elif kind == pb.UPDATE and (op == 1 or (op == 3 and row.get(name, (None,))[0] == ts)):
                    row.pop(name, None)  # delete all versions / the one version there is
                elif not (kind == pb.UPDATE and op == 3):
                    raise wire.bad(f"Invalid change of column '{name}'.")
            table.store(key, row)
        return bytes(PlainBufferBuilder.serialize_primary_key(table.pk_of(key))) if ret.return_type == pb.RT_PK else b""

    def _single_write(self, req, data: bytes, kind: int, response_cls):
        if req.HasField("transaction_id"):
            raise wire.unsupported("transactions")
        with self._lock:
            row = self._write(self._table(req.table_name), kind, data, req.condition, req.return_content)
        resp = response_cls(row=row)
        resp.consumed.capacity_unit.write = 1
        return resp

    def _put_row(self, body: bytes):
        req = pb.PutRowRequest.FromString(body)
        return self._single_write(req, req.row, pb.PUT, pb.PutRowResponse)

    def _update_row(self, body: bytes):
        req = pb.UpdateRowRequest.FromString(body)
        return self._single_write(req, req.row_change, pb.UPDATE, pb.UpdateRowResponse)

    def _delete_row(self, body: bytes):
        req = pb.DeleteRowRequest.FromString(body)
        return self._single_write(req, req.primary_key, pb.DELETE, pb.DeleteRowResponse)

    @staticmethod
    def _plain_read(req) -> None:
        extra = {f.name for f, _ in req.ListFields()} & {"time_range", "start_column", "end_column", "token",
                                                         "transaction_id"}
        if extra or req.max_versions > 1:
            raise wire.unsupported(f"{sorted(extra) or 'max_versions > 1'} in reads")

    def _get(self, table: _Table, data: bytes, req) -> bytes:
        key = table.key(wire.one_row(data)[0])
        row = table.rows.get(key)
        return b"" if row is None else self._view(table, key, row, req.columns_to_get, req.filter)

    def _get_row(self, body: bytes):
        req = pb.GetRowRequest.FromString(body)
        self._plain_read(req)
        with self._lock:
            resp = pb.GetRowResponse(row=self._get(self._table(req.table_name), req.primary_key, req))
        resp.consumed.capacity_unit.read = 1
        return resp

    def _get_range(self, body: bytes):
        req = pb.GetRangeRequest.FromString(body)
        self._plain_read(req)
        if req.direction != pb.FORWARD:
            raise wire.unsupported("BACKWARD ranges")
        limit = min(req.limit if req.HasField("limit") else 5000, self.page_rows)
        if limit <= 0:
            raise wire.bad("The limit must be positive.")
        rows: list[bytes] = []
        size, scanned, next_pk = 0, 0, b""
        with self._lock:
            table = self._table(req.table_name)
            start = table.key(wire.one_row(req.inclusive_start_primary_key)[0], bound=True)
            end = table.key(wire.one_row(req.exclusive_end_primary_key)[0], bound=True)
            if start > end:
                raise wire.bad("Begin key must be less than end key in FORWARD.")
            for i in range(bisect.bisect_left(table.keys, start), len(table.keys)):
                key = table.keys[i]
                if key >= end:
                    break
                if scanned >= limit or size >= self.page_bytes:  # the page is full: say where to go on
                    next_pk = bytes(PlainBufferBuilder.serialize_primary_key(table.pk_of(key)))
                    break
                scanned += 1
                row = self._view(table, key, table.rows[key], req.columns_to_get, req.filter)
                if row:
                    rows.append(row[4:] if rows else row)  # a single PlainBuffer header for all rows
                    size += len(row)
        resp = pb.GetRangeResponse(rows=b"".join(rows), next_start_primary_key=next_pk or None)
        resp.consumed.capacity_unit.read = max(1, scanned)
        return resp
