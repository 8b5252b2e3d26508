"""s.yaml as Serverless Devs itself reads it: `s preview` (@serverless-devs/s from npm) renders the file
offline, resolving ${env(...)} and ${vars...}, and the rendered functions are what the templates mean.

That is all `s` offers without an account and network: `s verify` (the fc3 component's schema check) and
`s deploy` first download the fc3 component from the Serverless Devs registry (api.devsapp.cn), which
this machine cannot reach; the fc3 schema itself is not on npm."""

from __future__ import annotations

import json
import shutil
import subprocess

from alikms.deploy import entrypoints, templates
from alikms.shared.registry import ACTIONS, JOBS, snake
from tests import support
from tests.deploy.npm import npm_tool

S_VERSION = "3.1.10"
LAYER = "acs:fc:cn-hangzhou:1234567890123456:layers/alikms-deps/versions/3"
ROLE = "acs:ram::1234567890123456:role/alikms-fc"


def preview(tmp_path, **env: str) -> subprocess.CompletedProcess:
    shutil.copy(support.ROOT / templates.S_YAML, tmp_path / templates.S_YAML)
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    return subprocess.run([str(npm_tool("@serverless-devs/s", S_VERSION, "s")), "preview", "-t", templates.S_YAML,
                           "-o", "json"], cwd=tmp_path, env={"PATH": support.os.environ["PATH"], "HOME": str(home),
                                                              **env}, capture_output=True, text=True, timeout=300,
                          check=False)


def deployment_env() -> dict[str, str]:
    values = {var: f"value-of-{var}" for _param, var, _default, _secret, _what in templates.SETTINGS}
    return {**values, "KMS_FC_ROLE_ARN": ROLE, templates.LAYER_VAR: LAYER}


def test_s_preview_renders_every_function(tmp_path):
    env = deployment_env()
    done = preview(tmp_path, **env)
    assert done.returncode == 0, done.stdout + done.stderr
    rendered = json.loads(done.stdout[done.stdout.index("{"):])  # (a warning line about root comes first)
    resources = rendered["resources"]
    assert list(resources) == [snake(a.name) for a in ACTIONS] + [snake(j.name) for j in JOBS]
    expected_env = {"KMS_STORE": "tablestore", "OTS_INSTANCE": templates.OTS_INSTANCE,
                    **{var: env[var] for _p, var, _d, _s, _w in templates.SETTINGS}}
    for key, resource in resources.items():
        props = resource["props"]
        name = props["functionName"]
        assert key == snake(name) and resource["component"] == "fc3"
        assert props["handler"] == entrypoints.handler(name)
        assert props["code"] == templates.CODE and props["runtime"] == templates.RUNTIME
        assert props["layers"] == [LAYER] and props["role"] == ROLE
        assert props["instanceConcurrency"] == templates.INSTANCE_CONCURRENCY
        assert props["instanceLifecycleConfig"]["initializer"]["handler"] == entrypoints.INITIALIZER
        assert props["environmentVariables"] == expected_env
    for job in JOBS:
        (trigger,) = resources[snake(job.name)]["props"]["triggers"]
        assert trigger["triggerConfig"]["cronExpression"] == job.cron


def test_s_preview_refuses_a_missing_setting(tmp_path):
    env = deployment_env()
    del env[templates.LAYER_VAR]
    done = preview(tmp_path, **env)
    assert f"env('{templates.LAYER_VAR}') not found" in done.stdout + done.stderr
