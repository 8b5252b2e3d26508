"""Operator mistakes found by the attack pass after issues 11/15/16 (alikms.shared.config):

* KMS_CLOCK_SKEW had no upper bound. 3,000,000,000 answered every signed request 500 (a nonce's expiry
  no longer fits the nonce table's 32-bit field), and any large value opens a replay window as wide.
* KMS_MAX_BODY had none either: a runner buffers a body up to it, so one anonymous request could take a
  worker's memory.
* A data directory whose `root.key` is missing (deleted, or not restored with the database from a
  backup) got a new root key named like the lost one ("r1") without a word: every call failed with 500,
  and rows written meanwhile were wrapped under a key that collides with the real one once it is
  restored. The runner now refuses to start and says what to do."""

from __future__ import annotations

from alikms.shared.config import get_config
from tests import support


# The refusals of values that cannot work are cases of test_operator_mistakes.py's table.


def test_the_largest_accepted_skew_still_answers(invoke, monkeypatch):
    monkeypatch.setenv("KMS_CLOCK_SKEW", "86400")
    get_config.cache_clear()
    status, body = invoke("DescribeRegions", ts=support.timestamp(support.time.time() - 86000))
    assert status == 200, body


def test_a_database_without_its_root_key_does_not_start(tmp_path):
    data = tmp_path / "data"
    srv = support.start_server(data)
    assert support.call(srv, "CreateKey")[0] == 200
    srv.stop()
    (data / "root.key").unlink()
    try:
        started = support.start_server(data)
    except RuntimeError as exc:
        message = str(exc)
    else:
        started.stop()
        raise AssertionError("the runner started without its root key")
    assert "root.key" in message and "KMS_ROOT_KEY" in message and "Traceback" not in message
    assert not (data / "root.key").exists()  # no new key was made
