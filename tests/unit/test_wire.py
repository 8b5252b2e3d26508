"""alikms.shared.wire: FC events in (API Gateway and FC 3.0 HTTP trigger), parameters parsed, response structs out."""

from __future__ import annotations

import base64
import json
import random
import re
from urllib.parse import parse_qsl

import pytest

from alikms.shared import errors, wire
from tests import support

MAX = 1024
FORM = "application/x-www-form-urlencoded"


def gateway_event(**over) -> dict:
    """API Gateway -> FC event (tests/events/apigateway.json)."""
    return support.event("apigateway", **{
        "headers": {"Host": "kms.test", "X-Acs-Action": "DescribeRegions", "X-Forwarded-For": "10.0.0.7, 10.0.0.1"},
        "queryParameters": {"Action": "DescribeRegions", "Format": "JSON"}, **over})


def http_trigger_event(**over) -> dict:
    """FC 3.0 HTTP trigger event (tests/events/fc3-http.json)."""
    ev = support.event("fc3-http", rawPath="/a%20b", queryParameters={"KeyId": "k1"}, body="Description=hello",
                       headers={"Host": "abc.cn-hangzhou.fcapp.run", "Content-Type": FORM})
    ev["requestContext"]["accountId"] = "123"
    ev["requestContext"]["http"].update(method="post", path="/a b")
    ev.update(over)
    return ev


def req(method="POST", query=None, body=b"", ctype=FORM) -> wire.HttpRequest:
    headers = {"content-type": ctype} if ctype else {}
    return wire.HttpRequest(method, "/", headers, dict(query or {}), body, "")


def refused(request, max_body=MAX) -> errors.KmsError:
    with pytest.raises(errors.KmsError) as info:
        wire.parse_params(request, max_body)
    return info.value


# --- decode_event ---


@pytest.mark.parametrize("encode", [lambda e: json.dumps(e).encode(), json.dumps, lambda e: e],
                         ids=["bytes", "str", "dict"])
def test_decode_api_gateway_event(encode):
    r = wire.decode_event(encode(gateway_event(httpMethod="post")))
    assert r.method == "POST"
    assert r.path == "/"
    assert r.headers == {"host": "kms.test", "x-acs-action": "DescribeRegions",
                         "x-forwarded-for": "10.0.0.7, 10.0.0.1"}
    assert r.query == {"Action": "DescribeRegions", "Format": "JSON"}
    assert r.body == b""
    # The gateway appends what it saw; the first entry is whatever the client claimed.
    assert r.source_ip == "10.0.0.1"


def test_decode_http_trigger_event():
    r = wire.decode_event(json.dumps(http_trigger_event()).encode())
    assert r.method == "POST"
    assert r.path == "/a b"
    assert r.headers == {"host": "abc.cn-hangzhou.fcapp.run", "content-type": FORM}
    assert r.query == {"KeyId": "k1"}
    assert r.body == b"Description=hello"
    assert r.source_ip == "203.0.113.9"


def test_decode_http_trigger_event_without_decoded_path_uses_raw_path():
    ev = http_trigger_event()
    del ev["requestContext"]["http"]["path"]
    assert wire.decode_event(ev).path == "/a%20b"


@pytest.mark.parametrize("flag", [True, "true", "True"])
@pytest.mark.parametrize("make", [gateway_event, http_trigger_event])
def test_base64_body_is_decoded_when_flag_is_set(make, flag):
    raw = b"SecretData=p%40ss+w0rd" + b"\xff\x00"
    ev = make(body=base64.b64encode(raw).decode(), isBase64Encoded=flag)
    assert wire.decode_event(json.dumps(ev)).body == raw


@pytest.mark.parametrize("flag", [False, "false", None])
def test_body_is_taken_literally_without_the_flag(flag):
    text = base64.b64encode(b"A=1").decode()
    ev = gateway_event(body=text, isBase64Encoded=flag)
    assert wire.decode_event(ev).body == text.encode()


def test_utf8_text_body_is_kept_as_utf8_bytes():
    ev = gateway_event(body="Description=é中")
    assert wire.decode_event(ev).body == "Description=é中".encode()


def test_invalid_base64_body_is_refused():
    with pytest.raises(errors.ParseRequestParameterException):
        wire.decode_event(gateway_event(body="not base64!", isBase64Encoded=True))


@pytest.mark.parametrize("missing, attr", [("headers", "headers"), ("queryParameters", "query"),
                                           ("body", "body")])
def test_null_event_parts_are_empty(missing, attr):
    ev = gateway_event(body="A=1")
    ev[missing] = None
    r = wire.decode_event(ev)
    assert r.method == "POST"
    assert not getattr(r, attr)


def test_event_that_is_not_an_object_is_refused():
    with pytest.raises(errors.ParseRequestParameterException):
        wire.decode_event(b"[1, 2]")


# --- parse_params ---


def test_query_and_form_body_are_merged_and_query_is_returned_alone():
    query, merged = wire.parse_params(req(query={"Action": "CreateKey", "KeySpec": "Aliyun_AES_256"},
                                          body=b"Description=hi&Tags="), MAX)
    assert query == {"Action": "CreateKey", "KeySpec": "Aliyun_AES_256"}
    assert merged == {"Action": "CreateKey", "KeySpec": "Aliyun_AES_256", "Description": "hi", "Tags": ""}


def test_blank_values_are_kept():
    query, merged = wire.parse_params(req(query={"SignatureType": ""}, body=b"A=&B=1"), MAX)
    assert query == {"SignatureType": ""}
    assert merged == {"SignatureType": "", "A": "", "B": "1"}


@pytest.mark.parametrize(
    "body, value",
    [
        (b"V=a+b", "a b"),
        (b"V=a%20b", "a b"),
        (b"V=a%2Bb", "a+b"),
        (b"V=%C3%A9%E4%B8%AD", "é中"),
        ("V=é中".encode(), "é中"),
        (b"V=p%40ss!*~'()", "p@ss!*~'()"),
        (b"V=%7B%22a%22%3A%22b%22%7D", '{"a":"b"}'),
    ],
)
def test_form_body_decoding(body, value):
    assert wire.parse_params(req(body=body), MAX)[1] == {"V": value}


@pytest.mark.parametrize(
    "text, pairs",
    [
        ("A=1&B=", [("A", "1"), ("B", "")]),
        ("A=x+y%20z", [("A", "x y z")]),
        ("A=%E4%B8%AD", [("A", "中")]),
        ("A=1&A=2", [("A", "1"), ("A", "2")]),
    ],
)
def test_parse_form(text, pairs):
    assert wire.parse_form(text) == pairs
    assert wire.parse_form(text.encode()) == pairs


def test_parse_form_matches_parse_qsl_on_random_input():
    """parse_form is a faster parse_qsl(keep_blank_values, strict_parsing, errors="strict")."""
    rng = random.Random(7)
    alphabet = ["A", "b", "=", "&", "+", "%", "%2", "%20", "%3D", "%26", "%C3%A9", "%E4%B8%AD", "%FF", "%zz", "é",
                " ", "~"]
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        try:
            expected = parse_qsl(text, keep_blank_values=True, strict_parsing=True, encoding="utf-8",
                                 errors="strict")
            if re.search(r"%(?![0-9A-Fa-f]{2})", text):
                expected = None  # parse_qsl keeps a bad escape as text; parse_form refuses it
        except (UnicodeDecodeError, ValueError):
            expected = None
        if expected is None:
            with pytest.raises(errors.ParseRequestParameterException):
                wire.parse_form(text)
        else:
            assert wire.parse_form(text) == expected, text


def test_form_content_type_with_charset_is_accepted():
    r = wire.HttpRequest("POST", "/", {"content-type": "Application/X-WWW-Form-Urlencoded; charset=UTF-8"}, {},
                         b"A=1", "")
    assert wire.parse_params(r, MAX)[1] == {"A": "1"}


def test_empty_body_with_form_content_type_is_accepted():
    # Tea Decrypt / GetSecretValue: form content-type, empty body (wire.md §2.2)
    assert wire.parse_params(req(query={"A": "1"}, body=b""), MAX) == ({"A": "1"}, {"A": "1"})


def test_empty_body_without_content_type_is_accepted():
    assert wire.parse_params(req(query={"A": "1"}, ctype=None), MAX) == ({"A": "1"}, {"A": "1"})


def test_duplicate_in_query_list_is_refused():
    exc = refused(req(query={"KeyId": ["a", "b"]}))
    assert isinstance(exc, errors.ParseRequestParameterException)
    assert exc.status == 400
    assert "KeyId" in exc.detail


def test_duplicate_within_body_is_refused():
    exc = refused(req(body=b"KeyId=a&KeyId=b"))
    assert isinstance(exc, errors.ParseRequestParameterException)
    assert "KeyId" in exc.detail


def test_duplicate_across_query_and_body_is_refused():
    exc = refused(req(query={"KeyId": "a"}, body=b"KeyId=a"))
    assert isinstance(exc, errors.ParseRequestParameterException)
    assert "KeyId" in exc.detail


@pytest.mark.parametrize("ctype", [None, "application/json", "text/plain", "multipart/form-data; boundary=x"])
def test_non_form_body_is_refused(ctype):
    exc = refused(req(body=b'{"A":"1"}' if ctype == "application/json" else b"A=1", ctype=ctype))
    assert isinstance(exc, errors.ParseRequestParameterException)
    assert exc.status == 400


@pytest.mark.parametrize(
    "body",
    [b"A=%ZZ", b"A=%4", b"A=abc%", b"A%G1=1", b"A=%FF", b"A=%C3", b"\xff=1", b"A=\xc3\x28", b"A=1&B"],
    ids=["bad-hex", "short-escape", "trailing-percent", "bad-escape-in-name", "invalid-utf8-escape",
         "truncated-utf8-escape", "raw-invalid-utf8-name", "raw-invalid-utf8-value", "field-without-equals"],
)
def test_malformed_form_body_is_refused(body):
    assert isinstance(refused(req(body=body)), errors.ParseRequestParameterException)


@pytest.mark.parametrize("text", ["A=%ZZ", "A=%E4%B8", "A=1&&B=2"])
def test_parse_form_refuses_garbage(text):
    with pytest.raises(errors.ParseRequestParameterException):
        wire.parse_form(text)


def test_body_at_the_limit_is_accepted_and_one_byte_more_is_refused():
    value = b"A=" + b"x" * (MAX - 2)
    assert len(value) == MAX
    assert wire.parse_params(req(body=value), MAX)[1]["A"] == "x" * (MAX - 2)
    exc = refused(req(body=value + b"x"))
    assert isinstance(exc, errors.ParseRequestParameterException)
    assert exc.status == 400
    assert "too large" in exc.detail


@pytest.mark.parametrize("method", ["PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"])
def test_other_http_methods_are_refused(method):
    exc = refused(req(method=method, query={"A": "1"}))
    assert isinstance(exc, errors.UnsupportedHTTPMethod)
    assert (exc.code, exc.status) == ("UnsupportedHTTPMethod", 403)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_get_and_post_are_accepted(method):
    assert wire.parse_params(req(method=method, query={"A": "1"}), MAX)[1] == {"A": "1"}


def test_action_name_prefers_the_header_then_the_parameter():
    r = wire.HttpRequest("POST", "/", {"x-acs-action": "CreateKey"}, {}, b"", "")
    assert wire.action_name(r, {"Action": "DescribeKey"}) == "CreateKey"
    r = wire.HttpRequest("POST", "/", {}, {}, b"", "")
    assert wire.action_name(r, {"Action": "DescribeKey"}) == "DescribeKey"
    assert wire.action_name(r, {}) == ""


# --- responses ---


def test_response_struct_shape():
    out = wire.response(200, {"KeyId": "k", "Description": "é中"}, "rid-1")
    assert set(out) == {"statusCode", "headers", "isBase64Encoded", "body"}
    assert out["statusCode"] == 200
    assert out["isBase64Encoded"] is False
    assert out["headers"]["content-type"].startswith("application/json")
    assert out["headers"]["x-acs-request-id"] == "rid-1"
    assert isinstance(out["body"], str)
    assert json.loads(out["body"]) == {"KeyId": "k", "Description": "é中"}
    assert "é中" in out["body"]  # UTF-8, not \u escapes


def test_error_body_fields_and_status():
    out = wire.error_response(errors.KeyNotFound(), "rid-2", "kms.cn-hangzhou.aliyuncs.com")
    assert out["statusCode"] == 404
    assert out["headers"]["x-acs-request-id"] == "rid-2"
    body = json.loads(out["body"])
    assert body["Code"] == "Forbidden.KeyNotFound"
    assert body["Message"] == "The specified Key is not found."
    assert body["RequestId"] == "rid-2"
    assert body["HostId"] == "kms.cn-hangzhou.aliyuncs.com"
    assert body["Recommend"].startswith("https://api.aliyun.com/troubleshoot?")
    assert "q=Forbidden.KeyNotFound" in body["Recommend"]
    assert "requestId=rid-2" in body["Recommend"]


@pytest.mark.parametrize(
    "exc, code, status",
    [
        (errors.ParseRequestParameterException(), "ParseRequestParameterException", 400),
        (errors.MissingParameter(name="KeyId"), "MissingParameter", 400),
        (errors.InvalidParameter(name="KeySpec"), "InvalidParameter", 400),
        (errors.IncompleteSignature(), "IncompleteSignature", 400),
        (errors.SignatureDoesNotMatch(sts="X"), "SignatureDoesNotMatch", 400),
        (errors.IllegalTimestamp(), "IllegalTimestamp", 400),
        (errors.InvalidTimeStampExpired(), "InvalidTimeStamp.Expired", 400),
        (errors.SignatureNonceUsed(), "SignatureNonceUsed", 400),
        (errors.InvalidAccessKeyIdNotFound(), "InvalidAccessKeyId.NotFound", 404),
        (errors.UnsupportedHTTPMethod(), "UnsupportedHTTPMethod", 403),
        (errors.InvalidAction(), "InvalidAction.NotFound", 404),
        (errors.ForbiddenKmsServiceNotEnabled(), "Forbidden.KmsServiceNotEnabled", 403),
        (errors.ForbiddenOpened(), "Forbidden.Opened", 400),
        (errors.KeyNotFound(), "Forbidden.KeyNotFound", 404),
        (errors.UnsupportedOperation(), "UnsupportedOperation", 400),
        (errors.UnsupportedProtectionLevel(), "Unsupported.ProtectionLevel", 400),
        (errors.RejectedDisabled(), "Rejected.Disabled", 409),
        (errors.InternalFailure(), "InternalFailure", 500),
        (errors.ServiceUnavailableTemporary(), "ServiceUnavailableTemporary", 503),
    ],
)
def test_error_codes_and_statuses(exc, code, status):
    out = wire.error_response(exc, "rid", "h")
    assert out["statusCode"] == status >= 400
    body = json.loads(out["body"])
    assert body["Code"] == code
    assert body["Message"]
    assert {"Code", "Message", "RequestId", "HostId", "Recommend"} <= set(body)


def test_parameter_name_is_in_missing_and_invalid_messages():
    assert errors.MissingParameter(name="KeyId").detail == 'The parameter "KeyId" is needed but not provided.'
    assert errors.InvalidParameter(name="KeySpec").detail == 'The specified parameter "KeySpec" is not valid.'


def test_signature_mismatch_message_ends_with_the_string_to_sign_after_a_colon():
    sts = "POST&%2F&A%3D1"
    msg = errors.SignatureDoesNotMatch(sts=sts).detail
    assert msg == f"Specified signature is not matched with our calculation. server string to sign is:{sts}"
    assert msg.split(":")[1] == sts  # what the classic SDK compares


def test_one_class_per_wire_code():
    by_code: dict[str, list[str]] = {}
    for name, obj in vars(errors).items():
        if isinstance(obj, type) and issubclass(obj, errors.KmsError) and obj is not errors.KmsError:
            by_code.setdefault(obj.code, []).append(name)
    assert {code: names for code, names in by_code.items() if len(names) > 1} == {}
    assert "UnsupportedOperation" in by_code and "Rejected.UnsupportedOperation" in by_code


def test_unsupported_operation_and_rejected_unsupported_operation_are_distinct():
    assert (errors.UnsupportedOperation.code, errors.UnsupportedOperation.message) == (
        "UnsupportedOperation", "This action is not supported.")
    assert (errors.RejectedUnsupportedOperation.code, errors.RejectedUnsupportedOperation.message) == (
        "Rejected.UnsupportedOperation", "Unsupported operation.")
