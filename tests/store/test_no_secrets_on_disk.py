"""Plant known secrets where a careless desk would write them, run a full simulate, scan every byte."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

from tests.support.calendar import cover_today

ROOT = Path(__file__).resolve().parents[2]


def test_simulate_writes_no_secret_anywhere_in_the_data_folder(tmp_path: Path) -> None:
    home = tmp_path / "desk"
    home.mkdir()
    planted = {
        "bulwark/breeze.api_key": f"AK{secrets.token_hex(12)}",
        "bulwark/breeze.api_secret": f"SEC{secrets.token_hex(16)}",
        "bulwark/breeze.session_token": f"{secrets.randbelow(10**8):08d}{secrets.token_hex(4)}",
    }
    keyring_file = tmp_path / "keyring.json"
    keyring_file.write_text(json.dumps(planted))
    token = planted["bulwark/breeze.session_token"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    env.update(
        BULWARK_HOME=str(cover_today(home)),
        BULWARK_PAPER__JOURNAL="true",
        PYTHON_KEYRING_BACKEND="tests.support.file_keyring.TestFileKeyring",
        BULWARK_TEST_KEYRING_FILE=str(keyring_file),
        PYTHONPATH=str(ROOT),
        # Secrets pasted into settings where they do not belong: a URL query and a URL password.
        BULWARK_BREEZE_API_URL=f"https://api.example.test/v1/?session_token={token}",
        BULWARK_BREEZE_STREAM_URL=f"wss://user:{planted['bulwark/breeze.api_secret']}@stream.example.test/",
        BULWARK_LOG_LEVEL="DEBUG",
    )
    proc = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "simulate", "--seconds", "2", "--orders-per-sec", "6", "--json"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["audit"]["verified"] is True
    files = [p for p in home.rglob("*") if p.is_file()]
    assert any(p.name == "bulwark.db" for p in files) and any(p.suffix == ".log" for p in files)
    # the settings were recorded (so the planting reached the chain's input), just not the secrets
    assert b"stream.example.test" in b"".join(p.read_bytes() for p in files)
    for name, value in planted.items():
        for path in files:
            assert value.encode() not in path.read_bytes(), f"{name} found in {path.relative_to(home)}"
        assert value not in proc.stdout and value not in proc.stderr
