"""Logging: line format, rotation, idempotence."""

from __future__ import annotations

import logging
import os
import re
from datetime import datetime
from pathlib import Path

import pytest

from app.logs import configure_logging, unconfigure_logging
from app.settings import load_settings
from tests.support.calendar import cover_today

LINE = re.compile(
    r"^(?P<ts>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}) "
    r"(?P<level>DEBUG|INFO|WARNING|ERROR|CRITICAL) "
    r"(?P<name>[\w.]+): "
    r"(?P<msg>.*)$"
)


@pytest.fixture
def settings_for(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.upper().startswith("BULWARK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("BULWARK_HOME", str(cover_today(tmp_path / "home")))
    root = logging.getLogger()
    level = root.level
    yield load_settings
    unconfigure_logging()
    root.setLevel(level)


def log_lines(path: Path) -> list[str]:
    for handler in logging.getLogger().handlers:
        handler.flush()
    return path.read_text(encoding="utf-8").splitlines()


def test_file_location_and_line_format(settings_for) -> None:
    settings = settings_for()
    path = configure_logging(settings, console=False)
    assert path == settings.home / "logs" / "bulwark.log"

    logging.getLogger("app.engine.oms").info("order %s acknowledged", 42)
    logging.getLogger("app.brokers.paper").warning("latency high")

    lines = log_lines(path)
    assert len(lines) == 2
    first, second = (LINE.match(line) for line in lines)
    assert first and second, lines
    assert (first["level"], first["name"], first["msg"]) == (
        "INFO",
        "app.engine.oms",
        "order 42 acknowledged",
    )
    assert (second["level"], second["name"]) == ("WARNING", "app.brokers.paper")

    stamp = datetime.fromisoformat(first["ts"])
    assert stamp.utcoffset() is not None, "timestamps carry their UTC offset"
    assert first["ts"].endswith("+05:30"), "IST"
    assert abs((datetime.now(stamp.tzinfo) - stamp).total_seconds()) < 60


def test_level_from_settings(settings_for) -> None:
    path = configure_logging(settings_for(log_level="WARNING"), console=False)
    log = logging.getLogger("app.test")
    log.info("hidden")
    log.debug("hidden too")
    log.error("shown")
    lines = log_lines(path)
    assert len(lines) == 1 and lines[0].endswith("ERROR app.test: shown")


def test_one_line_per_event_and_traceback_follows(settings_for) -> None:
    path = configure_logging(settings_for(), console=False)
    log = logging.getLogger("app.engine")
    log.info("two\nlines")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("task failed")
    lines = log_lines(path)
    assert LINE.match(lines[0]) and lines[0].endswith("app.engine: two\\nlines")
    assert LINE.match(lines[1]) and lines[1].endswith("ERROR app.engine: task failed")
    assert lines[2].startswith("Traceback")
    assert lines[-1] == "RuntimeError: boom"


def test_console_handler_writes_stderr(settings_for, capsys) -> None:
    configure_logging(settings_for(), console=True)
    logging.getLogger("app.cli").info("to the console")
    err = capsys.readouterr().err.splitlines()
    mine = [line for line in err if line.endswith("app.cli: to the console")]
    assert len(mine) == 1 and LINE.match(mine[0])


def test_configure_twice_does_not_duplicate_lines(settings_for, capsys) -> None:
    settings = settings_for()
    path = configure_logging(settings, console=True)
    assert configure_logging(settings, console=True) == path
    logging.getLogger("app.test").warning("once")
    assert len([line for line in log_lines(path) if line.endswith("once")]) == 1
    err = capsys.readouterr().err
    assert err.count("app.test: once") == 1

    configure_logging(settings, console=False)  # reconfiguring drops the console handler
    logging.getLogger("app.test").warning("file only")
    assert "file only" not in capsys.readouterr().err
    assert log_lines(path)[-1].endswith("app.test: file only")


def test_other_handlers_are_left_alone(settings_for) -> None:
    foreign = logging.NullHandler()
    root = logging.getLogger()
    root.addHandler(foreign)
    try:
        configure_logging(settings_for(), console=False)
        configure_logging(settings_for(), console=False)
        assert foreign in root.handlers
    finally:
        root.removeHandler(foreign)


def test_rotation(settings_for) -> None:
    settings = settings_for(log_max_bytes=64 * 1024, log_backups=2)
    path = configure_logging(settings, console=False)
    log = logging.getLogger("app.test")
    payload = "x" * 1000
    for i in range(300):  # ~310 KB through a 64 KiB file with 2 backups
        log.info("%04d %s", i, payload)
    log_lines(path)

    files = sorted(p.name for p in path.parent.iterdir())
    assert files == ["bulwark.log", "bulwark.log.1", "bulwark.log.2"]
    for p in path.parent.iterdir():
        assert p.stat().st_size <= 64 * 1024
    newest = log_lines(path)[-1]
    assert LINE.match(newest) and "0299 " in newest


# --- a log file that cannot be written ----------------------------------------------------------

FULL = Path("/dev/full")  # every write fails with ENOSPC, as on a full disk


@pytest.mark.skipif(not FULL.exists(), reason="needs /dev/full")
def test_a_full_disk_prints_one_line_then_counts(settings_for, capsys) -> None:
    settings = settings_for()
    logs = settings.home / "logs"
    logs.mkdir()
    (logs / "bulwark.log").symlink_to(FULL)
    configure_logging(settings, console=False)
    for i in range(234):
        logging.getLogger("app.engine").warning("line %d", i)
    err = capsys.readouterr().err.splitlines()
    first = f"bulwark: cannot write the log file {logs / 'bulwark.log'}: No space left on device; further lines it loses are counted"
    assert err == [first]
    unconfigure_logging()
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("bulwark: ") and "log lines could not be written to" in err[0], err
    assert int(err[0].split()[1]) >= 234 and "No space left on device" in err[0]


RECOVERS = r"""
import logging, resource, signal, sys
from app.logs import configure_logging
from app.settings import load_settings

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
settings = load_settings()
path = configure_logging(settings, console=False)
log = logging.getLogger("app.engine")
log.warning("first")
soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
resource.setrlimit(resource.RLIMIT_FSIZE, (path.stat().st_size, hard))
for i in range(50):
    log.warning("lost %d", i)
resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
log.warning("back")
logging.shutdown()
"""


@pytest.mark.skipif(os.name != "posix", reason="RLIMIT_FSIZE")
def test_the_lost_lines_are_counted_in_the_log_once_it_can_be_written_again(settings_for, tmp_path: Path) -> None:
    import subprocess
    import sys

    home = settings_for().home
    proc = subprocess.run([sys.executable, "-c", RECOVERS], capture_output=True, text=True, timeout=60, check=False,
                          env={**os.environ, "BULWARK_HOME": str(home)}, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == [
        f"bulwark: cannot write the log file {home / 'logs' / 'bulwark.log'}: File too large; further lines it loses are counted"]
    lines = (home / "logs" / "bulwark.log").read_text().splitlines()
    messages = [LINE.match(line)["msg"] for line in lines]  # type: ignore[index]
    assert messages == ["first", "50 log lines were lost while the log file could not be written (File too large)", "back"]
