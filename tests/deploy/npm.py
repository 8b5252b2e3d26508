"""Node tools the tests run offline, installed with npm into .venv/node on first use (git-ignored)."""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
from pathlib import Path

import pytest

NODE_DIR = Path(__file__).resolve().parent.parent.parent / ".venv" / "node"


def npm_tool(package: str, version: str, command: str) -> Path:
    """The executable `command` of npm package `package`@`version`, installed once (xdist workers share it)."""
    for tool in ("node", "npm"):
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` is not on PATH: this check runs {package} {version} from npm; install Node.js")
    binary = NODE_DIR / "node_modules" / ".bin" / command
    manifest = NODE_DIR / "node_modules" / Path(package) / "package.json"
    NODE_DIR.mkdir(parents=True, exist_ok=True)
    with open(NODE_DIR / ".install.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (binary.exists() and manifest.exists() and json.loads(manifest.read_text())["version"] == version):
            done = subprocess.run(
                ["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error",
                 f"{package}@{version}"],
                capture_output=True, text=True, timeout=1200, check=False)
            if done.returncode != 0:
                pytest.fail(f"npm install {package}@{version} failed:\n{done.stdout}\n{done.stderr}")
    return binary
