"""The pytest plugin the distribution registers (`pytest11` entry point): installing alikms is all
a test suite needs for these.

* `mock_kms` fixture: a fresh in-process KMS behind every Alibaba KMS client for one test
  (`alikms.testing.mock`); options through the marker, e.g.
  `@pytest.mark.mock_kms(strict=True, now="2024-01-01T00:00:00Z")`.
* `kms_server` fixture: the real runner on a free port for the whole session, for clients in other
  processes (`alikms.testing.server`); needs `alikms[serve]`.
* `alikms_seed` ini setting (pytest.ini / pyproject.toml): a seed file both fixtures load, relative
  to the rootdir; a marker's own `seed=` wins for that test.

Nothing is imported until a fixture is used, so the plugin costs other test suites nothing.
"""

from __future__ import annotations

import pytest

_SEEDS: dict[str, object] = {}  # parsed seed files, read once per session


def pytest_addoption(parser) -> None:
    parser.addini("alikms_seed", "seed file (YAML or JSON) loaded by the mock_kms and kms_server fixtures",
                  default="")


def pytest_configure(config) -> None:
    config.addinivalue_line("markers", "mock_kms(**options): options of the mock_kms fixture "
                                       "(seed, strict, region, account_id, now, store, source_ip)")


def _seed_path(config) -> str | None:
    value = config.getini("alikms_seed")
    return str((config.rootpath / value).resolve()) if value else None


def _parsed_seed(path: str):
    if path not in _SEEDS:
        from alikms.shared import seed

        _SEEDS[path] = seed.load(path)
    return _SEEDS[path]


@pytest.fixture
def mock_kms(request):
    """A fresh in-process KMS for this test; yields the `MockKms` (advance, calls, create_access_key...)."""
    from alikms.testing.mock import MockKms

    marker = request.node.get_closest_marker("mock_kms")
    options = dict(marker.kwargs) if marker else {}
    path = _seed_path(request.config)
    if "seed" not in options and path:
        options["seed"] = _parsed_seed(path)
    with MockKms(**options) as kms:
        yield kms


@pytest.fixture(scope="session")
def kms_server(request, tmp_path_factory):
    """The local runner on 127.0.0.1 for this session (per xdist worker); yields a `KmsServer`
    (endpoint, url, access_key_id, access_key_secret, account_id, region, env())."""
    from alikms.testing.server import start_server

    server = start_server(tmp_path_factory.mktemp("alikms-server"), seed=_seed_path(request.config))
    yield server
    server.stop()
