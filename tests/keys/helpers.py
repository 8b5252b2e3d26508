"""Helpers for the key tests: calls that assert their outcome, keys built in a given state, store
edits that move a key in time, and raw views of what a key owns (versions, aliases, tags)."""

from __future__ import annotations

import json
import threading
import time

from tests import support

# Shared by every area's tests (tests/support.py), named here for the key tests.
REGION, SCOPE, DAY = support.REGION, support.SCOPE, support.DAY
b64, unb64 = support.b64, support.unb64
ok, err = support.ok, support.err
create_key, describe, edit_key = support.create_key, support.describe_key, support.edit_key

STATES = ("Enabled", "Disabled", "PendingDeletion", "PendingImport")
BAD_BLOB_MESSAGE = 'The specified parameter "CiphertextBlob" is not valid.'


def key_in_state(kms, state: str, **params) -> str:
    """A fresh key in `state` (PendingImport: an EXTERNAL key without material)."""
    if state == "PendingImport":
        params["Origin"] = "EXTERNAL"
    key_id = create_key(kms, **params)
    to_state(kms, key_id, state)
    return key_id


def to_state(kms, key_id: str, state: str) -> None:
    if state == "Disabled":
        ok(kms, "DisableKey", {"KeyId": key_id})
    elif state == "PendingDeletion":
        ok(kms, "ScheduleKeyDeletion", {"KeyId": key_id, "PendingWindowInDays": "7"})
    assert describe(kms, key_id)["KeyState"] == state


def encrypt(kms, key_id: str, plaintext: bytes = b"secret data", context: dict | None = None) -> dict:
    params = {"KeyId": key_id, "Plaintext": b64(plaintext)}
    if context is not None:
        params["EncryptionContext"] = json.dumps(context, separators=(",", ":"))
    return ok(kms, "Encrypt", params)


def decrypt(kms, blob: str, context: dict | None = None) -> dict:
    params = {"CiphertextBlob": blob}
    if context is not None:
        params["EncryptionContext"] = json.dumps(context, separators=(",", ":"))
    body = ok(kms, "Decrypt", params)
    body["raw"] = unb64(body["Plaintext"])
    return body


def versions(kms, key_id: str) -> list[str]:
    body = ok(kms, "ListKeyVersions", {"KeyId": key_id, "PageSize": "101"})
    assert body["TotalCount"] == len(body["KeyVersions"]["KeyVersion"])
    return [v["KeyVersionId"] for v in body["KeyVersions"]["KeyVersion"]]


def tags(kms, key_id: str) -> dict[str, str]:
    body = ok(kms, "ListResourceTags", {"KeyId": key_id})
    return {t["TagKey"]: t["TagValue"] for t in body["Tags"]["Tag"]}


def all_aliases(kms) -> dict[str, str]:
    body = ok(kms, "ListAliases", {"PageSize": "100"})
    return {a["AliasName"]: a["KeyId"] for a in body["Aliases"]["Alias"]}


def tag_json(pairs: dict[str, str]) -> str:
    return json.dumps([{"TagKey": k, "TagValue": v} for k, v in pairs.items()])


# --- the store underneath ----------------------------------------------------------------------

def key_row(store, key_id: str):
    return store.get("keys", SCOPE, key_id)


def make_overdue(store, key_id: str, seconds_ago: int = 60) -> None:
    edit_key(store, key_id, delete_date=int(time.time()) - seconds_ago)


def version_rows(store, key_id: str) -> list:
    return list(store.query_all("key_versions", f"{SCOPE}/{key_id}"))


def alias_rows(store) -> dict[str, str]:
    return {a.sk: a.data["key_id"] for a in store.query_all("aliases", SCOPE)}


def job_context(store, when: float):
    """The Context a timer job gets, on a given store object, with "now" = `when`."""
    from alikms.shared.config import get_config
    from alikms.shared.context import Context

    cfg = get_config()
    return Context("job-test", "", cfg.region, "", "", when, store, cfg)


run_together = support.run_together  # the key tests' name for it


class Rendezvous:
    """Wraps a store so that N users meet right before a chosen write: every one of them has done its
    reads by then, which forces the race the conditional writes must settle."""

    def __init__(self, store, barrier: threading.Barrier, method: str, table: str) -> None:
        self._store, self._barrier, self._method, self._table = store, barrier, method, table

    def __getattr__(self, name):
        attr = getattr(self._store, name)
        if name != self._method:
            return attr

        def wrapped(table, *args, **kwargs):
            if table == self._table:
                try:
                    self._barrier.wait(10)
                except threading.BrokenBarrierError:
                    pass  # a partner never got here (it lost earlier): go on alone
            return attr(table, *args, **kwargs)

        return wrapped
