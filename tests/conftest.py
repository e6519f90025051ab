"""Shared fixtures. Every database test runs twice: on SQLite (the embedded default) and on
PostgreSQL (TEMOIN_TEST_POSTGRES_URL, default the local server). No PostgreSQL: those fail, loudly.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient

from temoin.platform import Platform
from temoin.settings import Settings
from temoin.web.app import create_app

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


def _postgres_database() -> Iterator[str]:
    name = f"temoin_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(POSTGRES_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc}); the suite runs on SQLite and "
                    "PostgreSQL: start it, or set TEMOIN_TEST_POSTGRES_URL", pytrace=False)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = POSTGRES_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'temoin.db'}"
    else:
        yield from _postgres_database()


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=database_url, secure_cookies=False)


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    p = Platform.open(settings, init=True)
    yield p
    p.close()


@pytest.fixture
def client(platform: Platform) -> Iterator[TestClient]:
    with TestClient(create_app(platform, scheduler=False), base_url="http://testserver") as c:
        yield c
