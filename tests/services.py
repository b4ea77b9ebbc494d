"""The services the tests drive, and what happens when one is missing.

Tests run against real things: chromium, an S3 server (moto), PostgreSQL, MariaDB, a
notebook kernel, torch. On a machine without one of them, the tests that need it skip
with one line saying which service is missing and how to get it; everything else runs.
CI must not skip anything, so ``GRADEXP_TEST_REQUIRE_ALL=1`` (set in ``.ci/run``) turns
each of those skips into a failure with the same line.

Every check goes through :func:`unavailable`, so the policy lives here and nowhere else.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import NoReturn

import pytest

from tests.helpers import run_async

REQUIRE_ALL_ENV = "GRADEXP_TEST_REQUIRE_ALL"

CHROMIUM = os.environ.get("GRADEXP_TEST_CHROMIUM", "/usr/bin/chromium")
PG_ADMIN_URL = os.environ.get("GRADEXP_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
MYSQL_HOST = os.environ.get("GRADEXP_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("GRADEXP_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("GRADEXP_TEST_MYSQL_USER", "root")


def require_all() -> bool:
    """Whether a missing service fails the test instead of skipping it (CI)."""
    return os.environ.get(REQUIRE_ALL_ENV, "").strip().lower() in ("1", "true", "yes")


def unavailable(service: str, why: str, fix: str) -> NoReturn:
    """Skip (or, with ``GRADEXP_TEST_REQUIRE_ALL=1``, fail) because ``service`` is missing.

    Works inside a test or fixture and at module level (a module that cannot even be
    imported without the service).
    """
    message = f"{service} is not available ({why}); {fix}"
    if require_all():
        pytest.fail(f"{message} [{REQUIRE_ALL_ENV}=1: a missing service fails]", pytrace=False)
    pytest.skip(message, allow_module_level=True)


def require_module(name: str, service: str | None = None, fix: str | None = None) -> ModuleType:
    """Import ``name``, or skip/fail with one line if it is not installed."""
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        unavailable(
            service or name,
            f"cannot import {name}: {exc}",
            fix or "install the test extras: pip install -e '.[server,dev,torch]'",
        )


def require_torch() -> ModuleType:
    """torch (the ``torch`` extra)."""
    return require_module("torch", fix="install it: pip install -e '.[torch]'")


def require_kernel() -> tuple[ModuleType, ModuleType]:
    """A Jupyter kernel for this interpreter (ipykernel); returns nbformat and nbclient."""
    require_module("ipykernel", service="a notebook kernel")
    return (
        require_module("nbformat", service="a notebook kernel"),
        require_module("nbclient", service="a notebook kernel"),
    )


def require_chromium() -> None:
    """Debian's chromium (Playwright drives it; it never downloads a browser)."""
    if not Path(CHROMIUM).exists():
        unavailable(
            "chromium",
            f"no browser at {CHROMIUM}",
            "install Debian's chromium (apt-get install chromium) or point "
            "GRADEXP_TEST_CHROMIUM at one",
        )
    require_module("playwright", service="chromium (Playwright)")


def require_moto() -> list[str]:
    """moto's S3 server and boto3; returns the command that starts the server."""
    require_module("boto3", service="moto_server (S3)")
    moto_bin = Path(sys.executable).with_name("moto_server")
    if moto_bin.exists():
        return [str(moto_bin)]
    if importlib.util.find_spec("moto") is None or importlib.util.find_spec("flask") is None:
        unavailable(
            "moto_server (S3)",
            f"no moto_server beside {sys.executable} and no moto[server] to import",
            "install it: pip install 'moto[server]'",
        )
    return [sys.executable, "-m", "moto.server"]


DATABASE_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mysql": "MariaDB/MySQL"}


def require_database(kind: str) -> None:
    """A reachable database server of ``kind`` (SQLite needs none)."""
    problem = _database_problem(kind)
    if problem is not None:
        where = PG_ADMIN_URL if kind == "postgresql" else f"{MYSQL_HOST}:{MYSQL_PORT}"
        others = ",".join(k for k in DATABASE_NAMES if k != kind)
        unavailable(
            DATABASE_NAMES[kind],
            f"cannot connect to {where}: {problem}",
            f"start it, or leave it out with GRADEXP_TEST_DATABASES={others}",
        )


@functools.cache
def _database_problem(kind: str) -> str | None:
    """Why a database server cannot be reached, or None; asked once per session."""
    if kind == "sqlite":
        return None
    try:
        if kind == "postgresql":
            import asyncpg

            async def probe() -> None:
                conn = await asyncpg.connect(PG_ADMIN_URL, timeout=5)
                await conn.close()

            run_async(probe())
        elif kind == "mysql":
            import pymysql

            pymysql.connect(
                host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password="", connect_timeout=5
            ).close()
        else:
            raise ValueError(f"unknown database kind {kind!r}")
    except (ImportError, OSError, TimeoutError) as exc:
        return str(exc) or type(exc).__name__
    except Exception as exc:  # the drivers' own errors: refused logins, missing databases
        if type(exc).__module__.startswith(("asyncpg", "pymysql")):
            return f"{type(exc).__name__}: {exc}"
        raise
    return None
