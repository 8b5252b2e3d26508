"""Helpers of the secret tests: calls that assert their outcome, snapshots of what a caller can see
of a secret, and raw views of the store underneath."""

from __future__ import annotations

import json
import uuid

from tests import support

# Shared by every area's tests (tests/support.py), named here for the secret tests.
REGION, SCOPE, DAY = support.REGION, support.SCOPE, support.DAY
ok, err, unique, b64, parse_iso = support.ok, support.err, support.unique, support.b64, support.epoch
create_key, edit_key = support.create_key, support.edit_key

ARN_PREFIX = f"acs:kms:{REGION}:{support.TEST_ACCOUNT}:secret/"


def create(kms, name: str | None = None, data: str | None = None, vid: str = "v0", **extra) -> tuple[str, str]:
    """Create a secret; returns (name, data)."""
    name = name or unique()
    data = data if data is not None else "value-" + uuid.uuid4().hex
    body = ok(kms, "CreateSecret", {"SecretName": name, "VersionId": vid, "SecretData": data, **extra})
    assert body["SecretName"] == name and body["VersionId"] == vid
    return name, data


def put(kms, name: str, vid: str, data: str, **extra) -> dict:
    return ok(kms, "PutSecretValue", {"SecretName": name, "VersionId": vid, "SecretData": data, **extra})


def value(kms, name: str, **extra) -> dict:
    return ok(kms, "GetSecretValue", {"SecretName": name, **extra})


def describe(kms, name: str, **extra) -> dict:
    return ok(kms, "DescribeSecret", {"SecretName": name, **extra})


def versions(kms, name: str, deprecated: bool = True) -> dict[str, list[str]]:
    """{version id: sorted stage labels}, every page, oldest first."""
    out: dict[str, list[str]] = {}
    page = 1
    while True:
        body = ok(kms, "ListSecretVersionIds", {"SecretName": name, "IncludeDeprecated": str(deprecated).lower(),
                                               "PageSize": "100", "PageNumber": str(page)})
        for v in body["VersionIds"]["VersionId"]:
            assert v["VersionId"] not in out
            out[v["VersionId"]] = sorted(v["VersionStages"]["VersionStage"])
        if len(out) >= body["TotalCount"]:
            assert len(out) == body["TotalCount"]
            return out
        page += 1


def stages(kms, name: str) -> dict[str, str]:
    """{label: version id}, asserting that no label sits on two versions."""
    out: dict[str, str] = {}
    for vid, labels in versions(kms, name).items():
        for label in labels:
            assert label not in out, f"label {label} on {out[label]} and {vid}"
            out[label] = vid
    return out


def snapshot(kms, name: str) -> tuple[dict, dict]:
    """Everything a caller can see of a secret without reading values."""
    desc = describe(kms, name, FetchTags="true")
    desc.pop("RequestId")
    return desc, versions(kms, name)


def refused(kms, name: str, action: str, params: dict, code: str, status: int, param: str | None = None) -> None:
    """The call fails as documented and changes nothing a caller can see."""
    before = snapshot(kms, name)
    err(kms, action, params, code, status, param)
    assert snapshot(kms, name) == before


# --- the store underneath ----------------------------------------------------------------------

def secret_row(store, name: str):
    return store.get("secrets", SCOPE, name)


def edit_secret(store, name: str, **fields) -> None:
    item = secret_row(store, name)
    store.update("secrets", SCOPE, name, {**item.data, **fields}, item.rev)


def value_rows(store, name: str) -> dict[str, dict]:
    """The stored value rows of a secret by version id (each version's row has a key of its own)."""
    rows = [i.data for i in store.query_all("secret_versions", f"{SCOPE}/{name}")]
    by_version = {row["version_id"]: row for row in rows}
    assert len(by_version) == len(rows), "two value rows for one version"
    return by_version


def all_rows_text(store) -> str:
    """Every row of every table (keys, values, metadata) as one JSON text."""
    from alikms.shared.store.base import TABLES

    parts = []
    for table in TABLES:
        for item in store.scan_all(table):
            parts.append(json.dumps([item.pk, item.sk, item.data], ensure_ascii=False))
    assert parts
    return "\n".join(parts)


def assert_not_stored(store, values: list[str]) -> None:
    """No value, nor its base64 or JSON-escaped form, appears anywhere in the store."""
    text = all_rows_text(store)
    escaped = json.dumps(text)
    for v in values:
        for form in {v, b64(v.encode()), json.dumps(v)[1:-1]}:
            assert form not in text and form not in escaped, "a secret value is stored in plaintext"
    path = getattr(store, "_path", None)
    if path is not None:  # SQLite: the raw files too (main file and write-ahead log)
        raw = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
        for v in values:
            assert v.encode() not in raw
