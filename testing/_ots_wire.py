"""The Tablestore wire protocol as the fake speaks it (testing/fake_tablestore.py): the service's
errors, the PlainBuffer rows inside requests (decoded here, because the SDK's own readers reject
INF_MIN/INF_MAX and update cells), request signatures (V2 and V4) and signed replies."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import http.client
import struct
import uuid

import tablestore
import tablestore.protobuf.table_store_pb2 as pb
from tablestore.plainbuffer.plain_buffer_crc8 import PlainBufferCrc8

INF_MIN, INF_MAX, PK_AUTO_INCR = tablestore.INF_MIN, tablestore.INF_MAX, tablestore.PK_AUTO_INCR


class OtsError(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def bad(message: str) -> OtsError:
    return OtsError(400, "OTSParameterInvalid", message)


def unsupported(what: str) -> OtsError:
    return OtsError(400, "OTSUnsupportOperation", f"The fake does not support {what}.")


def too_long(value, limit: int) -> bool:
    return isinstance(value, (str, bytes)) and len(value.encode() if isinstance(value, str) else value) > limit


# --- PlainBuffer requests -------------------------------------------------------------------------

class Buf:
    def __init__(self, data: bytes) -> None:
        self.b, self.i = bytes(data), 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.i + n > len(self.b):
            raise bad("Truncated PlainBuffer.")
        self.i += n
        return self.b[self.i - n:self.i]

    def byte(self) -> int:
        return self.take(1)[0]

    def i32(self) -> int:
        return struct.unpack("<i", self.take(4))[0]


def variant(buf: Buf):
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
                raise bad("STRING value is not valid UTF-8.") from None
    elif kind in (9, 10, 11):
        value = {9: INF_MIN, 10: INF_MAX, 11: PK_AUTO_INCR}[kind]
    else:
        raise bad(f"Unknown value type {kind}.")
    return value, buf.b[start:buf.i]


def _cell(buf: Buf):
    if buf.byte() != 0x04:
        raise bad("Expected a cell name.")
    name = buf.take(buf.i32())
    crc, value, op, ts, tag = PlainBufferCrc8.crc_bytes(0, name), None, None, None, buf.byte()
    if tag == 0x05:
        buf.i32()  # the value's length; its type byte says as much
        value, raw = variant(buf)
        crc, tag = PlainBufferCrc8.crc_bytes(crc, raw), buf.byte()
    if tag == 0x06:
        op, tag = buf.byte(), buf.byte()
    if tag == 0x07:
        raw = buf.take(8)
        ts, crc, tag = struct.unpack("<q", raw)[0], PlainBufferCrc8.crc_bytes(crc, raw), buf.byte()
    if op is not None:  # the checksum takes the op after the timestamp, unlike the wire order
        crc = PlainBufferCrc8.crc_int8(crc, op)
    if tag != 0x0A or buf.byte() != crc:
        raise bad("Cell checksum mismatch.")
    return name.decode("utf-8"), value, op, ts, crc


def rows(data: bytes) -> list:
    """[(primary_key, cells, delete_marker)] with pk = [(name, value)], cells = [(name, value, op, ts)]."""
    buf = Buf(data)
    if buf.i32() != 0x75:
        raise bad("Invalid PlainBuffer header.")
    rows, tag = [], buf.byte()
    while True:
        if tag != 0x01:
            raise bad("Expected a primary key.")
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
            raise bad("Row checksum mismatch.")
        rows.append((pk, cells, deleted))
        if buf.i == len(buf.b):
            return rows
        tag = buf.byte()


def one_row(data: bytes):
    found = rows(data)
    if len(found) != 1:
        raise bad("Expected exactly one row.")
    return found[0]


def cell_value(value):
    return bytearray(value) if isinstance(value, bytes) else value  # the SDK would write bytes as STRING


# --- signing and replies --------------------------------------------------------------------------

def authenticate(action: str, h: dict, body: bytes, access_keys: dict[str, str],
                 instance: str | None) -> tuple[str, bytes]:
    """(access key id, signing key) of a request whose headers and signature (V2 or V4) check out."""
    for name in ("x-ots-date", "x-ots-apiversion", "x-ots-accesskeyid", "x-ots-instancename", "x-ots-contentmd5"):
        if name not in h:
            raise bad(f"Missing header: '{name}'.")
    denied = "OTSAuthFailed"
    if h["x-ots-contentmd5"] != base64.b64encode(hashlib.md5(body).digest()).decode():
        raise OtsError(403, denied, "Mismatch between MD5 value of request body and x-ots-contentmd5 in header.")
    try:
        sent = datetime.datetime.strptime(h["x-ots-date"], "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError:
        raise bad(f"Invalid date format: {h['x-ots-date']}.") from None
    if abs((utcnow() - sent).total_seconds()) > 15 * 60:
        raise OtsError(403, denied, "The difference between the request time and the current time is too large.")
    secret = access_keys.get(h["x-ots-accesskeyid"])
    if secret is None:
        raise OtsError(403, denied, "The AccessKeyID is disabled or does not exist.")
    if instance is not None and h["x-ots-instancename"] != instance:
        raise OtsError(403, denied, f"Instance '{h['x-ots-instancename']}' does not exist.")
    canonical = f"/{action}\nPOST\n\n{header_string(h, ('x-ots-signature', 'x-ots-signaturev4'))}\n"
    if "x-ots-signaturev4" in h:
        key = v4_key(secret, h.get("x-ots-signdate", ""), h.get("x-ots-signregion", ""))
        given, expected = h["x-ots-signaturev4"], hmac_b64(key, canonical + "ots", hashlib.sha256)
    else:
        key = secret.encode()
        given, expected = h.get("x-ots-signature", ""), hmac_b64(key, canonical, hashlib.sha1)
    if not hmac.compare_digest(given, expected):
        raise OtsError(403, denied, "Signature mismatch.")
    return h["x-ots-accesskeyid"], key


def header_string(headers: dict, skip: tuple = ()) -> str:
    return "\n".join(sorted(f"{k}:{v.strip()}" for k, v in headers.items() if k.startswith("x-ots-") and k not in skip))


def hmac_b64(key: bytes, text: str, digest) -> str:
    return base64.b64encode(hmac.new(key, text.encode("utf-8"), digest).digest()).decode()


def v4_key(secret: str, date: str, region: str) -> bytes:
    key = ("aliyun_v4" + secret).encode("utf-8")
    for part in (date, region, "ots", "aliyun_v4_request"):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(key)  # the SDK uses this base64 text itself as the HMAC key


def utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def error_body(code: str, message: str) -> bytes:
    return pb.Error(code=code, message=message).SerializeToString()


def reply(action: str, status: int, body: bytes, akid: str | None, key: bytes | None):
    headers = {
        "x-ots-contentmd5": base64.b64encode(hashlib.md5(body).digest()).decode(),
        "x-ots-requestid": uuid.uuid4().hex,
        "x-ots-date": utcnow().strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "x-ots-contenttype": "protocol buffer",
    }
    if akid is not None and key is not None:  # only an authenticated caller gets a signed answer
        signature = hmac_b64(key, header_string(headers) + "\n/" + action, hashlib.sha1)
        headers["authorization"] = f"OTS {akid}:{signature}"
    return status, http.client.responses.get(status, ""), headers, body
