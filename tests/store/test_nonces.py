"""The shared memory-mapped nonce table of a local instance (shared/store/nonces.py)."""

from __future__ import annotations

import multiprocessing as mp

import pytest

from shared import errors
from shared.store.nonces import WINDOW, SharedNonces


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
    from shared.store import NonceTableFull
    from shared.store.sqlite import SqliteStore

    def full(self, key, now, ttl):
        raise NonceTableFull()

    monkeypatch.setattr(SqliteStore, "remember_nonce", full)
    monkeypatch.setattr("shared.auth._warned", [0.0])
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
