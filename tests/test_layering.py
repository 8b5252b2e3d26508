"""Dependencies point one way, checked on the source (every import, module level or inside a function):

* Only the crypto package's private modules (`shared/crypto/_*.py`) import `cryptography`: everything
  else reaches the primitives through the crypto package's public functions and modules.
* Nothing outside the crypto package imports those private modules (`_primitives`, `_asymmetric`,
  `_libcrypto`), in the distribution, the benchmark or the examples. (The suite may: its SM2 and
  libcrypto tests test them directly.)
* Domain modules (`shared/`) do not import the Function Compute wrapper, `shared/runtime.py`: the
  wrapper calls the domain, never the other way round.

The benchmark measures raw `cryptography` as its baseline (bench/primitives.py) and the example
application uses it as any application would, so neither is held to the first rule.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("shared", "functions", "runner", "deploy", "testing")  # alikms.<folder>
CRYPTO = "alikms.shared.crypto"
RUNTIME = "alikms.shared.runtime"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["alikms", *parts] if parts[0] in PACKAGES else parts)


def _files(folders: tuple[str, ...]) -> list[Path]:
    found = [p for folder in folders for p in sorted((ROOT / folder).rglob("*.py"))]
    return found + ([ROOT / "index.py"] if "shared" in folders else [])


def _imports(path: Path) -> set[str]:
    """Every module this file imports, absolute; `from a import b` counts as `a` and `a.b` (b may be a
    submodule). A `x._name` attribute is listed too, so `crypto._primitives.f()` is seen."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Attribute) and node.attr in ("_primitives", "_asymmetric", "_libcrypto"):
            found.add(f"{CRYPTO}.{node.attr}")
    return found


def _private_crypto(module: str) -> bool:
    return module.startswith(CRYPTO + "._")


def _in_crypto(path: Path) -> bool:
    return path.is_relative_to(ROOT / "shared" / "crypto")


def test_only_the_crypto_packages_private_modules_import_cryptography():
    offenders = {}
    for path in _files(PACKAGES):
        if _in_crypto(path) and path.name.startswith("_") and path.name != "__init__.py":
            continue
        used = sorted(m for m in _imports(path) if m == "cryptography" or m.startswith("cryptography."))
        if used:
            offenders[str(path.relative_to(ROOT))] = used
    assert offenders == {}


def test_nothing_outside_the_crypto_package_imports_its_private_modules():
    offenders = {}
    for path in _files((*PACKAGES, "bench", "examples")):
        if _in_crypto(path):
            continue
        used = sorted(m for m in _imports(path) if _private_crypto(m))
        if used:
            offenders[str(path.relative_to(ROOT))] = used
    assert offenders == {}


def test_domain_modules_do_not_import_the_fc_wrapper():
    offenders = [str(p.relative_to(ROOT)) for p in sorted((ROOT / "shared").rglob("*.py"))
                 if p != ROOT / "shared" / "runtime.py" and any(m == RUNTIME or m.startswith(RUNTIME + ".")
                                                                   for m in _imports(p))]
    assert offenders == []


def test_the_checks_see_imports_of_every_form(monkeypatch):
    """The checks above would pass on a parser that saw nothing: show them what they look for."""
    fake = ROOT / "shared" / "x_layering_probe.py"
    source = ("from .crypto import _primitives\nfrom . import runtime\nimport cryptography.hazmat\n"
              "def f():\n    from .crypto._asymmetric import sign\n    return crypto._libcrypto\n")
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    found = _imports(fake)
    assert {f"{CRYPTO}._primitives", RUNTIME, "cryptography.hazmat", f"{CRYPTO}._asymmetric",
            f"{CRYPTO}._libcrypto"} <= found
    assert _module_name(ROOT / "shared" / "crypto" / "__init__.py") == CRYPTO
    assert _module_name(ROOT / "bench" / "suite.py") == "bench.suite"
