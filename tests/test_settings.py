"""Settings: sources and their precedence, validation and the operator-facing error messages."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings, SettingsError, load_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean environment: no BULWARK_* variables, data folder and XDG dirs under tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("BULWARK_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path / "userhome"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))
    folder = tmp_path / "home"
    monkeypatch.setenv("BULWARK_HOME", str(folder))
    return folder


def write_toml(home: Path, text: str) -> Path:
    home.mkdir(parents=True, exist_ok=True)
    path = home / "bulwark.toml"
    path.write_text(text, encoding="utf-8")
    return path


def settings_error(**overrides: object) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(**overrides)
    return str(info.value)


# --- defaults and the data folder -------------------------------------------------------------


def test_defaults(home: Path) -> None:
    s = load_settings()
    assert s.home == home
    assert home.is_dir(), "the data folder is created"
    assert s.db_url is None
    assert s.database_url == f"sqlite:///{home / 'bulwark.db'}"
    assert s.database_url.startswith("sqlite:////")  # absolute path
    assert s.broker == "paper"
    assert s.log_level == "INFO"
    assert s.log_max_bytes == 5 * 1024 * 1024
    assert s.log_backups == 10
    assert s.log_dir == home / "logs"
    assert s.settings_file == home / "bulwark.toml"
    assert (s.paper.seed, s.paper.latency_ms, s.paper.reject_rate) == (1, 20.0, 0.0)
    assert (s.paper.tick_interval_ms, s.paper.partial_fill) == (100.0, True)
    b = s.breeze
    assert (b.api_url, b.api_v2_url, b.stream_url, b.feeds_url, b.ohlc_url, b.master_url) == (
        None,
    ) * 6
    assert s.market_protection_pct == 2.0


def test_bulwark_home_picks_the_folder(home: Path, tmp_path: Path, monkeypatch) -> None:
    other = tmp_path / "deep" / "er" / "folder"
    monkeypatch.setenv("BULWARK_HOME", str(other))
    write_toml(other, "broker = 'breeze'\n")
    s = load_settings()
    assert s.home == other
    assert other.is_dir()
    assert s.broker == "breeze", "the settings file is read from BULWARK_HOME"
    assert s.database_url == f"sqlite:///{other / 'bulwark.db'}"


def test_without_bulwark_home_uses_platform_user_data_dir(home: Path, tmp_path, monkeypatch):
    monkeypatch.delenv("BULWARK_HOME")
    s = load_settings()
    assert s.home == tmp_path / "xdg-data" / "Bulwark"
    assert s.home.is_dir()


def test_home_override_beats_environment(home: Path, tmp_path: Path) -> None:
    s = load_settings(home=tmp_path / "elsewhere")
    assert s.home == tmp_path / "elsewhere"


def test_data_folder_that_cannot_be_created(home: Path, tmp_path: Path, monkeypatch) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("BULWARK_HOME", str(blocker / "sub"))
    message = settings_error()
    assert str(blocker / "sub") in message
    assert "cannot be created" in message

    monkeypatch.setenv("BULWARK_HOME", str(blocker))
    message = settings_error()
    assert str(blocker) in message and "not a folder" in message


def test_db_url_from_environment(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("BULWARK_DB_URL", "postgresql+psycopg://bulwark@localhost/bulwark")
    s = load_settings()
    assert s.db_url == s.database_url == "postgresql+psycopg://bulwark@localhost/bulwark"


def test_bad_db_url_is_reported_without_its_password(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("BULWARK_DB_URL", "user:hunter2@localhost/db")
    message = settings_error()
    assert "BULWARK_DB_URL" in message and "db_url" in message
    assert "user:***@localhost/db" in message
    assert "hunter2" not in message


@pytest.mark.parametrize(
    "url, backend",
    [("mysql://bulwark:hunter2@db/bulwark", "'mysql'"), ("mysql+pymysql://db/x", "'mysql'"),
     ("oracle://db/x", "'oracle'"), ("postgres://bulwark:hunter2@db/bulwark", "'postgres'")],
)
def test_a_database_the_desk_does_not_support_is_refused_by_name(home: Path, monkeypatch, url: str, backend: str) -> None:
    monkeypatch.setenv("BULWARK_DB_URL", url)
    message = settings_error()
    assert f"the {backend} database is not supported" in message and "BULWARK_DB_URL" in message
    assert "hunter2" not in message
    assert len(message.splitlines()) == 1


def test_postgres_is_pointed_at_its_sqlalchemy_name(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("BULWARK_DB_URL", "postgres://db/x")
    assert "write postgresql://" in settings_error()


@pytest.mark.parametrize(
    "url, inside",
    [("sqlite:///desk.db", "desk.db"), ("sqlite:///sub/desk.db", "sub/desk.db"),
     ("sqlite+pysqlite:///desk.db?timeout=3", "desk.db?timeout=3"),
     ("sqlite:///file:desk.db?mode=ro&uri=true", "file:{home}/desk.db?mode=ro&uri=true")],
)
def test_a_relative_sqlite_path_is_inside_the_data_folder(home: Path, monkeypatch, url: str, inside: str) -> None:
    (home / "sub").mkdir(parents=True)
    monkeypatch.setenv("BULWARK_DB_URL", url)
    monkeypatch.chdir(home / "sub")
    expected = inside.format(home=home) if inside.startswith("file:") else f"{home}/{inside}"
    assert load_settings().database_url == f"{url.split(':///')[0]}:///{expected}"


def test_an_absolute_sqlite_path_and_other_databases_are_kept(home: Path, tmp_path: Path, monkeypatch) -> None:
    for url in (f"sqlite:///{tmp_path}/x.db", "sqlite://", "sqlite:///:memory:", "postgresql+psycopg://u@h/db"):
        monkeypatch.setenv("BULWARK_DB_URL", url)
        assert load_settings().database_url == url


def test_a_sqlite_file_in_a_missing_folder_is_one_line(home: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BULWARK_DB_URL", f"sqlite:///{tmp_path}/nonexistent/dir/x.db")
    message = settings_error()
    assert message == (f"invalid setting: db_url = 'sqlite:///{tmp_path}/nonexistent/dir/x.db' (from environment "
                       f"variable BULWARK_DB_URL): the folder {tmp_path}/nonexistent/dir does not exist; "
                       "create it or name another")
    # a command that only reads says "no database there" itself, and panic must still reach the desk
    assert load_settings(read_only=True).database_url.endswith("/nonexistent/dir/x.db")


@pytest.mark.skipif(os.name != "posix", reason="POSIX modes")
def test_the_data_folder_is_created_for_its_owner_only(home: Path) -> None:
    load_settings()
    assert stat.S_IMODE(home.stat().st_mode) == 0o700


# --- sources and precedence -------------------------------------------------------------------


def test_values_from_the_toml_file(home: Path) -> None:
    write_toml(
        home,
        """
broker = "breeze"
log_level = "DEBUG"
log_max_bytes = 65536
log_backups = 3
db_url = "sqlite:////tmp/other.db"

[paper]
seed = 42
latency_ms = 5.5
reject_rate = 0.25
tick_interval_ms = 10
partial_fill = false

[breeze]
api_url = "http://127.0.0.1:8765/breezeapi/api/v1/"
stream_url = "ws://127.0.0.1:8766"
""",
    )
    s = load_settings()
    assert s.broker == "breeze"
    assert s.log_level == "DEBUG"
    assert (s.log_max_bytes, s.log_backups) == (65536, 3)
    assert s.database_url == "sqlite:////tmp/other.db"
    assert s.paper.model_dump() == {
        "seed": 42,
        "latency_ms": 5.5,
        "reject_rate": 0.25,
        "tick_interval_ms": 10.0,
        "partial_fill": False,
        "journal": False,
        "account": None,
        "call_log": False,
    }
    # kept verbatim: the SDK appends paths to these, so a trailing slash matters
    assert s.breeze.api_url == "http://127.0.0.1:8765/breezeapi/api/v1/"
    assert s.breeze.stream_url == "ws://127.0.0.1:8766"
    assert s.breeze.api_v2_url is None


def test_environment_overrides_toml_and_nested_values_merge(home: Path, monkeypatch) -> None:
    write_toml(home, "log_level = 'DEBUG'\n[paper]\nseed = 42\nlatency_ms = 7\n")
    monkeypatch.setenv("BULWARK_LOG_LEVEL", "WARNING")
    monkeypatch.setenv("BULWARK_PAPER__SEED", "7")
    s = load_settings()
    assert s.log_level == "WARNING"
    assert s.paper.seed == 7
    assert s.paper.latency_ms == 7.0, "untouched keys of the same table still come from the file"


def test_overrides_beat_environment_and_none_is_ignored(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("BULWARK_BROKER", "breeze")
    monkeypatch.setenv("BULWARK_PAPER__SEED", "7")
    assert load_settings(broker=None).broker == "breeze"
    s = load_settings(broker="paper", paper={"reject_rate": 0.5})
    assert s.broker == "paper"
    assert (s.paper.seed, s.paper.reject_rate) == (7, 0.5)


@pytest.mark.parametrize(
    ("field", "env_name", "value"),
    [
        ("api_url", "BULWARK_BREEZE_API_URL", "http://127.0.0.1:9000/breezeapi/api/v1/"),
        ("api_v2_url", "BULWARK_BREEZE_API_V2_URL", "http://127.0.0.1:9000/api/v2/"),
        ("stream_url", "BULWARK_BREEZE_STREAM_URL", "http://127.0.0.1:9001"),
        ("feeds_url", "BULWARK_BREEZE_FEEDS_URL", "wss://feeds.example.test"),
        ("ohlc_url", "BULWARK_BREEZE_OHLC_URL", "ws://127.0.0.1:9002"),
        ("master_url", "BULWARK_BREEZE_MASTER_URL", "https://127.0.0.1:9000/SecurityMaster.zip"),
    ],
)
def test_breeze_endpoint_env_vars(home: Path, monkeypatch, field, env_name, value) -> None:
    write_toml(home, "[breeze]\napi_url = 'https://from-the-file.test/'\n")
    monkeypatch.setenv(env_name, value)
    s = load_settings()
    assert getattr(s.breeze, field) == value
    if field != "api_url":
        assert s.breeze.api_url == "https://from-the-file.test/"


def test_breeze_flat_env_var_beats_toml(home: Path, monkeypatch) -> None:
    write_toml(home, "[breeze]\napi_url = 'https://from-the-file.test/'\n")
    monkeypatch.setenv("BULWARK_BREEZE_API_URL", "http://127.0.0.1:1/")
    monkeypatch.setenv("BULWARK_MARKET_PROTECTION_PCT", "1.5")
    s = load_settings()
    assert s.breeze.api_url == "http://127.0.0.1:1/"
    assert s.market_protection_pct == 1.5


def test_settings_are_immutable(home: Path) -> None:
    s = load_settings()
    with pytest.raises(ValidationError, match="frozen"):
        s.broker = "breeze"  # type: ignore[misc]
    with pytest.raises(ValidationError, match="frozen"):
        s.paper.seed = 2  # type: ignore[misc]
    assert isinstance(s, Settings)


# --- bad values: every message names the key, the value and what is allowed ------------------


@pytest.mark.parametrize(
    ("toml", "key", "value", "allowed"),
    [
        ("[paper]\nreject_rate = 1.5\n", "paper.reject_rate", "1.5", ">= 0 and <= 1"),
        ("[paper]\nlatency_ms = -1\n", "paper.latency_ms", "-1", ">= 0 and <= 5000"),
        ("[paper]\ntick_interval_ms = 5\n", "paper.tick_interval_ms", "5", ">= 10 and <= 10000"),
        ("[paper]\nseed = 'x'\n", "paper.seed", "'x'", "integer"),
        ("broker = 'zerodha'\n", "broker", "zerodha", "'paper' or 'breeze'"),
        ("log_level = 'LOUD'\n", "log_level", "LOUD", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("log_max_bytes = 1000\n", "log_max_bytes", "1000", ">= 65536"),
        ("log_backups = 0\n", "log_backups", "0", ">= 1 and <= 100"),
        ("log_backups = 101\n", "log_backups", "101", ">= 1 and <= 100"),
        ("[firm]\ndesks_per_account = 11\n", "firm.desks_per_account", "11", ">= 1 and <= 10"),
        ("[firm]\ndesks_per_account = 0\n", "firm.desks_per_account", "0", ">= 1 and <= 10"),
        ("[breeze]\napi_url = 'ftp://x'\n", "breeze.api_url", "ftp://x", "http:// or https://"),
        ("[breeze]\nstream_url = 'mailto:a@b'\n", "breeze.stream_url", "mailto:a@b", "ws(s)://"),
        (
            "market_protection_pct = 0\n",
            "market_protection_pct",
            "0",
            "> 0 and <= 20",
        ),
        (
            "market_protection_pct = 25\n",
            "market_protection_pct",
            "25",
            "> 0 and <= 20",
        ),
    ],
)
def test_bad_value_in_toml(home: Path, toml, key, value, allowed) -> None:
    path = write_toml(home, toml)
    message = settings_error()
    assert key in message
    assert value in message
    assert allowed in message
    assert str(path) in message, "says where the value came from"


def test_unknown_toml_key_is_an_error(home: Path) -> None:
    path = write_toml(home, "[paper]\nrejct_rate = 0.1\n")
    message = settings_error()
    assert "paper.rejct_rate" in message
    assert "0.1" in message
    assert "unknown setting" in message
    assert "did you mean paper.reject_rate" in message
    assert "seed, latency_ms, reject_rate, tick_interval_ms, partial_fill" in message
    assert str(path) in message


def test_unknown_top_level_toml_key_and_section(home: Path) -> None:
    write_toml(home, "brokr = 'paper'\n[zerodha]\nkey = 1\n")
    message = settings_error()
    assert "brokr = 'paper'" in message and "did you mean broker" in message
    assert "zerodha" in message
    assert "allowed keys at the top level" in message


def test_home_cannot_be_set_in_the_file(home: Path) -> None:
    write_toml(home, "home = '/elsewhere'\n")
    message = settings_error()
    assert "home" in message and "/elsewhere" in message and "BULWARK_HOME" in message


def test_malformed_toml_names_file_and_line(home: Path) -> None:
    path = write_toml(home, "broker = 'paper'\n[paper]\nseed = = 3\n")
    message = settings_error()
    assert str(path) in message
    assert "not valid TOML" in message
    assert "line 3" in message


def test_non_utf8_toml(home: Path) -> None:
    home.mkdir(parents=True)
    (home / "bulwark.toml").write_bytes(b"broker = '\xff'\n")
    message = settings_error()
    assert str(home / "bulwark.toml") in message


@pytest.mark.parametrize(
    ("env_name", "value", "key", "allowed"),
    [
        ("BULWARK_PAPER__SEED", "abc", "paper.seed", "integer"),
        ("BULWARK_PAPER__REJECT_RATE", "1.5", "paper.reject_rate", "<= 1"),
        ("BULWARK_PAPER__LATENCY_MS", "-1", "paper.latency_ms", ">= 0"),
        ("BULWARK_PAPER__PARTIAL_FILL", "maybe", "paper.partial_fill", "true or false"),
        ("BULWARK_BROKER", "zerodha", "broker", "'paper' or 'breeze'"),
        ("BULWARK_PAPER__ACCOUNT", "two words", "paper.account", "1 to 32 letters"),
        ("BULWARK_FIRM__DESKS_PER_ACCOUNT", "many", "firm.desks_per_account", "integer"),
        ("BULWARK_LOG_LEVEL", "LOUD", "log_level", "'DEBUG', 'INFO', 'WARNING' or 'ERROR'"),
        ("BULWARK_LOG_MAX_BYTES", "lots", "log_max_bytes", "integer >= 65536"),
        ("BULWARK_BREEZE_API_URL", "ftp://x", "breeze.api_url", "http:// or https://"),
        ("BULWARK_BREEZE_MASTER_URL", "not a url", "breeze.master_url", "http:// or https://"),
        ("BULWARK_BREEZE__OHLC_URL", "ftp://y", "breeze.ohlc_url", "ws(s)://"),
    ],
)
def test_bad_value_in_environment(home: Path, monkeypatch, env_name, value, key, allowed) -> None:
    write_toml(home, "")
    monkeypatch.setenv(env_name, value)
    message = settings_error()
    assert key in message
    assert env_name in message
    assert value in message
    assert allowed in message


def test_bad_override(home: Path) -> None:
    message = settings_error(paper={"reject_rate": 2})
    assert "paper.reject_rate = 2" in message and "override" in message and "<= 1" in message
    message = settings_error(brokr="paper")
    assert "brokr" in message and "unknown setting" in message


def test_every_invalid_field_is_reported_at_once(home: Path, monkeypatch) -> None:
    write_toml(home, "broker = 'zerodha'\n[paper]\nreject_rate = 1.5\nlatency_ms = -1\n")
    monkeypatch.setenv("BULWARK_PAPER__SEED", "abc")
    with pytest.raises(SettingsError) as info:
        load_settings()
    err = info.value
    assert isinstance(err, ValueError)
    assert len(err.problems) == 4
    text = str(err)
    assert text.startswith("4 invalid settings:")
    for needle in ("broker", "paper.reject_rate", "paper.latency_ms", "BULWARK_PAPER__SEED"):
        assert needle in text


def test_choices_are_case_insensitive(home: Path, monkeypatch) -> None:
    monkeypatch.setenv("BULWARK_LOG_LEVEL", "debug")
    monkeypatch.setenv("BULWARK_BROKER", "Breeze")
    s = load_settings()
    assert (s.log_level, s.broker) == ("DEBUG", "breeze")


def test_empty_environment_variables_are_ignored(home: Path, monkeypatch) -> None:
    write_toml(home, "broker = 'breeze'\n")
    monkeypatch.setenv("BULWARK_BROKER", "")
    monkeypatch.setenv("BULWARK_DB_URL", "")
    monkeypatch.setenv("BULWARK_BREEZE_API_URL", "")
    s = load_settings()
    assert s.broker == "breeze"
    assert s.db_url is None
    assert s.breeze.api_url is None


def test_no_secret_fields() -> None:
    names = set(Settings.model_fields)
    for model in (
        Settings.model_fields["paper"].annotation,
        Settings.model_fields["breeze"].annotation,
        Settings.model_fields["api"].annotation,
    ):
        names |= set(model.model_fields)  # type: ignore[union-attr]
    # The TLS key is named by its file's path (kept private by the file's own permissions), never held here.
    names.discard("tls_key")
    for forbidden in ("key", "secret", "token", "password"):
        assert not [n for n in names if forbidden in n], "credentials come from the keyring only"


def test_the_local_api_listens_on_loopback_unless_given_tls(home: Path, tmp_path: Path) -> None:
    s = load_settings()
    assert (s.api.host, s.api.port, s.api.loopback) == ("127.0.0.1", 8740, True)
    for host in ("localhost", "::1", "127.0.0.2"):
        assert load_settings(api={"host": host}).api.loopback
    message = settings_error(api={"host": "0.0.0.0"})
    assert "0.0.0.0 only over TLS" in message and "api.tls_cert and api.tls_key" in message
    assert "only over TLS" in settings_error(api={"host": "192.168.1.20"})
    assert "set both or neither" in settings_error(api={"tls_cert": str(tmp_path / "cert.pem")})
    served = load_settings(api={"host": "0.0.0.0", "tls_cert": "cert.pem", "tls_key": "key.pem"}).api
    assert not served.loopback and served.tls_cert == Path("cert.pem")


def test_api_settings_come_from_the_file_and_the_environment(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_toml(home, "[api]\nport = 9001\nburst = 5\n")
    monkeypatch.setenv("BULWARK_API__PER_MINUTE", "60")
    api = load_settings().api
    assert (api.port, api.burst, api.per_minute) == (9001, 5, 60)
    assert "api.port" in settings_error(api={"port": 70000})
    assert "api.host" in settings_error(api={"host": "  "})


@pytest.mark.parametrize(
    "text",
    ['[breeze]\napi_secret = "S3CRETvalue"\n', '[breeze]\nsession_token = "S3CRETvalue"\n', 'api_key = "S3CRETvalue"\n',
     '[paper]\npassword = "S3CRETvalue"\n'],
)
def test_a_credential_pasted_into_the_settings_is_refused_without_echoing_it(home: Path, text: str) -> None:
    write_toml(home, text)
    message = settings_error()
    assert "unknown setting" in message and "***" in message, message
    assert "S3CRET" not in message


def test_a_section_given_a_value_says_it_must_be_a_table(home: Path) -> None:
    write_toml(home, "paper = 5\n")
    message = settings_error()
    assert "paper = 5" in message and "must be a table ([paper])" in message, message
    assert "\n" not in message.strip()
