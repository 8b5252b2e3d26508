"""What another user of the same host can plant or read (alikms.shared.localfiles).

Another local user is played by uid 65534 (`nobody`): the tests run as root, as the project's
machines and CI do, so they can make files owned by someone else, as that user could. Shared memory
is played by a sticky, world-writable directory (KMS_NONCE_DIR), like /dev/shm.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from alikms.shared import localfiles
from alikms.shared.localfiles import UnsafeFile
from alikms.shared.store import nonces
from alikms.shared.store.sqlite import SqliteStore
from tests import support
from tests.security.helpers import admin

STRANGER = 65534


def mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def shared_memory(tmp_path: Path) -> Path:
    shm = tmp_path / "shm"
    shm.mkdir()
    shm.chmod(0o1777)
    return shm


def victim(tmp_path: Path) -> Path:
    """A file of the service's user that a planted link points at: it must never change."""
    path = tmp_path / "victim.txt"
    path.write_text("do not touch")
    return path


@contextlib.contextmanager
def umask(value: int):
    old = os.umask(value)
    try:
        yield
    finally:
        os.umask(old)


# --- the nonce table in shared memory ---


def _plant_foreign_dir(private: Path, tmp_path: Path) -> str:
    private.mkdir(mode=0o777)
    private.chmod(0o777)
    os.chown(private, STRANGER, STRANGER)
    return "belongs to uid 65534"


def _plant_dir_link(private: Path, tmp_path: Path) -> str:
    theirs = tmp_path / "attacker"
    theirs.mkdir(mode=0o777)
    private.symlink_to(theirs)
    return "is a link or a file, not a directory"


def _plant_file_for_dir(private: Path, tmp_path: Path) -> str:
    private.write_text("")
    return "is a link or a file, not a directory"


def _plant_foreign_table(table: Path, tmp_path: Path) -> str:
    table.write_bytes(bytes(1024 * nonces.SLOT))
    table.chmod(0o666)
    os.chown(table, STRANGER, STRANGER)
    return "belongs to uid 65534"


def _plant_table_link(table: Path, tmp_path: Path) -> str:
    table.symlink_to(victim(tmp_path))
    return "is a symbolic link"


def _plant_table_hard_link(table: Path, tmp_path: Path) -> str:
    os.link(victim(tmp_path), table)
    return "hard links"


def _plant_table_fifo(table: Path, tmp_path: Path) -> str:
    os.mkfifo(table)
    return "is not a regular file"


DIR_PLANTS = [_plant_foreign_dir, _plant_dir_link, _plant_file_for_dir]
TABLE_PLANTS = [_plant_foreign_table, _plant_table_link, _plant_table_hard_link, _plant_table_fifo]


@pytest.mark.parametrize("plant", DIR_PLANTS + TABLE_PLANTS, ids=lambda f: f.__name__[7:])
def test_a_nonce_table_planted_in_shared_memory_is_refused(tmp_path, plant):
    shm, data = shared_memory(tmp_path), tmp_path / "data"
    data.mkdir()
    table = nonces.table_path(data / "kms.sqlite3", str(shm))
    assert table.parent == shm / f"alikms-{os.geteuid()}"
    if plant in TABLE_PLANTS:
        table.parent.mkdir(mode=0o700)
    expected = plant(table.parent if plant in DIR_PLANTS else table, tmp_path)
    with pytest.raises(UnsafeFile, match=expected) as info:
        SqliteStore(data / "kms.sqlite3", nonce_slots=1024, nonce_dir=str(shm))
    assert "the service did not create it. Check who put it there, then remove it" in str(info.value)
    if (tmp_path / "victim.txt").exists():
        assert (tmp_path / "victim.txt").read_text() == "do not touch"
    assert not list(data.glob("kms.sqlite3*"))  # refused before anything else was made


@pytest.mark.parametrize("plant", [_plant_foreign_dir, _plant_foreign_table, _plant_table_link],
                         ids=lambda f: f.__name__[7:])
def test_the_runner_refuses_to_start_on_a_planted_table(tmp_path, plant):
    shm, data = shared_memory(tmp_path), tmp_path / "data"
    data.mkdir()
    table = nonces.table_path(data.resolve() / "kms.sqlite3", str(shm))
    if plant is not _plant_foreign_dir:
        table.parent.mkdir(mode=0o700)
    expected = plant(table.parent if plant is _plant_foreign_dir else table, tmp_path)
    with pytest.raises(RuntimeError) as info:
        support.start_server(data, {"KMS_NONCE_DIR": str(shm)})
    message = str(info.value)
    assert f"alikms: {table.parent if plant is _plant_foreign_dir else table}" in message and expected in message
    assert "Traceback" not in message  # one clear line, not a stack


def test_a_table_of_the_service_is_kept_private_and_its_directory_too(tmp_path):
    shm, data = shared_memory(tmp_path), tmp_path / "data"
    data.mkdir()
    store = SqliteStore(data / "kms.sqlite3", nonce_slots=1024, nonce_dir=str(shm))
    assert store.remember_nonce("ak/n1", 1000, 900) is True
    private = shm / f"alikms-{os.geteuid()}"
    assert mode(private) == 0o700
    assert sorted((p.suffix, mode(p)) for p in private.iterdir()) == [(".map", 0o600), (".owner", 0o600)]
    private.chmod(0o755)  # loosened by our own user: taken back to 0700 on the next open
    again = SqliteStore(data / "kms.sqlite3", nonce_slots=1024, nonce_dir=str(shm))
    assert mode(private) == 0o700 and again.remember_nonce("ak/n1", 1001, 900) is False


def test_a_shared_directory_without_the_sticky_bit_is_refused(tmp_path):
    loose, data = tmp_path / "loose", tmp_path / "data"
    loose.mkdir()
    loose.chmod(0o777)  # anyone could rename the service's directory away and put their own there
    data.mkdir()
    with pytest.raises(UnsafeFile, match="without the sticky bit"):
        SqliteStore(data / "kms.sqlite3", nonce_slots=1024, nonce_dir=str(loose))


# --- whole-file writes ---


def test_whole_file_writes_never_follow_a_planted_link(tmp_path):
    target = victim(tmp_path)
    link = tmp_path / "credentials.json"
    link.symlink_to(target)
    with pytest.raises(FileExistsError):  # create-only: what is there (even a link) is never written
        localfiles.write_private(link, b"{}")
    localfiles.write_private(link, b"new", replace=True)  # the link itself is replaced
    assert target.read_text() == "do not touch"
    assert not link.is_symlink() and link.read_bytes() == b"new" and mode(link) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credentials.json", "victim.txt"]  # no temporary left


# --- the data directory ---


def test_a_data_directory_others_can_write_to_is_refused(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)
    with pytest.raises(RuntimeError, match="writable by every user") as info:
        support.start_server(data)
    assert "Traceback" not in str(info.value)
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    os.chown(theirs, STRANGER, STRANGER)
    with pytest.raises(RuntimeError, match="belongs to uid 65534, not to the service's user"):
        support.start_server(theirs)


def test_a_data_directory_in_a_directory_another_user_owns_is_refused(tmp_path):
    # Their directory: they could rename the service's data directory away and put their own in its
    # place (a database with their access keys) while the service runs.
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    theirs.chmod(0o755)
    os.chown(theirs, STRANGER, STRANGER)
    with pytest.raises(RuntimeError, match=f"{theirs}, above {theirs / 'data'}, belongs to uid 65534"):
        support.start_server(theirs / "data")
    loose = tmp_path / "loose"
    loose.mkdir()
    loose.chmod(0o777)
    with pytest.raises(RuntimeError, match="writable by every user without the sticky bit"):
        support.start_server(loose / "data")


def test_a_data_directory_named_through_another_users_link_is_refused(tmp_path):
    # /tmp/kms planted by them, pointing at a directory of the service's user: they would choose
    # where the service keeps (and appends to) its files.
    ours = tmp_path / "ours"
    ours.mkdir()
    link = tmp_path / "kms"
    link.symlink_to(ours)
    os.chown(link, STRANGER, STRANGER, follow_symlinks=False)
    with pytest.raises(RuntimeError, match=f"{link} is a symbolic link of uid 65534"):
        support.start_server(link)
    assert list(ours.iterdir()) == []
    shm = shared_memory(tmp_path)
    (tmp_path / "shm-link").symlink_to(shm)
    os.chown(tmp_path / "shm-link", STRANGER, STRANGER, follow_symlinks=False)
    (tmp_path / "data").mkdir()
    with pytest.raises(UnsafeFile, match="is a symbolic link of uid 65534"):
        SqliteStore(tmp_path / "data" / "kms.sqlite3", nonce_slots=1024, nonce_dir=str(tmp_path / "shm-link"))


def test_a_file_only_read_may_have_a_second_link(local_env, monkeypatch):
    """credentials.json and root.key appear whole by a link from a temporary name, so for a moment
    they have two links; a worker reading them then must not refuse to start."""
    from alikms.shared.config import get_config

    for var in ("KMS_ACCESS_KEY_ID", "KMS_ACCESS_KEY_SECRET"):
        monkeypatch.delenv(var)
    get_config()
    get_config.cache_clear()
    for name in ("credentials.json", "root.key"):
        os.link(local_env / name, local_env / f".{name}.tmp")
    assert get_config().account_id == support.TEST_ACCOUNT


IN_DATA_DIR = ["kms.sqlite3", "kms.sqlite3-wal", "kms.sqlite3-shm", "kms-changes.map", "kms-nonces.map",
               "credentials.json", "root.key", "audit"]  # audit/: the trail's directory


def _start_in_process(data: Path) -> None:
    """What a local instance does at start and on its first call: configuration, store, audit."""
    from alikms.shared import audit
    from alikms.shared.config import get_config
    from alikms.shared.store import get_store

    cfg = get_config()
    get_store()
    audit.check_dir(cfg)


@pytest.mark.parametrize("name", IN_DATA_DIR)
@pytest.mark.parametrize("how", ["foreign", "link"])
def test_a_file_in_the_data_directory_the_service_did_not_create_is_refused(local_env, tmp_path, monkeypatch,
                                                                             name, how):

    for var in ("KMS_ACCESS_KEY_ID", "KMS_ACCESS_KEY_SECRET"):  # credentials.json is read
        monkeypatch.delenv(var)
    local_env.mkdir()
    path = local_env / name
    if how == "foreign":
        path.mkdir() if name == "audit" else path.write_bytes(b"")
        os.chown(path, STRANGER, STRANGER)
        expected = "belongs to uid 65534"
    else:
        path.symlink_to(victim(tmp_path))
        expected = "is a link or a file" if name == "audit" else "is a symbolic link"
    with pytest.raises(UnsafeFile, match=expected):
        _start_in_process(local_env)
    if how == "link":
        assert (tmp_path / "victim.txt").read_text() == "do not touch"


def test_files_left_loose_by_an_older_version_are_made_private(local_env, monkeypatch):
    local_env.mkdir()
    with umask(0o022):
        db = sqlite3.connect(local_env / "kms.sqlite3")  # SQLite's own 0644, as before
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE t (a)")
        (local_env / "audit").mkdir()  # 0755
        (local_env / "root.key").write_text("r1:" + "A" * 43 + "=")
        try:
            assert mode(local_env / "kms.sqlite3-wal") == 0o644
            _start_in_process(local_env)
        finally:
            db.close()
    assert {p.name: mode(p) for p in local_env.iterdir() if mode(p) != (0o700 if p.is_dir() else 0o600)} == {}


def test_every_file_in_a_0755_data_directory_is_private(tmp_path):
    """A data directory made with a plain `mkdir` (0755), a umask of 022, a real runner with two
    workers and the nonce table in shared memory, and every kind of write: each file the service
    makes is 0600, while it runs (the -wal and -shm files exist) and after it stops (the saved table)."""
    shm, data = shared_memory(tmp_path), tmp_path / "data"
    data.mkdir()
    data.chmod(0o755)
    no_env_keys = {"KMS_ACCESS_KEY_ID": "", "KMS_ACCESS_KEY_SECRET": "", "KMS_NONCE_DIR": str(shm),
                   "KMS_AUDIT_STDOUT": "false"}
    with umask(0o022):
        srv = support.start_server(data, no_env_keys, workers=2)
        try:
            creds = json.loads((data / "credentials.json").read_text())  # generated: no key in the environment
            srv.access_key_id, srv.secret = creds["AccessKeyId"], creds["AccessKeySecret"]
            key = support.call(srv, "CreateKey", {})[1]["KeyMetadata"]["KeyId"]
            blob = support.call(srv, "Encrypt", {"KeyId": key, "Plaintext": "aGk="})[1]["CiphertextBlob"]
            assert support.call(srv, "Decrypt", {"CiphertextBlob": blob})[1]["Plaintext"] == "aGk="
            assert support.call(srv, "CreateSecret", {"SecretName": "s", "VersionId": "v1",
                                                      "SecretData": "x"})[0] == 200
            assert support.call(srv, "GetSecretValue", {"SecretName": "s"})[1]["SecretData"] == "x"
            admin(data, "access-key", "create", env=srv.env)
            admin(data, "rotate-root-key", env=srv.env)
            running = {str(p.relative_to(data)): mode(p) for p in data.rglob("*")}
            assert {"kms.sqlite3", "kms.sqlite3-wal", "kms.sqlite3-shm", "kms-changes.map", "credentials.json",
                    "root.key", "audit"} <= set(running)
            assert any(name.startswith("audit/audit-") for name in running)
            assert {name: m for name, m in running.items()
                    if m != (0o700 if (data / name).is_dir() else 0o600)} == {}
        finally:
            srv.stop()
    after = {str(p.relative_to(data)): mode(p) for p in data.rglob("*")}
    assert "kms-nonces.map" in after  # the table, saved at shutdown
    assert {name: m for name, m in after.items() if m != (0o700 if (data / name).is_dir() else 0o600)} == {}
    [private] = shm.iterdir()
    assert mode(private) == 0o700 and {p.name: mode(p) for p in private.iterdir() if mode(p) != 0o600} == {}
    assert mode(data) == 0o755  # the operator's directory is left as it was
