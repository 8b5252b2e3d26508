"""alikms.shared.signing against the captured SDK vectors (tests/data/signature-vectors.json) and the
published examples typed in from docs/wire.md §3 (V1-a) and §4 (A3-a)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from alikms.shared import signing

VECTORS = json.loads((Path(__file__).resolve().parents[1] / "data" / "signature-vectors.json").read_text())
SECRET = "testsecret"
V1_SETS = ("classic_rpc_v1", "tea_v2_createsecret")
ACS3_SETS = ("tea_acs3_encrypt", "tea_acs3_createsecret")


def form(text: str) -> list[tuple[str, str]]:
    return parse_qsl(text, keep_blank_values=True, strict_parsing=bool(text))


def v1_params(vec: dict) -> tuple[str, dict[str, str], str]:
    """(method, every signed parameter from query and body, the Signature that was sent)."""
    method, target = vec["wire"].split(" ", 1)
    params = dict(form(urlsplit(target).query))
    params.update(form(vec.get("body", "")))
    return method, params, params["Signature"]


def acs3_parts(vec: dict) -> dict:
    method, target = vec["wire"].split(" ", 1)
    url = urlsplit(target)
    headers = {name.lower(): value for name, value in vec["headers"]}
    authz = headers["authorization"]
    assert authz.startswith("ACS3-HMAC-SHA256 ")
    fields = dict(part.split("=", 1) for part in authz[len("ACS3-HMAC-SHA256 "):].split(","))
    return {
        "method": method,
        "path": url.path,
        "query": dict(form(url.query)),
        "headers": headers,
        "signed": fields["SignedHeaders"].split(";"),
        "credential": fields["Credential"],
        "signature": fields["Signature"],
        "body": vec["body"].encode(),
    }


def canonical_query(params: dict[str, str]) -> str:
    enc = signing.percent_encode
    return "&".join(f"{enc(k)}={enc(v)}" for k, v in sorted(params.items()) if k != "Signature")


# --- the four captured sets ---


def test_vector_file_has_the_four_sets_all_marked_ok():
    assert set(VECTORS["description"]["sets"]) == set(V1_SETS + ACS3_SETS)
    for name in V1_SETS + ACS3_SETS:
        assert VECTORS[name]["ok"] is True
        assert VECTORS[name]["signature"] == VECTORS[name]["recomputed"]


@pytest.mark.parametrize("name", V1_SETS)
def test_rpc_v1_vector_canonical_query(name):
    vec = VECTORS[name]
    _, params, _ = v1_params(vec)
    assert canonical_query(params) == vec["canonical_query"]


@pytest.mark.parametrize("name", V1_SETS)
def test_rpc_v1_vector_string_to_sign_and_signature(name):
    vec = VECTORS[name]
    method, params, sent = v1_params(vec)
    sts = signing.rpc_v1_string_to_sign(method, params)
    assert sts == vec["string_to_sign"]
    assert sts == f"{method}&%2F&{signing.percent_encode(vec['canonical_query'])}"
    assert signing.rpc_v1_signature(SECRET, sts) == vec["signature"] == sent


def test_rpc_v1_vector_hmac_key_is_secret_plus_ampersand():
    vec = VECTORS["classic_rpc_v1"]
    assert vec["hmac_key"] == SECRET + "&"


def test_classic_vector_signs_the_blank_signature_type():
    _, params, _ = v1_params(VECTORS["classic_rpc_v1"])
    assert params["SignatureType"] == ""
    without = {k: v for k, v in params.items() if k != "SignatureType"}
    sts = signing.rpc_v1_string_to_sign("POST", without)
    assert signing.rpc_v1_signature(SECRET, sts) != VECTORS["classic_rpc_v1"]["signature"]


def test_tea_v2_vector_signature_covers_the_form_body():
    _, params, _ = v1_params(VECTORS["tea_v2_createsecret"])
    assert params["SecretData"] == "p@ss w0rd"  # '+' in the body is a space
    without_body = {k: v for k, v in params.items() if k != "SecretData"}
    sts = signing.rpc_v1_string_to_sign("POST", without_body)
    assert signing.rpc_v1_signature(SECRET, sts) != VECTORS["tea_v2_createsecret"]["signature"]


@pytest.mark.parametrize("name", ACS3_SETS)
def test_acs3_vector_payload_hash_is_sha256_of_body_as_sent(name):
    p = acs3_parts(VECTORS[name])
    assert hashlib.sha256(p["body"]).hexdigest() == p["headers"]["x-acs-content-sha256"]
    if not p["body"]:
        assert p["headers"]["x-acs-content-sha256"] == signing.EMPTY_SHA256


@pytest.mark.parametrize("name", ACS3_SETS)
def test_acs3_vector_canonical_request_string_to_sign_and_signature(name):
    vec = VECTORS[name]
    p = acs3_parts(vec)
    assert p["credential"] == "testid"
    canonical = signing.acs3_canonical_request(
        p["method"], p["path"], p["query"], p["headers"], p["signed"], hashlib.sha256(p["body"]).hexdigest()
    )
    assert canonical == vec["canonical_request"]
    sts = signing.acs3_string_to_sign(canonical)
    assert sts == vec["string_to_sign"]
    assert signing.acs3_signature(SECRET, sts) == vec["signature"] == p["signature"]


def test_acs3_body_parameters_are_not_in_the_canonical_query():
    vec = VECTORS["tea_acs3_createsecret"]
    query_line = vec["canonical_request"].split("\n")[2]
    assert query_line == "SecretName=db-pass&VersionId=v1"
    assert "SecretData" not in query_line


# --- typed-in vectors from docs/wire.md ---

V1_A_PARAMS = {
    "AccessKeyId": "testid",
    "Action": "DescribeRegions",
    "Format": "XML",
    "SignatureMethod": "HMAC-SHA1",
    "SignatureNonce": "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf",
    "SignatureVersion": "1.0",
    "Timestamp": "2016-02-23T12:46:24Z",
    "Version": "2014-05-26",
}
V1_A_STS = (
    "GET&%2F&AccessKeyId%3Dtestid%26Action%3DDescribeRegions%26Format%3DXML%26SignatureMethod%3DHMAC-SHA1"
    "%26SignatureNonce%3D3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf%26SignatureVersion%3D1.0"
    "%26Timestamp%3D2016-02-23T12%253A46%253A24Z%26Version%3D2014-05-26"
)
V1_A_SIGNATURE = "OLeaidS1JvxuMvnyHOwuJ+uX5qY="


def test_v1_a_published_example():
    sts = signing.rpc_v1_string_to_sign("GET", V1_A_PARAMS)
    assert sts == V1_A_STS
    assert signing.rpc_v1_signature("testsecret", sts) == V1_A_SIGNATURE


def test_v1_a_ignores_a_signature_parameter_when_rebuilding():
    sts = signing.rpc_v1_string_to_sign("GET", {**V1_A_PARAMS, "Signature": V1_A_SIGNATURE})
    assert sts == V1_A_STS


A3_A_HEADERS = {
    "host": "kms.cn-hangzhou.aliyuncs.com",
    "x-acs-action": "Encrypt",
    "x-acs-version": "2016-01-20",
    "x-acs-date": "2024-01-01T00:00:00Z",
    "x-acs-signature-nonce": "0123456789abcdef0123456789abcdef",
    "x-acs-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
}
A3_A_SIGNED = ["host", "x-acs-action", "x-acs-content-sha256", "x-acs-date", "x-acs-signature-nonce", "x-acs-version"]
A3_A_QUERY = {"KeyId": "key-123", "Plaintext": "aGVsbG8=", "EncryptionContext": '{"a":"b c"}'}
A3_A_CANONICAL = (
    "POST\n/\n"
    "EncryptionContext=%7B%22a%22%3A%22b%20c%22%7D&KeyId=key-123&Plaintext=aGVsbG8%3D\n"
    "host:kms.cn-hangzhou.aliyuncs.com\n"
    "x-acs-action:Encrypt\n"
    "x-acs-content-sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\n"
    "x-acs-date:2024-01-01T00:00:00Z\n"
    "x-acs-signature-nonce:0123456789abcdef0123456789abcdef\n"
    "x-acs-version:2016-01-20\n"
    "\n"
    "host;x-acs-action;x-acs-content-sha256;x-acs-date;x-acs-signature-nonce;x-acs-version\n"
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
)
A3_A_STS = "ACS3-HMAC-SHA256\nfb5f14b62ac4ccab1394b6f43858b4307ee409d9d87e32b76593d3203beb5f2f"
A3_A_SIGNATURE = "cd6fd51c1f3f49cb3e38c44f98dbd863cf46bdf7cb271f9a1abfddefdaeed07e"


def a3_a(**changes) -> str:
    args = {"query": A3_A_QUERY, "headers": A3_A_HEADERS, "signed": A3_A_SIGNED, "payload": signing.EMPTY_SHA256,
            "method": "POST", "secret": "testsecret", **changes}
    canonical = signing.acs3_canonical_request(args["method"], "/", args["query"], args["headers"], args["signed"],
                                               args["payload"])
    return signing.acs3_signature(args["secret"], signing.acs3_string_to_sign(canonical))


def test_a3_a_published_example():
    canonical = signing.acs3_canonical_request("POST", "/", A3_A_QUERY, A3_A_HEADERS, A3_A_SIGNED,
                                               signing.EMPTY_SHA256)
    assert canonical == A3_A_CANONICAL
    sts = signing.acs3_string_to_sign(canonical)
    assert sts == A3_A_STS
    assert signing.acs3_signature("testsecret", sts) == A3_A_SIGNATURE
    assert a3_a() == A3_A_SIGNATURE


def test_a3_a_canonical_header_values_are_trimmed():
    padded = {**A3_A_HEADERS, "x-acs-action": "  Encrypt \t"}
    assert a3_a(headers=padded) == A3_A_SIGNATURE


# --- encoding details ---


@pytest.mark.parametrize(
    "raw, encoded",
    [
        ("a b", "a%20b"),
        ("*", "%2A"),
        ("~-_.", "~-_."),
        ("/", "%2F"),
        (":", "%3A"),
        ("+", "%2B"),
        ("=&", "%3D%26"),
        ("'()!", "%27%28%29%21"),
        ("é中", "%C3%A9%E4%B8%AD"),
        ("%", "%25"),
        ("", ""),
    ],
)
def test_percent_encode_is_rfc3986_with_upper_case_hex(raw, encoded):
    assert signing.percent_encode(raw) == encoded


def test_empty_value_canonicalises_as_key_equals():
    assert "%26SignatureType%3D%26" in signing.rpc_v1_string_to_sign(
        "POST", {"A": "1", "SignatureType": "", "Z": "2"}
    )


def test_rpc_v1_uses_the_http_method_in_the_string_to_sign():
    assert signing.rpc_v1_string_to_sign("POST", V1_A_PARAMS).startswith("POST&%2F&")
    assert signing.rpc_v1_string_to_sign("POST", V1_A_PARAMS)[4:] == V1_A_STS[3:]


def test_empty_body_hash_constant():
    assert signing.EMPTY_SHA256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --- negative cases: every input matters ---


@pytest.mark.parametrize("name", V1_SETS)
def test_rpc_v1_changed_value_changes_signature(name):
    vec = VECTORS[name]
    method, params, _ = v1_params(vec)
    for key in params:
        if key == "Signature":
            continue
        changed = {**params, key: params[key] + "x"}
        assert signing.rpc_v1_signature(SECRET, signing.rpc_v1_string_to_sign(method, changed)) != vec["signature"]


@pytest.mark.parametrize("name", V1_SETS)
def test_rpc_v1_wrong_secret_or_method_changes_signature(name):
    vec = VECTORS[name]
    method, params, _ = v1_params(vec)
    sts = signing.rpc_v1_string_to_sign(method, params)
    assert signing.rpc_v1_signature("testsecreT", sts) != vec["signature"]
    assert signing.rpc_v1_signature(SECRET + "&", sts) != vec["signature"]
    assert signing.rpc_v1_signature(SECRET, signing.rpc_v1_string_to_sign("GET", params)) != vec["signature"]


def test_rpc_v1_changed_body_changes_signature():
    vec = VECTORS["tea_v2_createsecret"]
    method, params, _ = v1_params(vec)
    changed = {**params, "SecretData": "p@ss w0rD"}
    assert signing.rpc_v1_signature(SECRET, signing.rpc_v1_string_to_sign(method, changed)) != vec["signature"]


@pytest.mark.parametrize("name", ACS3_SETS)
def test_acs3_wrong_secret_changes_signature(name):
    vec = VECTORS[name]
    assert signing.acs3_signature("testsecreT", vec["string_to_sign"]) != vec["signature"]
    # ACS3 keys the HMAC with the bare secret: v1's "&" suffix must not be added.
    assert signing.acs3_signature(SECRET + "&", vec["string_to_sign"]) != vec["signature"]


@pytest.mark.parametrize("name", ACS3_SETS)
def test_acs3_changed_query_header_or_body_changes_signature(name):
    vec = VECTORS[name]
    p = acs3_parts(vec)

    def sign(query=p["query"], headers=p["headers"], body=p["body"], method=p["method"]):
        canonical = signing.acs3_canonical_request(method, p["path"], query, headers, p["signed"],
                                                   hashlib.sha256(body).hexdigest())
        return signing.acs3_signature(SECRET, signing.acs3_string_to_sign(canonical))

    assert sign() == vec["signature"]
    for key in p["query"]:
        assert sign(query={**p["query"], key: p["query"][key] + "x"}) != vec["signature"]
    assert sign(query={**p["query"], "Extra": ""}) != vec["signature"]
    for header in p["signed"]:
        assert sign(headers={**p["headers"], header: p["headers"][header] + "x"}) != vec["signature"]
    assert sign(body=p["body"] + b"x") != vec["signature"]
    assert sign(method="GET") != vec["signature"]


def test_acs3_unsigned_headers_do_not_matter():
    vec = VECTORS["tea_acs3_encrypt"]
    p = acs3_parts(vec)
    headers = {**p["headers"], "accept-encoding": "gzip", "content-length": "999"}
    canonical = signing.acs3_canonical_request(p["method"], p["path"], p["query"], headers, p["signed"],
                                               signing.EMPTY_SHA256)
    assert signing.acs3_signature(SECRET, signing.acs3_string_to_sign(canonical)) == vec["signature"]


def test_a3_a_changed_value_or_secret_changes_signature():
    assert a3_a(secret="testsecreT") != A3_A_SIGNATURE
    assert a3_a(query={**A3_A_QUERY, "KeyId": "key-124"}) != A3_A_SIGNATURE
    assert a3_a(payload=hashlib.sha256(b"x").hexdigest()) != A3_A_SIGNATURE
    assert a3_a(signed=A3_A_SIGNED[1:]) != A3_A_SIGNATURE


def test_v1_a_changed_value_or_secret_changes_signature():
    assert signing.rpc_v1_signature("testsecreT", V1_A_STS) != V1_A_SIGNATURE
    changed = {**V1_A_PARAMS, "Action": "DescribeRegionz"}
    assert signing.rpc_v1_signature("testsecret", signing.rpc_v1_string_to_sign("GET", changed)) != V1_A_SIGNATURE


def test_percent_encode_equals_quote_on_random_text():
    import random
    from urllib.parse import quote

    rng = random.Random(3)
    alphabet = [chr(c) for c in range(32, 127)] + ["é", "中", "%2B", "%", "+/="]
    for _ in range(5000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 16)))
        assert signing.percent_encode(text) == quote(text, safe="-_.~"), text
