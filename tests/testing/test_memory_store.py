"""What the in-memory store does beyond the store contract (tests/store/test_contract.py runs it too)."""

from __future__ import annotations

from alikms.shared.store import memory


def test_remembered_nonces_stay_bounded_by_one_window():
    store = memory.MemoryStore()
    for n in range(memory._NONCE_SWEEP - 1):
        assert store.remember_nonce(f"ak/old-{n}", 1000, 60)
    assert store.remember_nonce("ak/old-0", 1030, 60) is False  # still a replay inside its window
    # Past the window, the next nonce that fills the table sweeps the expired ones out.
    assert store.remember_nonce("ak/new", 2000, 60)
    assert len(store.data.nonces) == 1
    assert store.remember_nonce("ak/new", 2001, 60) is False
    assert store.remember_nonce("ak/old-0", 2001, 60) is True


def test_rows_read_or_written_are_copies():
    store = memory.MemoryStore()
    written = {"tags": ["a"]}
    store.put_new("keys", "p", "k", written)
    written["tags"].append("changed after the write")
    assert store.get("keys", "p", "k").data == {"tags": ["a"]}
    store.update("keys", "p", "k", {"tags": ("a", "b")}, 1)
    assert store.get("keys", "p", "k").data == {"tags": ["a", "b"]}  # as a JSON backend returns it


def test_an_emptied_partition_disappears():
    store = memory.MemoryStore()
    store.put_new("aliases", "scope", "alias/a", {})
    store.delete("aliases", "scope", "alias/a")
    assert store.data.tables["aliases"] == {} and store.count("aliases", "scope") == 0
