"""Authentication through the real FC handlers, in process: both signature schemes, the timestamp
window, nonce replay, credentials, and that no refused request changes the store.

Requests are signed here with an independent reference implementation of the two schemes
(tests/reference_signing.py), not with alikms.shared.signing.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import json
import secrets
import sqlite3
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from alikms.shared import auth, errors, registry, wire
from tests import reference_signing as ref
from tests import support
from tests.conftest import make_event

SDM_PREFIX = "Specified signature is not matched with our calculation. server string to sign is:"
VECTORS = json.loads((Path(__file__).resolve().parents[1] / "data" / "signature-vectors.json").read_text())


def ts(offset: float = 0) -> str:
    return support.timestamp(time.time() + offset)


def event(method: str, headers: dict, query: dict, body: bytes = b"") -> bytes:
    return support.gateway_event("", query, method, headers, body.decode())


def v1_event(action: str, params: dict | None = None, *, secret: str = support.TEST_SECRET,
             ak: str = support.TEST_AK, timestamp: str | None = None, nonce: str | None = None,
             method: str = "POST", body: dict | None = None, drop: tuple[str, ...] = (), extra: dict | None = None,
             header_action: str | None = None) -> tuple[bytes, str]:
    """An API Gateway event carrying an RPC v1 request; returns (event, the string-to-sign)."""
    full = {"Action": action, "Version": "2016-01-20", "Format": "JSON", "AccessKeyId": ak,
            "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0",
            "SignatureNonce": nonce or secrets.token_hex(16), "Timestamp": timestamp or ts(),
            **(params or {}), **(extra or {})}
    for name in drop:
        full.pop(name, None)
    sts = ref.v1_string_to_sign(method, {**full, **(body or {})})
    if "Signature" not in drop:
        full["Signature"] = ref.v1_signature(secret, sts)
    headers = {"Host": "kms.test", "x-acs-action": header_action or action, "x-acs-version": "2016-01-20"}
    raw = b""
    if body:
        headers["Content-Type"] = "application/x-www-form-urlencoded"
        raw = "&".join(f"{ref.encode(k)}={ref.encode(v)}" for k, v in body.items()).encode()
    return event(method, headers, full, raw), sts


def acs3_event(action: str, query: dict | None = None, *, secret: str = support.TEST_SECRET,
               ak: str = support.TEST_AK, date: str | None = None, nonce: str | None = "",
               body: bytes = b"", python_style: bool = False, extra_headers: dict | None = None,
               signed: list[str] | None = None, authorization: str | None = None) -> tuple[bytes, str]:
    """An API Gateway event carrying an ACS3-HMAC-SHA256 request; returns (event, the string-to-sign)."""
    query = dict(query or {})
    headers = {"host": "127.0.0.1:8080", "x-acs-action": action, "x-acs-version": "2016-01-20",
               "x-acs-date": date or ts(), "x-acs-content-sha256": hashlib.sha256(body).hexdigest(),
               "x-acs-signature-nonce": secrets.token_hex(16) if nonce == "" else nonce,
               **(extra_headers or {})}
    if headers["x-acs-signature-nonce"] is None:
        del headers["x-acs-signature-nonce"]
    if body:
        headers["content-type"] = "application/x-www-form-urlencoded"
    if python_style:  # Tea Python signs every header it set (wire.md §2.2)
        headers.update({"accept": "application/json", "user-agent": "AlibabaCloud (Linux; x86_64) Python/3.11.7",
                        "x-acs-credentials-provider": "static_ak"})
    names = signed or sorted(h for h in headers if h.startswith("x-acs-") or h in ("host", "content-type", "accept",
                                                                                   "user-agent"))
    sts, sig = ref.acs3("POST", query, headers, names, body, secret)
    headers["Authorization"] = authorization or (
        f"ACS3-HMAC-SHA256 Credential={ak},SignedHeaders={';'.join(names)},Signature={sig}")
    return event("POST", headers, query, body), sts


@pytest.fixture
def run(local_env):
    """Deliver an event to the named action's FC handler: run(action, event) -> (status, body)."""

    def call(action: str, ev: bytes) -> tuple[int, dict]:
        handler = importlib.import_module(registry.action(action).module).handler
        result = handler(ev, None)
        assert result["isBase64Encoded"] is False
        return result["statusCode"], json.loads(result["body"])

    return call


@pytest.fixture
def key_count(local_env, invoke):
    """Number of keys in the store, counted in the SQLite file and checked against ListKeys."""

    def count() -> int:
        db = local_env / "kms.sqlite3"
        rows = 0
        if db.exists():
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT COUNT(*) FROM kms_keys").fetchone()[0]
        status, body = invoke("ListKeys", {"PageSize": 100})
        assert status == 200, body
        assert body["TotalCount"] == rows
        return rows

    return count


def expect_error(result: tuple[int, dict], code: str, status: int) -> dict:
    got_status, body = result
    assert (got_status, body.get("Code")) == (status, code), body
    assert body["Message"]
    assert body["RequestId"]
    return body


# --- requests that pass ---


def test_v1_post_with_query_parameters_passes(run, key_count):
    status, body = run("CreateKey", v1_event("CreateKey", {"Description": "v1 query"})[0])
    assert status == 200, body
    assert body["KeyMetadata"]["Description"] == "v1 query"
    assert key_count() == 1


def test_v1_get_passes(run):
    status, body = run("DescribeRegions", v1_event("DescribeRegions", method="GET")[0])
    assert status == 200, body
    assert body["Regions"]["Region"] == [{"RegionId": "cn-hangzhou"}]


def test_v1_signature_covers_form_body_parameters(run, key_count):
    ev, _ = v1_event("CreateKey", body={"Description": "from the body é中 +*~"})
    status, body = run("CreateKey", ev)
    assert status == 200, body
    assert body["KeyMetadata"]["Description"] == "from the body é中 +*~"
    assert key_count() == 1


def test_v1_everything_in_the_form_body_passes(run):
    """pop-core POST: empty query, Signature and Action in the body."""
    ev, _ = v1_event("DescribeRegions", header_action="DescribeRegions")
    payload = json.loads(ev)
    params = payload["queryParameters"]
    payload["queryParameters"] = {}
    del payload["headers"]["x-acs-action"]
    payload["headers"]["Content-Type"] = "application/x-www-form-urlencoded"
    payload["body"] = "&".join(f"{ref.encode(k)}={ref.encode(v)}" for k, v in sorted(params.items()))
    status, body = run("DescribeRegions", json.dumps(payload).encode())
    assert status == 200, body


def test_classic_blank_signature_type_is_signed_and_passes(run):
    status, body = run("DescribeRegions", v1_event("DescribeRegions", extra={"SignatureType": "", "RegionId":
                                                                             "cn-hangzhou"})[0])
    assert status == 200, body


def test_invoke_fixture_event_passes(invoke):
    status, body = invoke("DescribeAccountKmsStatus")
    assert (status, body["AccountStatus"]) == (200, "Enabled")


@pytest.mark.parametrize("python_style", [False, True], ids=["node-go-headers", "python-headers"])
def test_acs3_passes(run, key_count, python_style):
    ev, _ = acs3_event("CreateKey", {"Description": "acs3 a b*~'()", "KeySpec": "Aliyun_AES_128"},
                       python_style=python_style)
    status, body = run("CreateKey", ev)
    assert status == 200, body
    assert body["KeyMetadata"]["Description"] == "acs3 a b*~'()"
    assert body["KeyMetadata"]["KeySpec"] == "Aliyun_AES_128"
    assert key_count() == 1


def test_acs3_with_form_body_passes(run, key_count):
    ev, _ = acs3_event("CreateKey", {"KeySpec": "Aliyun_SM4"}, body=b"Description=p%40ss+w0rd")
    status, body = run("CreateKey", ev)
    assert status == 200, body
    assert body["KeyMetadata"]["Description"] == "p@ss w0rd"
    assert key_count() == 1


def test_acs3_with_empty_form_body_passes(run):
    ev, _ = acs3_event("DescribeRegions", extra_headers={"content-type": "application/x-www-form-urlencoded"})
    assert run("DescribeRegions", ev)[0] == 200


@pytest.mark.parametrize("name", ["classic_rpc_v1", "tea_v2_createsecret", "tea_acs3_encrypt",
                                  "tea_acs3_createsecret"])
def test_captured_sdk_vectors_authenticate_with_a_pinned_clock(local_env, tmp_path, name):
    from alikms.shared.config import get_config
    from alikms.shared.store.sqlite import SqliteStore

    vec = VECTORS[name]
    method, target = vec["wire"].split(" ", 1)
    headers = {k.lower(): v for k, v in vec.get("headers", [["host", "kms.cn-hangzhou.aliyuncs.com"]])}
    query = dict(parse_qsl(urlsplit(target).query, keep_blank_values=True))
    req = wire.HttpRequest(method, "/", headers, query, vec.get("body", "").encode(), "")
    q, params = wire.parse_params(req, 4096)
    cfg = dataclasses.replace(get_config(), access_key_id="testid", access_key_secret="testsecret",
                              account_id="9999999999999999")
    store = SqliteStore(tmp_path / f"{name}.sqlite3")
    pinned = 1704067200  # 2024-01-01T00:00:00Z
    caller = auth.authenticate(req, q, params, cfg, store, pinned + 60)
    assert (caller.account_id, caller.access_key_id) == ("9999999999999999", "testid")
    with pytest.raises(errors.SignatureNonceUsed):  # the same request again is a replay
        auth.authenticate(req, q, params, cfg, store, pinned + 61)
    with pytest.raises(errors.InvalidTimeStampExpired):
        auth.authenticate(req, q, params, cfg, SqliteStore(tmp_path / "other.sqlite3"), pinned + 16 * 60)
    wrong = dataclasses.replace(cfg, access_key_secret="testsecreT")
    with pytest.raises(errors.SignatureDoesNotMatch) as info:
        auth.authenticate(req, q, params, wrong, SqliteStore(tmp_path / "third.sqlite3"), pinned)
    assert info.value.detail == SDM_PREFIX + vec["string_to_sign"]


# --- credentials and signatures ---


def test_unknown_access_key_id_v1(run, key_count):
    ev, _ = v1_event("CreateKey", ak="LTAIunknown000000")
    expect_error(run("CreateKey", ev), "InvalidAccessKeyId.NotFound", 404)
    assert key_count() == 0


def test_unknown_access_key_id_acs3(run, key_count):
    ev, _ = acs3_event("CreateKey", ak="LTAIunknown000000")
    expect_error(run("CreateKey", ev), "InvalidAccessKeyId.NotFound", 404)
    assert key_count() == 0


def test_missing_access_key_id_v1(run, key_count):
    ev, _ = v1_event("CreateKey", drop=("AccessKeyId",))
    body = expect_error(run("CreateKey", ev), "MissingParameter", 400)
    assert "AccessKeyId" in body["Message"]
    assert key_count() == 0


def test_wrong_secret_v1_reports_the_exact_string_to_sign(run, key_count):
    ev, sts = v1_event("CreateKey", {"Description": "a b*é"}, secret="not-the-secret")
    body = expect_error(run("CreateKey", ev), "SignatureDoesNotMatch", 400)
    assert body["Message"] == SDM_PREFIX + sts
    assert body["Message"].split(":")[1] == sts  # what the classic SDK compares
    assert key_count() == 0


def test_wrong_secret_v1_with_body_reports_the_merged_string_to_sign(run, key_count):
    ev, sts = v1_event("CreateKey", body={"Description": "in body"}, secret="not-the-secret")
    body = expect_error(run("CreateKey", ev), "SignatureDoesNotMatch", 400)
    assert body["Message"] == SDM_PREFIX + sts
    assert "Description%3Din%2520body" in sts
    assert key_count() == 0


def test_wrong_secret_acs3_reports_the_exact_string_to_sign(run, key_count):
    ev, sts = acs3_event("CreateKey", {"Description": "x"}, secret="not-the-secret", python_style=True)
    body = expect_error(run("CreateKey", ev), "SignatureDoesNotMatch", 400)
    assert body["Message"] == SDM_PREFIX + sts
    assert key_count() == 0


def test_tampered_v1_parameter_fails(run, key_count):
    ev, _ = v1_event("CreateKey", {"Description": "signed"})
    payload = json.loads(ev)
    payload["queryParameters"]["Description"] = "changed"
    expect_error(run("CreateKey", json.dumps(payload).encode()), "SignatureDoesNotMatch", 400)
    assert key_count() == 0


def test_tampered_acs3_body_fails(run, key_count):
    ev, _ = acs3_event("CreateKey", body=b"Description=signed")
    payload = json.loads(ev)
    payload["body"] = "Description=changed"
    expect_error(run("CreateKey", json.dumps(payload).encode()), "SignatureDoesNotMatch", 400)
    assert key_count() == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda: v1_event("CreateKey", drop=("Signature",))[0],
        lambda: v1_event("CreateKey", extra={"SignatureMethod": "HMAC-SHA256"})[0],
        lambda: v1_event("CreateKey", extra={"SignatureVersion": "2.0"})[0],
        lambda: acs3_event("CreateKey", authorization="ACS3-HMAC-SHA256 nonsense")[0],
        lambda: acs3_event("CreateKey", authorization="ACS3-HMAC-SM3 Credential=a,SignedHeaders=host,Signature=ab")[0],
        lambda: acs3_event("CreateKey", signed=["x-acs-action", "x-acs-date"])[0],  # host not signed
        lambda: acs3_event("CreateKey", signed=["host", "x-acs-missing"])[0],  # names an absent header
    ],
    ids=["v1-no-signature", "v1-sha256-method", "v1-version-2", "acs3-malformed", "acs3-other-algorithm",
         "acs3-host-unsigned", "acs3-absent-signed-header"],
)
def test_missing_or_malformed_signature_is_incomplete(run, key_count, make):
    expect_error(run("CreateKey", make()), "IncompleteSignature", 400)
    assert key_count() == 0


def test_no_credentials_at_all_is_incomplete(run, key_count):
    ev = event("POST", {"host": "kms.test", "x-acs-action": "CreateKey"}, {"Action": "CreateKey"})
    expect_error(run("CreateKey", ev), "IncompleteSignature", 400)
    assert key_count() == 0


# --- timestamps ---


@pytest.mark.parametrize(
    "value",
    ["2024-01-01 00:00:00", "2024-01-01T00:00:00", "2024-01-01T00:00Z", "1704067200", "yesterday", "",
     "2024-02-30T00:00:00Z", "2024-13-01T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:60:00Z",
     "2024-01-01T00:00:61Z", "2024-01-00T00:00:00Z"],
)
def test_malformed_timestamp_v1_is_illegal(run, key_count, value):
    ev, _ = v1_event("CreateKey", timestamp=value or None, drop=("Timestamp",) if not value else ())
    expect_error(run("CreateKey", ev), "IllegalTimestamp", 400)
    assert key_count() == 0


@pytest.mark.parametrize("value", ["2024-01-01T00:00:00", "Mon, 01 Jan 2024 00:00:00 GMT", "2024-02-30T00:00:00Z"])
def test_malformed_date_acs3_is_illegal(run, key_count, value):
    ev, _ = acs3_event("CreateKey", date=value)
    expect_error(run("CreateKey", ev), "IllegalTimestamp", 400)
    assert key_count() == 0


def test_out_of_range_field_that_normalises_to_now_is_illegal_not_accepted(run, key_count):
    """`HH:MM:60` of the previous minute would roll over to the start of this minute (within the window)."""
    now = int(time.time())
    previous_minute = now - now % 60 - 60
    value = time.strftime("%Y-%m-%dT%H:%M:60Z", time.gmtime(previous_minute))
    ev, _ = v1_event("CreateKey", timestamp=value)
    expect_error(run("CreateKey", ev), "IllegalTimestamp", 400)
    assert key_count() == 0


@pytest.mark.parametrize("offset", [-16 * 60, 16 * 60, -86400], ids=["16-min-past", "16-min-future", "a-day-old"])
def test_timestamp_outside_window_is_expired(run, key_count, offset):
    ev, _ = v1_event("CreateKey", timestamp=ts(offset))
    expect_error(run("CreateKey", ev), "InvalidTimeStamp.Expired", 400)
    ev, _ = acs3_event("CreateKey", date=ts(offset))
    expect_error(run("CreateKey", ev), "InvalidTimeStamp.Expired", 400)
    assert key_count() == 0


@pytest.mark.parametrize("offset", [-14 * 60, 14 * 60], ids=["14-min-past", "14-min-future"])
def test_timestamp_inside_window_passes(run, key_count, offset):
    assert run("CreateKey", v1_event("CreateKey", timestamp=ts(offset))[0])[0] == 200
    assert run("CreateKey", acs3_event("CreateKey", date=ts(offset))[0])[0] == 200
    assert key_count() == 2


def test_clock_skew_is_configurable(run, key_count, monkeypatch):
    from alikms.shared.config import get_config

    monkeypatch.setenv("KMS_CLOCK_SKEW", "60")
    get_config.cache_clear()
    expect_error(run("CreateKey", v1_event("CreateKey", timestamp=ts(-120))[0]), "InvalidTimeStamp.Expired", 400)
    assert run("CreateKey", v1_event("CreateKey", timestamp=ts(-30))[0])[0] == 200
    assert key_count() == 1


# --- nonces ---


def test_nonce_reuse_is_refused(run, key_count):
    nonce = secrets.token_hex(16)
    assert run("CreateKey", v1_event("CreateKey", nonce=nonce)[0])[0] == 200
    expect_error(run("CreateKey", v1_event("CreateKey", nonce=nonce, timestamp=ts(-5))[0]), "SignatureNonceUsed", 400)
    # the same nonce through the other scheme is the same nonce of the same access key
    expect_error(run("CreateKey", acs3_event("CreateKey", nonce=nonce)[0]), "SignatureNonceUsed", 400)
    assert key_count() == 1


def test_nonce_reuse_acs3_is_refused(run, key_count):
    nonce = secrets.token_hex(16)
    assert run("CreateKey", acs3_event("CreateKey", nonce=nonce)[0])[0] == 200
    expect_error(run("CreateKey", acs3_event("CreateKey", nonce=nonce)[0]), "SignatureNonceUsed", 400)
    assert key_count() == 1


def test_nonce_of_a_refused_request_is_not_burned(run, key_count):
    nonce = secrets.token_hex(16)
    expect_error(run("CreateKey", v1_event("CreateKey", nonce=nonce, secret="wrong")[0]), "SignatureDoesNotMatch", 400)
    expect_error(run("CreateKey", v1_event("CreateKey", nonce=nonce, timestamp=ts(-3600))[0]),
                 "InvalidTimeStamp.Expired", 400)
    assert run("CreateKey", v1_event("CreateKey", nonce=nonce)[0])[0] == 200
    assert key_count() == 1


def test_missing_nonce_v1(run, key_count):
    body = expect_error(run("CreateKey", v1_event("CreateKey", drop=("SignatureNonce",))[0]), "MissingParameter", 400)
    assert "SignatureNonce" in body["Message"]
    assert key_count() == 0


def test_missing_nonce_acs3(run, key_count):
    expect_error(run("CreateKey", acs3_event("CreateKey", nonce=None)[0]), "MissingParameter", 400)
    assert key_count() == 0


# --- STS and routing ---


def test_sts_security_token_v1_is_a_clear_400(run, key_count):
    ev, _ = v1_event("CreateKey", extra={"SecurityToken": "CAIS-token"})
    body = expect_error(run("CreateKey", ev), "InvalidParameter", 400)
    assert "SecurityToken" in body["Message"] and "STS" in body["Message"]
    assert key_count() == 0


def test_sts_security_token_acs3_is_a_clear_400(run, key_count):
    ev, _ = acs3_event("CreateKey", extra_headers={"x-acs-security-token": "CAIS-token",
                                                   "x-acs-accesskey-id": "STS.abc"})
    body = expect_error(run("CreateKey", ev), "InvalidParameter", 400)
    assert "SecurityToken" in body["Message"]
    assert key_count() == 0


def test_action_header_for_another_function_is_refused(run, key_count):
    expect_error(run("DescribeRegions", make_event("CreateKey", {})), "InvalidAction.NotFound", 404)
    ev, _ = acs3_event("CreateKey")
    expect_error(run("DescribeKey", ev), "InvalidAction.NotFound", 404)
    # the header decides even when the Action parameter names this function
    ev, _ = v1_event("CreateKey", header_action="DescribeRegions")
    expect_error(run("CreateKey", ev), "InvalidAction.NotFound", 404)
    assert key_count() == 0


def test_duplicate_query_parameter_is_refused_before_anything_runs(run, key_count):
    ev, _ = v1_event("CreateKey", {"Description": "x"})
    payload = json.loads(ev)
    payload["queryParameters"]["Description"] = ["x", "y"]
    expect_error(run("CreateKey", json.dumps(payload).encode()), "ParseRequestParameterException", 400)
    assert key_count() == 0


def test_put_is_refused(run, key_count):
    ev, _ = v1_event("CreateKey", method="PUT")
    expect_error(run("CreateKey", ev), "UnsupportedHTTPMethod", 403)
    assert key_count() == 0


def test_error_body_carries_host_and_recommend(run):
    ev, _ = v1_event("CreateKey", secret="wrong")
    _, body = run("CreateKey", ev)
    assert body["HostId"] == "kms.test"
    assert "q=SignatureDoesNotMatch" in body["Recommend"] and body["RequestId"] in body["Recommend"]


# --- what the signature must bind ---


def test_v1_signed_action_must_match_the_action_header(run, key_count):
    """A v1 signature covers the Action parameter, not the x-acs-action header: a request signed for
    DescribeRegions must not run CreateKey because someone changed the header."""
    ev, _ = v1_event("DescribeRegions", header_action="CreateKey")
    expect_error(run("CreateKey", ev), "InvalidAction.NotFound", 404)
    assert key_count() == 0


def test_v1_without_a_signed_action_is_refused(run, key_count):
    ev, _ = v1_event("CreateKey", drop=("Action",))
    body = expect_error(run("CreateKey", ev), "MissingParameter", 400)
    assert "Action" in body["Message"]
    assert key_count() == 0


@pytest.mark.parametrize("unsigned", ["x-acs-action", "x-acs-date", "x-acs-signature-nonce"])
def test_acs3_must_sign_action_date_and_nonce(run, key_count, unsigned):
    names = [h for h in ("host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce",
                         "x-acs-version") if h != unsigned]
    ev, _ = acs3_event("CreateKey", signed=names)
    expect_error(run("CreateKey", ev), "IncompleteSignature", 400)
    assert key_count() == 0
