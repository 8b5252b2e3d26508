"""The store imports the tablestore SDK without aiohttp and asyncio (alikms.shared.store._sdk), and nothing
else changes."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from tests import support

PROBE = textwrap.dedent("""
    import sys
    from alikms.shared.store import _sdk
    assert "tablestore" in sys.modules and "aiohttp" not in sys.modules and "asyncio" not in sys.modules
    from alikms.shared.store.tablestore import TablestoreStore, create_tables
    import tablestore

    # The synchronous client works (against the in-process wire fake)...
    from alikms.testing.fake_tablestore import FakeTablestore, fake_client
    client = fake_client(FakeTablestore())
    create_tables(client)
    store = TablestoreStore(client)
    store.put_new("keys", "acct/region", "k1", {"a": 1})
    assert store.get("keys", "acct/region", "k1").data == {"a": 1}
    # ...only the asyncio client is unusable, and says why...
    try:
        tablestore.AsyncOTSClient("http://127.0.0.1:1", "id", "secret", "instance")._get_or_create_connection()
    except RuntimeError as exc:
        assert "alikms.shared.store._sdk" in str(exc), exc
    else:
        raise AssertionError("AsyncOTSClient worked without aiohttp")
    # ...and aiohttp and asyncio themselves import for real afterwards.
    import asyncio
    import aiohttp
    assert aiohttp.ClientSession.__module__.startswith("aiohttp"), aiohttp
    assert asyncio.run(asyncio.sleep(0, "slept")) == "slept"
    print("ok")
""")


def test_store_imports_the_sdk_without_aiohttp():
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=support.ROOT, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_an_sdk_imported_first_is_used_as_it_is():
    probe = ("import sys, tablestore, aiohttp\nimport alikms.shared.store.tablestore as t\n"
             "assert t.OTSClient is tablestore.OTSClient and sys.modules['aiohttp'] is aiohttp\nprint('ok')")
    done = subprocess.run([sys.executable, "-c", probe], cwd=support.ROOT, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr


def test_the_sdk_import_spawns_nothing_and_leaves_platform_as_it_was():
    """What _sdk holds while the SDK is imported (platform's answers, the C++ extension on a Python it
    was not built for) is back as it was afterwards, and the SDK got the same pointer size."""
    probe = textwrap.dedent("""
        import platform, struct, sys
        spawned = []
        sys.addaudithook(lambda event, args: spawned.append(args[0]) if event == "subprocess.Popen" else None)
        real = platform.architecture, platform.platform
        from alikms.shared.store import _sdk
        import tablestore.encoder
        from tablestore.plainbuffer.plain_buffer_consts import const
        assert spawned == [], spawned
        assert (platform.architecture, platform.platform) == real
        assert const.SYS_BITS == struct.calcsize("P") * 8 and const.LITTLE_ENDIAN_SIZE == struct.calcsize("P")
        assert sys.modules.get(_sdk.NATIVE, "gone") is not None  # no None left behind
        if sys.version_info[:2] != _sdk.NATIVE_PYTHON:
            assert not tablestore.encoder.NATIVE_ENCODER_AVAILABLE
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", probe], cwd=support.ROOT, capture_output=True, text=True,
                          check=False, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
