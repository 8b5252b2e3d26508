"""Every security test starts with an empty key-material cache.

`alikms.shared.versions` caches unwrapped material per (account/region, key id, version id) for the life of
the process, and some ids are the same in every test (the secrets service key is derived from the
account and region), so material cached by an earlier test on another data directory would
otherwise stand in for this test's own."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def fresh_material_cache():
    from alikms.shared import versions

    versions._material.clear()
    versions._loaded.clear()
    yield
    versions._material.clear()
    versions._loaded.clear()
