"""Shared fixtures: a real ``gradexp server``, real databases, a real S3 endpoint (moto).

The interface other test modules code against (keep it stable):

- ``server`` (session): a running ``gradexp server`` subprocess on a free loopback port with a
  fresh ``--data`` folder (SQLite + local objects), one user and an API key. A
  :class:`ServerProcess`: ``.url``, ``.api_key``, ``.user``, ``.data_dir``, ``.db_url``,
  ``.store_url``, ``.stop()``, ``.start()`` (same port and data), ``.new_user(name)``.
  Shared by the whole session: use unique project names and run ids.
- ``start_server(db_url=None, store_url=None, data_dir=None, env=None, port=None)``: a
  factory for servers of your own; every one is stopped at teardown.
- ``db_url``: parametrized over ``sqlite``, ``postgresql`` and ``mysql``; a fresh, empty
  database per test (dropped at teardown).
- ``db_server`` (module): a running server per database kind, shared by a module's tests.
  ``GRADEXP_TEST_DATABASES=sqlite,postgresql`` narrows the set on purpose.
- ``s3_store``: a fresh bucket on a moto S3 server (one process per session); the value is
  the ``s3://bucket/prefix`` URL (a ``str`` with ``.env``), and the AWS variables a server
  needs are set in the environment that ``start_server`` passes on.
- ``gx_env``: an isolated SDK environment (cwd, run dir, config dir under ``tmp_path``; no
  inherited ``GRADEXP_*``); ``online``: the SDK pointed at ``server``.

A database server or moto that is missing skips its tests with one line (tests/services.py;
a failure under ``GRADEXP_TEST_REQUIRE_ALL=1``). Tests that use the ``browser`` fixture
(tests/_browser.py) are marked ``browser`` and ``slow`` here. When a test fails, the logs
of the servers it used are attached to its report. Plain helpers are in tests/helpers.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import free_port, run_async
from tests.services import (
    MYSQL_HOST,
    MYSQL_PORT,
    MYSQL_USER,
    PG_ADMIN_URL,
    require_database,
    require_moto,
)

STARTUP_TIMEOUT = 60.0
LOG_TAIL_LINES = 200


# --- helpers ---------------------------------------------------------------------------------


def wait_for_health(
    url: str, timeout: float = STARTUP_TIMEOUT, proc: subprocess.Popen[bytes] | None = None
) -> None:
    """Block until ``url/healthz`` answers 200; raise if the process dies or time runs out."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError) as exc:
            last = exc
        time.sleep(0.1)
    raise TimeoutError(f"{url}/healthz did not answer within {timeout:.0f} s (last error: {last})")


async def _bootstrap_user(db_url: str, name: str) -> str:
    """Migrate the database, create user ``name`` (no password) and return a new API key."""
    from gradexp.server.domain.accounts.keys import create_key
    from gradexp.server.domain.accounts.users import create_user
    from gradexp.server.storage.db import Database
    from gradexp.server.storage.migrate import migrate

    db = Database(db_url)
    try:
        await migrate(db)
        await create_user(db, name)
        return await create_key(db, name, "tests")
    finally:
        await db.dispose()


def _server_command() -> list[str]:
    # -X faulthandler: a crash in native code (a driver at exit, say) shows its stacks.
    return [sys.executable, "-X", "faulthandler", "-m", "gradexp.server"]


def _admin(args: list[str], env: dict[str, str] | None = None) -> str:
    """Run a ``gradexp server`` admin command; returns its stdout."""
    proc = subprocess.run(
        [*_server_command(), *args], capture_output=True, text=True, env=env, timeout=120
    )
    if proc.returncode != 0:
        raise RuntimeError(
            f"`gradexp server {' '.join(args)}` failed (exit status {proc.returncode}):\n"
            f"{proc.stdout}{proc.stderr}"
        )
    return proc.stdout


# --- the server process ----------------------------------------------------------------------


@dataclass
class ServerProcess:
    """One ``gradexp server`` subprocess and the storage it uses."""

    data_dir: Path
    db_url: str
    store_url: str
    port: int
    env: dict[str, str]
    user: str = ""
    api_key: str = ""
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.data_dir / f"server-{self.port}.log"

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def storage_args(self) -> list[str]:
        """``--data/--db/--store`` as the server and its admin commands take them."""
        return ["--data", str(self.data_dir), "--db", self.db_url, "--store", self.store_url]

    @property
    def client_env(self) -> dict[str, str]:
        """Environment variables that point the SDK at this server."""
        return {"GRADEXP_BASE_URL": self.url, "GRADEXP_API_KEY": self.api_key}

    def start(self) -> ServerProcess:
        """Start (or restart) the server on the same port and storage; wait until it answers."""
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.proc = subprocess.Popen(
                [
                    *_server_command(),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    *self.storage_args,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # a Ctrl+C in the test terminal does not hit it first
            )
        finally:
            log.close()
        try:
            wait_for_health(self.url, proc=self.proc)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"{exc}\n--- server log ---\n{self.log_tail()}") from None
        return self

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM and wait (a graceful shutdown); SIGKILL if it does not exit in time."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)

    def kill(self) -> None:
        """SIGKILL: the server dies without any cleanup (crash tests)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.proc is not None and self.proc.poll() is None

    def admin(self, *args: str) -> str:
        """Run ``gradexp server <args> --data/--db/--store`` on this server's storage."""
        return _admin([*args, *self.storage_args], env=self.env)

    def new_user(self, name: str | None = None) -> tuple[str, str]:
        """Create a user and an API key for it: returns ``(user, key)``.

        Done in this process on the server's database (the same functions the admin CLI
        calls; the CLI itself has its own tests): three interpreter start-ups per server
        made every storage test several seconds slower.
        """
        name = name or f"user-{uuid.uuid4().hex[:8]}"
        return name, run_async(_bootstrap_user(self.db_url, name))

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        key: str | None = None,
        headers: dict[str, str] | None = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any]:
        """One HTTP request to the API (JSON in and out): returns ``(status, decoded body)``."""
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        hdrs = {"Authorization": f"Bearer {key or self.api_key}"}
        if body is not None and raw is None:
            hdrs["Content-Type"] = "application/json"
        hdrs.update(headers or {})
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=hdrs)
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                payload = resp.read()
                status = resp.status
                ctype = resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as err:
            payload = err.read()
            status = err.code
            ctype = err.headers.get("Content-Type", "")
        if "json" in ctype and payload:
            return status, json.loads(payload)
        return status, payload

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> str:
        """The end of the server's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


def _make_server(
    root: Path,
    db_url: str | None,
    store_url: str | None,
    data_dir: Path | None,
    env: dict[str, str] | None,
    port: int | None,
) -> ServerProcess:
    data = data_dir or Path(tempfile.mkdtemp(prefix="data-", dir=root))
    base_env = dict(os.environ)
    base_env.setdefault("GRADEXP_SERVER_POLL_INTERVAL", "0.1")
    base_env.update(env or {})
    return ServerProcess(
        data_dir=data,
        db_url=db_url or f"sqlite:///{data / 'gradexp.db'}",
        store_url=store_url or str(data / "objects"),
        port=port or free_port(),
        env=base_env,
    )


_SERVERS_KEY = pytest.StashKey[list[ServerProcess]]()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A shared server (SQLite + local folder) with one user and key."""
    srv = _make_server(tmp_path_factory.mktemp("server"), None, None, None, None, None)
    srv.user, srv.api_key = srv.new_user("ada")
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def start_server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``start_server(db_url=None, store_url=None, data_dir=None, env=None, port=None)``.

    The first server started on a database creates user ``ada`` and a key (``.user``,
    ``.api_key``); later servers of the same test on the same ``db_url`` (a second process
    on one PostgreSQL) carry the same credentials.
    """
    started: list[ServerProcess] = []
    request.node.stash[_SERVERS_KEY] = started
    users_by_db: dict[str, tuple[str, str]] = {}

    def factory(
        db_url: str | None = None,
        store_url: str | None = None,
        data_dir: str | Path | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
    ) -> ServerProcess:
        srv = _make_server(
            tmp_path_factory.mktemp("server"),
            db_url,
            store_url,
            Path(data_dir) if data_dir is not None else None,
            env,
            port,
        )
        if srv.db_url in users_by_db:
            srv.user, srv.api_key = users_by_db[srv.db_url]
        else:
            srv.user, srv.api_key = srv.new_user("ada")
            users_by_db[srv.db_url] = (srv.user, srv.api_key)
        started.append(srv)
        return srv.start()

    yield factory
    for srv in started:
        srv.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[Any]:
    """Attach the logs of the servers a failed test used to its report."""
    report = yield
    if report.failed:
        servers: list[ServerProcess] = list(item.stash.get(_SERVERS_KEY, []))
        funcargs = getattr(item, "funcargs", {})
        servers += [
            funcargs[name]
            for name in ("server", "db_server")
            if isinstance(funcargs.get(name), ServerProcess)
        ]
        for srv in servers:
            report.sections.append((f"gradexp server log ({srv.url})", srv.log_tail()))
    return report


# --- the SDK's environment -------------------------------------------------------------------


@pytest.fixture
def gx_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An isolated gradexp environment: cwd, run dir and config dir under ``tmp_path``.

    No inherited ``GRADEXP_*`` variables, so no test reads or writes the real home; any run
    the test leaves open is finished, and any model it watches is unwatched, at teardown.
    The SDK and tensor packages use it for every test (an autouse fixture in their conftest).
    """
    for name in list(os.environ):
        if name.startswith("GRADEXP_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("GRADEXP_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("GRADEXP_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    import gradexp

    run = gradexp.run
    if run is not None:
        run.finish(timeout=30)
    watching = sys.modules.get("gradexp.integrations.torch")  # never import torch for this
    if watching is not None:
        watching.unwatch()


@pytest.fixture
def online(server: ServerProcess, monkeypatch: pytest.MonkeyPatch) -> ServerProcess:
    """Point the SDK at the shared test server (environment variables)."""
    monkeypatch.setenv("GRADEXP_BASE_URL", server.url)
    monkeypatch.setenv("GRADEXP_API_KEY", server.api_key)
    return server


# --- browser tests ---------------------------------------------------------------------------


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by these marks
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that drives chromium (through the ``browser`` fixture) ``browser``
    and ``slow``.

    The marks follow the fixture, so ``-m "not browser"`` leaves out exactly the tests that
    would start a browser, wherever they are; and the fast loop (``-m "not slow"``) never
    waits for chromium.
    """
    for item in items:
        if "browser" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)
            item.add_marker(pytest.mark.slow)


# --- databases -------------------------------------------------------------------------------


def _enabled_databases() -> list[str]:
    wanted = os.environ.get("GRADEXP_TEST_DATABASES", "sqlite,postgresql,mysql")
    return [d.strip() for d in wanted.split(",") if d.strip()]


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _mysql_admin(sql: str) -> None:
    import pymysql

    conn = pymysql.connect(host=MYSQL_HOST, port=MYSQL_PORT, user=MYSQL_USER, password="")
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


@contextlib.contextmanager
def fresh_database(kind: str, root: Path) -> Iterator[str]:
    """A new, empty database of ``kind``; dropped afterwards. Yields its URL.

    Skips (fails under ``GRADEXP_TEST_REQUIRE_ALL=1``) if the database server is down.
    """
    require_database(kind)
    name = f"gx_test_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        folder = root / name
        folder.mkdir(parents=True)
        yield f"sqlite:///{folder / 'gradexp.db'}"
        shutil.rmtree(folder, ignore_errors=True)
    elif kind == "postgresql":
        run_async(_pg_admin(f'CREATE DATABASE "{name}"'))
        base = PG_ADMIN_URL.rsplit("/", 1)[0]
        try:
            yield f"{base}/{name}"
        finally:
            run_async(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    elif kind == "mysql":
        _mysql_admin(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
        try:
            yield f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{name}"
        finally:
            _mysql_admin(f"DROP DATABASE IF EXISTS `{name}`")
    else:
        raise ValueError(kind)


@pytest.fixture(params=_enabled_databases())
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database URL: SQLite, PostgreSQL or MariaDB/MySQL (one test each)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url
        # Stop this test's servers on the database before it is dropped (fixtures tear down
        # in reverse order, so ``start_server`` may not have stopped them yet).
        for srv in request.node.stash.get(_SERVERS_KEY, []):
            if srv.db_url == url:
                srv.stop()


@pytest.fixture(scope="module", params=_enabled_databases())
def db_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One server per database kind, shared by the tests of a module (use unique run ids).

    For tests that need every database but not a fresh one each: much faster than
    ``start_server(db_url=db_url)`` per test.
    """
    root = tmp_path_factory.mktemp(f"db-server-{request.param}")
    with fresh_database(request.param, root) as url:
        srv = _make_server(root, url, None, None, None, None)
        srv.user, srv.api_key = srv.new_user("ada")
        srv.start()
        try:
            yield srv
        finally:
            srv.stop()


# --- S3 (moto) -------------------------------------------------------------------------------


class S3Url(str):
    """An ``s3://bucket/prefix`` URL that also carries the environment a server needs."""

    env: dict[str, str]
    bucket: str
    endpoint: str


@dataclass
class _Moto:
    endpoint: str
    proc: subprocess.Popen[bytes]


@pytest.fixture(scope="session")
def _moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Moto]:
    cmd = require_moto()
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(endpoint + "/moto-api/", timeout=2):
                break
        except urllib.error.HTTPError:
            break  # answering at all is enough
        except (urllib.error.URLError, OSError):
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto_server did not start:\n{log.read_text()}") from None
            time.sleep(0.2)
    yield _Moto(endpoint, proc)
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()


S3_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture
def s3_store(_moto_server: _Moto, monkeypatch: pytest.MonkeyPatch) -> S3Url:
    """A fresh bucket on the moto S3 server, as ``s3://bucket/gradexp``."""
    import boto3

    bucket = f"gx-{uuid.uuid4().hex[:16]}"
    env = {**S3_ENV, "AWS_ENDPOINT_URL": _moto_server.endpoint}
    client = boto3.client(
        "s3",
        endpoint_url=_moto_server.endpoint,
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_REGION"],
    )
    client.create_bucket(Bucket=bucket)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    url = S3Url(f"s3://{bucket}/gradexp")
    url.env = env
    url.bucket = bucket
    url.endpoint = _moto_server.endpoint
    return url
