"""Shape rules: pydantic base models and the field types the actions share.

Every request parameter arrives as a string. Models declare the Python type and the wire name
(PascalCase, derived from the field name); `parse_request` turns pydantic's complaints into
`MissingParameter` / `InvalidParameter` naming the wire parameter. Unknown parameters are ignored,
as the real service ignores the common ones (Format, RegionId, Signature...).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError
from pydantic.alias_generators import to_pascal

from . import errors


class ApiModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_pascal, populate_by_name=True, extra="ignore", frozen=True)


class Response(ApiModel):
    def to_wire(self) -> dict:
        return self.model_dump(by_alias=True, exclude_none=True)


def parse_request(model: type[ApiModel], params: dict[str, str]) -> Any:
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
