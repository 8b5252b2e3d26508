"""The one decoder of JSON-valued request parameters, and the typed shape of each.

EncryptionContext, Tags, Filters, VersionStages, TagKeys, Policy and ExtendedConfig arrive as JSON text
inside one form field (`kms-api.md` §1.2). Every one of them goes through `decode`, which
* refuses text longer than the parameter's documented maximum before parsing anything,
* parses with orjson: strict UTF-8 and strict escapes (a lone surrogate such as `"\\ud800"` is refused,
  so nothing later fails to encode the value), no NaN or Infinity, and a C parser that cannot blow
  Python's stack (the stdlib parser raises RecursionError on arrays nested a thousand deep),
* refuses nesting deeper than `MAX_DEPTH` and integers outside 64 bits (what the stores can hold),
and then validates the parameter's typed shape (`shape`; the shared ones are below), so what reaches
an action is exactly the Python value its model declares. Any failure is a ValueError, which the
request model reports as InvalidParameter naming the wire parameter."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Annotated, Any

import orjson
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictStr, TypeAdapter, ValidationError

# The deepest legal parameter is a policy document: document > Statement list > statement >
# Condition > operator > values list (6). Twice that leaves room for fields this service ignores.
MAX_DEPTH = 12
INT64 = (-(2**63), 2**63 - 1)


def _check_tree(doc: Any) -> None:
    """Depth and integer range of a decoded document, without recursion."""
    stack = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        children: Iterable[Any]
        if isinstance(node, dict):
            children = node.values()
        elif isinstance(node, list):
            children = node
        else:
            if type(node) is int and not INT64[0] <= node <= INT64[1]:
                raise ValueError("integer out of range")
            if type(node) is float and not -(2.0**63) < node < 2.0**63:
                raise ValueError("number out of range")  # orjson turns integers past 64 bits into floats
            continue
        if depth > MAX_DEPTH:
            raise ValueError("nested too deep")
        stack.extend((child, depth + 1) for child in children)


def decode(text: str, max_chars: int, *, walk: bool = False) -> Any:
    """Parse one JSON parameter; ValueError on anything but well-formed, bounded JSON.

    `walk`: check depth and number range everywhere (documents stored as they are); without it only
    a document with more than MAX_DEPTH brackets is walked, as one with fewer cannot nest deeper and
    the strict shapes admit no numbers (the usual flat EncryptionContext skips the walk)."""
    if len(text) > max_chars:
        raise ValueError("too long")
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError as exc:  # also: invalid UTF-8, lone surrogates, depth over 1024
        raise ValueError("not JSON") from exc
    if walk or text.count("{") + text.count("[") > MAX_DEPTH:
        _check_tree(doc)
    return doc


def shape(kind: Any) -> TypeAdapter:
    """A strict typed shape: JSON strings stay strings, numbers never stand in for them."""
    return TypeAdapter(kind, config=ConfigDict(strict=True))


def param(adapter: TypeAdapter, max_chars: int, then: Callable[[Any], Any] | None = None, *,
          walk: bool = False) -> BeforeValidator:
    """A BeforeValidator for a JSON parameter: `decode`, validate `adapter`'s shape, then `then`.

    A value that is not text (the old npm client's flattened EncryptionContext arrives as a dict)
    skips the decoding but not the shape."""

    def validate(value: Any) -> Any:
        doc = decode(value, max_chars, walk=walk) if isinstance(value, str) else value
        try:
            doc = adapter.validate_python(doc)
        except ValidationError as exc:
            raise ValueError("shape") from exc
        return then(doc) if then is not None else doc

    return BeforeValidator(validate)


# --- the shapes ---------------------------------------------------------------------------------
Strings = list[StrictStr]
# A JSON object of bounded depth whose content this service stores but does not interpret (key and
# secret policies, ExtendedConfig). Depth and integer range are `decode`'s; the values are JSON's.
AnyObject = dict[StrictStr, Any]
# {"TagKey": k, "TagValue": v}; the tag rules themselves (charset, prefixes, count) are shared/tags.py's.
Tag = dict[Annotated[str, Field(pattern=r"^Tag(Key|Value)$")], StrictStr]


class Filter(BaseModel):
    """{"Key": name, "Values": [up to 10 strings]}; which names and values are allowed is the action's."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
    Key: StrictStr
    Values: Annotated[Strings, Field(max_length=10)] = []
