"""Database engine and the declarative base shared by every domain package."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, MetaData, TypeDecorator, create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, sessionmaker

from temoin import errors

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class UTCDateTime(TypeDecorator[datetime]):
    """Timestamps are stored in UTC and always come back timezone-aware.

    SQLite has no timezone type; without this, comparisons would mix naive and aware values.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the database; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class PoolLimits:
    """How many connections a process holds and how long anything waits on the database (all bounded: a
    request that cannot get a connection or a lock in time fails with `errors.Unavailable`, 503, instead of
    queueing behind the others until the whole server freezes). None: wait as long as it takes (migrations)."""

    size: int = 10
    overflow: int = 10
    timeout_s: float = 3.0  # waiting for a free connection of the pool
    lock_timeout_s: float | None = 10.0  # waiting for a lock (SQLite busy timeout, PostgreSQL lock_timeout)


def _has_nul(params: Any) -> bool:
    if isinstance(params, str):
        return "\x00" in params
    if isinstance(params, dict):
        return any(_has_nul(v) for v in params.values())
    if isinstance(params, (list, tuple)):
        return any(_has_nul(v) for v in params)
    return False


def _refuse_nul_text(engine: Engine) -> None:
    """PostgreSQL cannot store a NUL character in text; SQLite can. Refuse it on both before it is sent, so the
    same request gets the same answer whatever the database (a 422 saying what to remove)."""

    @event.listens_for(engine, "before_cursor_execute")
    def _check(_conn: Any, _cursor: Any, _statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if _has_nul(parameters):
            raise errors.InvalidInput(errors.NUL_IN_TEXT)


def make_engine(url: str, limits: PoolLimits | None = None) -> Engine:
    engine = _make_engine(url, limits)
    _refuse_nul_text(engine)
    return engine


def _make_engine(url: str, limits: PoolLimits | None = None) -> Engine:
    limits = limits or PoolLimits(lock_timeout_s=None)
    pool: dict[str, Any] = {"pool_size": limits.size, "max_overflow": limits.overflow, "pool_timeout": limits.timeout_s}
    if url.startswith("sqlite"):
        busy_s = 30.0 if limits.lock_timeout_s is None else limits.lock_timeout_s
        if ":memory:" in url or url.rstrip("/") in ("sqlite:", "sqlite+pysqlite:"):
            pool = {}  # an in-memory database lives in one connection (SingletonThreadPool)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": busy_s}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cur = dbapi_conn.cursor()
            # WAL: readers do not block the writer; synchronous=FULL: a commit survives power loss.
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=FULL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    connect_args: dict[str, Any] = {}
    if limits.lock_timeout_s is not None:
        connect_args["options"] = f"-c lock_timeout={max(1, round(limits.lock_timeout_s * 1000))}"
    return create_engine(url, pool_pre_ping=True, connect_args=connect_args, **pool)


def make_sessionmaker(engine: Engine) -> sessionmaker:
    return sessionmaker(engine, expire_on_commit=False)
