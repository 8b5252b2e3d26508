"""The registry is the one list of functions: modules, generated deployment files and tables agree with it.

* template.yml, s.yaml and apigateway-routing.yml equal a fresh `python -m alikms.deploy.templates`;
* every action and job module imports and exposes the `handler` registered for it, in the file its
  name gives; no module under functions/ defines a handler the registry does not know;
* every Handler in the generated files resolves to an importable callable, timers have valid cron;
* template.yml passes Funcraft's own validator (`fun validate` from @alicloud/fun, installed with npm
  into .venv/node on first use);
* scripts/create-tables creates every table in TABLES (against the Tablestore wire fake).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import io
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from alikms.deploy import entrypoints
from alikms.deploy import tables as create_tables
from alikms.deploy import templates as gen_template
from alikms.runner.cron import Schedule
from alikms.shared.registry import ACTIONS, JOBS, snake
from alikms.shared.store.base import TABLES
from tests.deploy.npm import npm_tool

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ROOT / "functions"


def source_file(module: str) -> Path:
    """The file of an `alikms.<folder>...` module: each top-level folder is a subpackage of alikms."""
    return ROOT / Path(*module.removeprefix("alikms.").split(".")).with_suffix(".py")
FUN_VERSION = "3.6.24"
REGEN_HINT = "run `python -m alikms.deploy.templates` and commit the result"


def load(name: str) -> dict:
    return yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))


def resolve(handler: str):
    module, _, attr = handler.rpartition(".")
    return getattr(importlib.import_module(module), attr)


def template_functions(template: dict) -> dict[str, dict]:
    """Function name -> resource, over every service in a Funcraft template."""
    found = {}
    for resource in template["Resources"].values():
        if resource.get("Type") == "Aliyun::Serverless::Service":
            for name, child in resource.items():
                if isinstance(child, dict) and child.get("Type") == "Aliyun::Serverless::Function":
                    found[name] = child
    return found


# --- generated files -------------------------------------------------------------------------------

def test_generated_files_are_fresh():
    diffs = gen_template.stale()
    if diffs:
        shown = "".join(diffs.values())
        pytest.fail(f"stale: {', '.join(diffs)}; {REGEN_HINT}\n{shown[:6000]}")


def test_check_reports_missing_files(tmp_path):
    assert set(gen_template.stale(tmp_path)) == {gen_template.TEMPLATE, gen_template.S_YAML, gen_template.ROUTING,
                                                 gen_template.INDEX}


def test_generation_is_deterministic():
    assert gen_template.render_all() == gen_template.render_all()


# --- modules ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("action", ACTIONS, ids=lambda a: a.name)
def test_action_module_exposes_its_handler(action):
    path = source_file(action.module)
    assert path.name == f"{snake(action.name)}.py" and path.parent == FUNCTIONS / action.section
    assert path.exists(), f"{action.name} is registered but {path.relative_to(ROOT)} does not exist"
    handler = importlib.import_module(action.module).handler
    assert callable(handler)
    assert handler.action.name == action.name


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.name)
def test_job_module_exposes_its_handler(job):
    path = source_file(job.module)
    assert path.name == f"{snake(job.name)}.py" and path.parent == FUNCTIONS / "jobs"
    assert path.exists(), f"{job.name} is registered but {path.relative_to(ROOT)} does not exist"
    handler = importlib.import_module(job.module).handler
    assert callable(handler)
    assert handler.job.name == job.name


def _defines_handler(path: Path) -> bool:
    """A top-level `handler` (def or assignment), found without importing: an unregistered action
    module cannot even be imported, because api_handler looks itself up in the registry."""
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == "handler":
            return True
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
            node, (ast.AnnAssign, ast.AugAssign)) else []
        if any(isinstance(t, ast.Name) and t.id == "handler" for t in targets):
            return True
    return False


def test_no_orphan_function_modules():
    registered = {a.module for a in ACTIONS} | {j.module for j in JOBS}
    orphans = []
    for path in sorted(FUNCTIONS.rglob("*.py")):
        module = "alikms." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
        if path.name != "__init__.py" and _defines_handler(path) and module not in registered:
            orphans.append(module)
    assert not orphans, f"modules with a handler but no registry entry: {orphans}"


def test_names_are_unique():
    names = [a.name for a in ACTIONS] + [j.name for j in JOBS]  # all share one FC service
    modules = [a.module for a in ACTIONS] + [j.module for j in JOBS]
    keys = [snake(n) for n in names]  # s.yaml resource keys
    for label, values in (("function name", names), ("module", modules), ("s.yaml key", keys)):
        dupes = sorted({v for v in values if values.count(v) > 1})
        assert not dupes, f"duplicate {label}s: {dupes}"


# --- what the generated files say ----------------------------------------------------------------

def test_template_functions_match_the_registry_and_resolve():
    functions = template_functions(load(gen_template.TEMPLATE))
    expected = {a.name: a.module for a in ACTIONS} | {j.name: j.module for j in JOBS}
    assert list(functions) == list(expected)
    for name, resource in functions.items():
        props = resource["Properties"]
        assert props["Handler"] == entrypoints.handler(name) and props["Initializer"] == entrypoints.INITIALIZER
        assert props["Runtime"] == "python3.10" and props["CodeUri"] == gen_template.CODE
        assert resolve(props["Handler"]).__name__ == entrypoints.method(name)
        assert importlib.import_module(entrypoints.MODULE).MODULES[entrypoints.method(name)] == expected[name]


def test_s_yaml_functions_match_the_registry_and_resolve():
    s = load(gen_template.S_YAML)
    assert s["edition"] == "3.0.0"
    resources = s["resources"]
    expected = {a.name: a.module for a in ACTIONS} | {j.name: j.module for j in JOBS}
    assert [r["props"]["functionName"] for r in resources.values()] == list(expected)
    for key, resource in resources.items():
        props = resource["props"]
        assert resource["component"] == "fc3" and key == snake(props["functionName"])
        assert props["handler"] == entrypoints.handler(props["functionName"])
        assert props["runtime"] == "python3.10" and props["code"] == gen_template.CODE
        assert callable(resolve(props["handler"])), key


@pytest.mark.parametrize("job", JOBS, ids=lambda j: j.name)
def test_timers_have_valid_six_field_cron(job):
    assert len(job.cron.split()) == 6, f"{job.name}: FC timers take six fields, seconds first: {job.cron!r}"
    assert Schedule.parse(job.cron).fields is not None
    event = template_functions(load(gen_template.TEMPLATE))[job.name]["Events"]["timer"]
    assert event["Type"] == "Timer"
    assert event["Properties"] == {"CronExpression": job.cron, "Enable": True, "Payload": job.payload}
    (trigger,) = load(gen_template.S_YAML)["resources"][snake(job.name)]["props"]["triggers"]
    assert trigger["triggerType"] == "timer"
    assert trigger["triggerConfig"] == {"cronExpression": job.cron, "enable": True, "payload": job.payload}


def test_actions_have_no_timer():
    functions = template_functions(load(gen_template.TEMPLATE))
    assert all("Events" not in functions[a.name] for a in ACTIONS)


def test_template_declares_every_table():
    template = load(gen_template.TEMPLATE)
    (instance,) = [r for r in template["Resources"].values() if r["Type"] == "Aliyun::Serverless::TableStore"]
    tables = {k: v for k, v in instance.items() if isinstance(v, dict) and "Type" in v}
    assert list(tables) == list(TABLES.values())
    for table in tables.values():
        assert table["Type"] == "Aliyun::Serverless::TableStore::Table"
        assert table["Properties"]["PrimaryKeyList"] == [{"Name": "pk", "Type": "STRING"},
                                                         {"Name": "sk", "Type": "STRING"}]


def test_routing_has_one_route_per_action():
    routes = load(gen_template.ROUTING)["routes"]
    assert [r["name"] for r in routes] == [a.name for a in ACTIONS]
    for route, action in zip(routes, ACTIONS, strict=True):
        assert route["name"].isalnum()  # the plug-in allows letters and digits only
        assert route["backend"] == {"functionName": action.name}
        assert f"'{action.name}'" in route["condition"]


# --- Funcraft's validator --------------------------------------------------------------------------

def _fun() -> Path:
    """The `fun` CLI in .venv/node, installed with npm on first use (about half a minute, once)."""
    return npm_tool("@alicloud/fun", FUN_VERSION, "fun")


def _fun_validate(text: str, workdir: Path) -> tuple[bool, str]:
    home = workdir / "home"
    (home / ".fcli").mkdir(parents=True)
    # A profile with report: false makes fun use its no-op analytics visitor; the variables below
    # turn off its update check. No credentials are needed: validation is a local schema check.
    (home / ".fcli" / "config.yaml").write_text("report: false\n")
    (workdir / "template.yml").write_text(text, encoding="utf-8")
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "FUN_DISABLE_VERSION_CHECK": "1",
           "NO_UPDATE_NOTIFIER": "1"}  # and no IGNORE_TPL_VALIDATION, which would skip the check
    done = subprocess.run([str(_fun()), "validate", "-t", "template.yml"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    return done.returncode == 0 and "ERR!" not in output, output


def test_template_passes_funcraft_validator(tmp_path):
    text = (ROOT / gen_template.TEMPLATE).read_text(encoding="utf-8")
    count = len(ACTIONS) + len(JOBS)
    assert text.count("Runtime: python3.10\n") == count
    # The validator's runtime enum stops at python3 (3.6); everything else is checked as written.
    ok, output = _fun_validate(text.replace("Runtime: python3.10\n", "Runtime: python3\n"), tmp_path / "ok")
    assert ok, f"fun validate rejected template.yml:\n{output}"
    # The validator really runs: the unmodified runtime is refused.
    ok, output = _fun_validate(text, tmp_path / "bad")
    assert not ok and "Runtime" in output, output


# --- scripts/create-tables -----------------------------------------------------------------------

def test_create_tables_creates_every_table(monkeypatch):
    from alikms.testing.fake_tablestore import ACCESS_KEY_ID, ACCESS_KEY_SECRET, INSTANCE, serve

    server, url = serve()
    try:
        for name in ("ALIBABA_CLOUD_ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_SECRET", "ALIBABA_CLOUD_SECURITY_TOKEN",
                     "OTS_SECURITY_TOKEN"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("OTS_ENDPOINT", url)
        monkeypatch.setenv("OTS_INSTANCE", INSTANCE)
        monkeypatch.setenv("OTS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        monkeypatch.setenv("OTS_ACCESS_KEY_SECRET", ACCESS_KEY_SECRET)
        for state in ("created", "exists"):  # and the second run changes nothing
            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                assert create_tables.main([]) == 0
            assert out.getvalue().split() == [w for name in TABLES.values() for w in (state, name)]
        monkeypatch.setenv("OTS_ACCESS_KEY_SECRET", "wrong")
        with contextlib.redirect_stderr(io.StringIO()) as err:
            assert create_tables.main([]) == 1
        assert "OTSAuthFailed" in err.getvalue()
    finally:
        server.shutdown()
        server.server_close()
