"""Which libcrypto SM2 uses (alikms.shared.crypto._libcrypto): KMS_LIBCRYPTO, else a bundled copy on
sys.path, else the system's."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

from tests import support

PROBE = textwrap.dedent("""
    import sys
    sys.path[:0] = sys.argv[1:]
    from alikms.shared.crypto import _libcrypto, sm2
    if not sm2.available():
        print("unavailable:", sm2.SM2Error.__name__)
        try:
            _libcrypto.library()
        except sm2.SM2Error as exc:
            print(exc)
    else:
        key = sm2.generate()
        digest = sm2.za_digest(key.public_key(), b"message")
        assert key.public_key().verify_digest(digest, key.sign_digest(digest))
        print("library:", _libcrypto.library())
""")


def probe(env: dict, *path: str, cwd: Path = support.ROOT) -> str:
    done = subprocess.run([sys.executable, "-c", PROBE, *path], cwd=cwd, env={**support.os.environ, **env},
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


def system_libcrypto() -> str:
    found = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    return str(Path(re.search(r"libcrypto\.so\.3 .*=> (\S+)", found)[1]).resolve())


def test_the_system_library_by_default():
    assert probe({}).strip() == "library: libcrypto.so.3"


def test_kms_libcrypto_names_the_only_library_tried(tmp_path):
    out = probe({"KMS_LIBCRYPTO": str(tmp_path / "missing.so.3")})
    assert out.startswith("unavailable") and "missing.so.3" in out and "libcrypto.so.3:" not in out.replace(
        "missing.so.3:", "")
    assert probe({"KMS_LIBCRYPTO": system_libcrypto()}).strip() == f"library: {system_libcrypto()}"


def test_a_bundled_copy_on_sys_path_comes_before_the_system(tmp_path):
    bundled = tmp_path / "alikms_native" / "libcrypto.so.3"
    bundled.parent.mkdir()
    bundled.write_bytes(Path(system_libcrypto()).read_bytes())
    assert probe({}, str(tmp_path)).strip() == f"library: {bundled}"
    # A relative entry (the current directory here) is never searched.
    assert probe({}, "", cwd=tmp_path).strip() == "library: libcrypto.so.3"
