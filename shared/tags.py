"""Tag rules shared by keys and secrets (`kms-api.md` §12): shape, charset, reserved prefixes, limits."""

from __future__ import annotations

import json
import re
from typing import Any

_CHARSET = re.compile(r"^[A-Za-z0-9 /\\_\-.+=:@]*$")
RESERVED_PREFIXES = ("aliyun", "acs:")
MAX_PER_RESOURCE = 10  # TagResource's documented limit per resource
MAX_ON_CREATE = 20  # CreateKey / CreateSecret accept up to 20 in one request


def parse_tags(value: Any, limit: int) -> dict[str, str]:
    """`[{"TagKey": k, "TagValue": v}, ...]` (JSON text or list) -> {k: v}; ValueError if invalid."""
    items = json.loads(value) if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > limit:
        raise ValueError("Tags")
    tags: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or set(item) - {"TagKey", "TagValue"}:
            raise ValueError("Tags")
        key, val = item.get("TagKey"), item.get("TagValue", "")
        if not isinstance(key, str) or not isinstance(val, str):
            raise ValueError("Tags")
        if not 1 <= len(key) <= 128 or len(val) > 128 or not _CHARSET.match(key) or not _CHARSET.match(val):
            raise ValueError("Tags")
        if key.lower().startswith(RESERVED_PREFIXES) or key in tags:
            raise ValueError("Tags")
        tags[key] = val
    return tags
