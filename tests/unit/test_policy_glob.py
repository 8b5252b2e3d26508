"""Policy patterns are matched without backtracking (shared/policy.py `Glob`), with the same answers
a `*`/`?` regex gives, and bounded input on the evaluation side."""

from __future__ import annotations

import re
import threading

from hypothesis import given, settings
from hypothesis import strategies as st

from alikms.shared import policy


def reference(pattern: str, text: str, ignore_case: bool) -> bool:
    regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, text, re.IGNORECASE | re.DOTALL if ignore_case else re.DOTALL) is not None


ALPHABET = st.sampled_from("ab:/*?K")


@settings(max_examples=3000, derandomize=True, database=None, deadline=None)
@given(st.text(ALPHABET, max_size=12), st.text(st.sampled_from("ab:/k*?"), max_size=14), st.booleans())
def test_glob_agrees_with_the_regex(pattern, text, ignore_case):
    assert policy.Glob(pattern, ignore_case).match(text) == reference(pattern, text, ignore_case)


def test_glob_cases():
    arn = "acs:kms:cn-hangzhou:1234567890123456:key/abc"
    assert policy.Glob("acs:kms:*:*:key/*", False).match(arn)
    assert policy.Glob("acs:kms:*:*:key/ab?", False).match(arn)
    assert not policy.Glob("acs:kms:*:*:key/ab", False).match(arn)
    assert not policy.Glob("acs:kms:*:*:alias/*", False).match(arn)
    assert policy.Glob("KMS:Encr*", True).match("kms:Encrypt")
    assert not policy.Glob("KMS:Encr*", False).match("kms:Encrypt")
    assert policy.Glob("*", False).match("") and policy.Glob("**", False).match("x")
    assert not policy.Glob("a*a", False).match("a")  # the two ends may not overlap


def finished(fn, seconds: float = 20) -> bool:
    """Whether `fn` returns within a generous bound (a stalled matcher takes minutes here)."""
    done = threading.Event()
    threading.Thread(target=lambda: (fn(), done.set()), daemon=True).start()
    return done.wait(seconds)


def test_a_hostile_arn_against_many_stars_is_answered():
    """60,000 ':' against a pattern of many stars took a regex seconds (quadratic and worse)."""
    text = "acs:kms:cn-hangzhou:1:key/" + ":" * 60_000
    glob = policy.Glob("acs:kms:*:*:*:*:*:*:*:*:x", False)
    assert finished(lambda: [glob.match(text) for _ in range(50)])
    assert not glob.match(text)
    assert policy.Glob("*:*:*:*", False).match(text)


def test_evaluate_refuses_an_overlong_resource_without_matching():
    statements = policy.parse({"Version": "1", "Statement": [
        {"Effect": "Allow", "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Action": "kms:*", "Resource": "acs:kms:*:*:key/secret*"}]})
    long_arn = "acs:kms:cn-hangzhou:1:key/" + "x" * 5000
    assert policy.evaluate([statements], "kms:Encrypt", [long_arn], {}) == policy.IMPLICIT_DENY
    assert policy.evaluate([statements], "kms:Encrypt", ["acs:kms:cn-hangzhou:1:key/open"], {}) == policy.ALLOW
    assert policy.evaluate([statements], "kms:Encrypt", ["acs:kms:cn-hangzhou:1:key/secret1"], {}) == \
        policy.EXPLICIT_DENY
