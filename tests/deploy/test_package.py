"""The deployment package is self-contained and every function in it works as Function Compute runs it.

* `alikms package` builds dist/<runtime>/{code,layer}.zip; the zips hold what they should and nothing
  else (no tests, benchmark, runner, .venv, foreign bytecode), their wheels are for the target's
  Python and glibc (checked statically from each wheel's tags and each library's glibc symbols), and
  both are within Function Compute's size limit.
* The loader test unpacks the zips, starts one clean interpreter per function (`python -I -S`, only
  the code directory and the layer's python/ on sys.path, cwd the code directory, Function Compute's
  variables set), loads handler and initializer by the documented `file.method` rule, and sends every
  action a signed request as an API Gateway event and again as an FC 3.0 HTTP-trigger event, and
  every timer job a timer event, against the Tablestore fake over loopback. It runs on this machine's
  Python (native build) and on the python3.10 and python3.12 builds with interpreters of those versions
  (pyenv's; on 3.12 the SDK's bundled C++ encoder takes part, as it would on FC's python3.12).
* SM2 signs and verifies from the package in a mount namespace where the system's libcrypto.so.3 is
  replaced by an empty file: only the layer's copy exists there.
"""

from __future__ import annotations

import glob
import os
import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from alikms.deploy import entrypoints, package
from alikms.shared.registry import ACTIONS, JOBS
from alikms.shared.store.tablestore import create_tables
from alikms.testing.fake_tablestore import serve
from tests.deploy import fc, scenario

TARGETS = {"native": package.native_target(), "python3.10": package.RUNTIMES["python3.10"],
           "python3.12": package.RUNTIMES["python3.12"]}


@pytest.fixture(scope="module")
def session_dir(tmp_path_factory) -> Path:
    """This test session's directory, shared by its xdist workers (each has its own basetemp below it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="module", params=list(TARGETS))
def artefact(request, session_dir) -> tuple[package.Target, dict]:
    target = TARGETS[request.param]
    return target, fc.built(target, session_dir)


@pytest.fixture
def ots():
    server, url = serve()
    import tablestore

    create_tables(tablestore.OTSClient(url, "test-akid", "test-secret", "kmsfake"))
    yield url
    server.shutdown()
    server.server_close()


def interpreter(target: package.Target) -> str:
    python = package.find_python(target.python)
    assert python, (f"no Python {target.python} on this machine (PATH or pyenv): the loader test runs the "
                    f"{target.name} package on one")
    return python


# --- what the zips hold -----------------------------------------------------------------------------

def _names(zpath: str) -> list[str]:
    with zipfile.ZipFile(zpath) as zf:
        return zf.namelist()


def test_code_zip_holds_the_entry_points_and_the_functions_only(artefact):
    target, built = artefact
    names = _names(built["code"])
    assert "index.py" in names
    tops = {n.split("/")[0] for n in names} | {"/".join(n.split("/")[:2]) for n in names if n.startswith("alikms/")}
    assert tops - {"__pycache__"} == {"index.py", "alikms", "alikms/shared", "alikms/functions"}
    for action in ACTIONS:
        assert action.module.replace(".", "/") + ".py" in names
    for job in JOBS:
        assert job.module.replace(".", "/") + ".py" in names
    for name in names:
        assert not re.search(r"(^|/)(tests?|bench|\.venv|\.git|node_modules)/", name), name
        if name.endswith(".pyc"):  # bytecode for the target's own Python only
            assert f".cpython-{target.abi[2:]}." in name, name


def test_layer_zip_holds_target_wheels_and_the_libcrypto(artefact):
    target, built = artefact
    names = _names(built["layer"])
    assert all(n.startswith("python/") for n in names)
    assert f"python/{package.NATIVE_DIR}/libcrypto.so.3" in names
    tops = {n.split("/")[1] for n in names}
    for left_out in package.EXCLUDED:
        assert left_out not in tops
    assert {"pydantic", "pydantic_core", "cryptography", "orjson", "tablestore", "google", "urllib3"} <= tops
    wheels = {}
    with zipfile.ZipFile(built["layer"]) as zf:
        for name in names:
            if name.endswith(".dist-info/WHEEL"):
                wheels[name] = [line.split(":", 1)[1].strip() for line in zf.read(name).decode().splitlines()
                                if line.startswith("Tag:")]
            if name.endswith(".pyc"):
                assert f".cpython-{target.abi[2:]}." in name, name
            if name.endswith("-linux-gnu.so"):  # (tablestore's wheel also carries a darwin build: unused)
                assert f".cpython-{target.abi[2:]}-x86_64-linux-gnu.so" in name, name
    assert len(wheels) >= 10
    for wheel, tags in wheels.items():
        assert any(_runs_on(tag, target) for tag in tags), (wheel, tags)


def _runs_on(tag: str, target: package.Target) -> bool:
    """Whether a wheel tag (PEP 425) installs on the target: its CPython, x86_64, glibc no newer."""
    python, abi, platform = tag.split("-")
    if platform == "any":
        return python in ("py3", f"py{target.abi[2]}{target.abi[3:]}") and abi == "none"
    if not (python == abi == target.abi or abi == "abi3" and int(python[3:]) <= int(target.abi[3:])):
        return False
    legacy = {"manylinux1_x86_64": (2, 5), "manylinux2010_x86_64": (2, 12), "manylinux2014_x86_64": (2, 17)}
    found = re.fullmatch(r"manylinux_(\d+)_(\d+)_x86_64", platform)
    glibc = (int(found[1]), int(found[2])) if found else legacy.get(platform)
    return glibc is not None and glibc <= target.glibc


def test_layer_libraries_need_no_newer_glibc_than_the_runtime(artefact, tmp_path):
    target, built = artefact
    with zipfile.ZipFile(built["layer"]) as zf:
        zf.extractall(tmp_path, [n for n in zf.namelist() if re.search(r"\.so(\.\d+)*$", n)])
    libraries = [p for p in tmp_path.rglob("*") if p.is_file() and p.read_bytes()[:4] == b"\x7fELF"]
    assert len(libraries) > 5
    newest = (0, 0)
    for lib in libraries:
        symbols = subprocess.run(["objdump", "-T", str(lib)], capture_output=True, text=True, check=True).stdout
        for major, minor in re.findall(r"GLIBC_(\d+)\.(\d+)", symbols):
            newest = max(newest, (int(major), int(minor)))
            assert (int(major), int(minor)) <= target.glibc, (lib.name, major, minor)
    assert newest >= (2, 14)  # the check saw real symbol versions


def test_sizes_are_within_function_compute_limits(artefact):
    _target, built = artefact
    for key in ("code", "layer"):
        assert 0 < Path(built[key]).stat().st_size <= package.SIZE_LIMIT
    assert "MB zipped" in built["summary"] and "limit 100 MB" in built["summary"]


# --- every function, from the unpacked package ------------------------------------------------------

def test_every_function_answers_from_the_package(artefact, ots, tmp_path):
    target, built = artefact
    assert built["bytecode"], "the loader test runs the package with bytecode, as built for deployment"
    code, layer = fc.unpack(built, tmp_path / "fc")
    deployment = fc.Deployment(interpreter(target), code, layer, fc.function_env(ots), tmp_path)
    try:
        made = {}
        for kind in ("apigateway", "fc3-http"):
            run = scenario.Run(lambda action, params, kind=kind: deployment.call(action, params, kind)[:2],
                               kind.replace("-", ""))
            made = scenario.api(run)
        scenario.timers(lambda job, when: deployment.timer(job, when)["result"], run, made)
        assert set(deployment.instances) == set(fc.ALL)
        for name, instance in deployment.instances.items():
            # Each instance imported its own function's module and no other.
            assert instance.started["functions"] == [_module(name)], name
        # SM2 ran on the layer's libcrypto (the system's is loadable here, but comes after it).
        assert deployment.instances["AsymmetricSign"].started["system_libcrypto"] == "loaded"
        answer = deployment.instances["AsymmetricSign"].invoke(b"{}")  # refused; reports the library in use
        assert answer["result"]["statusCode"] >= 400
        assert answer["libcrypto"] == str(layer / package.NATIVE_DIR / "libcrypto.so.3")
    finally:
        deployment.close()


def _module(name: str) -> str:
    return dict(entrypoints.functions())[name]


def _system_libcrypto() -> list[str]:
    found = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    paths = {str(Path(p).resolve()) for p in re.findall(r"libcrypto\.so\.3 .*=> (\S+)", found)}
    paths |= {str(Path(p).resolve()) for p in glob.glob("/usr/lib/x86_64-linux-gnu/libcrypto.so.3*")}
    return sorted(paths)


def test_sm2_from_the_package_with_the_system_libcrypto_hidden(session_dir, tmp_path):
    target = TARGETS["native"]
    built = fc.built(target, session_dir)
    code, layer = fc.unpack(built, tmp_path / "fc")
    hidden = _system_libcrypto()
    assert hidden, "no system libcrypto.so.3 found to hide"
    # The instance runs in its own mount namespace where each system libcrypto.so.3 is an empty file
    # (so is Python's own _hashlib/_ssl then: hashlib falls back to its built-in digests). The
    # Tablestore SDK needs ssl, so this instance keeps its state in SQLite.
    masks = " && ".join(f"mount --bind /dev/null {path}" for path in hidden)
    wrapper = ["unshare", "--mount", "sh", "-c", f"{masks} && exec \"$@\"", "sh", interpreter(target)]
    env = fc.function_env("http://127.0.0.1:1", KMS_STORE="sqlite", KMS_DATA_DIR=str(tmp_path / "data"))
    deployment = fc.Deployment(interpreter(target), code, layer, env, tmp_path, wrapper=wrapper)
    try:
        run = scenario.Run(lambda action, params: deployment.call(action, params, "apigateway")[:2], "sm2")
        run.ok("OpenKmsService")
        key = run.ok("CreateKey", KeySpec="EC_SM2", KeyUsage="SIGN/VERIFY")["KeyMetadata"]["KeyId"]
        (vid,) = [v["KeyVersionId"] for v in run.ok("ListKeyVersions", KeyId=key)["KeyVersions"]["KeyVersion"]]
        ids = {"KeyId": key, "KeyVersionId": vid, "Algorithm": "SM2DSA"}
        digest = scenario.b64(b"\x01" * 32)
        status, body, answer = deployment.call("AsymmetricSign", {"Digest": digest, **ids}, "apigateway")
        assert status == 200, body
        assert answer["libcrypto"] == str(layer / package.NATIVE_DIR / "libcrypto.so.3")
        assert run.ok("AsymmetricVerify", Digest=digest, Value=body["Value"], **ids)["Value"] is True
        assert run.ok("AsymmetricVerify", Digest=scenario.b64(b"\x02" * 32), Value=body["Value"], **ids)["Value"] \
            is False
        # Inside the namespace the system's library really is gone: the instance could not load it.
        assert "libcrypto.so.3" in deployment.instances["AsymmetricSign"].started["system_libcrypto"]
    finally:
        deployment.close()


def test_a_configuration_error_reaches_the_caller_as_an_api_error(session_dir, ots, tmp_path):
    """The initializer only logs a broken configuration (no root key here); the event that follows
    gets the API's InternalFailure body, not a Function Compute initialization error."""
    built = fc.built(TARGETS["native"], session_dir)
    code, layer = fc.unpack(built, tmp_path / "fc")
    env = {k: v for k, v in fc.function_env(ots).items() if k != "KMS_ROOT_KEY"}
    deployment = fc.Deployment(interpreter(TARGETS["native"]), code, layer, env, tmp_path)
    try:
        status, body, _answer = deployment.call("DescribeRegions", {}, "apigateway")
        assert (status, body["Code"]) == (500, "InternalFailure") and body["RequestId"]
        assert "initializer: ConfigError" in deployment.instances["DescribeRegions"].output()
    finally:
        deployment.close()
