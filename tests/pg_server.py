"""A throwaway PostgreSQL server for one test session.

``pg_base_url()`` is a context manager yielding a SQLAlchemy URL such as
``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres`` to a server on which the tests may
``CREATE DATABASE``:

* ``BULWARK_TEST_PG_URL`` set: that server is used as it is (``postgresql://`` is read as
  ``postgresql+psycopg://``). It must answer; if it does not, that is an error, CI or not.
* otherwise a cluster is created in a temporary folder with the PostgreSQL server binaries
  (``BULWARK_TEST_PG_BIN`` if set, else ``initdb``/``pg_ctl`` on ``PATH``, else the newest
  ``/usr/lib/postgresql/*/bin`` - Debian's ``postgresql`` package), listening on 127.0.0.1 on a
  free port only (its unix socket stays in the temporary folder), trust authentication, fsync
  on. It is stopped and the folder deleted when the context exits. As root, the binaries run as
  the ``postgres`` user (PostgreSQL refuses to run as root).

When no server can be found or started: with ``CI`` set, :class:`PgUnavailable` is raised (the
PostgreSQL tests must never be skipped in CI); otherwise ``None`` is yielded and the caller skips.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

URL_ENV = "BULWARK_TEST_PG_URL"
BIN_ENV = "BULWARK_TEST_PG_BIN"
SERVICE_USER = "postgres"
START_TIMEOUT_S = 30
HINT = (
    "install Debian's postgresql package (apt-get install postgresql; .ci/run does it), "
    f"or set {URL_ENV}=postgresql+psycopg://USER@HOST:PORT/DB (a server where USER may "
    f"CREATE DATABASE), or {BIN_ENV}=/path/to/postgresql/bin"
)


class PgUnavailable(RuntimeError):
    """No PostgreSQL server for the tests."""


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _version_key(bin_dir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/15/bin -> (15,); 9.6 -> (9, 6)
    return tuple(int(p) for p in re.findall(r"\d+", bin_dir.parent.name)) or (0,)


def find_bin_dir() -> Path | None:
    """The folder holding ``initdb`` and ``pg_ctl``, or None."""

    def usable(d: Path) -> bool:
        return all(os.access(d / exe, os.X_OK) for exe in ("initdb", "pg_ctl", "postgres"))

    override = os.environ.get(BIN_ENV)
    if override:  # explicit: only there
        d = Path(override)
        return d if usable(d) else None
    on_path = shutil.which("pg_ctl")
    if on_path:
        d = Path(on_path).resolve().parent
        if usable(d):
            return d
    candidates = [d for d in Path("/usr/lib/postgresql").glob("*/bin") if usable(d)]
    return max(candidates, key=_version_key) if candidates else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_connectable(url_conninfo: str, deadline: float) -> None:
    import psycopg

    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(url_conninfo, connect_timeout=2) as conn:
                conn.execute("select 1")
            return
        except psycopg.OperationalError as exc:
            last = exc
            time.sleep(0.05)
    raise PgUnavailable(f"PostgreSQL did not accept connections: {last}")


class PgCluster:
    """A cluster in a temporary folder; ``start()`` then ``stop()``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.as_root = os.geteuid() == 0
        if self.as_root:
            try:
                pw = pwd.getpwnam(SERVICE_USER)
            except KeyError:
                raise PgUnavailable(
                    f"running as root, and PostgreSQL refuses to run as root, but there is no "
                    f"'{SERVICE_USER}' system user to run it as (Debian's postgresql package "
                    f"creates it; or: useradd --system {SERVICE_USER})"
                ) from None
            self._uid, self._gid = pw.pw_uid, pw.pw_gid
        self.root = Path(tempfile.mkdtemp(prefix="bulwark-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self.log = self.root / "server.log"
        self.port: int | None = None
        self._running = False
        self.sockets.mkdir()
        if self.as_root:
            for p in (self.root, self.sockets):
                os.chown(p, self._uid, self._gid)

    # -- helpers -------------------------------------------------------------------------------
    def _run(self, exe: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / exe), *args]
        if self.as_root:
            cmd = ["runuser", "-u", SERVICE_USER, "--", *cmd]
        env = {**os.environ, "LC_ALL": "C", "LANG": "C"}
        for k in ("PGDATA", "PGHOST", "PGPORT", "PGUSER", "PGDATABASE", "PGOPTIONS"):
            env.pop(k, None)
        try:
            return subprocess.run(
                cmd,
                check=False,
                cwd=self.root,
                env=env,
                capture_output=True,
                text=True,
                timeout=timeout,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise PgUnavailable(f"{' '.join(cmd)}: {exc}") from exc

    def _log_tail(self, n: int = 20) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no server log)"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://{SERVICE_USER}@127.0.0.1:{self.port}/postgres"

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        r = self._run(
            "initdb",
            "-D", str(self.data),
            "-U", SERVICE_USER,
            "--auth=trust",  # local and 127.0.0.1/::1 connections, no password
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",  # initdb's own final fsync only; the server below runs with fsync=on
        )  # fmt: skip
        if r.returncode != 0:
            raise PgUnavailable(f"initdb failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# bulwark test session\n"
                "listen_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.sockets}'\n"
                "fsync = on\n"
                "logging_collector = off\n"
            )
        failure = ""
        for _attempt in range(3):  # the free port may be taken between probe and bind
            self.port = _free_port()
            r = self._run(
                "pg_ctl", "start", "-D", str(self.data), "-l", str(self.log),
                "-w", "-t", str(START_TIMEOUT_S), "-o", f"-p {self.port}",
                timeout=START_TIMEOUT_S + 10,
            )  # fmt: skip
            if r.returncode == 0:
                self._running = True
                break
            failure = (
                f"pg_ctl start failed ({r.returncode}):\n{r.stdout}{r.stderr}\n{self._log_tail()}"
            )
            if "already in use" not in failure:
                break
        if not self._running:
            raise PgUnavailable(failure)
        conninfo = f"postgresql://{SERVICE_USER}@127.0.0.1:{self.port}/postgres"
        _wait_connectable(conninfo, time.monotonic() + START_TIMEOUT_S)
        return self.url

    def stop(self) -> None:
        if self._running:
            self._running = False
            # immediate: nothing here is worth a shutdown checkpoint
            self._run("pg_ctl", "stop", "-D", str(self.data), "-m", "immediate", "-w", timeout=30)
        shutil.rmtree(self.root, ignore_errors=True)


def _normalise(url: str) -> str:
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.drivername in ("postgresql", "postgres"):
        u = u.set(drivername="postgresql+psycopg")
    if u.drivername != "postgresql+psycopg":
        raise PgUnavailable(f"{URL_ENV} must be a postgresql+psycopg:// URL, not {u.drivername}://")
    return u.render_as_string(hide_password=False)


def psycopg_conninfo(url: str) -> str:
    """A libpq URI for ``psycopg.connect`` from a ``postgresql+psycopg://`` URL."""
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def pg_base_url() -> Iterator[str | None]:
    """Yield the base URL of a PostgreSQL server for this session (see the module docstring)."""
    given = os.environ.get(URL_ENV)
    if given:
        given_url = _normalise(given)
        try:
            _wait_connectable(psycopg_conninfo(given_url), time.monotonic() + 5)
        except PgUnavailable as exc:
            raise PgUnavailable(f"{URL_ENV} is set but its server does not answer: {exc}") from None
        yield given_url
        return

    cluster: PgCluster | None = None
    url: str | None = None
    try:
        bin_dir = find_bin_dir()
        if bin_dir is None:
            where = os.environ.get(BIN_ENV) or "PATH or /usr/lib/postgresql/*/bin"
            raise PgUnavailable(f"no PostgreSQL server binaries (initdb, pg_ctl) in {where}")
        cluster = PgCluster(bin_dir)
        atexit.register(cluster.stop)  # also on an interrupted session; stop() is idempotent
        url = cluster.start()
    except PgUnavailable as exc:
        if cluster is not None:
            cluster.stop()
        if in_ci():
            raise PgUnavailable(
                f"CI: the store tests need PostgreSQL and CI never skips them: {exc}\nFix: {HINT}"
            ) from None
        url = None
    try:
        yield url
    finally:
        if cluster is not None:
            cluster.stop()
            atexit.unregister(cluster.stop)
