"""The crypto layer the actions use. Primitives live in `_primitives` (the only hazmat importer)."""

from __future__ import annotations

from . import _primitives
from .root import UnwrapError, unwrap, wrap

__all__ = ["UnwrapError", "wrap", "unwrap", "new_symmetric_material"]

# Key material length per symmetric KeySpec.
SYMMETRIC_SIZES = {"Aliyun_AES_256": 32, "Aliyun_AES_192": 24, "Aliyun_AES_128": 16, "Aliyun_SM4": 16}


def new_symmetric_material(key_spec: str) -> bytes:
    return _primitives.random_bytes(SYMMETRIC_SIZES[key_spec])
