"""Domain errors shared by every package: what went wrong and what to do, never an HTTP status.

The web layer maps each class to its status (temoin.web.problems); the CLI prints the message.
Older packages keep their own error classes; new code raises these (or subclasses them).
"""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import TimeoutError as PoolTimeout

SQLITE_BUSY, SQLITE_LOCKED = 5, 6  # another connection holds the lock beyond the busy timeout
SQLITE_FULL = 13  # "database or disk is full" (also raised when PRAGMA max_page_count is reached)
PG_OUT_OF_RANGE = "22003"  # numeric_value_out_of_range
PG_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout reached
PG_DISK_FULL = "53100"  # disk_full: the server could not extend a file
PG_OUT_OF_MEMORY = "53200"  # out_of_memory: transient, the server is short of RAM, not of storage


class TemoinError(Exception):
    """Base of the domain errors: `message` says what went wrong and what to do about it."""

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else type(self).__name__


class NotFound(TemoinError):
    pass


class Forbidden(TemoinError):
    pass


class Conflict(TemoinError):
    pass


class InvalidInput(TemoinError):
    pass


class StorageFull(TemoinError):
    """The vault's database or blob storage has no room left: nothing was written, retry once freed."""


class Unavailable(TemoinError):
    """A resource the platform needs is short for now (memory, connections): retry later."""


class TooManyRequests(TemoinError):
    """The caller (a user, a tenant) is over its share for now: retry later."""


DATABASE_FULL = ("the vault's database is full: nothing of this request was saved. An administrator must free "
                 "space where the database lives (or raise its size limit), then the same request can be sent again")
VALUE_OUT_OF_RANGE = ("a number in the request (an id?) is out of range: check it; ids are the ones the API "
                      "returned")
NUL_IN_TEXT = ("a text field of the request contains a NUL character (\\u0000), which cannot be stored: remove it "
               "and send the request again")
DATABASE_BUSY = ("the database is busy (too many requests at once, or a long operation holds what this request "
                 "needs): nothing of this request was saved; send it again in a few seconds")
DATABASE_SHORT_OF_MEMORY = ("the vault's database server is out of memory: nothing of this request was saved; "
                            "retry in a moment, and tell an administrator if it lasts")


def from_database(exc: BaseException) -> TemoinError | None:
    """The domain error for a database error that means "full", "short of memory" or "busy" (no connection
    free in the pool, a lock not granted in time), else None.

    Accepts SQLAlchemy's wrapper (its `.orig` is the driver's error), its pool timeout, or the driver's error.
    """
    if isinstance(exc, PoolTimeout):
        return Unavailable(DATABASE_BUSY)
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if (code is not None and code & 0xFF == SQLITE_FULL) or "database or disk is full" in str(orig):
            return StorageFull(DATABASE_FULL)
        if (code is not None and code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)) or "database is locked" in str(orig):
            return Unavailable(DATABASE_BUSY)
        return None
    if "cannot contain NUL" in str(orig):  # psycopg refuses it before sending: PostgreSQL text holds no NUL byte
        return InvalidInput(NUL_IN_TEXT)
    state = getattr(orig, "sqlstate", None)  # psycopg
    if state == PG_DISK_FULL:
        return StorageFull(DATABASE_FULL)
    if state == PG_OUT_OF_MEMORY:
        return Unavailable(DATABASE_SHORT_OF_MEMORY)
    if state == PG_LOCK_NOT_AVAILABLE:
        return Unavailable(DATABASE_BUSY)
    if state == PG_OUT_OF_RANGE:  # an id or number beyond the column's type: the request's fault, not the server's
        return InvalidInput(VALUE_OUT_OF_RANGE)
    return None
