"""Shared test set-up. Qt, when a test uses it, renders offscreen: no display needed.

Database fixtures (see tests/pg_server.py):

* ``pg_base_url`` (session): URL of a PostgreSQL server the tests may ``CREATE DATABASE`` on,
  a throwaway cluster started on first use, or ``BULWARK_TEST_PG_URL``; ``None`` when there is
  none, which only happens outside CI (in CI it is an error).
* ``db_url`` (function, parametrised ``sqlite`` / ``postgresql``): a SQLAlchemy URL to a fresh,
  empty database: a SQLite file in ``tmp_path``, or a new ``test_<hex>`` PostgreSQL database
  dropped after the test. A test taking ``db_url`` runs once per backend.
"""

import os
import uuid
from collections.abc import Iterator

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# A desk started in a test serves its local API on any free port: tests run side by side, and a
# real desk on this machine may hold the default one.
os.environ.setdefault("BULWARK_API__PORT", "0")

NO_PG_REASON = (
    "no PostgreSQL server (set BULWARK_TEST_PG_URL or install postgresql); CI never skips this"
)


@pytest.fixture(autouse=True)
def no_keyring() -> None:
    """Every test starts on keyring's fail backend, as on a machine without a secret service: no test
    reaches the user's real keyring, and a test keyring backend one test imported (keyring picks any
    loaded backend class by priority) or set is never inherited by the next. Tests that need keys
    pass a backend explicitly, or run ``main.py`` with ``PYTHON_KEYRING_BACKEND`` set."""
    import keyring
    from keyring.backends import fail

    keyring.set_keyring(fail.Keyring())


@pytest.fixture(scope="session")
def pg_base_url() -> Iterator[str | None]:
    from tests.pg_server import pg_base_url as serve

    with serve() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/bulwark.db"
        return

    # Requested lazily, so SQLite-only runs never start PostgreSQL.
    base = request.getfixturevalue("pg_base_url")
    if base is None:
        pytest.skip(NO_PG_REASON)

    import psycopg
    from sqlalchemy.engine import make_url

    from tests.pg_server import psycopg_conninfo

    name = f"test_{uuid.uuid4().hex}"
    admin = psycopg_conninfo(base)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(base).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
