"""The `tablestore` SDK as the store uses it: the synchronous client, imported without its asyncio client.

`import tablestore` runs the SDK's __init__, which imports every module of the SDK, among them
`tablestore.connection`, which imports aiohttp at module level for `AsyncConnectionPool`, and
`tablestore.client`, which imports asyncio for `AsyncOTSClient`'s retry sleeps. aiohttp was the
largest single part of a function's cold start (its import also builds two SSL contexts, loading the
CA store twice) and of its memory, and asyncio (with subprocess, signal, concurrent.futures) a tenth
of what is left, all for a client alikms never uses.

So the SDK is imported while each of those names that is not imported yet is held by a stand-in whose
attributes are placeholders that refuse to be used; the stand-ins leave sys.modules as soon as the SDK
is in, so a later `import aiohttp` or `import asyncio` anywhere gets the real module. The SDK itself is
imported whole and unmodified; in such a process only `AsyncOTSClient` is unusable, and it says why
when tried. When tablestore is already imported (the tests' Tablestore fake imports it), nothing special
happens. The deployment layer leaves aiohttp out altogether (alikms.deploy.package.EXCLUDED), and the
loader test runs every function from it.

Three more things the SDK's import does on every cold start are held off the same way, each only
while `import tablestore` runs:

* `platform.architecture()`: tablestore.plainbuffer sizes its length fields by its bits, and it runs
  the `file` command on the interpreter (a subprocess) to learn what the pointer size already says.
  Asked about this interpreter, it answers as platform itself does when `file` says nothing: the
  bits of a C pointer (the linkage part, which the SDK ignores, is left empty).
* `platform.platform()`: the SDK only puts it into the text of an ImportWarning (ignored by default)
  when its C++ extension does not load, and it runs `uname -p` (a subprocess) to name the processor.
  It answers system, release and machine from os.uname(), without the processor.
* `tablestore.ots_sdk.ots_sdk`, the SDK's optional C++ extension (13 MB): 6.4 ships it built for
  CPython 3.12 alone, and on any other Python loading it fails ("Python version mismatch") after
  mapping it and running its static initialisers. There it is marked absent in sys.modules (None:
  the import raises ImportError at once), so the SDK takes the same fallback it would take after
  the failed load: its pure-Python encoder and decoder, the same bytes on the wire. On 3.12 it loads.

This is the only module that imports the SDK; alikms.shared.store.tablestore takes its names from here.
"""

from __future__ import annotations

import os
import platform
import sys
import types

ASYNC_ONLY = ("aiohttp", "asyncio")  # what the SDK imports for AsyncOTSClient alone
NATIVE = "tablestore.ots_sdk.ots_sdk"  # the C++ extension, and the one Python it is built for
NATIVE_PYTHON = (3, 12)


class _Unavailable:
    """What every aiohttp name is in a process whose SDK was imported without aiohttp."""

    def __init__(self, name: str) -> None:
        self._name = name

    def __call__(self, *args, **kwargs):
        raise RuntimeError(f"{self._name}: tablestore's asyncio client is not available in this process "
                           "(alikms imports the SDK without aiohttp and asyncio, see alikms.shared.store._sdk)")

    def __getattr__(self, attr: str):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{self._name}.{attr}")


def _standin(name: str) -> types.ModuleType:
    module = types.ModuleType(name, f"stand-in for {name} while tablestore is imported: see alikms.shared.store._sdk")

    def __getattr__(attr: str):  # PEP 562; dunder lookups (__path__, __spec__, ...) stay misses
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Unavailable(f"{name}.{attr}")

    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def _architecture_without_file(real):
    """platform.architecture as the SDK's import sees it: for this interpreter, without running `file`."""

    def architecture(executable: str = sys.executable, bits: str = "", linkage: str = "") -> tuple[str, str]:
        # An empty executable is platform's own way to skip `file`: bits from struct.calcsize("P").
        return real("" if executable == sys.executable else executable, bits, linkage)

    return architecture


def _platform_without_processor(aliased: bool = False, terse: bool = False) -> str:
    """platform.platform as the SDK's import sees it: without `uname -p`."""
    name = os.uname()
    return f"{name.sysname}-{name.release}-{name.machine}"


def _import_sdk() -> None:
    if "tablestore" in sys.modules:
        return
    held: dict[str, types.ModuleType | None] = {name: _standin(name) for name in ASYNC_ONLY if name not in sys.modules}
    if sys.version_info[:2] != NATIVE_PYTHON and NATIVE not in sys.modules:
        held[NATIVE] = None
    # (None in sys.modules makes an import of that name fail at once: the import system's own way)
    sys.modules.update(held)  # type: ignore[arg-type]
    real = platform.architecture, platform.platform
    platform.architecture = _architecture_without_file(platform.architecture)
    platform.platform = _platform_without_processor
    try:
        import tablestore  # noqa: F401 - the whole SDK, with the stand-ins in place
    finally:
        platform.architecture, platform.platform = real
        for name, standin in held.items():
            if name in sys.modules and sys.modules[name] is standin:
                del sys.modules[name]


_import_sdk()

import tablestore  # noqa: E402

# Function Compute's python3.10 runtime comes with tablestore 5.4.1 of its own; should it ever win over
# the layer's 6.4 on sys.path, say so here rather than fail somewhere in the encoder.
if not tablestore.__version__.startswith("6.4."):
    raise ImportError(f"alikms needs tablestore 6.4.x, found {tablestore.__version__} at {tablestore.__file__}")

# Re-exported for alikms.shared.store.tablestore: the SDK's public names, its credentials classes and
# the retry policy that turns the SDK's own retries off.
from tablestore import *  # noqa: E402,F403
from tablestore.credentials import Credentials, CredentialsProvider  # noqa: E402,F401
from tablestore.retry import NoRetryPolicy  # noqa: E402,F401
