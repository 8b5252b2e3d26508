"""Cold start: a fresh interpreter, from its start to the first Encrypt answered against Tablestore.

    scripts/bench coldstart [--rounds N] [--baseline DIR] [--json PATH]

A Function Compute instance pays for the interpreter, the imports and the first call on every cold
start. This measures exactly that path, for today's code and for the code as it was before the
deployment work (a checkout of commit f9c240f with the old top-level `shared`/`functions` layout:
`--baseline DIR`, or by default one extracted from this clone's history), in one run, rounds
interleaved so that a busy machine hits both alike:

* `baseline`: `functions.crypto.encrypt.handler` from that checkout, its dependencies from this
  environment's site-packages (what a package built from it would have held: every dependency).
* `package`: `index.encrypt` from the package `alikms package` builds for this machine's Python
  (code.zip + layer.zip, unpacked), as Function Compute would load it.
* `package, no bytecode`: the same with every .pyc removed and none written: a package built without
  an interpreter of the runtime's version compiles every module on every cold start.
* `package, after initializer`: `index.initialize` first, then the timed Encrypt alone: what the first
  event costs on an instance whose initializer ran ahead of traffic (FC provisioned instances).

Each child is `python -I -S` with only its code and dependencies on sys.path, cwd the code directory,
the function's variables set (Tablestore fake on loopback, run by this process for both). Measured:
wall time from spawning the child to its exit after printing the answer (the parent's clock), the
child's own split into interpreter start, imports and first call, and peak RSS (VmHWM) after the first
call. Then one `-X importtime` run per variant shows where the package's remaining time goes, by
top-level package, and how the first call's time divides. Targets: package <= 30% of baseline time,
peak RSS <= 64 MB. Nothing is asserted; the machine may be shared, so the figures are medians and the
load average is printed with them.

`--instructions` also counts, with valgrind, a third child from the package's paths that does nothing
but import the dependencies as a function imports them (pydantic with one model built, the Tablestore
SDK through alikms.shared.store._sdk, cryptography's AES-GCM) and exits: the floor that no change to
alikms's own code can go below while it keeps pydantic and the real SDK. The rest of the package's
count is alikms's own modules, the first call and the exit.
"""

from __future__ import annotations

import argparse
import base64
import collections
import json
import os
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
import zipfile
from pathlib import Path
from types import SimpleNamespace

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / ".bench" / "coldstart"
BASELINE_COMMIT = "f9c240fbfab6e450bc6a2f95ac7c571773e32755"  # the code before the deployment work
AK, SECRET, ACCOUNT = "LTAIbenchAccessKey0001", "BenchAccessKeySecret0123456789", "1234567890123456"
TARGET_RATIO, TARGET_RSS_MB = 0.30, 64

# The child: everything it does is part of the measurement, so it imports nothing it does not need.
CHILD = r"""
import sys, time
t_main = time.time()
import json, os, importlib
paths, spec, event_path, init, profile = sys.argv[1].split(os.pathsep), *sys.argv[2:6]
sys.path[:0] = paths
if profile:  # (only for the breakdown run, never for the timed ones)
    import cProfile
    profiler = cProfile.Profile()
    profiler.enable()
module, _, attr = spec.partition(":")
t0 = time.perf_counter()
mod = importlib.import_module(module)
handler = getattr(mod, attr)
if init:
    mod.initialize(None)
t1 = time.perf_counter()
with open(event_path, "rb") as f:
    event = f.read()
result = handler(event, None)
t2 = time.perf_counter()
if profile:
    profiler.disable()
    profiler.dump_stats(profile)
with open("/proc/self/status") as f:
    hwm = next(int(line.split()[1]) for line in f if line.startswith("VmHWM"))
print("@@" + json.dumps({"main": t_main, "imports": t1 - t0, "call": t2 - t1, "hwm_kb": hwm,
                         "status": result["statusCode"], "body": result["body"]}), flush=True)
"""


# The dependencies alone (see the module docstring), imported as index.py has a function imported: gc
# off meanwhile, the survivors frozen afterwards; then a normal exit (counted, as in a cold start).
FLOOR = r"""
import gc, os, sys
gc.disable()
sys.path[:0] = sys.argv[1].split(os.pathsep)
from pydantic import BaseModel
class Probe(BaseModel):
    value: int
from alikms.shared.store import _sdk
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
gc.enable()
gc.freeze()
"""


def sign(action: str, params: dict) -> dict:
    """An RPC (v1) signed query, as the SDKs send it."""
    from alikms.shared import signing

    full = {"Action": action, "Version": "2016-01-20", "Format": "JSON", "AccessKeyId": AK,
            "SignatureMethod": "HMAC-SHA1", "SignatureVersion": "1.0", "SignatureNonce": secrets.token_hex(16),
            "Timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), **params}
    full["Signature"] = signing.rpc_v1_sign(SECRET, "POST", full)
    return full


def event_file(tmp: Path, action: str, params: dict) -> Path:
    path = tmp / f"event-{secrets.token_hex(6)}.json"
    path.write_text(json.dumps({"path": "/", "httpMethod": "POST", "headers": {"host": "kms.bench"},
                                "queryParameters": sign(action, params), "pathParameters": {}, "body": "",
                                "isBase64Encoded": False}))
    return path


class Variant:
    def __init__(self, name: str, paths: list[Path], cwd: Path, create: str, encrypt: str, init: bool = False,
                 flags: tuple[str, ...] = ()) -> None:
        self.name, self.paths, self.cwd, self.create, self.encrypt = name, paths, cwd, create, encrypt
        self.init, self.flags = init, flags
        self.key = ""
        self.runs: list[dict] = []

    def command(self, spec: str, event: Path, extra: tuple[str, ...] = (), profile: str = "",
                prefix: tuple[str, ...] = ()) -> list[str]:
        return [*prefix, sys.executable, "-I", "-S", *self.flags, *extra, "-c", CHILD,
                os.pathsep.join(map(str, self.paths)), spec, str(event),
                "1" if self.init and spec == self.encrypt else "",
                profile]


def spawn(variant: Variant, spec: str, event: Path, env: dict, extra: tuple[str, ...] = (),
          profile: str = "", prefix: tuple[str, ...] = ()) -> tuple[dict, str]:
    """Run one child; `wall` runs from spawning it to reading its answer (its exit is not counted)."""
    with tempfile.TemporaryFile("w+") as err:
        started = time.time()
        t = time.perf_counter()
        proc = subprocess.Popen(variant.command(spec, event, extra, profile, prefix), cwd=variant.cwd, env=env,
                                stdout=subprocess.PIPE, stderr=err, text=True)
        answer = next((line for line in proc.stdout if line.startswith("@@")), None)
        wall = time.perf_counter() - t
        proc.stdout.read()
        code = proc.wait(120)
        err.seek(0)
        stderr = err.read()
    if code != 0 or answer is None:
        raise RuntimeError(f"{variant.name}: child failed ({code}):\n{stderr[-3000:]}")
    found = json.loads(answer[2:])
    found["wall"], found["start"] = wall, found["main"] - started
    return found, stderr


def build_package(out: Path) -> tuple[Path, Path]:
    """The native package, unpacked: (code dir, layer python dir)."""
    from alikms.deploy import package

    built = package.build(package.native_target(), out / "dist")
    trees = {}
    for name, zpath in (("code", built.code_zip), ("opt", built.layer_zip)):
        dest = out / name
        if dest.exists():
            shutil.rmtree(dest)
        with zipfile.ZipFile(zpath) as zf:
            zf.extractall(dest)
        trees[name] = dest
    stripped = out / "nobytecode"
    if stripped.exists():
        shutil.rmtree(stripped)
    shutil.copytree(out, stripped, ignore=shutil.ignore_patterns("__pycache__", "dist", "nobytecode"))
    return trees["code"], trees["opt"] / "python"


def importtime(variant: Variant, env: dict, tmp: Path) -> list[tuple[str, float]]:
    """Self time of each import while the child runs, summed by top-level package (alikms by subpackage)."""
    event = event_file(tmp, "Encrypt", {"KeyId": variant.key, "Plaintext": "aGVsbG8="})
    _found, stderr = spawn(variant, variant.encrypt, event, env, ("-X", "importtime"))
    sums: collections.Counter = collections.Counter()
    for m in re.finditer(r"import time:\s+(\d+) \|\s+\d+ \|\s*(\S+)", stderr):
        parts = m[2].split(".")
        group = ".".join(parts[:3]) if parts[0] == "alikms" else parts[0]
        sums[group] += int(m[1]) / 1e6
    return sums.most_common()


def hot_spots(variant: Variant, env: dict, tmp: Path, count: int = 12) -> list[tuple[str, float]]:
    """The functions with the most own time (cProfile) in one cold start, import machinery left out
    (importtime covers that): where the time goes besides loading modules."""
    import pstats

    event = event_file(tmp, "Encrypt", {"KeyId": variant.key, "Plaintext": "aGVsbG8="})
    stats_path = tmp / "coldstart.prof"
    spawn(variant, variant.encrypt, event, env, profile=str(stats_path))
    stats = pstats.Stats(str(stats_path)).stats  # type: ignore[attr-defined]
    rows = []
    for (filename, line, func), (_cc, _nc, tottime, _ct, _callers) in stats.items():
        if "<frozen importlib" in filename or func in ("<built-in method builtins.exec>", "<module>"):
            continue
        where = filename.split("/python/")[-1].split("/site-packages/")[-1].split("/lib/python3")[-1]
        rows.append((f"{where}:{line}({func})", tottime))
    return sorted(rows, key=lambda r: -r[1])[:count]


def instructions(variant: Variant, env: dict, tmp: Path) -> int:
    """Instructions the child executes, start to answer (valgrind's callgrind): unlike seconds, the same
    whatever else the machine is doing. Everything before the answer is counted, exit included."""
    event = event_file(tmp, "Encrypt", {"KeyId": variant.key, "Plaintext": "aGVsbG8="})
    out = tmp / f"callgrind-{secrets.token_hex(4)}.out"
    _found, stderr = spawn(variant, variant.encrypt, event, env,
                           prefix=("valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"))
    return int(re.search(r"Collected : (\d+)", stderr)[1])


def floor_instructions(variant: Variant, env: dict, tmp: Path) -> int:
    """Instructions of FLOOR run from `variant`'s paths: the dependencies without alikms's code or a call."""
    out = tmp / f"callgrind-{secrets.token_hex(4)}.out"
    done = subprocess.run(["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-I", "-S",
                           "-c", FLOOR, os.pathsep.join(map(str, variant.paths))],
                          cwd=variant.cwd, env=env, capture_output=True, text=True, check=False, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"floor child failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return int(re.search(r"Collected : (\d+)", done.stderr)[1])


def ms(seconds: float) -> str:
    return f"{seconds * 1000:7.1f}"


def old_checkout(where: Path) -> Path:
    """The pre-deployment code (commit f9c240f) as files in `where`, from this clone's history."""
    if not (where / "functions").is_dir():
        shutil.rmtree(where, ignore_errors=True)
        where.mkdir(parents=True)
        archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASELINE_COMMIT], capture_output=True, check=True)
        subprocess.run(["tar", "-x", "-C", str(where)], input=archive.stdout, check=True)
    return where


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/bench coldstart", description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=7, help="measured cold starts per variant (default 7)")
    parser.add_argument("--baseline", help="checkout of the old layout (default: commit f9c240f extracted from "
                        "this clone's history)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON here")
    parser.add_argument("--instructions", action="store_true",
                        help="also count instructions per cold start with valgrind (about a minute more; "
                             "the figure a busy machine cannot disturb)")
    args = parser.parse_args(argv)

    from alikms.shared.store.tablestore import client_from_config, create_tables
    from alikms.testing.fake_tablestore import ACCESS_KEY_ID, ACCESS_KEY_SECRET, INSTANCE, FakeTablestore, serve

    class TimedFake(FakeTablestore):
        """The fake, counting the requests it answers and the time it spends on them (in this process)."""

        requests, spent = 0, 0.0

        def handle(self, *args):
            t = time.perf_counter()
            try:
                return super().handle(*args)
            finally:
                self.requests += 1
                self.spent += time.perf_counter() - t

    OUT.mkdir(parents=True, exist_ok=True)
    print("building the package for this machine's Python (alikms package --runtime native)...", flush=True)
    code, layer = build_package(OUT)
    site = Path(sysconfig.get_paths()["purelib"])
    baseline = Path(args.baseline) if args.baseline else old_checkout(OUT / "baseline-f9c240f")
    variants = [
        Variant("baseline", [baseline, site], baseline, "functions.keys.create_key:handler",
                "functions.crypto.encrypt:handler"),
        Variant("package", [code, layer], code, "index:create_key", "index:encrypt"),
        Variant("package, no bytecode", [OUT / "nobytecode" / "code", OUT / "nobytecode" / "opt" / "python"],
                OUT / "nobytecode" / "code", "index:create_key", "index:encrypt", flags=("-B",)),
        Variant("package, after initializer", [code, layer], code, "index:create_key", "index:encrypt", init=True),
    ]
    fake = TimedFake()
    server, url = serve(backend=fake)
    try:
        create_tables(client_from_config(SimpleNamespace(ots_endpoint=url, ots_instance=INSTANCE,
                                                         ots_access_key_id=ACCESS_KEY_ID,
                                                         ots_access_key_secret=ACCESS_KEY_SECRET,
                                                         ots_security_token="")))
        env = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "KMS_STORE": "tablestore", "OTS_ENDPOINT": url,
               "OTS_INSTANCE": INSTANCE, "ALIBABA_CLOUD_ACCESS_KEY_ID": ACCESS_KEY_ID,
               "ALIBABA_CLOUD_ACCESS_KEY_SECRET": ACCESS_KEY_SECRET, "KMS_REGION": "cn-hangzhou",
               "KMS_ACCOUNT_ID": ACCOUNT, "KMS_ACCESS_KEY_ID": AK, "KMS_ACCESS_KEY_SECRET": SECRET,
               "KMS_ROOT_KEY": "r1:" + base64.b64encode(b"\x09" * 32).decode(), "KMS_AUTO_OPEN": "true",
               "KMS_AUDIT_STDOUT": "true", "FC_FUNCTION_HANDLER": "index.encrypt", "FC_FUNCTION_NAME": "Encrypt"}
        with tempfile.TemporaryDirectory() as tmp_name:
            tmp = Path(tmp_name)
            for v in variants:  # each variant makes its own key with its own code (not timed)
                made, _ = spawn(v, v.create, event_file(tmp, "CreateKey", {}), env)
                assert made["status"] == 200, made
                v.key = json.loads(made["body"])["KeyMetadata"]["KeyId"]
            load = os.getloadavg()
            for round_no in range(args.rounds):
                for v in variants:
                    event = event_file(tmp, "Encrypt", {"KeyId": v.key, "Plaintext": "aGVsbG8="})
                    before = (fake.requests, fake.spent)
                    found, _ = spawn(v, v.encrypt, event, env)
                    found["fake_requests"], found["fake"] = fake.requests - before[0], fake.spent - before[1]
                    if found["status"] != 200:
                        raise RuntimeError(f"{v.name}: Encrypt answered {found['status']}: {found['body']}")
                    v.runs.append(found)
                print(f"  round {round_no + 1}/{args.rounds} done", flush=True)
            load = (load, os.getloadavg())
            breakdown = {v.name: importtime(v, env, tmp) for v in variants[:2]}
            hot = hot_spots(variants[1], env, tmp)
            counted = {v.name: instructions(v, env, tmp) for v in variants[:2]} if args.instructions else {}
            if counted:
                counted["dependencies alone"] = floor_instructions(variants[1], env, tmp)
    finally:
        server.shutdown()
        server.server_close()
    return report(variants, breakdown, hot, counted, load, args.json)


def report(variants: list[Variant], breakdown: dict, hot: list, counted: dict, load, json_path: str | None) -> int:
    def med(v: Variant, field: str) -> float:
        return statistics.median(r[field] for r in v.runs)

    print(f"\nCold start to the first Encrypt answered (medians of {len(variants[0].runs)} runs; load average "
          f"{load[0][0]:.1f} before, {load[1][0]:.1f} after: the machine may be shared)")
    print(f"{'variant':28} {'wall ms':>8} {'min ms':>8} {'start ms':>8} {'imports':>8} {'1st call':>8} "
          f"{'in fake':>8} {'peak RSS':>9}")
    base = variants[0]
    for v in variants:
        print(f"{v.name:28} {ms(med(v, 'wall'))} {ms(min(r['wall'] for r in v.runs))} {ms(med(v, 'start'))} "
              f"{ms(med(v, 'imports'))} {ms(med(v, 'call'))} {ms(med(v, 'fake'))} {med(v, 'hwm_kb') / 1024:7.1f} MB")
    print("(imports: the entry module alone for the package, whose first call imports the function itself; "
          f"in fake: time the Tablestore fake spent answering the {base.runs[0]['fake_requests']}/"
          f"{variants[1].runs[0]['fake_requests']} requests of one cold start, inside this process)")
    ratio = med(variants[1], "wall") / med(base, "wall")
    own = (med(variants[1], "wall") - med(variants[1], "fake")) / (med(base, "wall") - med(base, "fake"))
    print(f"\npackage / baseline wall time, less the time inside the fake: {own:.2f}")
    rss = med(variants[1], "hwm_kb") / 1024
    print(f"package / baseline wall time: {ratio:.2f} (target <= {TARGET_RATIO:.2f}: "
          f"{'met' if ratio <= TARGET_RATIO else 'NOT met'})")
    print(f"package peak RSS after the first call: {rss:.1f} MB (target <= {TARGET_RSS_MB} MB: "
          f"{'met' if rss <= TARGET_RSS_MB else 'NOT met'})")
    if counted:
        base_n, package_n, floor_n = (counted[n] for n in ("baseline", "package", "dependencies alone"))
        print("instructions, start to answer (valgrind): "
              + ", ".join(f"{n} {c / 1e6:,.0f} M" for n, c in counted.items())
              + f"; package / baseline {package_n / base_n:.2f}")
        print("  the dependencies alone (pydantic with one model, the Tablestore SDK, AES-GCM) are "
              f"{floor_n / base_n:.2f} of baseline; alikms's own modules, the first call and the exit "
              f"{(package_n - floor_n) / base_n:.2f}")
    print(f"first event after the initializer ran: {ms(med(variants[3], 'call')).strip()} ms "
          f"(its imports and set-up, {ms(med(variants[3], 'imports')).strip()} ms, happen before the event)")
    for name, groups in breakdown.items():
        total = sum(t for _g, t in groups)
        print(f"\nwhere {name}'s import time goes (-X importtime self times, {total * 1000:.0f} ms in all; "
              f"importtime itself inflates them):")
        for group, seconds in groups[:14]:
            print(f"  {group:40} {seconds * 1000:6.1f} ms")
    print("\nwhere package's time goes besides imports (cProfile own time in one cold start, profiled):")
    for where, seconds in hot:
        print(f"  {where[-70:]:70} {seconds * 1000:6.1f} ms")
    if json_path:
        Path(json_path).write_text(json.dumps({
            "variants": {v.name: v.runs for v in variants}, "ratio": ratio, "ratio_less_fake": own, "rss_mb": rss,
            "instructions": counted,
            "importtime": breakdown, "load": load}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
