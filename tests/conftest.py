"""Shared fixtures. Every database test runs twice: on SQLite (the embedded default) and on
PostgreSQL (TEMOIN_TEST_POSTGRES_URL, default the local server). No PostgreSQL: those fail, loudly.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from temoin.db import make_engine
from temoin.migrate import upgrade
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.web.app import create_app
from tests.s3_helpers import ACCESS_KEY, SECRET_KEY, S3Server, start_seaweedfs
from tests.tsa import closed_port, tsa  # fixtures: a real OpenSSL timestamp authority


@pytest.fixture(autouse=True, scope="session")
def private_umask() -> Iterator[None]:
    """As `temoin` itself does (temoin.private_files): what the tests create is private, like a real deployment's
    files, so that `temoin serve` started by a test finds nothing too permissive."""
    previous = os.umask(0o077)
    yield
    os.umask(previous)


@pytest.fixture(autouse=True)
def cheap_argon2(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2id at its recommended cost takes most of a second per hash on this hardware, and each commune has
    eight users: tests use argon2id with minimal parameters (a hash carries its own, so checks still work).
    Tests marked `real_argon2` keep the production parameters."""
    if request.node.get_closest_marker("real_argon2") is None:
        from argon2 import PasswordHasher

        from temoin.identity import secrets as identity_secrets

        monkeypatch.setattr(identity_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=256, parallelism=1))


POSTGRES_URL = os.environ.get("TEMOIN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres_database(template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database for one test: empty, or a copy of `template` (already migrated)."""
    name = f"temoin_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc}); the suite runs on SQLite and "
            "PostgreSQL: start it, or set TEMOIN_TEST_POSTGRES_URL",
            pytrace=False,
        )
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# Running the migrations takes most of a second per database, and nearly every test opens one: the schema is
# built once per test session (per xdist worker) by the real migrations, and each test gets a copy of it.
# tests/test_migrations.py still migrates empty databases of its own.


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("schema") / "temoin.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()  # the last connection checkpoints the WAL: the one file is the whole database
    return path


@pytest.fixture(scope="session")
def migrated_postgres() -> Iterator[str]:
    databases = _postgres_database()
    url = next(databases)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()  # a template must have no connection when it is copied
    yield url.rsplit("/", 1)[1]
    databases.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database at the current schema, on each engine."""
    if request.param == "sqlite":
        path = tmp_path / "temoin.db"
        shutil.copyfile(request.getfixturevalue("migrated_sqlite"), path)
        yield f"sqlite:///{path}"
    else:
        yield from _postgres_database(template=request.getfixturevalue("migrated_postgres"))


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database, on each engine: for tests of the migrations themselves."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'temoin.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A real S3 server (SeaweedFS) for the session; its credentials in the environment, where the platform (and
    any `temoin` it starts) finds them, as a deployment gives them."""
    names = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_EC2_METADATA_DISABLED")
    saved = {name: os.environ.get(name) for name in names}
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_EC2_METADATA_DISABLED="true")
    try:
        yield from start_seaweedfs(tmp_path_factory.mktemp("seaweedfs"))
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test on both blob stores runs on S3 with SQLite only: the store and the database engine do not meet, and
    each PostgreSQL database costs seconds (the suite's time is counted)."""
    dropped = []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("blob_store_url") == "s3" and params.get("database_url") == "postgresql":
            dropped.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [item for item in items if item not in dropped]


@pytest.fixture
def blob_store_url(request: pytest.FixtureRequest) -> str:
    """TEMOIN_BLOB_STORE_URL: local files unless a test is parametrised over both stores (s3_helpers.BOTH_STORES);
    on S3 each test has its own prefix in the session's bucket."""
    if getattr(request, "param", "local") == "local":
        return ""
    return request.getfixturevalue("s3_server").url()


@pytest.fixture
def settings(tmp_path: Path, database_url: str, blob_store_url: str) -> Settings:
    return Settings(
        home=tmp_path / "home", database_url=database_url, secure_cookies=False, blob_store_url=blob_store_url
    )


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    p = Platform.open(settings, init=True)
    yield p
    p.close()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform, scheduler=False), base_url="http://testserver") as c:
        yield c


# --- a real server and a real browser, for the web UI tests ----------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's package; `./dev.sh test` installs it
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]


@pytest.fixture(scope="module")
def browser() -> Iterator:
    """Headless Chromium driven by Playwright. Missing Chromium fails loudly: the UI is part of the product."""
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        try:
            b = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:  # noqa: BLE001 - any failure to start says how to install Chromium
            pytest.fail(
                f"Chromium cannot start from {CHROMIUM} ({exc}): install Debian's chromium package "
                "(./dev.sh test does)",
                pytrace=False,
            )
        yield b
        b.close()


def serve_in_thread(app) -> tuple[str, object, object, object]:
    """Run `app` under uvicorn on a free port in a thread; returns (url, server, thread, socket)."""
    import socket
    import threading
    import time

    import httpx
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/api/v1/platform", timeout=1).status_code == 200:
                return url, server, thread, sock
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not answer within 20 s")
        time.sleep(0.05)


def stop_served(server, thread, sock=None, timeout: float = 15) -> None:
    """Stop a server of serve_in_thread as `temoin serve` stops on SIGTERM: the event streams end first (a server in
    a thread has no signal handler to end them), so open long polls close instead of being cancelled mid-response."""
    live = getattr(getattr(server.config.app, "state", None), "live", None)
    if live is not None:
        live.bus.close()
    server.should_exit = True
    thread.join(timeout)
    if sock is not None:
        sock.close()


@pytest.fixture
def server_url(platform: Platform) -> Iterator[str]:
    """The platform served by a real uvicorn in a thread (retention scheduler off)."""
    url, server, thread, sock = serve_in_thread(create_app(platform, scheduler=False))
    try:
        yield url
    finally:
        stop_served(server, thread, sock)


# --- NATS JetStream, for the events across nodes ---------------------------------------------------------

NATS_URL = os.environ.get("TEMOIN_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture
def nats_stream() -> Iterator[tuple[str, str]]:
    """(NATS URL, a stream name of this test's own), the stream deleted afterwards. No NATS: the test fails, loudly."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    import nats

    async def connected():
        try:
            # Bounded: the client's own connection loop may go on trying.
            return await asyncio.wait_for(nats.connect(NATS_URL, connect_timeout=3, allow_reconnect=False), 10)
        except Exception as exc:  # noqa: BLE001 - any failure to connect is reported the same way
            pytest.fail(
                f"NATS is not reachable at {NATS_URL} ({exc!r}); the events tests need a nats-server with JetStream "
                "(-js): `./dev.sh test` starts one, or set TEMOIN_TEST_NATS_URL",
                pytrace=False,
            )

    async def check() -> None:
        nc = await connected()
        try:
            await nc.jetstream().account_info()
        finally:
            await nc.close()

    async def delete(name: str) -> None:
        nc = await connected()
        try:
            await nc.jetstream().delete_stream(name)
        except nats.js.errors.NotFoundError:
            pass
        finally:
            await nc.close()

    def run(coroutine) -> None:  # in a thread: a test's browser (Playwright) may hold this thread's event loop
        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, coroutine).result()

    run(check())
    name = f"TEMOINTEST_{uuid.uuid4().hex[:12]}"
    yield NATS_URL, name
    run(delete(name))
