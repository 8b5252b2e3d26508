"""GetRandomPassword (kms-api.md §11.11): length bounds, every exclusion flag, ExcludeCharacters,
RequireEachIncludedType, nothing left to draw from, and that characters are drawn uniformly from the
pool and never from outside it."""

from __future__ import annotations

import string
from collections import Counter

import pytest

LOWER, UPPER, DIGITS = string.ascii_lowercase, string.ascii_uppercase, string.digits
PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_{|}~"  # the valid set of §11.11 minus letters and digits (no backtick)
POOL = LOWER + UPPER + DIGITS + PUNCT
TYPES = {"ExcludeLowercase": LOWER, "ExcludeUppercase": UPPER, "ExcludeNumbers": DIGITS, "ExcludePunctuation": PUNCT}


@pytest.fixture
def password(invoke):
    def draw(**params) -> str:
        status, body = invoke("GetRandomPassword", params)
        assert status == 200, (params, body)
        assert body["RequestId"] and set(body) == {"RandomPassword", "RequestId"}
        return body["RandomPassword"]

    return draw


def refused(invoke, params: dict, param: str) -> None:
    status, body = invoke("GetRandomPassword", params)
    assert (status, body["Code"]) == (400, "InvalidParameter"), body
    assert f'"{param}"' in body["Message"]


def test_pool_has_93_distinct_characters():
    assert len(PUNCT) == 31 and len(POOL) == len(set(POOL)) == 93


def test_lengths(password, invoke):
    assert len(password()) == 32  # the default
    for length in (8, 9, 64, 127, 128):
        got = password(PasswordLength=str(length))
        assert len(got) == length and set(got) <= set(POOL)
    for bad in ("7", "129", "0", "-8", "abc", "12.5", ""):
        refused(invoke, {"PasswordLength": bad}, "PasswordLength")


def test_each_exclusion_flag(password):
    for flag, chars in TYPES.items():
        for spelling in ("true", "True"):
            drawn = "".join(password(PasswordLength="128", **{flag: spelling}) for _ in range(4))
            assert not set(drawn) & set(chars), flag
            assert set(drawn) <= set(POOL)
            # The other types are still used (512 draws: missing one would be astronomically unlikely).
            for other, other_chars in TYPES.items():
                if other != flag:
                    assert set(drawn) & set(other_chars), (flag, other)
        drawn = password(PasswordLength="128", **{flag: "false"})
        assert len(drawn) == 128


def test_combined_flags_leave_only_the_remaining_type(password):
    for keep, chars in TYPES.items():
        params = {flag: "true" for flag in TYPES if flag != keep}
        drawn = "".join(password(PasswordLength="128", **params) for _ in range(2))
        assert set(drawn) <= set(chars) and len(set(drawn)) > len(chars) // 2, keep


def test_exclude_characters(password):
    excluded = "0O1lI|`'\"\\ab"
    drawn = "".join(password(PasswordLength="128", ExcludeCharacters=excluded) for _ in range(20))
    assert not set(drawn) & set(excluded) and set(drawn) <= set(POOL)
    assert len(set(drawn)) == len(set(POOL) - set(excluded))  # 2560 draws over 82 characters: all seen
    only = password(PasswordLength="64", ExcludeCharacters=UPPER + DIGITS + PUNCT + "abcdefghijklmnopqrstuvwx")
    assert set(only) <= {"y", "z"} and len(only) == 64


def test_everything_excluded_is_invalid(invoke, password):
    refused(invoke, dict.fromkeys(TYPES, "true"), "PasswordLength")
    refused(invoke, {"ExcludeCharacters": POOL}, "PasswordLength")
    refused(invoke, {"ExcludeLowercase": "true", "ExcludeUppercase": "true", "ExcludeNumbers": "true",
                     "ExcludeCharacters": PUNCT}, "PasswordLength")
    for flag in TYPES:
        refused(invoke, {flag: "maybe"}, flag)
    refused(invoke, {"RequireEachIncludedType": "yes"}, "RequireEachIncludedType")
    assert len(password(ExcludeCharacters=POOL[:-1])) == 32  # one character left is enough


def test_require_each_included_type(password):
    for _ in range(60):
        got = password(PasswordLength="8", RequireEachIncludedType="true")
        assert len(got) == 8 and all(set(got) & set(chars) for chars in TYPES.values()), got
    for _ in range(20):
        got = password(PasswordLength="8", RequireEachIncludedType="true", ExcludePunctuation="true",
                       ExcludeCharacters="0123456789"[1:])
        assert not set(got) & set(PUNCT) and "0" in got and set(got) & set(LOWER) and set(got) & set(UPPER), got
    # Without the flag an 8-character password often misses a type (about half do).
    drawn = [password(PasswordLength="8") for _ in range(60)]
    assert any(not all(set(p) & set(chars) for chars in TYPES.values()) for p in drawn)


def test_characters_are_uniform_over_the_pool(password):
    """Chi-square over 20,096 characters in 93 cells (92 degrees of freedom: mean 92, sd 13.6). The
    bound of 200 is passed by a uniform source with probability 1 - 1e-9, yet a generator that
    favours a part of the pool by a few percent, or drops any character, fails it."""
    counts = Counter("".join(password(PasswordLength="128") for _ in range(157)))
    total = sum(counts.values())
    assert total == 157 * 128 and set(counts) == set(POOL)
    expected = total / len(POOL)
    chi2 = sum((counts[c] - expected) ** 2 / expected for c in POOL)
    assert chi2 < 200, (chi2, counts.most_common(3), counts.most_common()[-3:])
    # The four types get their share of the pool (26/26/10/31 of 93), within 10 % each.
    for chars in TYPES.values():
        share = sum(counts[c] for c in chars) / total
        assert abs(share - len(chars) / 93) < 0.1 * len(chars) / 93, (chars, share)
