"""The SDK's import-time hazards, contained: each check runs in a fresh interpreter, since the SDK
can be imported only once per process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.breeze_emulator import default_contracts
from tests.breeze_emulator.master import build_master_zip

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]

# Refuses every outgoing connection in the child interpreter and notes where it went. It sits on
# socket.socket itself: urllib3 2 (under requests) connects through socket.socket.connect, never
# through socket.create_connection, so a guard on the latter misses every HTTP request.
NETWORK_GUARD = """
import socket
opened = []
def _refuse(self, address, *args, **kwargs):
    opened.append(repr(address))
    raise OSError("no network in this test")
def _refuse_ex(self, address, *args, **kwargs):
    opened.append(repr(address))
    return 111
socket.socket.connect = _refuse
socket.socket.connect_ex = _refuse_ex
"""


def run_python(code: str, cwd: Path, *, offline: bool = False) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter (behind ``NETWORK_GUARD`` when ``offline``); its last line is JSON."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("BULWARK_")}
    env["PYTHONPATH"] = str(ROOT)
    source = (NETWORK_GUARD if offline else "") + textwrap.dedent(code)
    proc = subprocess.run([sys.executable, "-c", source], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result: dict[str, object] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_importing_the_sdk_touches_neither_the_internet_nor_the_working_directory(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "SecurityMaster.zip").write_bytes(build_master_zip(default_contracts()))
    work = tmp_path / "work"
    work.mkdir()
    result = run_python(f"""
        import json, logging, sys, threading
        from pathlib import Path
        records = []
        class Keep(logging.Handler):
            def emit(self, record):
                records.append((record.name, record.levelname))
        logging.getLogger().addHandler(Keep())
        logging.getLogger().setLevel(logging.DEBUG)
        import app.brokers.breeze
        lazy = "breeze_connect.breeze_connect" not in sys.modules
        from app.brokers.breeze.sdk import Endpoints, load_sdk
        cache = Path({str(cache)!r})
        sdk = load_sdk(Endpoints(api_url="http://127.0.0.1:9/api/"), cache / "SecurityMaster.zip", cache / "sdk")
        import config
        api = logging.getLogger("APILogger")
        api.debug("account data at debug")
        api.error("an error the desk must see")
        print(json.dumps({{
            "lazy": lazy,
            "opened": opened,
            "cwd_entries": sorted(p.name for p in Path.cwd().iterdir()),
            "sdk_dir": sorted(p.name for p in (cache / "sdk").iterdir()),
            "api_handlers": len(api.handlers),
            "ws_handlers": len(logging.getLogger("WebsocketLogger").handlers),
            "api_level": api.level,
            "records": records,
            "api_url": config.API_URL,
            "master_url": config.SECURITY_MASTER_URL,
            "guarded": type(sdk.requests).__name__,
        }}))
    """, work, offline=True)
    assert result["lazy"] is True, "importing the adapter package must not import the SDK"
    assert result["opened"] == [], "the import must not reach the network"
    assert result["cwd_entries"] == [], "no ./logs in the working directory"
    assert result["sdk_dir"] == [], "the SDK's log files are removed after its handlers are closed"
    assert result["api_handlers"] == 0 and result["ws_handlers"] == 0
    assert result["api_level"] == 20  # INFO: the SDK's DEBUG lines carry account data
    records = result["records"]
    assert isinstance(records, list)
    assert ["APILogger", "ERROR"] in records and ["APILogger", "DEBUG"] not in records
    assert result["api_url"] == "http://127.0.0.1:9/api/"
    assert str(result["master_url"]).startswith("file://")
    assert result["guarded"] == "HttpGuard"


def test_the_network_guard_catches_a_real_http_request(tmp_path: Path) -> None:
    """The guard must see what the SDK would do: requests (urllib3 2), urllib and a raw socket.

    Found: the guard patched socket.create_connection, which urllib3 2 never calls, so a
    requests.get under it reached the network unseen.
    """
    result = run_python("""
        import json, socket, urllib.request
        import requests
        outcomes = []
        try:
            requests.get("http://192.0.2.1:8080/SecurityMaster.zip", timeout=2)
        except requests.ConnectionError as exc:
            outcomes.append("requests refused")
        try:
            urllib.request.urlopen("http://192.0.2.1:8081/", timeout=2)
        except OSError:
            outcomes.append("urllib refused")
        probe = socket.socket()
        outcomes.append(f"connect_ex {probe.connect_ex(('192.0.2.1', 8082))}")
        probe.close()
        print(json.dumps({"opened": opened, "outcomes": outcomes}))
    """, tmp_path, offline=True)
    assert result["outcomes"] == ["requests refused", "urllib refused", "connect_ex 111"]
    assert result["opened"] == ["('192.0.2.1', 8080)", "('192.0.2.1', 8081)", "('192.0.2.1', 8082)"]


def test_a_foreign_module_named_config_is_refused(tmp_path: Path) -> None:
    result = run_python(f"""
        import json, sys, types
        from pathlib import Path
        sys.modules["config"] = types.ModuleType("config")
        from app.brokers.base import BrokerError
        from app.brokers.breeze.sdk import Endpoints, load_sdk
        try:
            load_sdk(Endpoints(), Path({str(tmp_path)!r}) / "none.zip", Path({str(tmp_path)!r}) / "sdk")
        except BrokerError as exc:
            print(json.dumps({{"code": str(exc.code), "message": exc.message,
                               "imported": "breeze_connect.breeze_connect" in sys.modules}}))
    """, tmp_path)
    assert result["code"] == "UNAVAILABLE"
    assert "module named 'config'" in str(result["message"])
    assert result["imported"] is False
