"""The shared memory-mapped nonce table of a local instance (shared/store/nonces.py)."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from alikms.shared import errors
from alikms.shared.store.nonces import WINDOW, SharedNonces


def test_new_replay_and_expiry(tmp_path):
    table = SharedNonces(tmp_path / "n.map", slots=1024)
    assert table.remember("ak/n1", 1000, 100) is True
    assert table.remember("ak/n1", 1050, 100) is False  # a replay within its lifetime
    assert table.remember("ak/n2", 1050, 100) is True
    assert table.remember("ak/n1", 1100, 100) is True  # expired: the slot is taken over
    assert table.remember("ak/n1", 1150, 100) is False
    other = SharedNonces(tmp_path / "n.map", slots=1024)  # another instance on the same file
    assert other.remember("ak/n2", 1051, 100) is False
    assert other.remember("ak/n3", 1051, 100) is True
    assert table.remember("ak/n3", 1052, 100) is False


def test_a_full_window_refuses_rather_than_forgets(tmp_path):
    slots = WINDOW + 1  # every key hashes to the same window
    table = SharedNonces(tmp_path / "n.map", slots=slots)
    accepted = [table.remember(f"ak/{i}", 1000, 100) for i in range(WINDOW)]
    assert accepted == [True] * WINDOW
    assert table.remember("ak/one-more", 1000, 100) is None
    assert all(table.remember(f"ak/{i}", 1001, 100) is False for i in range(WINDOW))  # none forgotten
    assert table.remember("ak/one-more", 1100, 100) is True  # once nonces expire there is room again


def test_auth_turns_a_full_table_into_throttling(local_env, monkeypatch, invoke, caplog):
    from alikms.shared.store import NonceTableFull
    from alikms.shared.store.sqlite import SqliteStore

    def full(self, key, now, ttl):
        raise NonceTableFull()

    monkeypatch.setattr(SqliteStore, "remember_nonce", full)
    monkeypatch.setattr("alikms.shared.auth._warned", [0.0])
    with caplog.at_level("WARNING", logger="kms"):
        status, body = invoke("DescribeRegions")
        assert (status, body["Code"]) == (400, "Throttling")
        assert errors.Throttling.message in body["Message"]
        assert invoke("DescribeRegions")[1]["Code"] == "Throttling"
    warnings = [r.getMessage() for r in caplog.records if "nonce table full" in r.getMessage()]
    assert len(warnings) == 1 and "KMS_NONCE_SLOTS" in warnings[0]  # once a minute, naming the knob


def _racer(path: str, keys: list[str], start, out) -> None:
    table = SharedNonces(path, slots=1 << 12)
    start.wait()
    out.put(sum(1 for k in keys if table.remember(k, 1000, 100)))


@pytest.mark.parametrize("procs", [2, 4])
def test_processes_racing_on_the_same_nonces_accept_each_once(tmp_path, procs):
    keys = [f"ak/{i:05d}" for i in range(2000)]
    ctx = mp.get_context("spawn")
    start, out = ctx.Barrier(procs), ctx.Queue()
    workers = [ctx.Process(target=_racer, args=(str(tmp_path / "n.map"), keys, start, out)) for _ in range(procs)]
    for w in workers:
        w.start()
    accepted = [out.get(timeout=60) for _ in workers]
    for w in workers:
        w.join(30)
    assert sum(accepted) == len(keys)  # every nonce accepted exactly once, whichever process won it


# --- where the table lives: shared memory by default, saved beside the database at shutdown ---


def test_table_location(tmp_path, monkeypatch):
    import os
    from pathlib import Path

    from alikms.shared.store import nonces

    db = tmp_path / "kms.sqlite3"
    assert nonces.table_path(db, "data") == tmp_path / "kms-nonces.map"
    elsewhere = nonces.table_path(db, str(tmp_path / "shm"))
    # in the service user's own directory there, never loose in a directory every user can write to
    assert elsewhere.parent == tmp_path / "shm" / f"alikms-{os.geteuid()}" and elsewhere.name.startswith("nonces-")
    assert nonces.table_path(tmp_path / "." / "kms.sqlite3", str(tmp_path / "shm")) == elsewhere  # same database
    assert nonces.table_path(tmp_path / "other.sqlite3", str(tmp_path / "shm")) != elsewhere
    monkeypatch.setattr(nonces, "SHM", str(tmp_path / "shm"))
    (tmp_path / "shm").mkdir()
    assert nonces.table_path(db, None) == elsewhere  # the default: shared memory where the host has it
    monkeypatch.setattr(nonces, "SHM", str(tmp_path / "no-such-dir"))
    assert nonces.table_path(db, None) == tmp_path / "kms-nonces.map"
    assert Path(nonces.SHM).name == "no-such-dir"


def test_a_saved_table_seeds_the_next_one_after_a_reboot(tmp_path):
    import shutil

    from alikms.shared.store.sqlite import SqliteStore

    shm, data = tmp_path / "shm", tmp_path / "data"
    shm.mkdir()
    data.mkdir()
    store = SqliteStore(data / "kms.sqlite3", nonce_slots=1024, nonce_dir=str(shm))
    assert store.remember_nonce("ak/n1", 1000, 900) is True
    [private] = shm.iterdir()
    assert [p.suffix for p in sorted(private.iterdir())] == [".map", ".owner"]
    store.save_nonces()
    shutil.rmtree(private)  # a reboot empties /dev/shm
    again = SqliteStore(data / "kms.sqlite3", nonce_slots=1024, nonce_dir=str(shm))
    assert again.remember_nonce("ak/n1", 1100, 900) is False  # still remembered
    assert again.remember_nonce("ak/n2", 1100, 900) is True


def test_tables_of_removed_data_directories_are_swept(tmp_path):
    import shutil

    from alikms.shared.store.sqlite import SqliteStore

    shm = tmp_path / "shm"
    shm.mkdir()
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        SqliteStore(tmp_path / name / "kms.sqlite3", nonce_slots=1024, nonce_dir=str(shm))
    assert len(list(shm.glob("*/*.map"))) == 2
    shutil.rmtree(tmp_path / "a")
    (tmp_path / "c").mkdir()
    SqliteStore(tmp_path / "c" / "kms.sqlite3", nonce_slots=1024, nonce_dir=str(shm))  # a new table sweeps
    owners = sorted(p.read_text() for p in shm.glob("*/*.owner"))
    assert owners == [str((tmp_path / "b").resolve()), str((tmp_path / "c").resolve())]
    assert len(list(shm.glob("*/*.map"))) == 2


def test_no_room_for_the_table_is_a_clear_error(tmp_path, monkeypatch):
    import errno

    from alikms.shared.store import nonces

    def full(fd, size, seed):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nonces, "allocate", full)
    with pytest.raises(OSError, match="KMS_NONCE_SLOTS") as info:
        SharedNonces(tmp_path / "n.map", slots=1024)
    assert info.value.errno == errno.ENOSPC


@pytest.mark.parametrize("workers", [1, 2])
def test_runner_remembers_nonces_across_a_restart_with_shared_memory_emptied(server_factory, tmp_path, workers):
    import shutil

    from tests import support

    shm = tmp_path / "shm"
    shm.mkdir()
    env = {"KMS_NONCE_DIR": str(shm)}
    srv = server_factory(env, workers=workers)
    nonce, ts = "restart-nonce-0001", support.timestamp()
    assert support.call(srv, "DescribeRegions", nonce=nonce, ts=ts)[0] == 200
    assert list(shm.glob("alikms-*/nonces-*.map"))  # the live table is in shared memory
    srv.stop()  # a clean shutdown saves it into the data directory
    assert (srv.data_dir / "kms-nonces.map").is_file()
    for p in shm.iterdir():
        shutil.rmtree(p)
    srv2 = support.start_server(srv.data_dir, env, workers=workers)
    try:
        status, body = support.call(srv2, "DescribeRegions", nonce=nonce, ts=ts)
        assert (status, body["Code"]) == (400, "SignatureNonceUsed")
        assert support.call(srv2, "DescribeRegions")[0] == 200
    finally:
        srv2.stop()
