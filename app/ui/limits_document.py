"""The limits document as the editor handles it: TOML written back from a table, the field-by-field
difference of two documents, and where in a TOML text (which line) each problem belongs.

No Qt here: the form, the diff view and the panel build on these, and the tests read them directly.
A problem of :class:`~app.engine.risk.limits.LimitsError` starts with the TOML path of its field
(``desk.max_net_exposure_inr = ...: ...``, ``underlyings.NIFTY: ...``; see
:mod:`app.validation_messages`), so :func:`problem_path` reads it back from there.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from app.domain.money import format_inr, rupees_to_paise
from app.ui.formatting import inr, inr_short
from app.validation_messages import field_path, quote_key

# A TOML path at the start of a problem: bare or quoted keys joined by dots, list indices.
_KEY = r'(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*")'
_PATH_RE = re.compile(rf"^({_KEY}(?:\.{_KEY}|\[\d+\])*)(?= = |: )")
_PART_RE = re.compile(rf"{_KEY}|\[\d+\]")
_SYNTAX_LINE_RE = re.compile(r"\(at line (\d+), column \d+\)")
_TABLE_RE = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")
_ASSIGN_RE = re.compile(rf"^\s*({_KEY}(?:\s*\.\s*{_KEY})*)\s*=")
_PLAIN_NUMBER_RE = re.compile(r"^[+-]?\d+(\.\d+)?$")
_WHOLE_RE = re.compile(r"^[+-]?\d[\d_]*$")
_LAKH_PAISE = 100_000 * 100


# --------------------------------------------------------------------------------------------
# Paths
# --------------------------------------------------------------------------------------------


def split_path(path: str) -> tuple[str, ...]:
    """``instruments."NSE:RELIANCE".max_order_lots`` -> ("instruments", "NSE:RELIANCE", "max_order_lots");
    a list index stays as written ("[2]")."""
    parts = []
    for part in _PART_RE.findall(path):
        if part.startswith('"'):
            parts.append(json.loads(part))
        else:
            parts.append(part)
    return tuple(parts)


def problem_path(problem: str) -> tuple[str, ...]:
    """The field a problem names, as its keys (``()``: the whole document, such as a TOML syntax error)."""
    match = _PATH_RE.match(problem)
    if match is None:
        return ()
    return tuple(part for part in split_path(match.group(1)) if not part.startswith("["))


def syntax_error_line(problem: str) -> int | None:
    """The 1-based line of a TOML syntax error, which the message names; None for any other problem."""
    match = _SYNTAX_LINE_RE.search(problem)
    return int(match.group(1)) if match else None


def line_index(text: str) -> dict[tuple[str, ...], int]:
    """Where each table and key of a TOML text is written: path -> 1-based line.

    A plain reading line by line, enough for a limits file: ``[table]`` headers, ``key = value``
    lines (dotted keys too), and the keys of an inline table on the line that holds it. It never
    fails: a line it cannot read places nothing.
    """
    index: dict[tuple[str, ...], int] = {}
    table: tuple[str, ...] = ()
    for number, line in enumerate(text.splitlines(), start=1):
        header = _TABLE_RE.match(line)
        if header is not None and not line.lstrip().startswith("[["):
            table = _keys(header.group(1))
            index.setdefault(table, number)
            continue
        assign = _ASSIGN_RE.match(line)
        if assign is None:
            continue
        path = table + _keys(assign.group(1))
        index.setdefault(path, number)
        rest = line[assign.end():]
        if rest.lstrip().startswith("{"):
            for inner in re.finditer(rf"({_KEY})\s*=", rest):
                index.setdefault(path + _keys(inner.group(1)), number)
    return index


def _keys(dotted: str) -> tuple[str, ...]:
    return tuple(json.loads(part) if part.startswith('"') else part for part in re.findall(_KEY, dotted))


def line_of(path: tuple[str, ...], index: Mapping[tuple[str, ...], int]) -> int:
    """The line of ``path``, else of its nearest enclosing table written in the text, else line 1."""
    for end in range(len(path), 0, -1):
        if path[:end] in index:
            return index[path[:end]]
    return 1


# --------------------------------------------------------------------------------------------
# Writing TOML
# --------------------------------------------------------------------------------------------


def render_toml(document: Mapping[str, Any], header: str = "") -> str:
    """A limits document (normalised, or as the form holds it) as TOML text that reads it back the same.

    Tables of tables (``underlyings``, ``instruments``) get one ``[underlyings.NAME]`` section each;
    a value of a type TOML cannot hold (None) is left out.
    """
    out: list[str] = [header] if header else []
    top = {k: v for k, v in document.items() if not isinstance(v, Mapping)}
    if top:
        out.append(_assignments(top))
    for name, value in document.items():
        if isinstance(value, Mapping):
            _table(out, (name,), value)
    return "\n".join(part for part in out if part).rstrip("\n") + "\n"


def _table(out: list[str], path: tuple[str, ...], table: Mapping[str, Any]) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
    tables = {k: v for k, v in table.items() if isinstance(v, Mapping)}
    if scalars or not tables:
        out.append(f"[{field_path(path)}]\n{_assignments(scalars)}")
    for name, value in tables.items():
        _table(out, (*path, name), value)


def _assignments(values: Mapping[str, Any]) -> str:
    lines = [f"{quote_key(key)} = {toml_value(key, value)}\n" for key, value in values.items() if value is not None]
    return "".join(lines)


def toml_value(key: str, value: Any) -> str:
    """One value as TOML; a normalised amount ("25000.00") is written as the plain number it is."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return _number_text(value)
    if isinstance(value, str):
        if key.endswith(("_inr", "_pct")) and _PLAIN_NUMBER_RE.match(value):
            return _decimal_literal(value)
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(key, item) for item in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)


def _number_text(value: float) -> str:
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value)


def _decimal_literal(text: str) -> str:
    amount = Decimal(text)
    if amount == amount.to_integral_value():
        return str(int(amount))
    # Quoted keeps it exact to the paisa (a TOML float would go through binary).
    return json.dumps(format(amount.normalize(), "f"))


def form_value(kind: str, text: str) -> Any:
    """What the operator typed, as the document holds it: whole numbers as integers, other numbers as
    text the schema reads exactly; anything else is passed on as typed, so the schema names the problem."""
    text = text.strip()
    if kind == "count":
        return int(text.replace("_", "")) if _WHOLE_RE.match(text) else text
    if _WHOLE_RE.match(text):
        return int(text.replace("_", ""))
    if kind == "fraction":
        try:
            return float(text)
        except ValueError:
            return text
    return text


# --------------------------------------------------------------------------------------------
# Differences
# --------------------------------------------------------------------------------------------


_MISSING = object()  # a field absent from one side: differs from any value, None included


@dataclass(frozen=True, slots=True)
class FieldChange:
    """One field that differs: its TOML path, and its value on each side (None: not set there)."""

    path: str
    before: str | None
    after: str | None


def flatten(document: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every leaf of a document by its TOML path; an empty table is a leaf (it still covers its instrument)."""
    leaves: dict[str, Any] = {}
    for key, value in document.items():
        if isinstance(value, Mapping) and value:
            leaves.update(flatten(value, (*prefix, key)))
        else:
            leaves[field_path((*prefix, key))] = value
    return leaves


def field_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[FieldChange]:
    """The fields whose values differ between two normalised documents, in document order."""
    before, after = flatten(old), flatten(new)
    order = list(before) + [path for path in after if path not in before]
    return [
        FieldChange(path, show_value(path, before[path]) if path in before else None,
                    show_value(path, after[path]) if path in after else None)
        for path in order
        if before.get(path, _MISSING) != after.get(path, _MISSING)
    ]


def show_value(path: str, value: Any) -> str:
    """A normalised value as the operator reads it: ₹ with lakh/crore, 5 %, lists with commas."""
    key = split_path(path)[-1] if path else ""
    if isinstance(value, Mapping):
        return "(empty section)" if not value else "{" + ", ".join(f"{k} = {show_value(k, v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value) if value else "(none)"
    if key.endswith("_inr"):
        return money_text(value)
    if key.endswith("_pct"):
        return f"{_trim(value)} %"
    if key.endswith("_seconds"):
        return f"{_trim(value)} s"
    return str(value)


def money_text(value: Any) -> str:
    """Rupees as '₹25,00,000 (₹25.00 L)', or the value as written when it is no amount."""
    try:
        paise = rupees_to_paise(value)
    except (ValueError, ArithmeticError):
        return str(value)
    full = format_inr(paise) if paise % 100 else inr(paise)
    # Below a lakh the full amount is already short.
    return full if abs(paise) < _LAKH_PAISE else f"{full} ({inr_short(paise)})"


def _trim(value: Any) -> str:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        return str(value)
    return format(amount.normalize(), "f") if amount.is_finite() else str(value)


# --------------------------------------------------------------------------------------------
# Patching a TOML text in place (the operator's comments stay)
# --------------------------------------------------------------------------------------------


def patch_toml(text: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> str | None:
    """``text`` (which reads as ``old``) with its values changed to read as ``new``, each on its own line,
    comments and layout kept; None when a change cannot be made that way (the caller writes the whole text)."""
    before, after = flatten(old), flatten(new)
    if before.keys() != after.keys():
        return None  # a key added or removed: where it belongs is the renderer's business
    lines = text.splitlines(keepends=True)
    index = line_index(text)
    for path, value in after.items():
        if before[path] == value:
            continue
        keys = split_path(path)
        number = index.get(keys)
        if number is None or any(part.startswith("[") for part in keys):
            return None
        patched = _replace_value(lines[number - 1], toml_value(keys[-1], value))
        if patched is None:
            return None
        lines[number - 1] = patched
    result = "".join(lines)
    try:
        if tomllib.loads(result) != new:
            return None
    except tomllib.TOMLDecodeError:
        return None
    return result


def _replace_value(line: str, value: str) -> str | None:
    """The ``key = value  # comment`` line with a new value; None when the value is not all on this line."""
    head, sep, rest = line.partition("=")
    if not sep:
        return None
    body = rest.rstrip("\r\n")
    ending = rest[len(body):]
    comment_at = _comment_start(body)
    old_value = body[:comment_at] if comment_at is not None else body
    try:
        tomllib.loads(f"x = {old_value.strip()}")
    except tomllib.TOMLDecodeError:
        return None
    if old_value.lstrip().startswith("{"):
        return None  # an inline table holds several keys
    comment = body[comment_at:] if comment_at is not None else ""
    gap = old_value[len(old_value.rstrip()):] if comment else ""
    width = len(old_value.rstrip())
    new_value = f" {value}"
    if comment:
        # Keep the comment's column when the new value fits before it.
        new_value = new_value.ljust(width) + (gap or " ")
    return f"{head}={new_value}{comment}{ending}"


def _comment_start(body: str) -> int | None:
    quote: str | None = None
    escaped = False
    for at, char in enumerate(body):
        if quote is not None:
            if escaped:
                escaped = False
            elif char == "\\" and quote == '"':
                escaped = True
            elif char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return at
    return None
