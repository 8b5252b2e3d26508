"""Fixtures of the reliability tests."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests import support
from tests.reliability.helpers import TABLESTORE_ENV


@pytest.fixture
def ots_process():
    """The Tablestore fake in a process of its own, its tables made; yields its URL. Its own process
    keeps its threads off this one's interpreter, and its stderr (a killed runner's connections
    end mid-request) out of the test output."""
    from tablestore import OTSClient
    from tablestore.retry import NoRetryPolicy

    from alikms.shared.store.tablestore import create_tables

    proc = subprocess.Popen([sys.executable, "-m", "alikms.testing.fake_tablestore", "--port", "0"], cwd=support.ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = proc.stdout.readline().strip()
        create_tables(OTSClient(url, "test-akid", "test-secret", "kmsfake", retry_policy=NoRetryPolicy()))
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(params=["sqlite", "tablestore"])
def store_env(request) -> dict:
    """The environment that puts a runner on each store in turn (SQLite in its data directory, then
    the Tablestore fake)."""
    if request.param == "sqlite":
        return {}
    return {**TABLESTORE_ENV, "OTS_ENDPOINT": request.getfixturevalue("ots_process")}
