"""The settings and the risk limits word a bad value the same way: one line, one shape (app.validation_messages)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from app.engine.risk.limits import DEFAULT_LIMITS_PATH, LimitsError, parse_limits
from app.settings import SettingsError, load_settings

# path [= value] [(source)]: problem; allowed[ in [section]| keys at the top level]: what
LINE = re.compile(
    r"(?P<path>[^\s=]+)"
    r"(?: = (?P<value>.+?))?"
    r"(?: \((?P<source>in [^)]+)\))?"
    r": (?P<problem>[^;]+)"
    r"; allowed(?: in \[(?P<section>[^\]]+)\]| keys at the top level)?: (?P<allowed>.+)"
)

# kind -> (settings file, limits edit (old, new) of the shipped file, and for each what the line must say:
#          path, value, problem, section, start of what is allowed)
CASES = {
    "wrong type": (
        "[paper]\nseed = 'x'\n",
        ("max_open_orders = 20", 'max_open_orders = "20"'),
        ("paper.seed", "'x'", "Input should be a valid integer", None, "an integer"),
        ("desk.max_open_orders", "'20'", "not a whole number", None, "a whole number from 1 to 1000000000"),
    ),
    "out of range": (
        "[paper]\nreject_rate = 1.5\n",
        ("error_storm_count = 5", "error_storm_count = 0"),
        ("paper.reject_rate", "1.5", "Input should be less than or equal to 1", None, "a number >= 0 and <= 1"),
        ("breakers.error_storm_count", "0", "out of range", None, "a whole number from 1 to 1000000000"),
    ),
    "unknown key": (
        "[paper]\nrejct_rate = 0.1\n",
        ("max_open_orders = 20", "max_open_orders = 20\nmax_open_ordrs = 3"),
        ("paper.rejct_rate", "0.1", "unknown setting (did you mean paper.reject_rate?)", "paper", "seed, latency_ms, "),
        ("desk.max_open_ordrs", None, "unknown key (did you mean max_open_orders?)", "desk", "max_gross_exposure_inr, "),
    ),
    "unknown top-level key": (
        "brokr = 'paper'\n",
        ("[desk]\n", "desks = 1\n[desk]\n"),
        ("brokr", "'paper'", "unknown setting (did you mean broker?)", None, "db_url, broker, "),
        ("desks", None, "unknown key (did you mean desk?)", None, "desk, breakers, defaults, underlyings, instruments"),
    ),
}


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in list(os.environ):
        if name.upper().startswith("BULWARK_"):
            monkeypatch.delenv(name)
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("BULWARK_HOME", str(folder))
    return folder


def settings_problem(home: Path, text: str) -> str:
    (home / "bulwark.toml").write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


def limits_problem(old: str, new: str) -> str:
    text = DEFAULT_LIMITS_PATH.read_text(encoding="utf-8")
    assert text.count(old) == 1
    with pytest.raises(LimitsError) as caught:
        parse_limits(text.replace(old, new), "limits.toml")
    assert len(caught.value.problems) == 1, caught.value.problems
    return caught.value.problems[0]


@pytest.mark.parametrize("kind", list(CASES))
def test_both_documents_give_one_line_of_the_same_shape(home: Path, kind: str) -> None:
    settings_text, (old, new), settings_says, limits_says = CASES[kind]
    lines = [
        (settings_problem(home, settings_text), settings_says, f"in {home / 'bulwark.toml'}"),
        (limits_problem(old, new), limits_says, None),  # one file: no source to name
    ]
    for line, (path, value, problem, section, allowed), source in lines:
        assert "\n" not in line
        match = LINE.fullmatch(line)
        assert match is not None, line
        assert (match["path"], match["value"], match["source"], match["section"]) == (path, value, source, section), line
        assert match["problem"].startswith(problem), line
        assert match["allowed"].startswith(allowed), line
    if "top-level" in kind:
        assert all("; allowed keys at the top level: " in line for line, _, _ in lines)
