"""Named locks that hold across every node sharing one database (issue 21, item 3).

On PostgreSQL a name is a session-level advisory lock, held on one connection each process keeps for its locks
(`NodeLocks`): cheap to take and release, held as long as needed without a pooled connection (an upload's body may
take minutes on 4G), and released by PostgreSQL itself when the process dies (its connection closes). Advisory locks
are re-entrant within one connection, so each name is also a threading lock: two requests of one process exclude
each other as well. With SQLite (one process, the embedded default) the threading locks alone, as before.

`xact_lock(db, name)`: a transaction-level advisory lock (released at commit or rollback), for a check-then-insert
that must happen once whichever node does it (one live session per button press); nothing with SQLite, whose writer
lock and the in-process locks of the callers serialise the same work.

Used by: uploads of one segment (`vault.ingest`), the live button (`live.sessions.request`), the periodic pass,
journal sealing and scrub (`maintenance`, `vault.scrub`), the steps of an access copy (`rights.copy_jobs`).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

from temoin.errors import Unavailable

log = logging.getLogger("temoin.coordination")
POLL_S = 0.1  # between two tries of a lock another node holds


def lock_key(name: str) -> int:
    """The advisory lock number of `name` (64 bits, signed as PostgreSQL's bigint)."""
    return int.from_bytes(hashlib.blake2b(f"temoin:{name}".encode(), digest_size=8).digest(), "big", signed=True)


class LockBusy(Unavailable):
    """A lock that another node (or request) holds: the work is under way elsewhere."""


class NodeLocks:
    """The named locks of one process on one database (see the module's doc)."""

    def __init__(self, engine: Engine) -> None:
        self.shared = engine.dialect.name == "postgresql"
        self._url = engine.url
        self._local: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()  # the dictionary above, and the lock connection (one statement at a time)
        self._conn: Connection | None = None
        self._engine: Engine | None = None

    def _thread_lock(self, name: str) -> threading.Lock:
        with self._guard:
            return self._local.setdefault(name, threading.Lock())

    def _sql(self, statement: str, key: int) -> Any:
        with self._guard:
            try:
                if self._conn is None:
                    if self._engine is None:
                        self._engine = create_engine(self._url, poolclass=NullPool)
                    self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                return self._conn.execute(text(statement), {"k": key}).scalar()
            except DBAPIError as exc:
                # The connection is gone, and with it every lock it held: the next call opens a new one.
                if self._conn is not None:
                    self._conn.invalidate()
                    self._conn = None
                raise Unavailable(f"the database is unreachable for coordination between nodes: {exc.orig}") from None

    def try_acquire(self, name: str) -> bool:
        """Take `name` at once, or say False: another request or node holds it."""
        local = self._thread_lock(name)
        if not local.acquire(blocking=False):
            return False
        if not self.shared:
            return True
        try:
            if self._sql("SELECT pg_try_advisory_lock(:k)", lock_key(name)):
                return True
        except BaseException:
            local.release()
            raise
        local.release()
        return False

    def acquire(self, name: str, timeout_s: float | None = None) -> None:
        """Wait for `name` (polling another node's hold); LockBusy after `timeout_s`."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while not self.try_acquire(name):
            if deadline is not None and time.monotonic() >= deadline:
                raise LockBusy(f"{name} is held by another node or request; try again once it is done")
            time.sleep(POLL_S)

    def release(self, name: str) -> None:
        try:
            if self.shared:
                self._sql("SELECT pg_advisory_unlock(:k)", lock_key(name))
        finally:
            self._thread_lock(name).release()

    @contextmanager
    def held(self, name: str, timeout_s: float | None = None) -> Iterator[None]:
        self.acquire(name, timeout_s)
        try:
            yield
        finally:
            self.release(name)

    def close(self) -> None:
        with self._guard:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None


_by_engine: weakref.WeakKeyDictionary[Engine, NodeLocks] = weakref.WeakKeyDictionary()
_by_engine_guard = threading.Lock()


def locks_for(bind: Engine | Connection | Session) -> NodeLocks:
    """The locks of the process on this database (one set per engine: two engines act as two nodes)."""
    if isinstance(bind, Session):
        bind = bind.get_bind()  # a Session of the platform is bound to its engine
    engine = bind.engine if isinstance(bind, Connection) else bind
    with _by_engine_guard:
        locks = _by_engine.get(engine)
        if locks is None:
            locks = _by_engine[engine] = NodeLocks(engine)
        return locks


def xact_lock(db: Session, name: str) -> None:
    """Hold `name` until `db`'s transaction ends (PostgreSQL; nothing with SQLite)."""
    if db.get_bind().dialect.name == "postgresql":
        db.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(name)})
