"""A wire-level fake of Alibaba Cloud Tablestore (OTS) that the real, unmodified `OTSClient` talks to.

The SDK's own encoding, PlainBuffer checksums, request signing (V2 and V4), response verification and
error mapping all stay in play: the fake checks signatures with a known secret, signs its answers,
and evaluates row existence and column conditions, so a failed conditional write really comes back
as 403 OTSConditionCheckFail. It covers table DDL, Put/Get/Update/DeleteRow and forward GetRange
with paging. Not modelled (answered with a 400): batch operations, more than one version per column,
BACKWARD ranges, transactions, indexes, auto-increment keys, time ranges, wide-row tokens. TTL is
recorded but never expires anything.

Server-side errors on demand: `backend.inject("OTSServerBusy", action="PutRow", count=1)` answers
the next PutRow with the error (nothing applied); `after_apply=True` applies the request first and
then answers the error, as a real OTSTimeout may after the write went through.

Transports: `fake_client(backend)` is an OTSClient calling the backend in process; `serve()` and
`python -m alikms.testing.fake_tablestore` put it behind a loopback HTTP server.
"""

from __future__ import annotations

import argparse
import base64
import bisect
import datetime
import hashlib
import hmac
import http.client
import logging
import operator
import random
import re
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import tablestore
import tablestore.protobuf.table_store_filter_pb2 as fpb
import tablestore.protobuf.table_store_pb2 as pb
from google.protobuf.message import DecodeError
from tablestore.plainbuffer.plain_buffer_builder import PlainBufferBuilder
from tablestore.plainbuffer.plain_buffer_crc8 import PlainBufferCrc8
from tablestore.retry import NoRetryPolicy

ACCESS_KEY_ID, ACCESS_KEY_SECRET, INSTANCE = "test-akid", "test-secret", "kmsfake"
SDK_LOGGER = "alikms.testing.fake_tablestore.sdk"
# The SDK logs every failed request at ERROR (expected conflicts too) and, while its logger's level
# is NOTSET, formats a debug dump of every request; a quiet logger of its own avoids both.
logging.getLogger(SDK_LOGGER).setLevel(logging.CRITICAL)

_MIN, _MAX, _AUTO = tablestore.INF_MIN, tablestore.INF_MAX, tablestore.PK_AUTO_INCR
_PK_TYPES = {pb.INTEGER: int, pb.STRING: str, pb.BINARY: bytes}
_CMP = {fpb.CT_EQUAL: operator.eq, fpb.CT_NOT_EQUAL: operator.ne, fpb.CT_GREATER_THAN: operator.gt,
        fpb.CT_GREATER_EQUAL: operator.ge, fpb.CT_LESS_THAN: operator.lt, fpb.CT_LESS_EQUAL: operator.le}
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}\Z")
_MAX_PK, _MAX_VALUE, _MIN_TTL = 1024, 2 * 1024 * 1024, 86400


class _OtsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def _injected(code: str) -> tuple[int, str, str]:
    status, message = INJECTABLE[code]
    return status, code, message


def _bad(message: str) -> _OtsError:
    return _OtsError(400, "OTSParameterInvalid", message)


def _unsupported(what: str) -> _OtsError:
    return _OtsError(400, "OTSUnsupportOperation", f"The fake does not support {what}.")


def _too_long(value, limit: int) -> bool:
    return isinstance(value, (str, bytes)) and len(value.encode() if isinstance(value, str) else value) > limit


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


# --- PlainBuffer requests (the SDK's readers reject INF_MIN/INF_MAX and update cells) --------------

class _Buf:
    def __init__(self, data: bytes) -> None:
        self.b, self.i = bytes(data), 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.i + n > len(self.b):
            raise _bad("Truncated PlainBuffer.")
        self.i += n
        return self.b[self.i - n:self.i]

    def byte(self) -> int:
        return self.take(1)[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]


def _variant(buf: _Buf):
    """One value (type byte + payload) and its raw bytes, which are exactly what the CRC covers."""
    start, kind = buf.i, buf.byte()
    if kind in (0, 1):
        value = struct.unpack("<q" if kind == 0 else "<d", buf.take(8))[0]
    elif kind == 2:
        value = buf.byte() != 0
    elif kind in (3, 7):
        value = buf.take(buf.i32())
        if kind == 3:
            try:
                value = value.decode("utf-8")
            except UnicodeDecodeError:
                raise _bad("STRING value is not valid UTF-8.") from None
    elif kind in (9, 10, 11):
        value = {9: _MIN, 10: _MAX, 11: _AUTO}[kind]
    else:
        raise _bad(f"Unknown value type {kind}.")
    return value, buf.b[start:buf.i]


def _cell(buf: _Buf):
    if buf.byte() != 0x04:
        raise _bad("Expected a cell name.")
    name = buf.take(buf.i32())
    crc, value, op, ts, tag = PlainBufferCrc8.crc_bytes(0, name), None, None, None, buf.byte()
    if tag == 0x05:
        buf.i32()  # the value's length; its type byte says as much
        value, raw = _variant(buf)
        crc, tag = PlainBufferCrc8.crc_bytes(crc, raw), buf.byte()
    if tag == 0x06:
        op, tag = buf.byte(), buf.byte()
    if tag == 0x07:
        raw = buf.take(8)
        ts, crc, tag = struct.unpack("<q", raw)[0], PlainBufferCrc8.crc_bytes(crc, raw), buf.byte()
    if op is not None:  # the checksum takes the op after the timestamp, unlike the wire order
        crc = PlainBufferCrc8.crc_int8(crc, op)
    if tag != 0x0A or buf.byte() != crc:
        raise _bad("Cell checksum mismatch.")
    return name.decode("utf-8"), value, op, ts, crc


def _rows(data: bytes) -> list:
    """[(primary_key, cells, delete_marker)] with pk = [(name, value)], cells = [(name, value, op, ts)]."""
    buf = _Buf(data)
    if buf.i32() != 0x75:
        raise _bad("Invalid PlainBuffer header.")
    rows, tag = [], buf.byte()
    while True:
        if tag != 0x01:
            raise _bad("Expected a primary key.")
        pk, cells, crc, tag = [], [], 0, buf.byte()
        while tag == 0x03:
            name, value, _, _, cell_crc = _cell(buf)
            pk.append((name, value))
            crc, tag = PlainBufferCrc8.crc_int8(crc, cell_crc), buf.byte()
        if tag == 0x02:
            tag = buf.byte()
            while tag == 0x03:
                name, value, op, ts, cell_crc = _cell(buf)
                cells.append((name, value, op, ts))
                crc, tag = PlainBufferCrc8.crc_int8(crc, cell_crc), buf.byte()
        deleted = tag == 0x08
        if deleted:
            tag = buf.byte()
        if tag != 0x09 or buf.byte() != PlainBufferCrc8.crc_int8(crc, int(deleted)):
            raise _bad("Row checksum mismatch.")
        rows.append((pk, cells, deleted))
        if buf.i == len(buf.b):
            return rows
        tag = buf.byte()


def _one_row(data: bytes):
    rows = _rows(data)
    if len(rows) != 1:
        raise _bad("Expected exactly one row.")
    return rows[0]


def _out(value):
    return bytearray(value) if isinstance(value, bytes) else value  # the SDK would write bytes as STRING


# --- the backend ----------------------------------------------------------------------------------

class _Table:
    def __init__(self, meta: pb.TableMeta, options: pb.TableOptions, cu: pb.CapacityUnit) -> None:
        self.meta, self.options, self.cu, self.created = meta, options, cu, int(time.time())
        self.schema = [(c.name, c.type) for c in meta.primary_key]
        self.rows: dict[tuple, dict[str, tuple]] = {}  # key -> {column: (timestamp ms, value)}
        self.keys: list[tuple] = []  # sorted; a key is ((rank, value), ...), rank 0/2 for INF_MIN/MAX

    def key(self, pk: list, bound: bool = False) -> tuple:
        if len(pk) != len(self.schema):
            raise _OtsError(400, "OTSInvalidPK", f"Validate PK size fail. Input: {len(pk)}, Meta: {len(self.schema)}.")
        key = []
        for (name, value), (meta_name, meta_type) in zip(pk, self.schema, strict=True):
            if name != meta_name:
                raise _OtsError(400, "OTSInvalidPK", f"Validate PK name fail. Input: {name}, Meta: {meta_name}.")
            if bound and value in (_MIN, _MAX):
                key.append((0 if value is _MIN else 2, None))
                continue
            if type(value) is not _PK_TYPES.get(meta_type):
                raise _OtsError(400, "OTSInvalidPK", f"Validate PK type fail. Input: {type(value).__name__}, "
                                f"Meta: {pb.PrimaryKeyType.Name(meta_type)}.")
            if _too_long(value, _MAX_PK):
                raise _bad(f"The length of primary key column: '{name}' exceeds the MaxLength:{_MAX_PK}.")
            key.append((1, value))
        return tuple(key)

    def pk_of(self, key: tuple) -> list:
        return [(name, _out(value)) for (name, _), (_, value) in zip(self.schema, key, strict=True)]

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
                raise _OtsError(400, "OTSUnsupportOperation", f"Unsupported operation: '{action}'.")
            akid, key = self._authenticate(action, h, bytes(body))
            injection = self._injection(action) if self.injections else None
            if injection is not None and not injection.after_apply:
                raise _OtsError(*_injected(injection.code))
            status, out = 200, op(bytes(body)).SerializeToString()
            if injection is not None:
                raise _OtsError(*_injected(injection.code))
        except _OtsError as exc:
            status, out = exc.status, _error_body(exc.code, exc.message)
        except DecodeError as exc:
            status, out = 400, _error_body("OTSParameterInvalid", f"Malformed request body: {exc}.")
        except Exception as exc:  # a bug in the fake: show it to the test rather than hide it
            status, out = 500, _error_body("OTSInternalServerError", f"fake: {exc!r}")
        return _reply(action, status, out, akid, key)

    def _authenticate(self, action: str, h: dict, body: bytes) -> tuple[str, bytes]:
        for name in ("x-ots-date", "x-ots-apiversion", "x-ots-accesskeyid", "x-ots-instancename", "x-ots-contentmd5"):
            if name not in h:
                raise _bad(f"Missing header: '{name}'.")
        denied = "OTSAuthFailed"
        if h["x-ots-contentmd5"] != base64.b64encode(hashlib.md5(body).digest()).decode():
            raise _OtsError(403, denied, "Mismatch between MD5 value of request body and x-ots-contentmd5 in header.")
        try:
            sent = datetime.datetime.strptime(h["x-ots-date"], "%Y-%m-%dT%H:%M:%S.%fZ")
        except ValueError:
            raise _bad(f"Invalid date format: {h['x-ots-date']}.") from None
        if abs((_utcnow() - sent).total_seconds()) > 15 * 60:
            raise _OtsError(403, denied, "The difference between the request time and the current time is too large.")
        secret = self.access_keys.get(h["x-ots-accesskeyid"])
        if secret is None:
            raise _OtsError(403, denied, "The AccessKeyID is disabled or does not exist.")
        if self.instance is not None and h["x-ots-instancename"] != self.instance:
            raise _OtsError(403, denied, f"Instance '{h['x-ots-instancename']}' does not exist.")
        canonical = f"/{action}\nPOST\n\n{_header_string(h, ('x-ots-signature', 'x-ots-signaturev4'))}\n"
        if "x-ots-signaturev4" in h:
            key = _v4_key(secret, h.get("x-ots-signdate", ""), h.get("x-ots-signregion", ""))
            given, expected = h["x-ots-signaturev4"], _hmac(key, canonical + "ots", hashlib.sha256)
        else:
            key = secret.encode()
            given, expected = h.get("x-ots-signature", ""), _hmac(key, canonical, hashlib.sha1)
        if not hmac.compare_digest(given, expected):
            raise _OtsError(403, denied, "Signature mismatch.")
        return h["x-ots-accesskeyid"], key

    # table DDL ------------------------------------------------------------------------------------

    def _table(self, name: str) -> _Table:
        table = self._tables.get(name)
        if table is None:
            raise _OtsError(404, "OTSObjectNotExist", "Requested table does not exist.")
        return table

    def _create_table(self, body: bytes):
        req = pb.CreateTableRequest.FromString(body)
        meta, given = req.table_meta, req.table_options
        names = [c.name for c in meta.primary_key]
        if not _TABLE_NAME.match(meta.table_name) or not 1 <= len(names) <= 4 or len(set(names)) != len(names):
            raise _bad("Invalid table name or primary key (1 to 4 distinct columns).")
        if any(c.HasField("option") for c in meta.primary_key) or req.index_metas or meta.defined_column:
            raise _unsupported("auto-increment keys, defined columns or indexes")
        options = pb.TableOptions(time_to_live=given.time_to_live if given.HasField("time_to_live") else -1,
                                  max_versions=given.max_versions if given.HasField("max_versions") else 1,
                                  deviation_cell_version_in_sec=given.deviation_cell_version_in_sec or 86400)
        if options.time_to_live != -1 and options.time_to_live < _MIN_TTL:
            raise _bad(f"TimeToLive must be -1 or at least {_MIN_TTL} seconds.")
        if options.max_versions != 1:
            raise _unsupported("max_versions other than 1")
        with self._lock:
            if meta.table_name in self._tables:
                raise _OtsError(409, "OTSObjectAlreadyExist", "Requested table already exists.")
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
                    raise _bad("NOT takes exactly one sub-condition.")
                return not results[0]
            return all(results) if comp.combinator == fpb.LO_AND else any(results)
        if flt.type != fpb.FT_SINGLE_COLUMN_VALUE:
            raise _unsupported("column pagination filters")
        single = fpb.SingleColumnValueFilter.FromString(flt.filter)
        if single.HasField("value_trans_rule"):
            raise _unsupported("regex column conditions")
        cell = row.get(single.column_name)
        if single.comparator in (fpb.CT_EXIST, fpb.CT_NOT_EXIST):
            return (cell is not None) == (single.comparator == fpb.CT_EXIST)
        if cell is None:
            return not single.filter_if_missing
        target = _variant(_Buf(single.column_value))[0]
        # Values of different types never match (and a bool is not an int here).
        return type(cell[1]) is type(target) and _CMP[single.comparator](cell[1], target)

    def _check(self, cond: pb.Condition, row: dict | None) -> None:
        if (cond.row_existence == pb.EXPECT_EXIST and row is None) or (
            cond.row_existence == pb.EXPECT_NOT_EXIST and row is not None) or (
            cond.column_condition and not self._match(fpb.Filter.FromString(cond.column_condition), row or {})
        ):
            raise _OtsError(403, "OTSConditionCheckFail", "Condition check failed.")

    def _view(self, table: _Table, key: tuple, row: dict, columns, flt: bytes) -> bytes:
        """The row as response PlainBuffer, or b"" when a filter or columns_to_get leaves nothing."""
        if flt and not self._match(fpb.Filter.FromString(flt), row):
            return b""
        wanted = set(columns)
        cells = [(name, _out(row[name][1]), row[name][0]) for name in sorted(row) if not wanted or name in wanted]
        if wanted and not cells and not wanted & {name for name, _ in table.schema}:
            return b""
        return bytes(PlainBufferBuilder.serialize_for_put_row(table.pk_of(key), cells))

    def _write(self, table: _Table, kind: int, data: bytes, cond: pb.Condition, ret: pb.ReturnContent) -> bytes:
        """One PUT/UPDATE/DELETE row change, under the lock. Returns the RT_PK row if asked for."""
        pk, cells, deleted = _one_row(data)
        if deleted != (kind == pb.DELETE):
            raise _bad("The delete marker is only for DeleteRow.")
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
                        raise _bad(f"Column '{name}' is not an integer.")
                    value, op, ts = current + value, None, None
                if op is None and value is not None:
                    if _too_long(value, _MAX_VALUE):
                        raise _bad(f"The length of attribute column: '{name}' exceeds the MaxLength:{_MAX_VALUE}.")
                    row[name] = (now if ts is None else ts, value)
                elif kind == pb.UPDATE and (op == 1 or (op == 3 and row.get(name, (None,))[0] == ts)):
                    row.pop(name, None)  # delete all versions / the one version there is
                elif not (kind == pb.UPDATE and op == 3):
                    raise _bad(f"Invalid change of column '{name}'.")
            table.store(key, row)
        return bytes(PlainBufferBuilder.serialize_primary_key(table.pk_of(key))) if ret.return_type == pb.RT_PK else b""

    def _single_write(self, req, data: bytes, kind: int, response_cls):
        if req.HasField("transaction_id"):
            raise _unsupported("transactions")
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
            raise _unsupported(f"{sorted(extra) or 'max_versions > 1'} in reads")

    def _get(self, table: _Table, data: bytes, req) -> bytes:
        key = table.key(_one_row(data)[0])
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
            raise _unsupported("BACKWARD ranges")
        limit = min(req.limit if req.HasField("limit") else 5000, self.page_rows)
        if limit <= 0:
            raise _bad("The limit must be positive.")
        rows, size, scanned, next_pk = [], 0, 0, b""
        with self._lock:
            table = self._table(req.table_name)
            start = table.key(_one_row(req.inclusive_start_primary_key)[0], bound=True)
            end = table.key(_one_row(req.exclusive_end_primary_key)[0], bound=True)
            if start > end:
                raise _bad("Begin key must be less than end key in FORWARD.")
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


# --- signing and replies --------------------------------------------------------------------------

def _header_string(headers: dict, skip: tuple = ()) -> str:
    return "\n".join(sorted(f"{k}:{v.strip()}" for k, v in headers.items() if k.startswith("x-ots-") and k not in skip))


def _hmac(key: bytes, text: str, digest) -> str:
    return base64.b64encode(hmac.new(key, text.encode("utf-8"), digest).digest()).decode()


def _v4_key(secret: str, date: str, region: str) -> bytes:
    key = ("aliyun_v4" + secret).encode("utf-8")
    for part in (date, region, "ots", "aliyun_v4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(key)  # the SDK uses this base64 text itself as the HMAC key


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def _error_body(code: str, message: str) -> bytes:
    return pb.Error(code=code, message=message).SerializeToString()


def _reply(action: str, status: int, body: bytes, akid: str | None, key: bytes | None):
    headers = {
        "x-ots-contentmd5": base64.b64encode(hashlib.md5(body).digest()).decode(),
        "x-ots-requestid": uuid.uuid4().hex,
        "x-ots-date": _utcnow().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "x-ots-contenttype": "protocol buffer",
    }
    if akid is not None:  # only an authenticated caller gets a signed answer
        signature = _hmac(key, _header_string(headers) + "\n/" + action, hashlib.sha1)
        headers["authorization"] = f"OTS {akid}:{signature}"
    return status, http.client.responses.get(status, ""), headers, body


# --- transports -----------------------------------------------------------------------------------

class InProcessConnection:
    """Stands in for `OTSClient.connection`; the SDK calls `send_receive` with the path "/Action"."""

    def __init__(self, backend: FakeTablestore) -> None:
        self.backend = backend

    def send_receive(self, url: str, headers: dict, body: bytes):
        return self.backend.handle(url, headers, body)


def fake_client(backend: FakeTablestore, *, access_key_id: str | None = None, access_key_secret: str | None = None,
                instance: str | None = None, region: str | None = None, **kwargs) -> tablestore.OTSClient:
    """A real OTSClient wired to `backend` in process (no retries, quiet logger); region= signs V4."""
    kwargs.setdefault("retry_policy", NoRetryPolicy())
    kwargs.setdefault("logger_name", SDK_LOGGER)
    client = tablestore.OTSClient(
        "http://kmsfake.invalid", access_key_id or backend.access_key_id,
        access_key_secret or backend.access_key_secret, instance or backend.instance or INSTANCE,
        region=region, **kwargs)
    client.connection = InProcessConnection(backend)
    return client


def http_client(url: str, backend: FakeTablestore | None = None, **kwargs) -> tablestore.OTSClient:
    """A real OTSClient talking HTTP to a fake served at `url` (by `serve()`, or through a proxy)."""
    kwargs.setdefault("logger_name", SDK_LOGGER)
    return tablestore.OTSClient(url, backend.access_key_id if backend else ACCESS_KEY_ID,
                                backend.access_key_secret if backend else ACCESS_KEY_SECRET,
                                (backend.instance if backend else None) or INSTANCE, **kwargs)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: urllib3 pools connections
    disable_nagle_algorithm = True  # headers and body are two writes; Nagle + delayed ACK stall ~40 ms

    def _send(self, status: int, reason: str, headers: dict, body: bytes) -> None:
        self.send_response(status, reason)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._send(*self.server.backend.handle(self.path, dict(self.headers.items()), body))

    def log_message(self, format: str, *args) -> None:  # noqa: A002
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # idle keep-alive connections must not hold up server_close()
    request_queue_size = 128  # the default backlog of 5 drops bursts of connects (1 s SYN retry)


def _server(backend: FakeTablestore, host: str, port: int) -> _Server:
    server = _Server((host, port), _Handler)
    server.backend = backend
    return server


def serve(port: int = 0, backend: FakeTablestore | None = None, host: str = "127.0.0.1") -> tuple[_Server, str]:
    """Serve `backend` from a daemon thread; returns (server, "http://host:port").
    Stop it with `server.shutdown(); server.server_close()`."""
    server = _server(backend or FakeTablestore(), host, port)
    # A short poll interval keeps shutdown() (which waits for the next poll) fast in test teardown.
    threading.Thread(target=server.serve_forever, args=(0.05,), name="fake-tablestore", daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m alikms.testing.fake_tablestore",
                                     description="Serve a fake Tablestore on loopback until killed.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--access-key-id", default=ACCESS_KEY_ID)
    parser.add_argument("--access-key-secret", default=ACCESS_KEY_SECRET)
    parser.add_argument("--instance", default=INSTANCE, help="instance name to require ('' accepts any)")
    args = parser.parse_args(argv)
    backend = FakeTablestore(args.access_key_id, args.access_key_secret, args.instance or None)
    server = _server(backend, args.host, args.port)
    print(f"http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
