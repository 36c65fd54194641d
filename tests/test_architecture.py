"""The package layering in DESIGN.md, held by import-linter's contracts in pyproject.toml.

Three checks: the contracts are declared as the design says; the real code keeps them; and each
contract really bites, shown by running import-linter on a scratch copy of ``app/`` with one
forbidden import planted in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = REPO / "pyproject.toml"

DOMAIN = "The domain imports nothing of ours"
NO_QT = "Engine, brokers and store never touch Qt or the UI"
LAYERS = "Layers point down: ui, engine, store/brokers, domain"
RISK = "The risk components never import the engine"
CLIENT = "The API client stands alone"


def importlinter_config() -> dict:
    with open(PYPROJECT, "rb") as fh:
        return tomllib.load(fh)["tool"]["importlinter"]


def lint_imports(cwd: Path, *, extra_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run import-linter's command line from this interpreter's environment."""
    script = Path(sys.executable).with_name("lint-imports")
    if script.exists():
        command = [str(script)]
    else:  # e.g. a venv whose scripts live elsewhere: same tool, same interpreter
        command = [
            sys.executable,
            "-c",
            "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())",
        ]
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    return subprocess.run(
        [*command, "--config", str(cwd / "pyproject.toml"), "--no-cache", "--no-logo"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_contracts_are_declared_as_designed() -> None:
    config = importlinter_config()
    assert config["root_packages"] == ["app"]
    # forbidding external packages (PySide6, ...) needs them in the graph
    assert str(config.get("include_external_packages")).lower() == "true"
    contracts = {c["name"]: c for c in config["contracts"]}

    domain = contracts[DOMAIN]
    assert domain["type"] == "forbidden"
    assert domain["source_modules"] == ["app.domain"]
    forbidden = set(domain["forbidden_modules"])
    assert forbidden == {"app.*"} or forbidden >= {
        "app.engine",
        "app.brokers",
        "app.store",
        "app.security",
        "app.ui",
        "app.cli",
        "app.settings",
        "app.logs",
    }

    no_qt = contracts[NO_QT]
    assert no_qt["type"] == "forbidden"
    assert set(no_qt["source_modules"]) >= {"app.engine", "app.brokers", "app.store", "app.domain", "app.simulation", "app.desk", "app.api"}
    assert set(no_qt["forbidden_modules"]) >= {"app.ui", "PySide6", "qasync", "pyqtgraph"}
    assert not no_qt.get("allow_indirect_imports"), "indirect imports of Qt count too"

    risk = contracts[RISK]
    assert risk["type"] == "forbidden"
    assert risk["source_modules"] == ["app.engine.risk"]
    assert risk["forbidden_modules"] == ["app.engine.engine"]
    assert not risk.get("allow_indirect_imports"), "a route through another module closes the cycle too"
    assert not risk.get("exclude_type_checking_imports"), "an import for type checking is still an import"

    layers = contracts[LAYERS]
    assert layers["type"] == "layers"
    assert layers["layers"] == [
        "app.cli",
        "app.ui | app.simulation | app.api",
        "app.desk | app.order_flow",
        "app.engine",
        "app.store | app.brokers",
        "app.domain",
    ]

    client = contracts[CLIENT]
    assert client["type"] == "forbidden"
    assert client["source_modules"] == ["app.api.client"]
    assert set(client["forbidden_modules"]) >= {"app.engine", "app.desk", "app.store", "fastapi", "sqlalchemy", "PySide6"}


def test_the_code_keeps_every_contract() -> None:
    result = lint_imports(REPO)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    for contract in importlinter_config()["contracts"]:
        assert f"{contract['name']} KEPT" in output, output
    assert "0 broken" in output, output


@pytest.mark.parametrize(
    ("where", "code", "contract"),
    [
        ("app/domain/_probe.py", "import app.settings\n", DOMAIN),
        ("app/domain/_probe.py", "import app.engine\n", DOMAIN),
        ("app/engine/_probe.py", "from PySide6 import QtCore\n", NO_QT),
        ("app/store/_probe.py", "import qasync\n", NO_QT),
        ("app/brokers/_probe.py", "import pyqtgraph\n", NO_QT),
        ("app/brokers/_probe.py", "import app.engine\n", LAYERS),
        ("app/store/_probe.py", "import app.ui\n", LAYERS),
        ("app/engine/risk/_probe.py", "import app.engine.engine\n", RISK),
        ("app/api/_probe.py", "from PySide6 import QtCore\n", NO_QT),
        ("app/api/_probe.py", "import app.ui\n", LAYERS),
        ("app/api/client/_probe.py", "import app.engine\n", CLIENT),
        ("app/api/client/_probe.py", "import fastapi\n", CLIENT),
        ("app/engine/risk/_probe.py", "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from ..engine import Engine\n", RISK),
    ],
)
def test_each_contract_bites(tmp_path: Path, where: str, code: str, contract: str) -> None:
    shutil.copytree(
        REPO / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__", "*.pyc")
    )
    shutil.copy2(PYPROJECT, tmp_path / "pyproject.toml")
    probe = tmp_path / where
    probe.write_text(f'"""A forbidden import planted by the test."""\n{code}', encoding="utf-8")

    result = lint_imports(tmp_path, extra_path=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert f"{contract} BROKEN" in output, output
    module = where.removesuffix(".py").replace("/", ".")
    assert module in output, "the report names the offending module"
