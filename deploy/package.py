"""Build what Function Compute runs: `alikms package` (scripts/package).

    alikms package [--runtime python3.10|python3.12|native] [--out dist] [--cache .package-cache]

Two zips per runtime, in `dist/<runtime>/` (the paths template.yml and s.yaml name):

* `code.zip`, the code package of every function: `index.py` (the entry points, see
  `alikms.deploy.entrypoints`) and the `alikms` package with only what a function imports
  (`alikms.shared`, `alikms.functions`; not the runner, the deploy tools, tests or the benchmark).
* `layer.zip`, one layer shared by all functions: `python/` holds the runtime dependencies and
  `python/alikms_native/libcrypto.so.3`, the OpenSSL 3 that SM2 needs (`alikms.shared.crypto._libcrypto`).
  Function Compute documents layers for exactly this: common libraries that several functions depend
  on, published once instead of inside every code package; a Python layer's `python/` directory
  becomes `/opt/python` on `sys.path` (help/en/functioncompute/fc-3-0/user-guide/create-a-custom-layer-1).
  With 53 functions, dependencies inside each code package would be uploaded 53 times per deploy.

Dependencies are the run-time requirements of the installed `alikms` distribution (its dependencies and
the `tablestore` extra), taken as wheels
for the target and never from this machine's interpreter: `pip install --platform manylinux_2_X_x86_64
--python-version 3.N --implementation cp --abi cp3N --only-binary=:all: --target ...`, X being the glibc
of the runtime's Debian (python3.10: Debian 10, glibc 2.28; python3.12: Debian 11, glibc 2.31; runtime
list: help/en/functioncompute/fc/python/). Wheels are downloaded once into the cache directory and
installed from there offline afterwards. Two declared dependencies of tablestore are left out because
the synchronous client never imports them (see EXCLUDED); the loader test (tests/deploy/) runs every
function from the built zips to prove the package complete.

Bytecode: Function Compute's code directory is read-only to the function, so a package without `.pyc`
files compiles every module on every cold start. The build compiles everything with an interpreter of
the target's own version when it finds one (`--python`, `python3.N` on PATH, or pyenv), as
unchecked-hash `.pyc` files (valid whatever the timestamps a zip round trip leaves), and says so.

The build prints each zip's size and fails when one exceeds Function Compute's documented limit for a
code package uploaded through the API, 100 MB (help/en/functioncompute/fc/product-overview/limits-of-usage;
the console and developer tools take 500 MB in some regions, 100 MB elsewhere).
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from . import entrypoints

ROOT = Path(__file__).resolve().parent.parent
DIST, CACHE = ROOT / "dist", ROOT / ".package-cache"
CODE_PACKAGES = ("shared", "functions")  # folders of the checkout that become alikms.<name> in the package
SIZE_LIMIT = 100 * 1024 * 1024  # bytes, per zip (code package through the API; the layer is held to the same)

EXTRAS = ("tablestore",)  # the deployment's store is an extra of the distribution

# Declared by tablestore 6.4 but never imported by its synchronous client as alikms loads it
# (alikms.shared.store._sdk): leaving them out keeps them off every cold start and out of the layer.
EXCLUDED = {
    "aiohttp": "tablestore's AsyncOTSClient only; alikms.shared.store._sdk loads the SDK without it",
    "numpy": "imported by flatbuffers only when present (flatbuffers.compat.import_numpy), for "
             "tablestore's timeseries encoder, which alikms does not use",
}

# OpenSSL 3 with SM2, for Python runtimes whose system libcrypto is older (FC's python3.10 runs on
# Debian 10, OpenSSL 1.1.1). psycopg-binary's manylinux2014 wheels carry a libcrypto 3 that needs
# glibc 2.17, zlib and nothing else; only that one file is taken. Pinned so that builds repeat.
LIBCRYPTO_WHEEL = "psycopg-binary==3.3.9"
LIBCRYPTO_MEMBER = re.compile(r"psycopg_binary\.libs/libcrypto-[0-9a-f]+\.so\.3\Z")
NATIVE_DIR = "alikms_native"  # under the layer's python/, so on sys.path's directories


@dataclass(frozen=True)
class Target:
    name: str  # dist/<name>/
    runtime: str  # the FC runtime identifier
    python: str  # "3.10"
    glibc: tuple[int, int]  # of the runtime's OS

    @property
    def abi(self) -> str:
        return "cp" + self.python.replace(".", "")

    @property
    def platform(self) -> str:
        return f"manylinux_{self.glibc[0]}_{self.glibc[1]}_x86_64"

    def platforms(self) -> list[str]:
        """Every manylinux tag the runtime's glibc satisfies: pip does not derive older ones itself."""
        tags = [f"manylinux_2_{minor}_x86_64" for minor in range(self.glibc[1], 4, -1)]
        return tags + ["manylinux2014_x86_64", "manylinux2010_x86_64", "manylinux1_x86_64"]

    def pip_target_args(self) -> list[str]:
        platforms = [arg for tag in self.platforms() for arg in ("--platform", tag)]
        return [*platforms, "--python-version", self.python, "--implementation", "cp", "--abi", self.abi,
                "--only-binary=:all:"]

    def markers(self) -> dict[str, str]:
        """The environment markers of the target, for the dependencies' `Requires-Dist` conditions."""
        return {"python_version": self.python, "python_full_version": self.python + ".0", "os_name": "posix",
                "sys_platform": "linux", "platform_system": "Linux", "platform_machine": "x86_64",
                "platform_python_implementation": "CPython", "implementation_name": "cpython",
                "platform_release": "", "platform_version": "", "implementation_version": self.python + ".0",
                "extra": ""}


RUNTIMES = {
    "python3.10": Target("python3.10", "python3.10", "3.10", (2, 28)),
    "python3.12": Target("python3.12", "python3.12", "3.12", (2, 31)),
}


def native_target() -> Target:
    """This machine's Python version, with python3.10's platform: the build the loader test can run here."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    return Target(f"native-py{version}", f"python{version}", version, RUNTIMES["python3.10"].glibc)


def target_named(name: str) -> Target:
    return native_target() if name == "native" else RUNTIMES[name]


# ------------------------------------------------------------------------------------ dependencies

def requirements(target: Target) -> list[str]:
    """alikms's run-time requirements for the target (the base ones and EXTRAS), markers evaluated."""
    from packaging.requirements import Requirement  # a build-time tool: dev extra

    wanted = []
    for raw in metadata.requires("alikms") or []:
        req = Requirement(raw)
        if req.marker is None or any(req.marker.evaluate({**target.markers(), "extra": e}) for e in ("", *EXTRAS)):
            wanted.append(f"{req.name}{req.specifier}")
    return wanted


def _pip(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          capture_output=True, text=True)


def _fail(what: str, done: subprocess.CompletedProcess) -> RuntimeError:
    return RuntimeError(f"{what} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")


def resolve(target: Target, wheels: Path, reqs: list[str]) -> list[dict]:
    """pip's resolution of `reqs` for the target, from the wheel cache; downloads what is missing first."""
    wheels.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        args = ["install", "--dry-run", "--ignore-installed", "--quiet", "--report", str(report),
                "--target", str(Path(tmp) / "t"), *target.pip_target_args(), *reqs]
        done = _pip(*args, "--no-index", "--find-links", str(wheels))
        if done.returncode != 0:  # first build for this target, or requirements changed
            fetched = _pip("download", "--quiet", "--dest", str(wheels), *target.pip_target_args(), *reqs)
            if fetched.returncode != 0:
                raise _fail("pip download", fetched)
            done = _pip(*args, "--no-index", "--find-links", str(wheels))
            if done.returncode != 0:
                raise _fail("pip install --dry-run", done)
        return json.loads(report.read_text())["install"]


def _name(requirement: str) -> str:
    return re.split(r"[\s;<>=!~\[(]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def keep(items: list[dict], reqs: list[str], target: Target) -> list[dict]:
    """The resolved distributions reachable from `reqs` without passing through EXCLUDED."""
    from packaging.requirements import Requirement  # a build-time tool: dev extra

    by_name = {item["metadata"]["name"].lower().replace("_", "-"): item for item in items}
    env = target.markers()
    wanted, todo = set(), [_name(r) for r in reqs]
    while todo:
        name = todo.pop()
        if name in wanted or name in EXCLUDED:
            continue
        wanted.add(name)
        for raw in by_name[name]["metadata"].get("requires_dist") or []:
            req = Requirement(raw)
            if req.marker is None or req.marker.evaluate(env):
                todo.append(_name(req.name))
    return [item for name, item in by_name.items() if name in wanted]


def install(target: Target, wheels: Path, items: list[dict], dest: Path) -> None:
    pins = [f"{item['metadata']['name']}=={item['metadata']['version']}" for item in items]
    done = _pip("install", "--quiet", "--no-deps", "--no-compile", "--no-index", "--find-links", str(wheels),
                "--target", str(dest), *target.pip_target_args(), *pins)
    if done.returncode != 0:
        raise _fail("pip install", done)
    for cache in dest.rglob("__pycache__"):
        shutil.rmtree(cache)
    bin_dir = dest / "bin"  # console scripts for this machine's interpreter: no use on FC
    if bin_dir.exists():
        shutil.rmtree(bin_dir)


def bundle_libcrypto(target: Target, wheels: Path, dest: Path) -> str:
    """Copy LIBCRYPTO_WHEEL's libcrypto into dest/alikms_native/; returns a provenance line."""
    found = sorted(glob.glob(str(wheels / "psycopg_binary-*.whl")))
    wanted_version = LIBCRYPTO_WHEEL.split("==")[1]
    found = [f for f in found if Path(f).name.split("-")[1] == wanted_version]
    if not found:
        fetched = _pip("download", "--quiet", "--no-deps", "--dest", str(wheels), *target.pip_target_args(),
                       LIBCRYPTO_WHEEL)
        if fetched.returncode != 0:
            raise _fail(f"pip download {LIBCRYPTO_WHEEL}", fetched)
        found = [f for f in sorted(glob.glob(str(wheels / "psycopg_binary-*.whl")))
                 if Path(f).name.split("-")[1] == wanted_version]
    wheel = Path(found[0])
    with zipfile.ZipFile(wheel) as zf:
        (member,) = [n for n in zf.namelist() if LIBCRYPTO_MEMBER.match(n)]
        data = zf.read(member)
    out = dest / NATIVE_DIR
    out.mkdir(parents=True, exist_ok=True)
    (out / "libcrypto.so.3").write_bytes(data)
    (out / "libcrypto.so.3").chmod(0o755)
    line = (f"libcrypto.so.3: {member} from {wheel.name} (sha256 {hashlib.sha256(data).hexdigest()}); "
            "OpenSSL 3, Apache License 2.0")
    (out / "PROVENANCE.txt").write_text(line + "\n", encoding="utf-8")
    return line


# ------------------------------------------------------------------------------------ code, bytecode, zips

def copy_code(dest: Path) -> None:
    """dest/alikms/<package>/ for each folder in CODE_PACKAGES (sources only), and dest/index.py."""
    for folder in CODE_PACKAGES:
        shutil.copytree(ROOT / folder, dest / "alikms" / folder,
                        ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"))
    # `alikms` itself stays a namespace package, as it is when installed from the checkout.
    (dest / entrypoints.FILE).write_text(entrypoints.render_index(), encoding="utf-8")


def find_python(version: str, explicit: str | None = None) -> str | None:
    """An interpreter of `version` ("3.10") for compiling bytecode, or None."""
    if explicit:
        return explicit
    if f"{sys.version_info.major}.{sys.version_info.minor}" == version:
        return sys.executable
    pyenv = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    candidates = sorted(glob.glob(str(pyenv / f"{version}.*" / "bin" / f"python{version}")), reverse=True)
    on_path = shutil.which(f"python{version}")  # may be a pyenv shim that refuses: checked below
    if on_path:
        candidates.append(on_path)
    for candidate in filter(None, candidates):
        try:
            done = subprocess.run([candidate, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                                  capture_output=True, text=True, timeout=30, check=False)
        except OSError:
            continue
        if done.returncode == 0 and done.stdout.strip() == version:
            return candidate
    return None


def compile_tree(python: str, tree: Path) -> None:
    done = subprocess.run([python, "-m", "compileall", "-q", "-j", "0", "--invalidation-mode", "unchecked-hash",
                           str(tree)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise _fail("compileall", done)


def write_zip(tree: Path, path: Path) -> int:
    """Zip `tree` deterministically (sorted, fixed timestamps, unix modes kept); returns its size."""
    tmp = path.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for file in sorted(p for p in tree.rglob("*") if p.is_file()):
            info = zipfile.ZipInfo(file.relative_to(tree).as_posix(), date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = (0o100755 if os.access(file, os.X_OK) else 0o100644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, file.read_bytes())
    tmp.replace(path)
    return path.stat().st_size


def tree_size(tree: Path) -> int:
    return sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())


@dataclass
class Built:
    target: Target
    out: Path  # dist/<name>/
    code_zip: Path
    layer_zip: Path
    code_dir: Path  # unzipped copies, as built
    layer_dir: Path
    bytecode: str | None  # the interpreter that compiled it, or None
    distributions: list[str]
    libcrypto: str

    def summary(self) -> str:
        mb = 1024 * 1024

        def line(zpath: Path, tree: Path) -> str:
            shown = os.path.relpath(zpath)
            return f"  {shown:32} {zpath.stat().st_size / mb:6.2f} MB zipped, {tree_size(tree) / mb:6.2f} MB unzipped"

        bytecode = (f"compiled by {self.bytecode}" if self.bytecode else
                    f"none (no python{self.target.python} found): every module compiles on every cold start")
        return "\n".join([
            f"{self.target.name} (runtime {self.target.runtime}, {self.target.platform}, {self.target.abi}):",
            line(self.code_zip, self.code_dir),
            line(self.layer_zip, self.layer_dir),
            f"  limit {SIZE_LIMIT / mb:.0f} MB per zip (FC code package through the API)",
            f"  dependencies: {', '.join(self.distributions)}",
            f"  left out: {', '.join(sorted(EXCLUDED))}",
            f"  {self.libcrypto}",
            f"  bytecode: {bytecode}",
        ])


def build(target: Target, out: Path = DIST, cache: Path = CACHE, python: str | None = None) -> Built:
    """Build dist/<target>/{code,layer}.zip (and the unzipped trees beside them)."""
    dest = out / target.name
    code_dir, layer_dir = dest / "code", dest / "layer"
    for old in (code_dir, layer_dir):
        if old.exists():
            shutil.rmtree(old)
    code_dir.mkdir(parents=True)
    (layer_dir / "python").mkdir(parents=True)
    wheels = cache / "wheels" / f"{target.abi}-{target.platform}"
    reqs = requirements(target)
    items = keep(resolve(target, wheels, reqs), reqs, target)
    install(target, wheels, items, layer_dir / "python")
    libcrypto = bundle_libcrypto(target, wheels, layer_dir / "python")
    copy_code(code_dir)
    interpreter = find_python(target.python, python)
    if interpreter:
        compile_tree(interpreter, code_dir)
        compile_tree(interpreter, layer_dir)
    built = Built(target, dest, dest / "code.zip", dest / "layer.zip", code_dir, layer_dir, interpreter,
                  sorted(f"{i['metadata']['name']}=={i['metadata']['version']}" for i in items), libcrypto)
    for tree, zpath in ((code_dir, built.code_zip), (layer_dir, built.layer_zip)):
        size = write_zip(tree, zpath)
        if size > SIZE_LIMIT:
            raise RuntimeError(f"{zpath} is {size} bytes, over Function Compute's {SIZE_LIMIT} byte limit")
    return built


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="alikms package", description=__doc__.split("\n")[0])
    parser.add_argument("--runtime", action="append", choices=[*RUNTIMES, "native"],
                        help="target runtime (repeatable; default python3.10, the one template.yml and s.yaml use)")
    parser.add_argument("--out", type=Path, default=DIST, help="output directory (default dist/)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="wheel cache (default .package-cache/)")
    parser.add_argument("--python", help="interpreter of the target's version, to compile bytecode with")
    args = parser.parse_args(argv)
    for name in args.runtime or ["python3.10"]:
        try:
            built = build(target_named(name), args.out.resolve(), args.cache.resolve(), args.python)
        except (RuntimeError, OSError) as exc:
            print(f"package: {exc}", file=sys.stderr)
            return 1
        print(built.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
