"""Test helpers shipped with the distribution.

`mock_kms` (and its class `MockKms`): the service in process behind every Alibaba KMS client
(`testing/mock.py`). `start_server`: the local runner on a free port, for clients outside Python
(`testing/server.py`). Both are also pytest fixtures (`mock_kms`, `kms_server`) through the plugin
the distribution registers (`testing/plugin.py`). `fake_tablestore`: the wire-level Tablestore fake.
Names load on first use, so importing the package costs nothing.
"""

from __future__ import annotations

import importlib

_EXPORTS = {"mock_kms": "mock", "MockKms": "mock", "start_server": "server", "KmsServer": "server"}
__all__ = list(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
