"""The one JSON-parameter decoder (shared/jsonparam.py) and the shapes built on it (shared/models.py)."""

from __future__ import annotations

import json

import pytest

from alikms.shared import errors, jsonparam
from alikms.shared.models import ApiModel, EncryptionContext, JsonObject, PolicyDocument, parse_request


@pytest.mark.parametrize("text", [
    "[" * 1000 + "]" * 1000,  # the stdlib parser raises RecursionError on this
    '{"a":' * 1000 + "1" + "}" * 1000,
    "[" * (jsonparam.MAX_DEPTH + 1) + "]" * (jsonparam.MAX_DEPTH + 1),
    '{"a":"\\ud800"}',  # a lone surrogate: valid JSON, not valid Unicode
    '"\\udfff"',
    "NaN", "[Infinity]", "[1e400]",
    "[18446744073709551616]", '{"a":-9223372036854775809}',
    "", "{", "[1,]", "\ufeff{}",
])
def test_refused(text):
    with pytest.raises(ValueError):
        jsonparam.decode(text, 100_000, walk=True)


def test_refused_past_its_length_before_parsing():
    with pytest.raises(ValueError, match="too long"):
        jsonparam.decode("[" + "1," * 10 + "1]", 10)


@pytest.mark.parametrize("text,value", [
    ("[" * jsonparam.MAX_DEPTH + "]" * jsonparam.MAX_DEPTH, None),
    ('{"a":"\\ud83d\\ude00"}', {"a": "\U0001f600"}),  # a surrogate pair is one character
    ('[9223372036854775807, -9223372036854775808, 1.5]', [2**63 - 1, -(2**63), 1.5]),
    ('{"a":{"b":["c"]}}', {"a": {"b": ["c"]}}),
])
def test_accepted(text, value):
    got = jsonparam.decode(text, 100_000, walk=True)
    assert value is None or got == value


class Model(ApiModel):
    encryption_context: EncryptionContext = None
    extended_config: JsonObject(1024) | None = None
    policy: PolicyDocument | None = None


@pytest.mark.parametrize("name,value", [
    ("EncryptionContext", '{"a":1}'), ("EncryptionContext", '{"a":["b"]}'), ("EncryptionContext", '["a"]'),
    ("EncryptionContext", '{"a":"\\ud800"}'), ("EncryptionContext", '{"a":"' + "x" * 8200 + '"}'),
    ("ExtendedConfig", "[]"), ("ExtendedConfig", '{"a":"' + "x" * 1100 + '"}'), ("ExtendedConfig", '{"a":1e400}'),
    ("Policy", '"text"'), ("Policy", '{"a":"' + "\u4e2d" * 11000 + '"}'),  # 33,000 bytes of UTF-8
])
def test_shapes_refuse_with_the_parameter_named(name, value):
    with pytest.raises(errors.InvalidParameter) as exc:
        parse_request(Model, {name: value})
    assert f'"{name}"' in exc.value.detail


def test_shapes_accept():
    got = parse_request(Model, {"EncryptionContext": '{"a":"b","c":""}', "ExtendedConfig": '{"k":{"n":1}}',
                                "Policy": json.dumps({"Version": "1", "Statement": []})})
    assert got.encryption_context == {"a": "b", "c": ""}
    assert got.extended_config == {"k": {"n": 1}} and got.policy == {"Version": "1", "Statement": []}
    assert parse_request(Model, {"EncryptionContext.a": "b"}).encryption_context == {"a": "b"}


def test_field_names_are_not_parameters():
    """Only the wire name is a parameter: a model's Python field name is an unknown one."""
    assert parse_request(Model, {"encryption_context": '{"a":"b"}'}).encryption_context is None
