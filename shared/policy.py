"""RAM-style identity policies: parse once, evaluate per request. Pure, no I/O.

A policy is `{"Version": "1", "Statement": [{"Effect": "Allow"|"Deny", "Action": ..., "Resource": ...,
"Condition": {...}}]}` where Action and Resource are a string or a list of patterns with `*` and `?`
wildcards (actions match case-insensitively, as RAM does; resources exactly). Conditions supported:
`IpAddress` / `NotIpAddress` on `acs:SourceIp` (addresses or CIDR blocks), and `StringEquals` /
`StringNotEquals` / `StringLike` on the same key. Any other operator or key is refused when the
policy is set, rather than silently ignored.

Decision for one action over a set of resources: an explicit Deny matching any resource wins;
otherwise every resource needs a matching Allow; otherwise the request is implicitly denied.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

ALLOW, EXPLICIT_DENY, IMPLICIT_DENY = "Allow", "ExplicitDeny", "ImplicitDeny"
_CONDITION_KEYS = {"acs:sourceip"}
_OPERATORS = {"IpAddress", "NotIpAddress", "StringEquals", "StringNotEquals", "StringLike"}


class PolicyError(ValueError):
    """The document is not a valid policy (shape, effect, operator or key)."""


@dataclass(frozen=True)
class Statement:
    allow: bool
    actions: tuple[re.Pattern, ...]
    resources: tuple[re.Pattern, ...]
    conditions: tuple[tuple[str, str, tuple[str, ...]], ...]  # (operator, key, values)


@lru_cache(maxsize=4096)
def _pattern(text: str, ignore_case: bool) -> re.Pattern:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in text)
    return re.compile(f"^{regex}$", re.IGNORECASE if ignore_case else 0)


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
        conditions = []
        for op, block in (st.get("Condition") or {}).items():
            if op not in _OPERATORS or not isinstance(block, dict):
                raise PolicyError(f"unsupported condition operator {op!r}")
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


def evaluate(policies: list[tuple[Statement, ...]], action: str, resources: list[str],
             context: dict[str, str]) -> str:
    """ALLOW, EXPLICIT_DENY or IMPLICIT_DENY for `action` on all of `resources`."""
    statements = [st for policy in policies for st in policy]
    for resource in resources:
        if any(not st.allow and _matches(st, action, resource, context) for st in statements):
            return EXPLICIT_DENY
    for resource in resources:
        if not any(st.allow and _matches(st, action, resource, context) for st in statements):
            return IMPLICIT_DENY
    return ALLOW
