"""Operator names: what is accepted, the case-insensitive key, and a typed name made safe to record."""

from __future__ import annotations

import pytest

from app.security.names import MAX_NAME, name_key, name_problems, printable_name


@pytest.mark.parametrize("name", ["asha", "Asha.K", "rita_2", "t-1", "a", "x" * MAX_NAME, "0day"])
def test_accepted(name: str) -> None:
    assert name_problems(name) == []


@pytest.mark.parametrize(
    "name, problem",
    [
        ("", "enter a name"),
        ("x" * (MAX_NAME + 1), f"at most {MAX_NAME} characters"),
        ("x" * 10_240, "at most 64 characters (this one has 10240)"),
        ("asha k", "no spaces"),
        ("asha\t", "no spaces"),
        ("asha\x1b[2J", "no control characters"),
        ("as\x00ha", "no control characters"),
        ("asha\u200b", "no control characters"),  # zero-width space: two names that look the same
        ("José", "only letters a-z and A-Z, digits and . _ - (not é)"),
        ("\u0430sha", "not \u0430"),  # Cyrillic a
        ("'; DROP TABLE operators;--", "only letters a-z"),
        ("-rf", "starts with a letter or a digit"),
        (".hidden", "starts with a letter or a digit"),
    ],
)
def test_refused(name: str, problem: str) -> None:
    problems = name_problems(name)
    assert any(problem in p for p in problems), problems


def test_names_differ_only_in_case_are_one_key() -> None:
    assert name_key("Asha") == name_key("ASHA") == name_key("asha")


def test_a_typed_name_is_clipped_and_escaped_for_the_record() -> None:
    assert printable_name("asha") == "asha"
    assert printable_name("x" * 10_000) == "x" * MAX_NAME + "..."
    assert printable_name("a\x1b[2Jb\nc") == "a\\x1b[2Jb\\nc"
    assert printable_name("\ud800") == "\\ud800"
    assert printable_name("पासवर्ड") == "पासवर्ड"
