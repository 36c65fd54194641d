"""The argument types and the missing-store check every sub-command shares (app/cli/common.py)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import pytest

from app.cli.common import (
    absent_database,
    no_database,
    non_negative_float,
    positive_float,
)


def parse_error(parse: object, text: str) -> str:
    assert callable(parse)
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        parse(text)
    return str(caught.value)


@pytest.mark.parametrize("text", ["abc", "", " ", "1,5", "0x10"])
def test_text_that_is_no_number_is_refused_by_both(text: str) -> None:
    assert parse_error(positive_float, text) == f"{text!r} is not a number"
    assert parse_error(non_negative_float, text) == f"{text!r} is not a number"


# 1e309 overflows to inf: a finite-looking literal must not slip through as an endless timeout.
@pytest.mark.parametrize("text", ["nan", "NaN", "-nan", "inf", "-inf", "Infinity", "1e309", "-1e309", "-1", "-0.001"])
def test_non_finite_or_negative_numbers_are_refused_by_both(text: str) -> None:
    assert parse_error(positive_float, text) == f"{text!r} must be a positive finite number"
    assert parse_error(non_negative_float, text) == f"{text!r} must be a finite number, zero or more"


@pytest.mark.parametrize("text", ["0", "0.0", "-0"])
def test_zero_is_refused_as_positive_and_taken_as_non_negative(text: str) -> None:
    assert parse_error(positive_float, text) == f"{text!r} must be a positive finite number"
    assert non_negative_float(text) == 0


@pytest.mark.parametrize("text, value", [("1", 1.0), ("0.25", 0.25), (" 2.5 ", 2.5), ("1e-9", 1e-9), ("1e308", 1e308)])
def test_finite_positive_numbers_are_taken_by_both(text: str, value: float) -> None:
    assert positive_float(text) == value
    assert non_negative_float(text) == value
    assert math.isfinite(positive_float(text))


def test_an_error_reaches_the_operator_as_one_line_naming_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="main.py")
    parser.add_argument("--timeout", type=positive_float)
    with pytest.raises(SystemExit) as exited:
        parser.parse_args(["--timeout", "nan"])
    assert exited.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "main.py: error: argument --timeout: 'nan' must be a positive finite number")


def test_a_missing_sqlite_file_is_named_with_what_it_means_and_not_created(tmp_path: Path) -> None:
    path = tmp_path / "bulwark.db"
    url = f"sqlite:///{path}"
    assert absent_database(url) == path
    assert no_database(url, "nothing to back up") == f"no database at {path}: nothing to back up"
    assert not path.exists()


def test_a_sqlite_uri_filename_names_the_file_not_the_uri(tmp_path: Path) -> None:
    path = tmp_path / "bulwark.db"
    assert no_database(f"sqlite:///file:{path}?mode=ro&uri=true", "x") == f"no database at {path}: x"


def test_an_existing_file_or_a_store_that_is_no_file_passes(tmp_path: Path) -> None:
    (tmp_path / "bulwark.db").touch()
    # An emptied file passes here: opening it is what refuses it as a lost store.
    assert no_database(f"sqlite:///{tmp_path / 'bulwark.db'}", "x") is None
    assert no_database("sqlite://", "x") is None
    assert no_database("sqlite:///:memory:", "x") is None
    assert no_database("postgresql+psycopg://desk@127.0.0.1:1/bulwark", "x") is None
