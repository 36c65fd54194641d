"""Production code checks with ``if ...: raise``, never ``assert``: ``python -O`` strips every assert, so a
check made with one silently vanishes (an unpriced order reaching the gate's arithmetic, say)."""

from __future__ import annotations

import ast
from pathlib import Path

APP = Path(__file__).resolve().parents[1] / "app"


def asserts_in(source: str, name: str) -> list[int]:
    return [node.lineno for node in ast.walk(ast.parse(source, name)) if isinstance(node, ast.Assert)]


def test_no_assert_statement_in_the_app_package() -> None:
    found = {
        path.relative_to(APP).as_posix(): lines
        for path in sorted(APP.rglob("*.py"))
        if (lines := asserts_in(path.read_text(encoding="utf-8"), str(path)))
    }
    assert found == {}, f"assert statements (gone under python -O) in: {found}"


def test_the_scan_sees_an_assert_wherever_it_is() -> None:
    source = "def f(x):\n    if x:\n        class C:\n            def g(self):\n                assert x, 'why'\n"
    assert asserts_in(source, "planted.py") == [5]
