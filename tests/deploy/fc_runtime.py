"""One Function Compute Python instance, played as closely as this machine allows. Not imported: run as

    python -I -S tests/deploy/fc_runtime.py RESULT_FD        (cwd = the unpacked code package)

in a clean interpreter: -I ignores PYTHON* variables, the user's site and the script's own directory,
-S skips site-packages, so sys.path holds the standard library and only what this script adds, as
Function Compute does: the code directory (FC_FUNC_CODE_PATH) and the layers' python/ directory
(FC_LAYER_PYTHON here; /opt/python on Function Compute). The handler and the initializer are loaded
by Function Compute's documented rule for Python, `file.method`: the method of file.py at the root
of the code package (alibabacloud.com/help/doc-detail/74756.htm). The initializer runs once, before
the first event, with the context as its only argument.

Protocol: one JSON object per line on stdin, `{"event": "...", "request_id": "..."}`; one JSON
object per line on RESULT_FD, `{"result": ..., "error": null | "traceback", "functions": [...]}`
where `functions` lists the alikms.functions modules the instance has imported so far. The first
answer is `{"ready": true, ...}` once the initializer has run (with whether the system's
libcrypto.so.3 can be loaded here), or `{"error": ...}` if it failed.
stdout stays the function's own (audit records), as on Function Compute.
"""

import importlib
import json
import os
import sys
import traceback
from types import SimpleNamespace


def load(handler: str):
    """Function Compute's rule: `file.method` is `method` in `file`.py at the code root."""
    module, _, method = handler.rpartition(".")
    if not module or "." in module or not os.path.isfile(os.path.join(os.environ["FC_FUNC_CODE_PATH"], module + ".py")):
        raise ValueError(f"handler {handler!r} is not <file>.<method> for a file at the code root")
    return getattr(importlib.import_module(module), method)


def context(request_id: str) -> SimpleNamespace:
    """The context object of the python3.9/3.10 runtimes (docs: help/doc-detail/422182.htm)."""
    env = os.environ
    return SimpleNamespace(
        request_id=request_id,
        credentials=SimpleNamespace(access_key_id=env.get("ALIBABA_CLOUD_ACCESS_KEY_ID"),
                                    access_key_secret=env.get("ALIBABA_CLOUD_ACCESS_KEY_SECRET"),
                                    security_token=env.get("ALIBABA_CLOUD_SECURITY_TOKEN")),
        function=SimpleNamespace(name=env["FC_FUNCTION_NAME"], handler=env["FC_FUNCTION_HANDLER"],
                                 memory=int(env.get("FC_FUNCTION_MEMORY_SIZE", "256")), timeout=10,
                                 initializer=env.get("FC_FUNCTION_INITIALIZER")),
        service=SimpleNamespace(name="kms", log_project="", log_store="", qualifier="LATEST", version_id=""),
        region=env.get("FC_REGION", ""),
        account_id=env.get("FC_ACCOUNT_ID", ""),
    )


def system_libcrypto() -> str:
    """Whether the system's OpenSSL 3 can be loaded here: "loaded", or the loader's error."""
    import ctypes

    try:
        ctypes.CDLL("libcrypto.so.3")
    except OSError as exc:
        return str(exc)
    return "loaded"


def functions_loaded() -> list:
    return sorted(name for name in sys.modules if name.startswith("alikms.functions.") and name.count(".") == 3)


def main() -> None:
    out = os.fdopen(int(sys.argv[1]), "w", buffering=1)
    code = os.environ["FC_FUNC_CODE_PATH"]
    sys.path[:0] = [code, os.environ["FC_LAYER_PYTHON"]]
    os.chdir(code)
    try:
        handler = load(os.environ["FC_FUNCTION_HANDLER"])
        initializer = os.environ.get("FC_FUNCTION_INITIALIZER")
        if initializer:
            load(initializer)(context("init"))
        # (after the initializer, so that the probe cannot decide which libcrypto the function takes)
        out.write(json.dumps({"ready": True, "functions": functions_loaded(),
                              "system_libcrypto": system_libcrypto()}) + "\n")
    except Exception:  # noqa: BLE001 - the instance reports why it could not start
        out.write(json.dumps({"error": traceback.format_exc()}) + "\n")
        return
    for line in sys.stdin:
        request = json.loads(line)
        try:
            result, error = handler(request["event"].encode(), context(request["request_id"])), None
        except Exception:  # noqa: BLE001 - Function Compute reports an unhandled error; so does this
            result, error = None, traceback.format_exc()
        crypto = sys.modules.get("alikms.shared.crypto._libcrypto")
        out.write(json.dumps({"result": result, "error": error, "functions": functions_loaded(),
                              "libcrypto": getattr(crypto, "_lib_name", None)}) + "\n")


main()
