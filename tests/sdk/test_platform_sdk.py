"""The platform actions (keys: CreateKey, DescribeKey, ListKeys; other: DescribeRegions, OpenKmsService,
DescribeAccountKmsStatus) driven through the unmodified official SDKs against a local runner:
Tea in its default ACS3 mode, Tea with signature_algorithm='v2' (RPC v1), and the classic SDK (RPC v1).
Raw requests cover what only other clients send (pop-core GET/POST, chunked bodies).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import re
import secrets
import uuid
from urllib.parse import quote

import pytest

from tests import reference_signing as ref
from tests import support
from tests.sdk_client import ApiError
from tests.sdk_client import Sdk as Client
from tests.support import epoch, unique

CLIENTS = ("tea", "tea_v2", "classic")
SYMMETRIC = ("Aliyun_AES_256", "Aliyun_AES_128", "Aliyun_AES_192", "Aliyun_SM4")
ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")


def expect(code: str, status: int, client: Client, action: str, **params) -> ApiError:
    return client.fails(code, status, action, **params)


@pytest.fixture(params=CLIENTS)
def kind(request) -> str:
    return request.param


@pytest.fixture
def client(kind, server) -> Client:
    return Client(kind, server)


def tags_json(tags: dict[str, str]) -> str:
    return json.dumps([{"TagKey": k, "TagValue": v} for k, v in tags.items()])


def list_ids(client: Client, filters: list[dict], **paging) -> tuple[set[str], int]:
    body = client("ListKeys", Filters=json.dumps(filters), PageSize=paging.get("PageSize", 100),
                  PageNumber=paging.get("PageNumber", 1))
    return {k["KeyId"] for k in body["Keys"]["Key"]}, body["TotalCount"]


# --- other: DescribeRegions, OpenKmsService, DescribeAccountKmsStatus ---


def test_describe_regions(client):
    body = client("DescribeRegions")
    assert body["Regions"]["Region"] == [{"RegionId": "cn-hangzhou"}]
    assert body["RequestId"]


def test_describe_account_kms_status_of_bootstrap_account(client):
    assert client("DescribeAccountKmsStatus")["AccountStatus"] == "Enabled"


def test_open_kms_service_on_bootstrap_account_is_already_opened(client):
    err = expect("Forbidden.Opened", 400, client, "OpenKmsService")
    assert "opened" in err.message


def test_open_kms_service_flow_when_not_auto_opened(kind, server_factory):
    srv = server_factory(env={"KMS_AUTO_OPEN": "false"})
    client = Client(kind, srv)
    assert client("DescribeAccountKmsStatus")["AccountStatus"] == "NotEnabled"
    assert client("DescribeRegions")["Regions"]["Region"] == [{"RegionId": "cn-hangzhou"}]
    expect("Forbidden.KmsServiceNotEnabled", 403, client, "CreateKey")
    expect("Forbidden.KmsServiceNotEnabled", 403, client, "ListKeys")
    expect("Forbidden.KmsServiceNotEnabled", 403, client, "DescribeKey", KeyId="whatever")
    body = client("OpenKmsService")
    assert body["RequestId"] and "Code" not in body
    assert client("DescribeAccountKmsStatus")["AccountStatus"] == "Enabled"
    assert client("CreateKey")["KeyMetadata"]["KeyState"] == "Enabled"
    assert client("ListKeys")["TotalCount"] == 1
    expect("Forbidden.Opened", 400, client, "OpenKmsService")


# --- CreateKey ---


@pytest.mark.parametrize("spec", SYMMETRIC)
def test_create_key_symmetric_specs(client, server, spec):
    md = client("CreateKey", KeySpec=spec)["KeyMetadata"]
    assert md["KeySpec"] == spec
    assert md["KeyState"] == "Enabled"
    assert md["KeyUsage"] == "ENCRYPT/DECRYPT"
    assert md["Origin"] == "Aliyun_KMS"
    assert md["ProtectionLevel"] == "SOFTWARE"
    assert md["Creator"] == server.account_id
    assert md["Arn"] == f"acs:kms:{server.region}:{server.account_id}:key/{md['KeyId']}"
    assert ISO.match(md["CreationDate"]) and md["LastRotationDate"] == md["CreationDate"]
    assert md["PrimaryKeyVersion"]
    assert md["AutomaticRotation"] == "Disabled"
    assert "RotationInterval" not in md and "NextRotationDate" not in md


def test_create_key_defaults(client):
    md = client("CreateKey")["KeyMetadata"]
    assert (md["KeySpec"], md["KeyUsage"], md["Origin"], md["Description"]) == (
        "Aliyun_AES_256", "ENCRYPT/DECRYPT", "Aliyun_KMS", "")


def test_create_key_description_and_tags(client):
    description = "db key: a b+c/d*e~f'(g)!é中"
    tag = unique()
    md = client("CreateKey", Description=description, KeyUsage="ENCRYPT/DECRYPT",
                Tags=tags_json({tag: "dev test", f"{tag}-2": ""}))["KeyMetadata"]
    assert md["Description"] == description
    assert client("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]["Description"] == description
    assert list_ids(client, [{"Key": "TagKey", "Values": [tag]}]) == ({md["KeyId"]}, 1)
    assert list_ids(client, [{"Key": "TagValue", "Values": ["dev test"]}, {"Key": "TagKey", "Values": [tag]}]) == (
        {md["KeyId"]}, 1)


@pytest.mark.parametrize("interval, seconds", [("30d", 2592000), ("720h", 2592000), ("604800s", 604800)])
def test_create_key_with_automatic_rotation(client, interval, seconds):
    md = client("CreateKey", EnableAutomaticRotation=True, RotationInterval=interval)["KeyMetadata"]
    assert md["AutomaticRotation"] == "Enabled"
    assert md["RotationInterval"] == f"{seconds}s"
    assert ISO.match(md["NextRotationDate"])
    assert epoch(md["NextRotationDate"]) - epoch(md["LastRotationDate"]) == seconds
    described = client("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]
    assert (described["AutomaticRotation"], described["RotationInterval"], described["NextRotationDate"]) == (
        "Enabled", f"{seconds}s", md["NextRotationDate"])


def test_rotation_interval_is_ignored_when_rotation_is_off(client):
    md = client("CreateKey", EnableAutomaticRotation=False, RotationInterval="30d")["KeyMetadata"]
    assert md["AutomaticRotation"] == "Disabled"
    assert "RotationInterval" not in md


def test_create_key_external_origin_is_pending_import(client):
    md = client("CreateKey", Origin="EXTERNAL")["KeyMetadata"]
    assert (md["Origin"], md["KeyState"]) == ("EXTERNAL", "PendingImport")
    assert not md.get("PrimaryKeyVersion")
    assert client("DescribeKey", KeyId=md["KeyId"])["KeyMetadata"]["KeyState"] == "PendingImport"


def test_create_key_hsm_is_unsupported_protection_level(client):
    expect("Unsupported.ProtectionLevel", 400, client, "CreateKey", ProtectionLevel="HSM")


@pytest.mark.parametrize("spec,usage", [("RSA_2048", "SIGN/VERIFY"), ("EC_P256", "SIGN/VERIFY"),
                                        ("EC_SM2", "ENCRYPT/DECRYPT")])
def test_create_key_asymmetric(client, spec, usage):
    md = client("CreateKey", KeySpec=spec, KeyUsage=usage)["KeyMetadata"]
    assert (md["KeySpec"], md["KeyUsage"], md["KeyState"]) == (spec, usage, "Enabled")
    assert "PrimaryKeyVersion" not in md  # asymmetric calls name their version (2021 model)


@pytest.mark.parametrize("spec,usage", [("EC_P256", "ENCRYPT/DECRYPT"), ("EC_P256K", "ENCRYPT/DECRYPT"),
                                        ("Aliyun_AES_256", "SIGN/VERIFY")])
def test_create_key_usage_the_spec_cannot_serve(client, spec, usage):
    expect("InvalidParameter", 400, client, "CreateKey", KeySpec=spec, KeyUsage=usage)


def test_create_key_asymmetric_rotation_is_unsupported(client):
    expect("UnsupportedOperation", 400, client, "CreateKey", KeySpec="RSA_2048", EnableAutomaticRotation=True,
           RotationInterval="30d")


def test_create_key_rotation_without_interval_is_missing_parameter(client):
    err = expect("MissingParameter", 400, client, "CreateKey", EnableAutomaticRotation=True)
    assert "RotationInterval" in err.message


def test_create_key_external_with_rotation_is_unsupported(client):
    expect("UnsupportedOperation", 400, client, "CreateKey", Origin="EXTERNAL", EnableAutomaticRotation=True,
           RotationInterval="30d")


BAD_CREATE = [
    ("KeySpec", {"KeySpec": "AES_256"}),
    ("KeySpec", {"KeySpec": "aliyun_aes_256"}),
    ("KeyUsage", {"KeyUsage": "SIGN/VERIFY"}),
    ("KeyUsage", {"KeyUsage": "ENCRYPT"}),
    ("Origin", {"Origin": "external"}),
    ("ProtectionLevel", {"ProtectionLevel": "software"}),
    ("RotationInterval", {"EnableAutomaticRotation": True, "RotationInterval": "6d"}),
    ("RotationInterval", {"EnableAutomaticRotation": True, "RotationInterval": "731d"}),
    ("RotationInterval", {"EnableAutomaticRotation": True, "RotationInterval": "thirty days"}),
    ("RotationInterval", {"EnableAutomaticRotation": True, "RotationInterval": "-30d"}),
    ("Tags", {"Tags": "not json"}),
    ("Tags", {"Tags": '{"TagKey": "a", "TagValue": "b"}'}),
    ("Tags", {"Tags": '[{"TagKey": "aliyun-env", "TagValue": "v"}]'}),
    ("Tags", {"Tags": '[{"TagKey": "acs:env", "TagValue": "v"}]'}),
    ("Tags", {"Tags": '[{"TagKey": "", "TagValue": "v"}]'}),
    ("Tags", {"Tags": '[{"TagKey": "a#b", "TagValue": "v"}]'}),
    ("Tags", {"Tags": '[{"TagKey": "a", "TagValue": "1"}, {"TagKey": "a", "TagValue": "2"}]'}),
    ("Tags", {"Tags": json.dumps([{"TagKey": "k" * 129, "TagValue": "v"}])}),
    ("Tags", {"Tags": json.dumps([{"TagKey": f"k{i}", "TagValue": "v"} for i in range(21)])}),
]


@pytest.mark.parametrize("name, params", BAD_CREATE, ids=[f"{n}-{i}" for i, (n, _) in enumerate(BAD_CREATE)])
def test_create_key_invalid_parameter(client, name, params):
    description = unique("bad")
    err = expect("InvalidParameter", 400, client, "CreateKey", Description=description, **params)
    assert name in err.message
    # nothing was created
    tag = unique()
    if name != "Tags":
        expect("InvalidParameter", 400, client, "CreateKey", Tags=tags_json({tag: "x"}), **params)
        assert list_ids(client, [{"Key": "TagKey", "Values": [tag]}]) == (set(), 0)


# --- DescribeKey ---


@pytest.fixture
def made_key(client) -> dict:
    return client("CreateKey", Description="described")["KeyMetadata"]


def test_describe_key_by_id_and_by_arn(client, made_key):
    by_id = client("DescribeKey", KeyId=made_key["KeyId"])["KeyMetadata"]
    by_arn = client("DescribeKey", KeyId=made_key["Arn"])["KeyMetadata"]
    assert by_id == by_arn
    assert by_id["KeyId"] == made_key["KeyId"]
    assert by_id["Arn"] == made_key["Arn"]
    assert by_id["Description"] == "described"
    assert by_id["DeletionProtection"] == "Disabled"
    for field in ("KeySpec", "KeyState", "KeyUsage", "Origin", "CreationDate", "PrimaryKeyVersion", "Creator"):
        assert by_id[field] == made_key[field]


def test_describe_unknown_key_is_not_found(client):
    expect("Forbidden.KeyNotFound", 404, client, "DescribeKey", KeyId=str(uuid.uuid4()))


def test_describe_key_of_another_account_or_region_is_not_found(client, server, made_key):
    other_account = made_key["Arn"].replace(f":{server.account_id}:", ":9999999999999999:")
    assert other_account != made_key["Arn"]
    expect("Forbidden.KeyNotFound", 404, client, "DescribeKey", KeyId=other_account)
    other_region = made_key["Arn"].replace(f":{server.region}:", ":cn-shanghai:")
    expect("Forbidden.KeyNotFound", 404, client, "DescribeKey", KeyId=other_region)
    expect("Forbidden.KeyNotFound", 404, client, "DescribeKey", KeyId=made_key["Arn"] + "x")


def test_describe_key_without_key_id_is_missing_parameter(client):
    err = expect("MissingParameter", 400, client, "DescribeKey")
    assert "KeyId" in err.message


# --- ListKeys ---


def test_list_keys_pages(client, server):
    tag = unique()
    made = [client("CreateKey", Tags=tags_json({tag: str(i)}))["KeyMetadata"]["KeyId"] for i in range(5)]
    seen: list[str] = []
    for number, size in ((1, 2), (2, 2), (3, 1)):
        body = client("ListKeys", PageNumber=number, PageSize=2,
                      Filters=json.dumps([{"Key": "TagKey", "Values": [tag]}]))
        assert (body["PageNumber"], body["PageSize"], body["TotalCount"]) == (number, 2, 5)
        page = body["Keys"]["Key"]
        assert len(page) == size
        for item in page:
            assert item["KeyArn"] == f"acs:kms:{server.region}:{server.account_id}:key/{item['KeyId']}"
        seen += [item["KeyId"] for item in page]
    assert sorted(seen) == sorted(made)
    beyond = client("ListKeys", PageNumber=4, PageSize=2, Filters=json.dumps([{"Key": "TagKey", "Values": [tag]}]))
    assert beyond["TotalCount"] == 5 and not beyond.get("Keys", {}).get("Key")


def test_list_keys_defaults(client):
    client("CreateKey")
    body = client("ListKeys")
    assert (body["PageNumber"], body["PageSize"]) == (1, 10)
    assert body["TotalCount"] >= 1
    assert len(body["Keys"]["Key"]) == min(10, body["TotalCount"])


def test_list_keys_page_sizes_at_the_limits(client):
    assert client("ListKeys", PageSize=1)["PageSize"] == 1
    assert client("ListKeys", PageSize=100)["PageSize"] == 100


@pytest.mark.parametrize("params", [{"PageSize": 0}, {"PageSize": 102}, {"PageNumber": 0}, {"PageSize": -1}],
                         ids=["size-0", "size-102", "number-0", "size-negative"])
def test_list_keys_bad_paging_is_invalid(client, params):
    err = expect("InvalidParameter", 400, client, "ListKeys", **params)
    assert next(iter(params)) in err.message


def test_list_keys_filters(client):
    a, b = unique("a"), unique("b")
    k1 = client("CreateKey", KeySpec="Aliyun_AES_256", Tags=tags_json({a: "1"}))["KeyMetadata"]["KeyId"]
    k2 = client("CreateKey", KeySpec="Aliyun_SM4", Tags=tags_json({a: "2", b: "x"}))["KeyMetadata"]["KeyId"]
    k3 = client("CreateKey", KeySpec="Aliyun_AES_128", Origin="EXTERNAL", Tags=tags_json({b: "y"}))["KeyMetadata"][
        "KeyId"]

    def ids(*filters):
        got, total = list_ids(client, list(filters))
        assert total == len(got)
        return got

    assert ids({"Key": "TagKey", "Values": [a]}) == {k1, k2}
    # OR within one Key
    assert ids({"Key": "TagKey", "Values": [a, b]}) == {k1, k2, k3}
    # a repeated Key adds to its OR
    assert ids({"Key": "TagKey", "Values": [a]}, {"Key": "TagKey", "Values": [b]}) == {k1, k2, k3}
    # AND across Keys
    assert ids({"Key": "TagKey", "Values": [a]}, {"Key": "KeySpec", "Values": ["Aliyun_SM4"]}) == {k2}
    assert ids({"Key": "TagKey", "Values": [a, b]}, {"Key": "KeySpec", "Values": ["Aliyun_SM4", "Aliyun_AES_128"]}) \
        == {k2, k3}
    assert ids({"Key": "TagKey", "Values": [a, b]}, {"Key": "KeyState", "Values": ["PendingImport"]}) == {k3}
    assert ids({"Key": "TagKey", "Values": [a, b]}, {"Key": "KeyState", "Values": ["Enabled"]}) == {k1, k2}
    assert ids({"Key": "TagKey", "Values": [b]}, {"Key": "KeySpec", "Values": ["Aliyun_AES_256"]}) == set()
    assert ids({"Key": "TagKey", "Values": [a]}, {"Key": "KeySpec", "Values": ["Aliyun_AES_256"]},
               {"Key": "KeyState", "Values": ["Enabled", "Disabled"]}) == {k1}


BAD_FILTERS = [
    "not json",
    '{"Key": "KeySpec", "Values": ["Aliyun_SM4"]}',
    '[{"Key": "NoSuchFilter", "Values": ["x"]}]',
    '[{"Key": "KeySpec", "Values": "Aliyun_SM4"}]',
    '[{"Key": "KeySpec", "Values": [1]}]',
    '[{"Key": "KeySpec", "Values": ["Aliyun_SM4"], "Extra": "x"}]',
    '["KeySpec"]',
    json.dumps([{"Key": "KeySpec", "Values": ["Aliyun_SM4"]}] * 11),
    json.dumps([{"Key": "KeySpec", "Values": [f"v{i}" for i in range(11)]}]),
]


@pytest.mark.parametrize("filters", BAD_FILTERS, ids=[f"bad-{i}" for i in range(len(BAD_FILTERS))])
def test_list_keys_bad_filters_are_invalid(client, filters):
    err = expect("InvalidParameter", 400, client, "ListKeys", Filters=filters)
    assert "Filters" in err.message


# --- credentials as each SDK surfaces them ---


def test_wrong_secret(kind, server):
    client = Client(kind, server, secret="not-the-secret")
    if kind == "classic":
        # the classic SDK recognises its own string-to-sign after the ':' and rewrites the code
        expect("InvalidAccessKeySecret", 400, client, "DescribeRegions")
    else:
        err = expect("SignatureDoesNotMatch", 400, client, "DescribeRegions")
        assert "server string to sign is:" in err.message


def test_wrong_secret_creates_nothing(kind, server):
    tag = unique()
    expect("InvalidAccessKeySecret" if kind == "classic" else "SignatureDoesNotMatch", 400,
           Client(kind, server, secret="not-the-secret"), "CreateKey", Tags=tags_json({tag: "x"}))
    assert list_ids(Client(kind, server), [{"Key": "TagKey", "Values": [tag]}]) == (set(), 0)


def test_unknown_access_key_id(kind, server):
    expect("InvalidAccessKeyId.NotFound", 404, Client(kind, server, ak="LTAIunknownKey000000"), "DescribeRegions")


# --- raw requests: what pop-core and Node clients send ---


def popcore_params(action: str, params: dict, method: str) -> dict:
    full = {"AccessKeyId": support.TEST_AK, "Action": action, "Format": "JSON", "SignatureMethod": "HMAC-SHA1",
            "SignatureNonce": secrets.token_hex(16), "SignatureVersion": "1.0", "Timestamp": support.timestamp(),
            "Version": "2016-01-20", **params}
    full = dict(sorted(full.items()))
    full["Signature"] = ref.v1_signature(support.TEST_SECRET, ref.v1_string_to_sign(method, full))  # not ours
    return full


def node_encode(params: dict) -> str:
    # encodeURIComponent: leaves ! ' ( ) * raw (wire.md §3)
    return "&".join(f"{quote(k, safe='')}={quote(v, safe=chr(33) + chr(39) + '()*')}" for k, v in params.items())


def raw_request(server: support.Server, method: str, target: str, headers: dict, body=None,
                encode_chunked: bool = False) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, target, body=body, headers={"host": server.endpoint, **headers},
                     encode_chunked=encode_chunked)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


POPCORE_HEADERS = {"x-sdk-client": "javascript/2.0.0", "user-agent": "AlibabaCloud (linux; x64) Node.js/v20.20.2",
                   "x-acs-version": "2016-01-20"}


@pytest.mark.parametrize("with_action_header", [True, False], ids=["action-header", "action-in-query-only"])
def test_popcore_get_with_everything_in_the_query(server, with_action_header):
    description = unique("pop get !'()* é")
    params = popcore_params("CreateKey", {"Description": description}, "GET")
    headers = dict(POPCORE_HEADERS, **({"x-acs-action": "CreateKey"} if with_action_header else {}))
    status, body = raw_request(server, "GET", "/?" + node_encode(params), headers)
    assert status == 200, body
    assert body["KeyMetadata"]["Description"] == description
    assert "Code" not in body  # pop-core treats any Code in a success body as an error


@pytest.mark.parametrize("with_action_header", [True, False], ids=["action-header", "action-in-body-only"])
def test_popcore_post_with_everything_in_the_form_body(server, with_action_header):
    description = unique("pop post !'()* é")
    params = popcore_params("CreateKey", {"Description": description}, "POST")
    headers = dict(POPCORE_HEADERS, **({"x-acs-action": "CreateKey"} if with_action_header else {}))
    headers["content-type"] = "application/x-www-form-urlencoded"
    status, body = raw_request(server, "POST", "/", headers, node_encode(params).encode())
    assert status == 200, body
    assert body["KeyMetadata"]["Description"] == description


def test_support_call_get(server):
    status, body = support.call(server, "DescribeRegions", method="GET")
    assert status == 200, body
    assert body["Regions"]["Region"] == [{"RegionId": server.region}]


@pytest.mark.parametrize("scheme", ["v1", "acs3"])
def test_unknown_action_is_not_found(server, scheme):
    status, body = support.call(server, "NoSuchAction", scheme=scheme)
    assert (status, body["Code"]) == (404, "InvalidAction.NotFound"), body
    assert body["RequestId"] and body["Message"]


def test_request_without_any_action_is_not_found(server):
    status, body = raw_request(server, "POST", "/", {})
    assert (status, body["Code"]) == (404, "InvalidAction.NotFound"), body


def test_chunked_form_body_acs3(server):
    """Node @alicloud/openapi-client sends the form body chunked, without Content-Length (wire.md §2.6)."""
    description = unique("chunked body")
    payload = f"Description={quote(description, safe='')}&KeySpec=Aliyun_AES_192".encode()
    headers = {"host": server.endpoint, "x-acs-action": "CreateKey", "x-acs-version": "2016-01-20",
               "x-acs-date": support.timestamp(), "x-acs-signature-nonce": secrets.token_hex(16),
               "x-acs-content-sha256": hashlib.sha256(payload).hexdigest(),
               "x-acs-credentials-provider": "static_ak", "content-type": "application/x-www-form-urlencoded"}
    signed = sorted(headers)
    from alibabacloud_openapi_util.client import Client as OpenApiUtil  # the SDK's own ACS3 signer
    from darabonba.request import DaraRequest

    request = DaraRequest()
    request.method, request.pathname, request.query = "POST", "/", {}
    request.headers = dict(headers)
    authz = OpenApiUtil.get_authorization(request, "ACS3-HMAC-SHA256", headers["x-acs-content-sha256"],
                                          support.TEST_AK, support.TEST_SECRET)
    assert f"SignedHeaders={';'.join(signed)}," in authz
    chunks = [payload[:7], payload[7:20], payload[20:]]
    status, body = raw_request(server, "POST", "/", {**headers, "Authorization": authz,
                                                     "Transfer-Encoding": "chunked"},
                               body=iter(chunks), encode_chunked=True)
    assert status == 200, body
    assert body["KeyMetadata"]["Description"] == description
    assert body["KeyMetadata"]["KeySpec"] == "Aliyun_AES_192"


def test_chunked_form_body_v1(server):
    description = unique("chunked v1")
    params = popcore_params("CreateKey", {"Description": description}, "POST")
    payload = node_encode(params).encode()
    status, body = raw_request(server, "POST", "/", {"x-acs-action": "CreateKey", "Transfer-Encoding": "chunked",
                                                     "content-type": "application/x-www-form-urlencoded"},
                               body=iter([payload[:10], payload[10:]]), encode_chunked=True)
    assert status == 200, body
    assert body["KeyMetadata"]["Description"] == description
