"""Shape rules: pydantic base models and the field types the actions share.

Every request parameter arrives as a string. Models declare the Python type and the wire name
(PascalCase, derived from the field name); `parse_request` turns pydantic's complaints into
`MissingParameter` / `InvalidParameter` naming the wire parameter. Unknown parameters are ignored,
as the real service ignores the common ones (Format, RegionId, Signature...).

Only the wire name is a parameter. A request model never accepts its Python field name
(`key_id` for `KeyId`): the validated request is the one parse of a call, from which the action,
authorization and the audit record all take their resources (`alikms.shared.authz`), so a second
spelling would let a caller name one resource to the policy check and use another.

Every field is bounded by its documented maximum (text length, integer range, JSON size and depth),
so the work a parameter can cause is bounded before any action code sees it.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_pascal

from . import errors, jsonparam, tags


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_pascal, validate_by_name=False, validate_by_alias=True,
                              extra="ignore", frozen=True)


class Response(ApiModel):
    model_config = ConfigDict(validate_by_name=True)  # built in code by field name, sent by wire name

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
        low = value.strip().lower() if len(value) <= 16 else ""
        if low in ("true", "false"):
            return low == "true"
        raise ValueError("not a boolean")
    return value


Flag = Annotated[bool, BeforeValidator(_flag)]
PageNumber = Annotated[int, Field(ge=1, le=10**9)]


# Page-size ranges differ per action in the reference (1-100, 1-101).
PageSize100 = Annotated[int, Field(ge=1, le=100)]
PageSize101 = Annotated[int, Field(ge=1, le=101)]


_UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}


def _duration(value: Any) -> Any:
    """`integer[d|h|m|s]` (a bare integer means seconds) -> seconds."""
    if isinstance(value, str):
        text = value.strip() if len(value) <= 32 else ""
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


MAX_FILTERS_CHARS = 65536  # 10 filters of 10 values of up to 256 characters, escaped
_FILTER_LIST = jsonparam.shape(Annotated[list[jsonparam.Filter], Field(max_length=10)])


def parse_filters(value: Any, allowed, max_value_len: int | None = None) -> dict[str, set[str]]:
    """List filters: a JSON array of up to 10 `{"Key", "Values"}` (up to 10 string values) -> {key: values}.
    Values of one Key are OR-ed and a repeated Key adds to its OR; a Key with no Values constrains
    nothing. ValueError on anything else."""
    items = jsonparam.decode(value, MAX_FILTERS_CHARS) if isinstance(value, str) else value
    try:
        items = _FILTER_LIST.validate_python(items)
    except ValidationError as exc:
        raise ValueError("Filters") from exc
    merged: dict[str, set[str]] = {}
    for item in items:
        if item.Key not in allowed or not all(max_value_len is None or 1 <= len(v) <= max_value_len
                                              for v in item.Values):
            raise ValueError("Filters")
        if item.Values:
            merged.setdefault(item.Key, set()).update(item.Values)
    return merged


MAX_TAGS_CHARS = 32768  # 20 tags of a 128-character key and value, escaped
_TAG_LIST = jsonparam.shape(Annotated[list[jsonparam.Tag], Field(max_length=tags.MAX_ON_CREATE)])


def _tags(limit: int) -> Any:
    """A `Tags` parameter of at most `limit` tags -> {key: value}; the tag rules are `shared/tags.py`'s."""
    return Annotated[dict[str, str],
                     jsonparam.param(_TAG_LIST, MAX_TAGS_CHARS, lambda items: tags.parse_tags(items, limit))]


CreateTags = _tags(tags.MAX_ON_CREATE)  # CreateKey, CreateSecret: up to 20
ResourceTags = _tags(tags.MAX_PER_RESOURCE)  # TagResource: up to 10


_OBJECT = jsonparam.shape(jsonparam.AnyObject)


def JsonObject(max_chars: int) -> Any:
    """A JSON object stored as given (ExtendedConfig): bounded size, depth and numbers."""
    return Annotated[dict[str, Any], jsonparam.param(_OBJECT, max_chars, walk=True)]


MAX_POLICY_BYTES = 32768  # key and secret policies (`kms-api.md` §7.1, §11.1)


def _policy(value: Any) -> Any:
    if isinstance(value, str):
        if len(value) > MAX_POLICY_BYTES or len(value.encode()) > MAX_POLICY_BYTES:
            raise ValueError("Policy")
        value = jsonparam.decode(value, MAX_POLICY_BYTES, walk=True)
    try:
        return _OBJECT.validate_python(value)
    except ValidationError as exc:
        raise ValueError("Policy") from exc


def _policy_text(value: Any) -> Any:
    _policy(value)
    return value


# A Policy parameter as its parsed document (CreateSecret) or as the text the caller sent (CreateKey).
PolicyDocument = Annotated[dict[str, Any], BeforeValidator(_policy)]
PolicyText = Annotated[str, BeforeValidator(_policy_text)]


def page(rows: list, number: int, size: int) -> list:
    """Page `number` (from 1) of `size` rows."""
    start = (number - 1) * size
    return rows[start : start + size]


MAX_CONTEXT_CHARS = 8192


def _context(value: Any) -> Any:
    """EncryptionContext: a JSON object of string to string (compared as a map, never as text), at
    most 8192 characters. JSON text within that length always fits as compact JSON too (the compact
    form is never longer), so only the old npm client's flattened form is measured."""
    if isinstance(value, str):
        value = jsonparam.decode(value, MAX_CONTEXT_CHARS)
    elif isinstance(value, dict) and len(orjson.dumps(value).decode()) > MAX_CONTEXT_CHARS:
        raise ValueError("too long")
    if type(value) is not dict or not all(type(k) is str and type(v) is str for k, v in value.items()):
        raise ValueError("not an object of strings")
    return value


EncryptionContext = Annotated[dict[str, str] | None, BeforeValidator(_context)]


def Base64Bytes(max_bytes: int) -> Any:
    """Base64 text of 1 to `max_bytes` bytes; the length of the text is checked before decoding."""
    max_chars = (max_bytes + 2) // 3 * 4

    def decode(value: Any) -> Any:
        if isinstance(value, str):
            if len(value) > max_chars:
                raise ValueError("too long")
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError) as exc:
                raise ValueError("not base64") from exc
        return value

    return Annotated[bytes, BeforeValidator(decode), Field(min_length=1, max_length=max_bytes)]


# GenerateDataKey-style sizes: NumberOfBytes 1-1024 wins over KeySpec (see envelope.data_key_size).
DataKeySpec = Literal["AES_256", "AES_128"]
DataKeyBytes = Annotated[int, Field(ge=1, le=1024)]


def _storable(value: str) -> str:
    """Ids become store keys: at most 1024 bytes of UTF-8 (Tablestore's primary-key column limit)."""
    if not value.isascii() and len(value.encode()) > 1024:
        raise ValueError("too long")
    return value


# A KeyId parameter: key id, key ARN or alias name; resolved in `alikms.shared.keys`.
KeyIdParam = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_storable)]
KeyVersionIdParam = Annotated[str, Field(min_length=1, max_length=128)]
# Algorithm names (validated per key spec by the action) and other short enumerations.
Name = Annotated[str, Field(min_length=1, max_length=64)]
# Undocumented SDK3 parameter (an attestation document); always refused, but bounded first.
Recipient = Annotated[str, Field(max_length=16384)]
# A Unix time in seconds (a `Long`, `kms-api.md` §7.3): from the epoch to the end of year 9999, what an
# ISO-8601 date can show and well inside 64 bits. Every other integer parameter has a documented range.
UnixTime = Annotated[int, Field(ge=0, le=253402300799)]
# Digest: base64 of a hash (32 bytes for every algorithm here; 64 is the longest hash there is).
Digest = Annotated[str, Field(max_length=256)]
# Free text: Description (0-8192 characters, `kms-api.md` §7.1).
Description = Annotated[str, Field(max_length=8192)]

# `alias/` + 1-255 of letters, digits, `_`, `-`, `/`.
AliasName = Annotated[str, Field(pattern=r"^alias/[A-Za-z0-9_/-]{1,255}$")]

# Secret names: up to 192 of letters, digits and `_ / + = . - @`; `acs/` is reserved for services.
SecretName = Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_storable)]  # name or ARN
# SecretData: at most 30720 bytes (`secrets.check_data` counts the bytes; no shorter text can be longer).
SecretData = Annotated[str, Field(min_length=1, max_length=30720)]
SecretVersionId = Annotated[str, Field(min_length=1, max_length=64)]
StageLabel = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
