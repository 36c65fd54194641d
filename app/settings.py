"""Bulwark's settings: typed, validated, and loaded from three places.

Precedence, highest first:

1. keyword arguments to :func:`load_settings` (the command line passes its options here);
2. environment variables named ``BULWARK_<FIELD>``; nested fields use ``__``
   (``BULWARK_PAPER__SEED=7``). The Breeze endpoints are also read from the flat names
   ``BULWARK_BREEZE_API_URL``, ``BULWARK_BREEZE_API_V2_URL``, ``BULWARK_BREEZE_STREAM_URL``,
   ``BULWARK_BREEZE_FEEDS_URL``, ``BULWARK_BREEZE_OHLC_URL``, ``BULWARK_BREEZE_MASTER_URL``
   (and ``BULWARK_BREEZE_MARKET_PROTECTION_PCT``);
3. the TOML file ``bulwark.toml`` in the data folder;
4. the defaults below.

The data folder is ``BULWARK_HOME`` if set, else the platform's user data folder
(``platformdirs.user_data_dir("Bulwark")``, e.g. ``~/.local/share/Bulwark`` on Linux). It holds
``bulwark.toml``, ``bulwark.db`` (unless ``BULWARK_DB_URL`` points elsewhere) and ``logs/``.
Because the settings file lives in the data folder, ``home`` cannot be set inside it. It is
created readable by its owner only (0700; see ``app.file_modes``).

``BULWARK_DB_URL`` names SQLite (``sqlite:///...``) or PostgreSQL (``postgresql+psycopg://...``);
any other backend is refused by name. A relative SQLite path (``sqlite:///desk.db``) is inside the
data folder, not the working directory, and the folder of a SQLite file must exist.

An example ``bulwark.toml``::

    broker = "paper"
    log_level = "INFO"
    market_protection_pct = 1.5

    [paper]
    seed = 7
    latency_ms = 35
    reject_rate = 0.02

    [breeze]
    api_url = "http://127.0.0.1:8765/breezeapi/api/v1/"

Unknown keys are rejected, so a typo is an error rather than a silently ignored setting.

**No secrets live here.** API keys and secrets, the daily session token and operator passwords
come from the OS keyring only (see ``app.security``); nothing in this module reads, stores or
prints them. Put a database password in the database's own mechanism (``~/.pgpass``, peer
authentication) rather than in ``BULWARK_DB_URL``; if one is there anyway, error messages mask it.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import re
import tempfile
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import platformdirs
import pydantic_settings
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from app.validation_messages import (
    KIB,
    MIB,
    Loc,
    MessageStyle,
    describe_errors,
    show_value,
)

__all__ = [
    "ENV_PREFIX",
    "SETTINGS_FILE_NAME",
    "BreezeSettings",
    "FirmSettings",
    "PaperSettings",
    "Settings",
    "SettingsError",
    "default_home",
    "load_settings",
    "resolve_home",
]

ENV_PREFIX = "BULWARK_"
HOME_ENV = "BULWARK_HOME"
SETTINGS_FILE_NAME = "bulwark.toml"
DATABASE_FILE_NAME = "bulwark.db"
LOG_DIR_NAME = "logs"


class SettingsError(ValueError):
    """The settings are invalid, the settings file does not parse, or the data folder is unusable.

    ``str(err)`` is written for the operator: every problem on its own line, naming the key (or
    the environment variable), the value given and what is allowed. ``problems`` holds the same
    lines as a list.
    """

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = list(problems) if problems else [message]


# --------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------

_HTTP = ("http", "https")
_HTTP_OR_WS = ("http", "https", "ws", "wss")


def _check_url(value: str | None, schemes: tuple[str, ...]) -> str | None:
    """Accept ``None`` or an absolute URL with one of ``schemes`` and a host; keep it verbatim.

    The URL is kept exactly as written (no normalisation): the Breeze SDK concatenates paths
    onto these strings, so a trailing slash matters.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    parts = urlsplit(value)
    if not parts.scheme:
        raise ValueError("not an absolute URL (no scheme)")
    if parts.scheme.lower() not in schemes:
        raise ValueError(f"URL scheme {parts.scheme!r} is not supported")
    if not parts.hostname:
        raise ValueError("URL has no host")
    return value


class PaperSettings(BaseModel):
    """The embedded simulated market and broker."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    seed: int = Field(default=1, description="random seed of the simulated market and order flow")
    latency_ms: float = Field(
        default=20.0, ge=0, le=5000, description="simulated broker round trip, milliseconds"
    )
    reject_rate: float = Field(
        default=0.0, ge=0, le=1, description="fraction of orders the simulated broker rejects"
    )
    tick_interval_ms: float = Field(
        default=100.0,
        ge=10,
        le=10_000,
        description="interval between simulated ticks, milliseconds",
    )
    partial_fill: bool = Field(default=True, description="fill large orders in several parts")
    journal: bool = Field(
        default=False,
        description="keep the paper exchange's own journal of received orders in paper-journal.jsonl",
    )
    account: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$",
        description=(
            "a simulated broker account the desks naming it share, with its rate limits split among them "
            "(firm.desks_per_account); unset: each desk's paper market is its own"
        ),
        json_schema_extra={"allowed": "1 to 32 letters, digits, '.', '_' or '-', such as desk-pool"},
    )
    call_log: bool = Field(
        default=False,
        description="log every call the paper exchange accepted, with its time, to paper-calls.jsonl (rate tests)",
    )


class FirmSettings(BaseModel):
    """Several desks on one database: how they share what they share."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    desks_per_account: int = Field(
        default=1,
        ge=1,
        le=10,
        description=(
            "how many desks may trade through one broker account at once, each with that fraction of its rate "
            "limits; the first desk on an account stores it in the database, which every desk then follows"
        ),
    )


class BreezeSettings(BaseModel):
    """ICICI Direct Breeze. Endpoints left unset mean the SDK's own (ICICI's servers).

    Setting them points the SDK at another server, e.g. the local emulator in the tests.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    api_url: str | None = Field(
        default=None,
        description="REST API base (SDK config.API_URL)",
        json_schema_extra={"allowed": "an absolute http:// or https:// URL"},
    )
    api_v2_url: str | None = Field(
        default=None,
        description="newer REST API base (SDK config.BREEZE_NEW_URL)",
        json_schema_extra={"allowed": "an absolute http:// or https:// URL"},
    )
    stream_url: str | None = Field(
        default=None,
        description="socket.io server for quotes (SDK config.LIVE_STREAM_URL)",
        json_schema_extra={"allowed": "an absolute http(s):// or ws(s):// URL"},
    )
    feeds_url: str | None = Field(
        default=None,
        description="socket.io server for order notifications (SDK config.LIVE_FEEDS_URL)",
        json_schema_extra={"allowed": "an absolute http(s):// or ws(s):// URL"},
    )
    ohlc_url: str | None = Field(
        default=None,
        description="socket.io server for OHLC candles (SDK config.LIVE_OHLC_STREAM_URL)",
        json_schema_extra={"allowed": "an absolute http(s):// or ws(s):// URL"},
    )
    master_url: str | None = Field(
        default=None,
        description="security master zip (SDK config.SECURITY_MASTER_URL)",
        json_schema_extra={"allowed": "an absolute http:// or https:// URL"},
    )

    @field_validator("api_url", "api_v2_url", "master_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        return _check_url(value, _HTTP)

    @field_validator("stream_url", "feeds_url", "ohlc_url")
    @classmethod
    def _stream_url(cls, value: str | None) -> str | None:
        return _check_url(value, _HTTP_OR_WS)


class ApiSettings(BaseModel):
    """The local HTTP API for strategy scripts and stop buttons (``app.api``).

    It listens on the loopback interface only unless told otherwise: anything that can reach the
    port can try tokens against it, and a token sent over a network in clear text can be read by
    anyone on the way. Binding to another address therefore needs a TLS certificate and key.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    enabled: bool = Field(default=True, description="serve the local API inside the desk and `simulate --api`")
    host: str = Field(
        default="127.0.0.1",
        description="address the API listens on; anything but loopback needs tls_cert and tls_key",
        json_schema_extra={"allowed": "an IP address or host name, e.g. 127.0.0.1"},
    )
    port: int = Field(default=8740, ge=0, le=65535, description="TCP port of the API; 0: any free port (tests)")
    tls_cert: Path | None = Field(default=None, description="PEM certificate chain for HTTPS")
    tls_key: Path | None = Field(default=None, description="PEM private key for HTTPS")
    burst: int = Field(default=20, ge=1, le=10_000, description="requests a client may make at once")
    per_minute: int = Field(default=1200, ge=1, le=1_000_000, description="a client's sustained requests per minute")
    max_body_bytes: int = Field(default=16 * KIB, ge=1024, le=16 * MIB, description="largest request body accepted")
    stream_queue: int = Field(
        default=1000, ge=10, le=1_000_000,
        description="events a stream client may fall behind by before it is disconnected",
    )

    @field_validator("host")
    @classmethod
    def _host(cls, value: str) -> str:
        value = value.strip()
        if not value or any(ch.isspace() for ch in value) or "/" in value:
            raise ValueError("must be an IP address or a host name")
        return value

    @property
    def loopback(self) -> bool:
        """Whether the API listens on this machine only."""
        return is_loopback(self.host)

    @model_validator(mode="after")
    def _tls_off_loopback(self) -> ApiSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("api.tls_cert and api.tls_key go together: set both or neither")
        if not self.loopback and self.tls_cert is None:
            raise ValueError(
                f"the API may listen on {self.host} only over TLS: set api.tls_cert and api.tls_key "
                "(tokens sent in clear text over a network can be read on the way)"
            )
        return self


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback IP address (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


_DB_URL_RE = re.compile(r"^(?P<backend>[A-Za-z][A-Za-z0-9.\-]*)(?:\+[A-Za-z0-9_.\-]*)?://(?P<rest>.*)$", re.DOTALL)
# The backends app.store is built and tested on (app.store.db.SUPPORTED_BACKENDS; not imported
# here: settings load before SQLAlchemy, which `panic` must not wait for).
DB_BACKENDS = ("sqlite", "postgresql")


def default_home() -> Path:
    """The platform's per-user data folder for Bulwark (used when BULWARK_HOME is not set)."""
    return Path(platformdirs.user_data_dir("Bulwark", appauthor=False))


def resolve_home(home: str | os.PathLike[str] | None = None) -> Path:
    """The data folder: ``home`` if given, else ``$BULWARK_HOME``, else :func:`default_home`.

    Always absolute, with ``~`` expanded. Does not create anything.
    """
    if home is None or str(home).strip() == "":
        env = _getenv(HOME_ENV)
        home = env if env else default_home()
    return Path(os.path.abspath(Path(home).expanduser()))


class Settings(BaseSettings):
    """All of Bulwark's settings. Build it with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_ignore_empty=True,
        case_sensitive=False,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    home: Path = Field(
        default_factory=resolve_home,
        description="data folder (BULWARK_HOME); holds bulwark.toml, bulwark.db and logs/",
        json_schema_extra={"allowed": "a folder path"},
    )
    db_url: str | None = Field(
        default=None,
        description="SQLAlchemy database URL (BULWARK_DB_URL); unset: SQLite in the data folder",
        json_schema_extra={
            "allowed": "a database URL such as sqlite:///path/bulwark.db or "
            "postgresql+psycopg://user@host/bulwark"
        },
    )
    broker: Literal["paper", "breeze"] = Field(default="paper", description="broker profile")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        default="INFO", description="lowest level written to the log"
    )
    log_max_bytes: int = Field(
        5 * MIB, ge=64 * KIB, description="rotate the log file when it would exceed this size"
    )
    log_backups: int = Field(default=10, ge=1, le=100, description="rotated log files kept")
    market_protection_pct: float = Field(
        default=2.0,
        gt=0,
        le=20,
        description=(
            "a market order is sent as a limit order this many percent through the last price"
        ),
    )
    backup_time: dt.time = Field(
        default=dt.time(16, 0),
        description="daily backup while the desk runs, India time (after the 15:30 close)",
        json_schema_extra={"allowed": "a time of day such as 16:00"},
    )
    vault: Literal["system", "encrypted-file"] = Field(
        default="system",
        description=(
            "where the desk keeps its secrets: the system keyring, or the passphrase-protected encrypted "
            "keyring.cfg in the data folder (set up by `main.py keyring use-file`)"
        ),
    )
    idle_lock_minutes: int = Field(
        default=15,
        ge=0,
        le=24 * 60,
        description="lock the desk window after this many minutes without keyboard or mouse input; 0: never",
    )
    paper: PaperSettings = PaperSettings()
    firm: FirmSettings = FirmSettings()
    breeze: BreezeSettings = BreezeSettings()
    api: ApiSettings = ApiSettings()

    @field_validator("home", mode="before")
    @classmethod
    def _home(cls, value: Any) -> Any:
        if isinstance(value, (str, os.PathLike)):
            if not str(value).strip():
                raise ValueError("must not be empty")
            return resolve_home(value)
        return value

    @field_validator("broker", "log_level", mode="before")
    @classmethod
    def _normalise_choice(cls, value: Any, info: ValidationInfo) -> Any:
        # "Breeze" and "debug" are what people type; accept them.
        if isinstance(value, str):
            value = value.strip()
            return value.upper() if info.field_name == "log_level" else value.lower()
        return value

    @field_validator("db_url")
    @classmethod
    def _db_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip()
        if not value:
            return None
        match = _DB_URL_RE.match(value)
        if not match:
            raise ValueError("is not a database URL (dialect://...)")
        backend = match["backend"].lower()
        if backend not in DB_BACKENDS:
            hint = " (write postgresql://)" if backend == "postgres" else ""
            raise ValueError(f"the {backend!r} database is not supported{hint}")
        return value

    # -- derived paths -------------------------------------------------------------------------

    @property
    def database_url(self) -> str:
        """The database to use: ``db_url`` if set (a relative SQLite path taken inside ``home``), else
        SQLite file ``bulwark.db`` in ``home``."""
        if self.db_url:
            return _sqlite_in_home(self.db_url, self.home)
        return f"sqlite:///{self.home / DATABASE_FILE_NAME}"

    @property
    def sqlite_file(self) -> Path | None:
        """The SQLite file of :attr:`database_url`; ``None`` for PostgreSQL or an in-memory database."""
        return _sqlite_file(self.database_url)

    def summary(self) -> dict[str, Any]:
        """The settings as plain data for the audit trail, with any password in a URL masked."""
        data: dict[str, Any] = self.model_dump(mode="json")
        if data.get("db_url"):
            data["db_url"] = _PASSWORD_IN_DB_URL.sub(r"\g<pre>***\g<at>", data["db_url"])
        breeze = data.get("breeze", {})
        for key, value in breeze.items():
            if isinstance(value, str):
                breeze[key] = _PASSWORD_IN_URL.sub(r"\g<pre>***\g<at>", value)
        return data

    @property
    def backups_dir(self) -> Path:
        """Where backups go: ``backups/`` in the data folder."""
        return self.home / "backups"

    @property
    def settings_file(self) -> Path:
        """Where the TOML settings file is (it need not exist)."""
        return self.home / SETTINGS_FILE_NAME

    @property
    def log_dir(self) -> Path:
        return self.home / LOG_DIR_NAME

    # -- sources -------------------------------------------------------------------------------

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        init_kwargs = getattr(init_settings, "init_kwargs", {}) or {}
        home = resolve_home(init_kwargs.get("home"))
        return (
            init_settings,
            _BreezeFlatEnvSource(settings_cls),
            env_settings,
            _TomlSource(settings_cls, home / SETTINGS_FILE_NAME),
        )


class _BreezeFlatEnvSource(PydanticBaseSettingsSource):
    """Reads ``BULWARK_BREEZE_<FIELD>`` (single underscore) into the nested ``breeze`` model."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, "", False  # everything happens in __call__

    def __call__(self) -> dict[str, Any]:
        found = {
            name: value
            for name in BreezeSettings.model_fields
            if (value := _getenv(_breeze_flat_env_name(name))) not in (None, "")
        }
        return {"breeze": found} if found else {}


class _TomlSource(TomlConfigSettingsSource):
    """The settings file, with operator-readable errors."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        self.path = path
        super().__init__(settings_cls, toml_file=path)
        if "home" in self.toml_data:
            raise SettingsError(
                f"home = {self.toml_data['home']!r} (in {path}): the data folder cannot be set in "
                f"the settings file that lives inside it; set the environment variable {HOME_ENV} "
                "instead"
            )

    def _read_file(self, file_path: Any) -> dict[str, Any]:
        return read_toml(Path(file_path))


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML settings file, turning every failure into a :class:`SettingsError`."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        # Python 3.14 adds lineno/colno/msg; before that the message ends "(at line L, column C)"
        lineno, colno = getattr(exc, "lineno", None), getattr(exc, "colno", None)
        where = f"line {lineno}, column {colno}" if lineno is not None else ""
        detail = str(getattr(exc, "msg", exc))
        raise SettingsError(
            f"settings file {path} is not valid TOML: {detail}"
            + (f" (at {where})" if where else "")
            + "; see https://toml.io for the syntax"
        ) from None
    except UnicodeDecodeError as exc:
        raise SettingsError(
            f"settings file {path} is not valid TOML: not UTF-8 text ({exc.reason} at byte "
            f"{exc.start})"
        ) from None
    except OSError as exc:
        raise SettingsError(f"settings file {path} cannot be read: {exc.strerror or exc}") from None


# --------------------------------------------------------------------------------------------
# Loading and error reporting
# --------------------------------------------------------------------------------------------


def load_settings(*, read_only: bool = False, **overrides: Any) -> Settings:
    """Build the settings from ``overrides`` > environment > ``bulwark.toml`` > defaults.

    Overrides use field names (``broker="breeze"``, ``paper={"seed": 3}``); those whose value is
    ``None`` are ignored, so command-line options that were not given can be passed straight
    through. Creates the data folder (and its parents) if needed; ``read_only`` (a command that
    only reads) accepts a data folder it cannot write to.

    Raises :class:`SettingsError` naming every invalid key, its value and what is allowed; for a
    settings file that does not parse (file and line); when the data folder cannot be created
    or written; or, unless ``read_only``, when the folder of a SQLite database does not exist.
    """
    overrides = {key: value for key, value in overrides.items() if value is not None}
    home = resolve_home(overrides.get("home"))
    if "home" in overrides:
        overrides["home"] = home
    ensure_data_folder(home, writable=not read_only)

    toml_path = home / SETTINGS_FILE_NAME
    toml_data = read_toml(toml_path) if toml_path.is_file() else {}

    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        def source(loc: Loc) -> str:
            return _source_of(loc, overrides=overrides, toml_data=toml_data, toml_path=toml_path)

        problems = describe_errors(exc, replace(_STYLE, source=source))
        raise SettingsError(_join_problems(problems), problems) from None
    except pydantic_settings.SettingsError as exc:
        # e.g. BULWARK_PAPER='{not json' for a whole nested model
        match = re.search(r'field "([^"]+)"', str(exc))
        if match:
            field = match.group(1)
            message = (
                f"{field} (from environment variable {ENV_PREFIX}{field.upper()}): "
                f"cannot be parsed; allowed: a JSON object, or set the keys one by one "
                f"as {ENV_PREFIX}{field.upper()}__<KEY>"
            )
        else:
            message = f"invalid setting in the environment: {exc}"
        if exc.__cause__ is not None:
            message += f" ({exc.__cause__})"
        raise SettingsError(f"invalid setting: {message}", [message]) from None
    if not read_only:
        # A reader says "no database at ..." itself; panic must reach the desk even so.
        _check_database_folder(settings)
    return settings


def _split_sqlite(url: str) -> tuple[str, str, str] | None:
    """``(scheme, database, query)`` of a SQLite URL; ``None`` for another backend or no file."""
    match = _DB_URL_RE.match(url)
    if not match or match["backend"].lower() != "sqlite":
        return None
    scheme = url[: url.index("://")]
    rest = match["rest"]
    # sqlite://<host>/<database>: SQLite has no host, so the database starts after the third slash.
    if not rest.startswith("/"):
        return None
    database, _, query = rest[1:].partition("?")
    if database in ("", ":memory:"):
        return None
    return scheme, database, f"?{query}" if query else ""


def _sqlite_in_home(url: str, home: Path) -> str:
    parts = _split_sqlite(url)
    if parts is None:
        return url
    scheme, database, query = parts
    prefix = "file:" if database.startswith("file:") else ""
    name = database.removeprefix(prefix)
    if os.path.isabs(name):
        return url
    return f"{scheme}:///{prefix}{home / name}{query}"


def _sqlite_file(url: str) -> Path | None:
    parts = _split_sqlite(url)
    return Path(parts[1].removeprefix("file:")) if parts is not None else None


def _check_database_folder(settings: Settings) -> None:
    path = settings.sqlite_file
    if path is None or path.parent.is_dir():
        return
    source = "from environment variable BULWARK_DB_URL" if _getenv(f"{ENV_PREFIX}DB_URL") else "in the settings"
    raise SettingsError(
        f"invalid setting: db_url = {show_value(settings.db_url, _VALUE_WIDTH, _mask_db_url)} ({source}): "
        f"the folder {path.parent} does not exist; create it or name another"
    )


def _mask_db_url(text: str) -> str:
    return _mask("db_url", text)


def ensure_data_folder(home: Path, *, writable: bool = True) -> Path:
    """Create ``home`` (with parents, owner-only) and, if ``writable``, check that files can be created in it.

    A command that only reads (``audit verify``, an auditor on a read-only copy) passes
    ``writable=False``.
    """
    try:
        home.mkdir(parents=True, exist_ok=True, mode=0o700)
    except FileExistsError:
        raise SettingsError(
            f"data folder {home} exists but is not a folder; set {HOME_ENV} to a folder path"
        ) from None
    except OSError as exc:
        raise SettingsError(
            f"data folder {home} cannot be created: {exc.strerror or exc}; "
            f"set {HOME_ENV} to a writable folder"
        ) from None
    if not home.is_dir():
        raise SettingsError(
            f"data folder {home} exists but is not a folder; set {HOME_ENV} to a folder path"
        )
    if not writable:
        return home
    try:
        # os.access lies for root and on some network file systems; try it for real.
        with tempfile.TemporaryFile(dir=home, prefix=".bulwark-write-test-"):
            pass
    except OSError as exc:
        raise SettingsError(
            f"data folder {home} is not writable: {exc.strerror or exc}; "
            f"set {HOME_ENV} to a writable folder"
        ) from None
    return home


def _join_problems(problems: list[str]) -> str:
    if len(problems) == 1:
        return f"invalid setting: {problems[0]}"
    lines = "\n".join(f"  - {p}" for p in problems)
    return f"{len(problems)} invalid settings:\n{lines}"


def _source_of(
    loc: tuple[Any, ...], *, overrides: dict[str, Any], toml_data: dict[str, Any], toml_path: Path
) -> str:
    if not loc:
        return ""
    names = [str(part) for part in loc]
    if _lookup(overrides, names) is not _MISSING:
        return "given as an override"
    for env_name in _env_names(names):
        if _getenv(env_name) not in (None, ""):
            return f"from environment variable {env_name}"
    if _lookup(toml_data, names) is not _MISSING:
        return f"in {toml_path}"
    return ""


def _env_names(names: list[str]) -> list[str]:
    candidates = []
    if len(names) == 2 and names[0] == "breeze":
        candidates.append(_breeze_flat_env_name(names[1]))
    candidates.append(ENV_PREFIX + "__".join(names).upper())
    # a whole nested model given as JSON, e.g. BULWARK_PAPER='{"seed": "x"}'
    for i in range(len(names) - 1, 0, -1):
        candidates.append(ENV_PREFIX + "__".join(names[:i]).upper())
    return candidates


def _breeze_flat_env_name(field_name: str) -> str:
    return f"{ENV_PREFIX}BREEZE_{field_name.upper()}"


_MISSING = object()


def _lookup(data: Any, names: list[str]) -> Any:
    for name in names:
        if not isinstance(data, dict):
            return _MISSING
        matches = [v for k, v in data.items() if str(k).lower() == name.lower()]
        if not matches:
            return _MISSING
        data = matches[0]
    return data


def _getenv(name: str) -> str | None:
    """Case-insensitive environment lookup, matching pydantic-settings (case_sensitive=False)."""
    value = os.environ.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, val in os.environ.items():
        if key.lower() == lowered:
            return val
    return None


# the password in "scheme://user:password@host"
_PASSWORD_IN_URL = re.compile(r"(?P<pre>://[^/@:\s]*:)[^/@\s]*(?P<at>@)")
# ... and in "user:password@host", for the database URL, which may have lost its scheme
_PASSWORD_IN_DB_URL = re.compile(r"(?P<pre>(?:^|://)[^/@:\s]*:)[^/@\s]*(?P<at>@)")


# URLs and paths are long: a value is cut at 200 characters (the limits cut at 80).
_VALUE_WIDTH = 200


# Credentials live in the keyring, never in settings; one pasted into the file by mistake (an
# unknown ``api_secret``, say) must not come back in the error that refuses it.
_SECRET_NAME = re.compile(r"secret|token|passw|pwd|api_?key|session|credential", re.IGNORECASE)


def _mask(path: str, text: str) -> str:
    if _SECRET_NAME.search(path.rsplit(".", 1)[-1]):
        return "***"
    pattern = _PASSWORD_IN_DB_URL if path == "db_url" else _PASSWORD_IN_URL
    return pattern.sub(r"\g<pre>***\g<at>", text)


# A setting may come from an override, the environment or the file: an unknown one is shown with
# its value and source, and a suggestion with its full path. ``home`` is set by BULWARK_HOME only.
_STYLE = MessageStyle(
    root=Settings,
    item="setting",
    whole="(settings)",
    value_width=_VALUE_WIDTH,
    unknown_in_full=True,
    mask=_mask,
    hidden=frozenset({"home"}),
)
