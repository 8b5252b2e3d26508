"""RAM-style identity policies: parse once, evaluate per request. Pure, no I/O.

A policy is `{"Version": "1", "Statement": [{"Effect": "Allow"|"Deny", "Action": ..., "Resource": ...,
"Condition": {...}}]}` where Action and Resource are a string or a list of patterns with `*` and `?`
wildcards (actions match case-insensitively, as RAM does; resources exactly). Conditions supported:
`IpAddress` / `NotIpAddress` on `acs:SourceIp` (addresses or CIDR blocks), and `StringEquals` /
`StringNotEquals` / `StringLike` on the same key. Any other operator or key, and any statement element
but Effect, Action, Resource, Condition and Sid (NotAction, NotResource, Principal, a misspelling), is
refused when the policy is set rather than silently ignored: ignoring `NotResource` would turn "all but
this key" into "all keys". An IPv4 caller reaching a dual-stack listener (`::ffff:a.b.c.d`) is matched
as its IPv4 address.

Decision for one action over a set of resources: an explicit Deny matching any resource wins;
otherwise every resource needs a matching Allow; otherwise the request is implicitly denied.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "Allow", "ExplicitDeny", "ImplicitDeny"
_CONDITION_KEYS = {"acs:sourceip"}
_OPERATORS = {"IpAddress", "NotIpAddress", "StringEquals", "StringNotEquals", "StringLike"}
_ELEMENTS = {"Effect", "Action", "Resource", "Condition", "Sid"}


class PolicyError(ValueError):
    """The document is not a valid policy (shape, effect, operator or key)."""


class Glob:
    """A pattern with `*` (any run of characters) and `?` (any one character), matched without
    backtracking: the literal parts between stars are found left to right, each at its first place,
    so a match costs at most the text's length times the pattern's, whatever both hold. (A regex
    of `.*` runs over a caller-controlled ARN backtracks: 60,000 ':' took seconds.)"""

    __slots__ = ("_exact", "_parts", "_fold")

    def __init__(self, text: str, ignore_case: bool) -> None:
        self._fold = ignore_case
        text = text.lower() if ignore_case else text
        self._parts = text.split("*")
        self._exact = text if len(self._parts) == 1 and "?" not in text else None

    def match(self, value: str) -> bool:
        if self._fold:
            value = value.lower()
        if self._exact is not None:
            return value == self._exact
        parts = self._parts
        first, last = parts[0], parts[-1]
        if len(parts) == 1:
            return len(value) == len(first) and _at(value, first, 0)
        end = len(value) - len(last)
        if end < len(first) or not _at(value, first, 0) or not _at(value, last, end):
            return False
        pos = len(first)
        for part in parts[1:-1]:
            pos = _find(value, part, pos, end)
            if pos < 0:
                return False
            pos += len(part)
        return True


def _at(value: str, part: str, pos: int) -> bool:
    """Whether `part` (`?` = any character) occurs in `value` at `pos`."""
    if "?" not in part:
        return value.startswith(part, pos)
    return len(value) - pos >= len(part) and all(p == "?" or p == value[pos + i] for i, p in enumerate(part))


def _find(value: str, part: str, start: int, end: int) -> int:
    """First position >= `start` where `part` occurs in `value` ending by `end`, or -1."""
    if "?" not in part:
        return value.find(part, start, end)
    for pos in range(start, end - len(part) + 1):
        if _at(value, part, pos):
            return pos
    return -1


@dataclass(frozen=True)
class Statement:
    allow: bool
    actions: tuple[Glob, ...]
    resources: tuple[Glob, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...]  # (operator, key, values)


@lru_cache(maxsize=4096)
def _pattern(text: str, ignore_case: bool) -> Glob:
    return Glob(text, ignore_case)


def _strings(value: Any, what: str) -> tuple[str, ...]:
    values = [value] if isinstance(value, str) else value
    if not isinstance(values, list) or not values or not all(isinstance(v, str) and v for v in values):
        raise PolicyError(f"{what} must be a non-empty string or list of strings")
    return tuple(values)


def parse(document: str | dict) -> tuple[Statement, ...]:
    doc = json.loads(document) if isinstance(document, str) else document
    if not isinstance(doc, dict) or doc.get("Version") != "1" or not isinstance(doc.get("Statement"), list):
        raise PolicyError('a policy needs "Version": "1" and a "Statement" list')
    statements = []
    for st in doc["Statement"]:
        if not isinstance(st, dict) or st.get("Effect") not in ("Allow", "Deny"):
            raise PolicyError('each statement needs "Effect": "Allow" or "Deny"')
        unknown = sorted(set(st) - _ELEMENTS)
        if unknown:
            raise PolicyError(f"unsupported statement element {unknown[0]!r} (supported: Effect, Action, Resource, "
                              "Condition, Sid)")
        if not isinstance(st.get("Condition") or {}, dict):
            raise PolicyError("Condition must be an object")
        conditions = []
        for op, block in (st.get("Condition") or {}).items():
            if op not in _OPERATORS or not isinstance(block, dict):
                raise PolicyError(f"unsupported condition operator {op!r}")
            if not block:
                raise PolicyError(f"condition {op!r} names no key")
            for key, values in block.items():
                if key.lower() not in _CONDITION_KEYS:
                    raise PolicyError(f"unsupported condition key {key!r}")
                vals = _strings(values, key)
                if op in ("IpAddress", "NotIpAddress"):
                    for v in vals:
                        try:
                            ipaddress.ip_network(v, strict=False)
                        except ValueError as exc:
                            raise PolicyError(f"not an address or CIDR block: {v!r}") from exc
                conditions.append((op, key.lower(), vals))
        statements.append(Statement(
            st["Effect"] == "Allow",
            tuple(_pattern(a, True) for a in _strings(st.get("Action"), "Action")),
            tuple(_pattern(r, False) for r in _strings(st.get("Resource"), "Resource")),
            tuple(conditions)))
    return tuple(statements)


def _in_networks(ip: str, values: tuple[str, ...]) -> bool:
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return False
    return any(addr in ipaddress.ip_network(v, strict=False) for v in values)


def _ipv4_of_mapped(ip: str) -> str:
    try:
        mapped = ipaddress.IPv6Address(ip).ipv4_mapped
    except ValueError:
        return ip
    return ip if mapped is None else str(mapped)


def _condition_holds(op: str, values: tuple[str, ...], context: dict[str, str]) -> bool:
    actual = context.get("acs:sourceip", "")
    if op == "IpAddress":
        return _in_networks(actual, values)
    if op == "NotIpAddress":
        return not _in_networks(actual, values)
    if op == "StringEquals":
        return actual in values
    if op == "StringNotEquals":
        return actual not in values
    return any(_pattern(v, False).match(actual) for v in values)  # StringLike


def _matches(st: Statement, action: str, resource: str, context: dict[str, str]) -> bool:
    return (any(p.match(action) for p in st.actions) and any(p.match(resource) for p in st.resources)
            and all(_condition_holds(op, vals, context) for op, _, vals in st.conditions))


# Far longer than any ARN a validated request yields (ids are at most 512 characters); anything longer
# is refused without matching (implicitly denied, so it can never slip past a Deny either).
MAX_RESOURCE = 1024


def evaluate(policies: list[tuple[Statement, ...]], action: str, resources: list[str],
             context: dict[str, str]) -> str:
    """ALLOW, EXPLICIT_DENY or IMPLICIT_DENY for `action` on all of `resources`."""
    if len(action) > MAX_RESOURCE or any(len(r) > MAX_RESOURCE for r in resources):
        return IMPLICIT_DENY
    ip = context.get("acs:sourceip", "")
    if ":" in ip:  # IPv6: an IPv4 caller of a dual-stack listener is the IPv4 address it carries
        context = {**context, "acs:sourceip": _ipv4_of_mapped(ip)}
    statements = [st for policy in policies for st in policy]
    for resource in resources:
        if any(not st.allow and _matches(st, action, resource, context) for st in statements):
            return EXPLICIT_DENY
    for resource in resources:
        if not any(st.allow and _matches(st, action, resource, context) for st in statements):
            return IMPLICIT_DENY
    return ALLOW
