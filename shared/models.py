"""Shape rules: pydantic base models and the field types the actions share.

Every request parameter arrives as a string. Models declare the Python type and the wire name
(PascalCase, derived from the field name); `parse_request` turns pydantic's complaints into
`MissingParameter` / `InvalidParameter` naming the wire parameter. Unknown parameters are ignored,
as the real service ignores the common ones (Format, RegionId, Signature...).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_pascal

from . import errors


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True)


class Response(ApiModel):
    def to_wire(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True)


CONTEXT_PARAMS = ("EncryptionContext", "SourceEncryptionContext", "DestinationEncryptionContext")


def _fold_flattened(params: dict[str, str]) -> dict[str, Any]:
    """The old npm client sends a map as `EncryptionContext.k=v` parameters; fold them into one."""
    folded: dict[str, Any] = dict(params)
    for name, value in params.items():
        prefix, dot, sub = name.partition(".")
        if dot and prefix in CONTEXT_PARAMS:
            if isinstance(folded.get(prefix), str):
                raise errors.InvalidParameter(name=prefix)  # both forms at once: ambiguous
            folded.setdefault(prefix, {})[sub] = value
            del folded[name]
    return folded


def parse_request(model: type[ApiModel], params: dict[str, str]) -> Any:
    if any("." in name for name in params):
        params = _fold_flattened(params)
    try:
        return model.model_validate(params)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = first["loc"][0] if first["loc"] else ""
        name = str(loc)
        if first["type"] == "missing":
            raise errors.MissingParameter(name=name) from None
        raise errors.InvalidParameter(name=name) from None


def _flag(value: Any) -> Any:
    """Booleans arrive as `true`/`false` (docs) or `True`/`False` (Tea SDK's str(bool))."""
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "false"):
            return low == "true"
        raise ValueError("not a boolean")
    return value


def _json(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError("not JSON") from exc
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
JsonValue = BeforeValidator(_json)
PageNumber = Annotated[int, Field(ge=1, le=10**9)]


# Page-size ranges differ per action in the reference (1-100, 1-101).
PageSize100 = Annotated[int, Field(ge=1, le=100)]
PageSize101 = Annotated[int, Field(ge=1, le=101)]


class TagModel(ApiModel):
    tag_key: Annotated[str, Field(min_length=1, max_length=128)]
    tag_value: Annotated[str, Field(max_length=128)]


_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _duration(value: Any) -> Any:
    """`integer[d|h|m|s]` (a bare integer means seconds) -> seconds."""
    if isinstance(value, str):
        text = value.strip()
        unit = _UNITS.get(text[-1:].lower()) if text else None
        digits = text[:-1] if unit else text
        if not digits.isdigit():
            raise ValueError("not a duration")
        return int(digits) * (unit or 1)
    return value


Duration = Annotated[int, BeforeValidator(_duration)]


def _rotation_range(seconds: int) -> int:
    if not 7 * 86400 <= seconds <= 730 * 86400:  # 7-730 days, the 2021 reference
        raise ValueError("RotationInterval")
    return seconds


# A key's automatic-rotation interval (CreateKey, UpdateRotationPolicy).
KeyRotationInterval = Annotated[int, BeforeValidator(_duration), AfterValidator(_rotation_range)]


def parse_filters(value: Any, allowed, max_value_len: int | None = None) -> dict[str, set[str]]:
    """List filters: a JSON array of up to 10 `{"Key", "Values"}` (up to 10 string values) -> {key: values}.
    Values of one Key are OR-ed and a repeated Key adds to its OR; a Key with no Values constrains
    nothing. ValueError on anything else."""
    items = json.loads(value) if isinstance(value, str) else value
    if not isinstance(items, list) or len(items) > 10:
        raise ValueError("Filters")
    merged: dict[str, set[str]] = {}
    for item in items:
        if not isinstance(item, dict) or set(item) - {"Key", "Values"} or item.get("Key") not in allowed:
            raise ValueError("Filters")
        values = item.get("Values", [])
        if not isinstance(values, list) or len(values) > 10 or not all(
                isinstance(v, str) and (max_value_len is None or 1 <= len(v) <= max_value_len) for v in values):
            raise ValueError("Filters")
        if values:
            merged.setdefault(item["Key"], set()).update(values)
    return merged


def page(rows: list, number: int, size: int) -> list:
    """Page `number` (from 1) of `size` rows."""
    start = (number - 1) * size
    return rows[start : start + size]


MAX_CONTEXT_CHARS = 8192


def _context(value: Any) -> Any:
    """EncryptionContext: a JSON object of string to string (compared as a map, never as text)."""
    if isinstance(value, str):
        if len(value) > MAX_CONTEXT_CHARS:
            raise ValueError("too long")
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError("not JSON") from exc
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise ValueError("not an object of strings")
    if len(json.dumps(value, ensure_ascii=False, separators=(",", ":"))) > MAX_CONTEXT_CHARS:
        raise ValueError("too long")
    return value


EncryptionContext = Annotated[dict[str, str] | None, BeforeValidator(_context)]


def _base64(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError("not base64") from exc
    return value


Base64Bytes = Annotated[bytes, BeforeValidator(_base64)]

# GenerateDataKey-style sizes: NumberOfBytes 1-1024 wins over KeySpec (see envelope.data_key_size).
DataKeySpec = Literal["AES_256", "AES_128"]
DataKeyBytes = Annotated[int, Field(ge=1, le=1024)]

# A KeyId parameter: key id, key ARN or alias name; resolved in `alikms.shared.keys`.
KeyIdParam = Annotated[str, Field(min_length=1, max_length=512)]

# `alias/` + 1-255 of letters, digits, `_`, `-`, `/`.
AliasName = Annotated[str, Field(pattern=r"^alias/[A-Za-z0-9_/-]{1,255}$")]

# Secret names: up to 192 of letters, digits and `_ / + = . - @`; `acs/` is reserved for services.
SecretName = Annotated[str, Field(min_length=1, max_length=512)]  # name or ARN; rules checked on create
SecretVersionId = Annotated[str, Field(min_length=1, max_length=64)]
StageLabel = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
