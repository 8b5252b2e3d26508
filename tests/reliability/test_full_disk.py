"""A full disk under the SQLite store (a 2 MB tmpfs, filled up): every call gets a documented answer,
nothing acknowledged is lost, the database stays intact, and writes work again once space returns.
Mounting the tmpfs needs root, as the suite runs."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess

import pytest

from tests.reliability.helpers import Remote, start_group, stop_group

REFUSALS = {(500, "InternalFailure"), (503, "ServiceUnavailableTemporary")}


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=True)


def fill(path) -> None:
    """Write `path` until the file system has no byte left."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


class Ledger:
    """The calls the runner acknowledged."""

    def __init__(self, kms: Remote) -> None:
        self.kms, self.keys, self.secrets, self.refused = kms, [], {}, 0

    def write(self, action: str, params: dict) -> dict | None:
        status, body = self.kms.call(action, params)
        if status == 200:
            return body
        assert (status, body.get("Code")) in REFUSALS, (action, status, body)
        self.refused += 1
        return None

    def create_key(self) -> None:
        body = self.write("CreateKey", {})
        if body is not None:
            self.keys.append(body["KeyMetadata"]["KeyId"])

    def put_secret(self, name: str, vid: str) -> None:
        value = f"{name} {vid}"
        params = {"SecretName": name, "VersionId": vid, "SecretData": value}
        if self.write("CreateSecret" if vid == "v1" else "PutSecretValue", params) is not None:
            self.secrets[(name, vid)] = value

    def check(self) -> None:
        for key in self.keys:
            status, body = self.kms.call("Encrypt", {"KeyId": key, "Plaintext": "aGVsbG8="})
            assert status == 200, body
        for (name, vid), value in self.secrets.items():
            status, body = self.kms.call("GetSecretValue", {"SecretName": name, "VersionId": vid})
            assert (status, body.get("SecretData")) == (200, value), body


def test_a_full_disk_refuses_writes_loses_nothing_and_recovers(tmp_path, small_disk):
    nonces = tmp_path / "nonces"  # the nonce table is preallocated, like shared memory: keep it off the disk
    nonces.mkdir()
    # The audit trail is on the same full disk. By default that refuses every call until it can be
    # written (tests/ops/test_fail_closed.py); this test is about the store, so the trail serves on.
    env = {"KMS_NONCE_DIR": str(nonces), "KMS_AUDIT_STDOUT": "false", "KMS_AUDIT_FAIL_OPEN": "true"}
    data_dir = small_disk / "data"
    srv = start_group(data_dir, env, workers=1)
    try:
        ledger = Ledger(Remote(srv))
        for _ in range(3):
            ledger.create_key()
        ledger.put_secret("disk/a", "v1")
        assert ledger.refused == 0 and len(ledger.keys) == 3

        fill(small_disk / "filler")
        for n in range(4):
            ledger.create_key()
            ledger.put_secret(f"disk/full-{n}", "v1")
            ledger.put_secret("disk/a", f"full-{n}")
        assert ledger.refused > 0  # the disk really was full
        assert srv.proc.poll() is None
        ledger.check()  # what it acknowledged before and during, it still serves

        os.unlink(small_disk / "filler")
        refused = ledger.refused
        ledger.create_key()
        ledger.put_secret("disk/b", "v1")
        ledger.put_secret("disk/a", "after")
        assert ledger.refused == refused  # space is back: so are writes
        ledger.check()
    finally:
        stop_group(srv)
    with sqlite3.connect(data_dir / "kms.sqlite3") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    srv = start_group(data_dir, env, workers=1)
    try:
        ledger.kms = Remote(srv)
        ledger.check()  # and after a restart
    finally:
        stop_group(srv)
