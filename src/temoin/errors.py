"""Domain errors shared by every package: what went wrong and what to do, never an HTTP status.

Every error a package raises on purpose derives from one of the kinds below (a package's own class, e.g.
vault.catalogue.SegmentLost, subclasses the kind that says what the caller can do about it). The web layer maps
each kind to its status in one table (temoin.web.problems); the CLI prints the message.
"""

from __future__ import annotations

import sqlite3
import sys

SQLITE_BUSY, SQLITE_LOCKED = 5, 6  # another connection holds the lock beyond the busy timeout
SQLITE_FULL = 13  # "database or disk is full" (also raised when PRAGMA max_page_count is reached)
PG_OUT_OF_RANGE = "22003"  # numeric_value_out_of_range
PG_LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout reached
PG_DISK_FULL = "53100"  # disk_full: the server could not extend a file
PG_OUT_OF_MEMORY = "53200"  # out_of_memory: transient, the server is short of RAM, not of storage


class TemoinError(Exception):
    """Base of the domain errors: `message` says what went wrong and what to do about it.

    `extra` holds what a caller needs besides the message (a code, the problems found in a file, an offset to
    resume from): the web layer adds it to the problem body. `retry_after_s` says when the same request may
    succeed (the web layer sends it as Retry-After).
    """

    retry_after_s: float | None = None

    @property
    def message(self) -> str:
        if "_message" in self.__dict__:
            return self.__dict__["_message"]
        return str(self.args[0]) if self.args else type(self).__name__

    @message.setter
    def message(self, value: str) -> None:  # dataclass errors (identity.devices) set it in __init__
        self.__dict__["_message"] = value

    @property
    def extra(self) -> dict[str, object]:
        return {}


class Unauthenticated(TemoinError):
    """Who is asking is not known (no credential, or a wrong one): sign in, or send the credential."""


class NotFound(TemoinError):
    pass


class Gone(TemoinError):
    """What was asked for existed and no longer does (expired, deleted by retention): asking again will not help."""


class Forbidden(TemoinError):
    pass


class Conflict(TemoinError):
    pass


class InvalidInput(TemoinError):
    pass


class Malformed(InvalidInput):
    """The request cannot be read as what it claims to be (an SDP offer with no candidate, a body that is not
    the expected format): fix its form, not only a value."""


class PayloadTooLarge(TemoinError):
    """The request carries more than the platform accepts for it: send less (or in parts)."""


class UpstreamFault(TemoinError):
    """A device or service the platform relies on (a CCTV camera, a timestamping authority, a witness) answered
    badly or not at all: nothing is wrong with the request; check that device, or retry later."""


class UpstreamTimeout(UpstreamFault):
    """The device or service did not answer in time (unreachable, or too slow)."""


class StorageFull(TemoinError):
    """The vault's database or blob storage has no room left: nothing was written, retry once freed."""


class Fault(TemoinError):
    """The platform itself is at fault (stored bytes that do not decrypt, a key file missing, a journal file that
    cannot be written): retrying will not help; the message says what an administrator must look at."""


class Unavailable(TemoinError):
    """A resource the platform needs is short for now (memory, connections): retry later."""


class TooManyRequests(TemoinError):
    """The caller (a user, a tenant) is over its share for now: retry later."""


DATABASE_FULL = (
    "the vault's database is full: nothing of this request was saved. An administrator must free "
    "space where the database lives (or raise its size limit), then the same request can be sent again"
)
VALUE_OUT_OF_RANGE = "a number in the request (an id?) is out of range: check it; ids are the ones the API returned"
NUL_IN_TEXT = (
    "a text field of the request contains a NUL character (\\u0000), which cannot be stored: remove it "
    "and send the request again"
)
DATABASE_BUSY = (
    "the database is busy (too many requests at once, or a long operation holds what this request "
    "needs): nothing of this request was saved; send it again in a few seconds"
)
DATABASE_SHORT_OF_MEMORY = (
    "the vault's database server is out of memory: nothing of this request was saved; "
    "retry in a moment, and tell an administrator if it lasts"
)


def from_database(exc: BaseException) -> TemoinError | None:
    """The domain error for a database error that means "full", "short of memory" or "busy" (no connection
    free in the pool, a lock not granted in time), else None.

    Accepts SQLAlchemy's wrapper (its `.orig` is the driver's error), its pool timeout, or the driver's error.
    """
    # SQLAlchemy's pool timeout, looked up only if SQLAlchemy is loaded (it is whenever one can be raised): a process
    # without a database, the camera agent, does not import it (about 20 MiB) for this check.
    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.TimeoutError):
        return Unavailable(DATABASE_BUSY)
    orig = getattr(exc, "orig", None) or exc
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        if (code is not None and code & 0xFF == SQLITE_FULL) or "database or disk is full" in str(orig):
            return StorageFull(DATABASE_FULL)
        if (code is not None and code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)) or "database is locked" in str(orig):
            return Unavailable(DATABASE_BUSY)
        return None
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
