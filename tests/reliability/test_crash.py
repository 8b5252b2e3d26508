"""kill -9 of the whole runner (supervisor and workers) in the middle of concurrent writes, on both
stores: after a restart, every write the runner acknowledged is there and usable, and whatever was in
flight left nothing half-made behind."""

from __future__ import annotations

import http.client
import threading
import time

from tests import support
from tests.reliability.helpers import kill_group, start_group, stop_group

WRITERS = 6
ACKS = 30  # acknowledged writes before the kill


class Acked:
    """What the runner acknowledged (answered 200) to the writers."""

    def __init__(self) -> None:
        self.keys: list[str] = []
        self.aliases: dict[str, str] = {}
        self.secrets: dict[tuple[str, str], str] = {}  # (name, version id) -> value
        self.lock = threading.Lock()

    def count(self) -> int:
        return len(self.keys) + len(self.aliases) + len(self.secrets)


def write_until_stopped(srv, n: int, acked: Acked, stop: threading.Event) -> None:
    """One client's writes, in a loop: a key, an alias to it, a secret, a second version of it."""
    i = 0
    try:
        while not stop.is_set():
            i += 1
            name, alias = f"crash/{n}-{i}", f"alias/crash-{n}-{i}"
            status, body = support.call(srv, "CreateKey", {"Description": name})
            if status == 200:
                key = body["KeyMetadata"]["KeyId"]
                with acked.lock:
                    acked.keys.append(key)
                if support.call(srv, "CreateAlias", {"AliasName": alias, "KeyId": key})[0] == 200:
                    with acked.lock:
                        acked.aliases[alias] = key
            if support.call(srv, "CreateSecret", {"SecretName": name, "VersionId": "v1",
                                                  "SecretData": f"{name} one"})[0] == 200:
                with acked.lock:
                    acked.secrets[(name, "v1")] = f"{name} one"
                if support.call(srv, "PutSecretValue", {"SecretName": name, "VersionId": "v2",
                                                        "SecretData": f"{name} two"})[0] == 200:
                    with acked.lock:
                        acked.secrets[(name, "v2")] = f"{name} two"
    except (OSError, http.client.HTTPException):  # the runner is gone
        return


def test_every_acknowledged_write_survives_kill_9(tmp_path, store_env):
    data_dir = tmp_path / "data"
    srv = start_group(data_dir, store_env)
    acked, stop = Acked(), threading.Event()
    writers = [threading.Thread(target=write_until_stopped, args=(srv, n, acked, stop)) for n in range(WRITERS)]
    for thread in writers:
        thread.start()
    deadline = time.monotonic() + 20
    while acked.count() < ACKS and time.monotonic() < deadline:
        time.sleep(0.01)
    kill_group(srv)  # while every writer has a call in flight
    stop.set()
    for thread in writers:
        thread.join(30)
    assert acked.count() >= ACKS, "the writers hardly got anything done before the kill"

    srv = start_group(data_dir, store_env)
    try:
        for key in acked.keys:
            status, body = support.call(srv, "DescribeKey", {"KeyId": key})
            assert (status, body["KeyMetadata"]["KeyState"]) == (200, "Enabled"), body
        for alias, key in acked.aliases.items():
            status, body = support.call(srv, "DescribeKey", {"KeyId": alias})
            assert (status, body["KeyMetadata"]["KeyId"]) == (200, key), body
        for (name, vid), value in acked.secrets.items():
            status, body = support.call(srv, "GetSecretValue", {"SecretName": name, "VersionId": vid})
            assert (status, body.get("SecretData")) == (200, value), body
        # Everything that exists, acknowledged or caught in flight, is whole: each key listed
        # encrypts and decrypts (its material is there), each secret listed has a current value.
        status, body = support.call(srv, "ListKeys", {"PageSize": "100"})
        listed = [k["KeyId"] for k in body["Keys"]["Key"]]
        assert status == 200 and set(acked.keys) <= set(listed)
        for key in listed:
            status, body = support.call(srv, "Encrypt", {"KeyId": key, "Plaintext": "aGVsbG8="})
            assert status == 200, body
            status, body = support.call(srv, "Decrypt", {"CiphertextBlob": body["CiphertextBlob"]})
            assert (status, body.get("Plaintext")) == (200, "aGVsbG8="), body
        status, body = support.call(srv, "ListSecrets", {"PageSize": "100"})
        assert status == 200
        for secret in body["SecretList"]["Secret"]:
            status, answer = support.call(srv, "GetSecretValue", {"SecretName": secret["SecretName"]})
            assert status == 200 and answer["SecretData"].startswith(secret["SecretName"]), answer
        assert support.call(srv, "CreateKey", {"Description": "after the crash"})[0] == 200  # and it goes on
    finally:
        stop_group(srv)
