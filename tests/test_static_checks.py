"""The static checks, run by the suite so that CI (`.ci/run` -> `scripts/test`) and a developer run the
same thing: ruff over the whole repository and mypy over every product package, both configured in
pyproject.toml.

mypy cannot see the `alikms.*` namespace through setuptools' editable install (its finder is an
import hook, not a path), so it checks a temporary directory in which `alikms/<folder>` is a
symbolic link to each folder of the checkout.
"""

from __future__ import annotations

import shutil
import subprocess
import sys

from tests import support

PACKAGES = ("shared", "functions", "runner", "deploy", "testing")


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise", "."],
                          cwd=support.ROOT, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing(tmp_path):
    namespace = tmp_path / "alikms"
    namespace.mkdir()
    for folder in PACKAGES:
        (namespace / folder).symlink_to(support.ROOT / folder, target_is_directory=True)
    shutil.copy(support.ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    args = [arg for folder in PACKAGES for arg in ("-p", f"alikms.{folder}")]
    done = subprocess.run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), *args],
                          cwd=tmp_path, capture_output=True, text=True, check=False, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
