"""Build the deployment package once per test session, unpack it, and run its functions as Function
Compute instances (tests/deploy/fc_runtime.py), one process per function, kept warm between events."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import secrets
import subprocess
import uuid
import zipfile
from pathlib import Path

from alikms.deploy import entrypoints, package, templates
from alikms.shared.registry import ACTIONS, JOBS
from tests import support

HERE = Path(__file__).resolve().parent
RUNTIME_SCRIPT = HERE / "fc_runtime.py"
ROOT_KEY = "r1:" + base64.b64encode(b"\x07" * 32).decode()


def built(target: package.Target, session_dir: Path) -> dict:
    """package.build(target) once per session, even with several xdist workers (they share session_dir):
    {"code": code.zip, "layer": layer.zip, "bytecode": interpreter or None, "summary": what it printed}."""
    marker = session_dir / f"built-{target.name}.json"
    with open(session_dir / f"build-{target.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            done = package.build(target, session_dir / "dist")  # pytest removes old sessions' directories
            marker.write_text(json.dumps({"code": str(done.code_zip), "layer": str(done.layer_zip),
                                          "bytecode": done.bytecode, "summary": done.summary()}))
    return json.loads(marker.read_text())


def unpack(artefact: dict, into: Path) -> tuple[Path, Path]:
    """The code package in into/code, the layer in into/opt (so its python/ is into/opt/python)."""
    code, opt = into / "code", into / "opt"
    for zpath, dest in ((Path(artefact["code"]), code), (Path(artefact["layer"]), opt)):
        with zipfile.ZipFile(zpath) as zf:
            zf.extractall(dest)
            for info in zf.infolist():  # extractall drops the unix modes
                mode = info.external_attr >> 16
                if mode:
                    os.chmod(dest / info.filename, mode & 0o777)
    return code, opt / "python"


def function_env(ots_url: str, **extra: str) -> dict[str, str]:
    """The variables of the function in s.yaml (names from alikms.deploy.templates), with test values."""
    values = {"KMS_REGION": "cn-hangzhou", "KMS_ACCOUNT_ID": support.TEST_ACCOUNT, "KMS_ROOT_KEY": ROOT_KEY,
              "KMS_ACCESS_KEY_ID": support.TEST_AK, "KMS_ACCESS_KEY_SECRET": support.TEST_SECRET,
              "KMS_AUTO_OPEN": "false", "OTS_ENDPOINT": ots_url}
    env = {"KMS_STORE": "tablestore", "OTS_INSTANCE": "kmsfake"}
    for _param, var, _default, _secret, _what in templates.SETTINGS:
        env[var] = values[var]
    return {**env, **extra}


class Instance:
    """One function's instance: a clean interpreter running fc_runtime.py, answering events in turn."""

    def __init__(self, python: str, code: Path, layer: Path, name: str, env: dict[str, str], out: Path,
                 wrapper: list[str] | None = None):
        read, write = os.pipe()
        fc_env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "HOME": str(out),
            "FC_FUNC_CODE_PATH": str(code), "FC_LAYER_PYTHON": str(layer), "FC_FUNCTION_NAME": name,
            "FC_FUNCTION_HANDLER": entrypoints.handler(name), "FC_FUNCTION_INITIALIZER": entrypoints.INITIALIZER,
            "FC_FUNCTION_MEMORY_SIZE": "256", "FC_REGION": "cn-hangzhou", "FC_ACCOUNT_ID": support.TEST_ACCOUNT,
            "FC_INSTANCE_ID": uuid.uuid4().hex, "FC_VER_ID": "LATEST",
            # The function role's temporary keys; here the fake's own, with a token as STS keys carry.
            "ALIBABA_CLOUD_ACCESS_KEY_ID": "test-akid", "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "test-secret",
            "ALIBABA_CLOUD_SECURITY_TOKEN": "sts-token-" + secrets.token_hex(8),
            **env,
        }
        self.name = name
        self.log = open(out / f"{name}.log", "wb")
        command = [*(wrapper or [python]), "-I", "-S", str(RUNTIME_SCRIPT), str(write)]
        self.proc = subprocess.Popen(command, cwd=code, env=fc_env,
                                     stdin=subprocess.PIPE, stdout=self.log, stderr=subprocess.STDOUT,
                                     pass_fds=(write,), text=True)
        os.close(write)
        self.answers = os.fdopen(read, "r")
        self.started = self._read()
        if "error" in self.started:
            raise AssertionError(f"{name} did not start:\n{self.started['error']}\n{self.output()}")

    def _read(self) -> dict:
        line = self.answers.readline()
        if not line:
            raise AssertionError(f"{self.name} exited ({self.proc.wait(10)}):\n{self.output()}")
        return json.loads(line)

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def invoke(self, event: bytes) -> dict:
        self.proc.stdin.write(json.dumps({"event": event.decode(), "request_id": str(uuid.uuid4())}) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        if answer["error"]:
            raise AssertionError(f"{self.name} raised:\n{answer['error']}")
        return answer

    def close(self) -> None:
        self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.answers.close()
        self.log.close()


class Deployment:
    """Every function of one unpacked package; each started on first use and kept (a warm instance)."""

    def __init__(self, python: str, code: Path, layer: Path, env: dict[str, str], out: Path,
                 wrapper: list[str] | None = None):
        """`wrapper`: the command that starts the interpreter, when it is not `python` itself."""
        self.python, self.code, self.layer, self.env, self.out = python, code, layer, env, out
        self.wrapper = wrapper
        self.instances: dict[str, Instance] = {}

    def instance(self, name: str) -> Instance:
        if name not in self.instances:
            self.instances[name] = Instance(self.python, self.code, self.layer, name, self.env, self.out,
                                            self.wrapper)
        return self.instances[name]

    def call(self, action: str, params: dict, kind: str) -> tuple[int, dict, dict]:
        """Sign `action` with the test key and send it as an `apigateway` or `fc3-http` event:
        (status, body, the instance's answer)."""
        query = support.sign_v1_params(action, {k: str(v) for k, v in params.items()}, support.TEST_AK,
                                       support.TEST_SECRET)
        if kind == "apigateway":
            event = support.gateway_event(action, query)
        else:
            event = json.dumps(support.event("fc3-http", queryParameters=query,
                                             headers={"Host": "abc.cn-hangzhou.fcapp.run", "X-Acs-Action": action})
                               ).encode()
        answer = self.instance(action).invoke(event)
        result = answer["result"]
        return result["statusCode"], json.loads(result["body"]), answer

    def timer(self, job: str, when: float) -> dict:
        return self.instance(job).invoke(support.timer_event(job, when))

    def close(self) -> None:
        for instance in self.instances.values():
            instance.close()


ALL = [a.name for a in ACTIONS] + [j.name for j in JOBS]
