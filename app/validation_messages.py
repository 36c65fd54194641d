"""One-line messages for pydantic's validation errors: the settings and the risk limits share them.

Every message reads ``path = value (source): problem; allowed: what the field accepts``, with
the path written as TOML would (``instruments."NSE:RELIANCE".max_order_lots``, ``desk.restricted[2]``).
A missing field reads ``path: missing; allowed: ...``; an unknown key names the closest known
key and every key allowed where it stands.

What differs between documents is described by a :class:`MessageStyle`: the word for one of
its keys, where a value came from (the settings have three sources; the limits one file), what
each field accepts, and how a value is shown (the settings mask a password in a URL).

This module sits outside the package layers and imports only pydantic and the standard library,
so both ``app.settings`` (which must load before anything heavy) and ``app.engine`` may use it.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

__all__ = [
    "KIB",
    "MIB",
    "Loc",
    "MessageStyle",
    "describe_allowed",
    "describe_error",
    "describe_errors",
    "field_path",
    "model_at",
    "quote_key",
    "show_value",
]

KIB = 1024
MIB = 1024 * KIB

Loc = tuple[str | int, ...]

# pydantic's location of a dict key that failed its own validator: (..., key, "[key]")
_KEY_MARK = "[key]"

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def quote_key(key: str) -> str:
    """A key as TOML would need it written: NIFTY, "NSE:RELIANCE"."""
    return key if _BARE_KEY.match(key) else '"' + key.replace("\\", "\\\\").replace('"', '\\"') + '"'


def field_path(loc: Iterable[str | int]) -> str:
    """A location as a TOML path: ``instruments."NSE:RELIANCE".max_order_lots``, ``desk.restricted[2]``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += ("." if text else "") + quote_key(part)
    return text


def show_value(value: Any, width: int, mask: Callable[[str], str] | None = None) -> str:
    """``value`` as the operator wrote it (its repr), cut to ``width`` characters; a table is ``{...}``."""
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, str) and mask is not None:
        value = mask(value)
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def model_at(root: type[BaseModel], loc: Loc) -> type[BaseModel] | None:
    """The model whose fields stand at ``loc`` (``()`` is ``root``), through nested models and tables of them."""
    model = root
    parts = iter(loc)
    for part in parts:
        info = model.model_fields.get(part) if isinstance(part, str) else None
        if info is None:
            return None
        annotation = info.annotation
        if typing.get_origin(annotation) is dict:
            # a table of sections by name: the next part is the name, the section's model follows
            annotation = typing.get_args(annotation)[1]
            if next(parts, None) is None:
                return None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _unmasked(path: str, text: str) -> str:
    return text


def _no_source(loc: Loc) -> str:
    return ""


@dataclass(frozen=True, slots=True)
class MessageStyle:
    """What one document's messages need to know of it; the shape of every message is shared."""

    root: type[BaseModel]
    item: str  # the word for one key: "unknown setting", "unknown key"
    whole: str  # the path of an error about the whole document: "(settings)"
    value_width: int  # values are cut to this many characters
    # An unknown key shows its value, and the suggestion its full path: in a document read from
    # several sources the key may come from an environment variable, far from its section.
    unknown_in_full: bool
    # What the field at a location accepts ("" for nothing to say); None: from the schema
    # (a field's json_schema_extra "allowed", else its type and bounds; see describe_allowed).
    allowed: Callable[[Loc], str] | None = None
    source: Callable[[Loc], str] = _no_source  # where the value at a location came from, or ""
    mask: Callable[[str, str], str] = _unmasked  # (path, text) -> text safe to show
    hidden: frozenset[str] = field(default_factory=frozenset)  # keys of the root never written in the document

    def allowed_at(self, loc: Loc) -> str:
        """What the field at ``loc`` accepts, or ""."""
        if self.allowed is not None:
            return self.allowed(loc)
        model = model_at(self.root, loc[:-1]) if loc else None
        info = model.model_fields.get(str(loc[-1])) if model is not None else None
        return describe_allowed(info) if info is not None else ""

    def keys_at(self, loc: Loc) -> list[str]:
        """The keys allowed in the table at ``loc``."""
        model = model_at(self.root, loc)
        if model is None:
            return []
        return [key for key in model.model_fields if not (model is self.root and key in self.hidden)]


def describe_errors(error: ValidationError, style: MessageStyle) -> list[str]:
    """One line per problem in ``error``."""
    return [describe_error(details, style) for details in error.errors(include_url=False)]


def describe_error(error: ErrorDetails, style: MessageStyle) -> str:
    """One pydantic error as one line naming the field, the value, what is wrong and what is allowed."""
    loc: Loc = tuple(error.get("loc", ()))
    kind = error.get("type", "")
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if loc and loc[-1] == _KEY_MARK:
        return _line(field_path(loc[:-1]), message, style.allowed_at(loc))
    path = field_path(loc) or style.whole
    head = path if kind == "missing" else f"{path} = {show_value(error.get('input'), style.value_width, _masker(style, path))}"
    source = style.source(loc) if loc else ""
    if source:
        head += f" ({source})"
    if kind == "extra_forbidden":
        return _unknown(loc, head if style.unknown_in_full else path, style)
    if kind == "missing":
        what = style.allowed_at(loc) or (f"a [{path}] table" if model_at(style.root, loc) else "a value")
        return f"{head}: missing; allowed: {what}"
    if kind in ("model_type", "dict_type"):
        message = f"must be a table ([{path}])"
    # pydantic's own message for a literal already lists the choices
    return _line(head, message, "" if kind == "literal_error" else style.allowed_at(loc))


def _masker(style: MessageStyle, path: str) -> Callable[[str], str]:
    return lambda text: style.mask(path, text)


def _line(head: str, problem: str, allowed: str) -> str:
    return f"{head}: {problem}" + (f"; allowed: {allowed}" if allowed else "")


def _unknown(loc: Loc, head: str, style: MessageStyle) -> str:
    section = loc[:-1]
    keys = style.keys_at(section)
    text = f"{head}: unknown {style.item}"
    close = difflib.get_close_matches(str(loc[-1]), keys, n=1)
    if close:
        text += f" (did you mean {field_path((*section, close[0])) if style.unknown_in_full else close[0]}?)"
    if keys:
        where = f"in [{field_path(section)}]" if section else "keys at the top level"
        text += f"; allowed {where}: {', '.join(keys)}"
    return text


def describe_allowed(info: FieldInfo) -> str:
    """What a field accepts, in words: ``a number >= 0 and <= 1``, ``one of 'a', 'b'``."""
    extra = info.json_schema_extra
    if isinstance(extra, dict) and isinstance(extra.get("allowed"), str):
        return str(extra["allowed"])

    annotation = info.annotation
    optional = False
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        non_none = [a for a in args if a is not type(None)]
        optional = len(non_none) < len(args)
        annotation = non_none[0] if len(non_none) == 1 else annotation

    if typing.get_origin(annotation) is Literal:
        text = "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    elif isinstance(annotation, type) and issubclass(annotation, BaseModel):
        text = f"a table of {', '.join(annotation.model_fields)}"
    else:
        nouns: dict[Any, str] = {
            bool: "true or false",
            int: "an integer",
            float: "a number",
            str: "text",
            Path: "a path",
        }
        noun = nouns.get(annotation) or str(getattr(annotation, "__name__", annotation))
        bounds = _bounds(info.metadata)
        text = noun + (" " + " and ".join(bounds) if bounds else "")
    if optional:
        text += " (or unset)"
    return text


def _bounds(metadata: list[Any]) -> list[str]:
    bounds = []
    for meta in metadata:
        if isinstance(meta, annotated_types.Ge):
            bounds.append(f">= {_num(meta.ge)}")
        elif isinstance(meta, annotated_types.Gt):
            bounds.append(f"> {_num(meta.gt)}")
        elif isinstance(meta, annotated_types.Le):
            bounds.append(f"<= {_num(meta.le)}")
        elif isinstance(meta, annotated_types.Lt):
            bounds.append(f"< {_num(meta.lt)}")
        elif isinstance(meta, annotated_types.Interval):
            for attr, sym in (("ge", ">="), ("gt", ">"), ("le", "<="), ("lt", "<")):
                bound = getattr(meta, attr)
                if bound is not None:
                    bounds.append(f"{sym} {_num(bound)}")
    return bounds


def _num(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int) and value >= MIB and value % KIB == 0:
        unit = "MiB" if value % MIB == 0 else "KiB"
        return f"{value} ({value // (MIB if unit == 'MiB' else KIB)} {unit})"
    if isinstance(value, int) and value >= KIB and value % KIB == 0:
        return f"{value} ({value // KIB} KiB)"
    return str(value)
