"""Operator mistakes found by the attack pass after issues 11/15/16 (alikms.shared.config):

* KMS_CLOCK_SKEW had no upper bound. 3,000,000,000 answered every signed request 500 (a nonce's expiry
  no longer fits the nonce table's 32-bit field), and any large value opens a replay window as wide.
* KMS_MAX_BODY had none either: a runner buffers a body up to it, so one anonymous request could take a
  worker's memory.
* A data directory whose `root.key` is missing (deleted, or not restored with the database from a
  backup) got a new root key named like the lost one ("r1") without a word: every call failed with 500,
  and rows written meanwhile were wrapped under a key that collides with the real one once it is
  restored. The runner and the admin tool's writing commands now refuse a ring that opens none of the
  stored access keys, and say what to do (a wrong KMS_ROOT_KEY is refused the same way)."""

from __future__ import annotations

import base64

from alikms.shared.config import get_config
from tests import support
from tests.security.helpers import admin

# The refusals of values that cannot work are cases of test_operator_mistakes.py's table.


def test_the_largest_accepted_skew_still_answers(invoke, monkeypatch):
    monkeypatch.setenv("KMS_CLOCK_SKEW", "86400")
    get_config.cache_clear()
    status, body = invoke("DescribeRegions", ts=support.timestamp(support.time.time() - 86000))
    assert status == 200, body


def test_a_ring_that_opens_nothing_stored_is_refused(tmp_path):
    data = tmp_path / "data"
    srv = support.start_server(data)
    key_id = support.call(srv, "CreateKey")[1]["KeyMetadata"]["KeyId"]
    srv.stop()
    saved = (data / "root.key").read_bytes()
    (data / "root.key").unlink()
    try:
        started = support.start_server(data)
    except RuntimeError as exc:
        message = str(exc)
    else:
        started.stop()
        raise AssertionError("the runner started with a root key that opens nothing stored")
    assert "put the old root.key back" in message and "Traceback" not in message, message
    made = admin(data, "access-key", "create", env=srv.env, check=False)
    assert made.returncode == 1 and "opens none of" in made.stderr and "AccessKeySecret" not in made.stdout
    # The same with KMS_ROOT_KEY naming another ring.
    other = {**srv.env, "KMS_ROOT_KEY": "r1:" + base64.b64encode(bytes(32)).decode()}
    assert admin(data, "access-key", "create", env=other, check=False).returncode == 1
    # Put back, it serves again and the key made before works.
    (data / "root.key").write_bytes(saved)
    again = support.start_server(data)
    try:
        status, body = support.call(again, "Encrypt", {"KeyId": key_id, "Plaintext": "aGk="})
        assert status == 200, body
    finally:
        again.stop()
