"""pytest fixtures for roboframe users (registered through ``pytest11``)."""

from __future__ import annotations

import os
import uuid

import pytest

from roboframe.testing.helpers import make_spec


@pytest.fixture
def robot_spec():
    """Build a validated RobotSpec from keyword sections over a small default robot."""
    return make_spec


PG_URL_ENV = "ROBOFRAME_TEST_PG_URL"
PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/test"


def _server_missing(what: str, why: str):
    """Skip, except under CI, where a missing server is a failure."""
    message = f"{what} is not available ({why})"
    if os.environ.get("CI") == "true":
        pytest.fail(f"{message}; CI needs it")
    pytest.skip(message)


@pytest.fixture
def pg_url():
    """A PostgreSQL URL with a fresh schema of its own, dropped afterwards.

    The server comes from ``ROBOFRAME_TEST_PG_URL`` (default: the local
    ``postgres`` user's ``test`` database). Skips when it cannot be reached,
    except under CI (``CI=true``), where that fails the test.
    """
    try:
        import psycopg
    except ImportError:
        _server_missing("PostgreSQL", "psycopg is not installed")
    base = os.environ.get(PG_URL_ENV, PG_DEFAULT)
    schema = f"rf_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(base, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        _server_missing("PostgreSQL", str(exc).strip().splitlines()[0])
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}schema={schema}"
    finally:
        admin.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        admin.close()


@pytest.fixture(scope="session")
def _secantus_server(tmp_path_factory):
    """One SecantusDB server (a MongoDB wire-protocol server with change streams)
    for the test session, started as a subprocess on a free port."""
    import subprocess

    from roboframe.testing.helpers import start_secantus

    log = tmp_path_factory.mktemp("secantus") / "server.log"
    try:
        port, proc = start_secantus(str(log))
    except (FileNotFoundError, ImportError):
        _server_missing("SecantusDB", "pip install SecantusDB==0.7.0b3 pymongo")
    except RuntimeError as exc:
        _server_missing("SecantusDB", str(exc))
    try:
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture
def mongo_url(_secantus_server):
    """A MongoDB URL with a fresh database of its own on the session's SecantusDB."""
    name = f"rf_test_{uuid.uuid4().hex[:12]}"
    return f"mongodb://127.0.0.1:{_secantus_server}/{name}?directConnection=true"
