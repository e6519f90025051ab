"""Background jobs: long work run later, bounded, with a status, one interface over two backends.

- `inline` (the default, and the only one on SQLite): jobs run in the process that asks for them, in a small
  thread pool, as the platform always did.
- `postgresql` (TEMOIN_JOBS=postgresql): jobs are queued in PostgreSQL with procrastinate and run by
  `temoin worker` processes on any machine; a job whose worker dies is run again by another (jobs are idempotent).

Both write the job's state and progress to the `jobs` table (`temoin.jobs.models.JobRecord`), which the web UI
reads and where a cancellation is asked. This package sits low in the layers: the domain packages register their
job functions here (`register`) and the platform wires the backend; nothing here imports them.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import delete, inspect, update
from sqlalchemy.orm import Session, sessionmaker

from temoin.db import utcnow
from temoin.errors import Conflict, NotFound, TemoinError
from temoin.jobs.models import FINISHED, JobRecord, JobState

log = logging.getLogger("temoin.jobs")


class JobCancelled(Conflict):
    """Raised inside a job at a progress report once its cancellation was asked: the job stops, nothing is kept."""


class Run:
    """What a running job is handed: report progress (and learn of a cancellation) through it."""

    EVERY_S = 0.5  # progress is written (and a cancellation looked for) at most this often

    def __init__(self, sessions: sessionmaker, job_id: str) -> None:
        self._sessions = sessions
        self.job_id = job_id
        self._last = 0.0

    def progress(self, done: int, total: int) -> None:
        """Record progress; raise JobCancelled if the job's cancellation was asked."""
        now = time.monotonic()
        if now - self._last < self.EVERY_S and done < total:
            return
        self._last = now
        with self._sessions() as db:
            row = db.get(JobRecord, self.job_id)
            if row is None or row.state in (JobState.CANCELLING, JobState.CANCELLED):
                raise JobCancelled(f"job {self.job_id} was cancelled")
            row.done, row.total, row.updated_at = done, total, utcnow()
            db.commit()


# A job function: (the platform, the run, its arguments) -> a short JSON-able summary (a dict) or None.
JobFunction = Callable[[Any, Run, dict], Any]

_registry: dict[str, JobFunction] = {}


def register(kind: str, fn: JobFunction) -> None:
    """Name a job function (called at import by the package that owns it, or by the wiring in temoin.platform)."""
    _registry[kind] = fn


def function(kind: str) -> JobFunction:
    try:
        return _registry[kind]
    except KeyError:
        raise NotFound(f"no job function {kind!r} is registered in this process") from None


@dataclass
class Periodic:
    """A duty run every `every_s` seconds: by one worker of the cluster (postgresql), or by the server (inline)."""

    name: str
    every_s: float
    work: Callable[[Any], object]  # what it returns is not kept
    lock: str  # duties with the same lock never run at once, on any node


periodic: dict[str, Periodic] = {}


def register_periodic(name: str, every_s: float, work: Callable[[Any], object], *, lock: str | None = None) -> None:
    periodic[name] = Periodic(name, every_s, work, lock or name)


def new_id() -> str:
    return "job-" + secrets.token_hex(10)


def execute(p: Any, job_id: str) -> None:
    """Run one job by its id, on either backend: idempotent (a finished job is not run again; the job function
    itself must make its result whole or nothing, and find what an earlier attempt finished)."""
    with p.session() as db:
        row = db.get(JobRecord, job_id)
        if row is None:
            log.warning("job %s: no such job, skipped", job_id)
            return
        if row.state in FINISHED:
            return
        if row.state == JobState.CANCELLING:
            _finish(db, row, JobState.CANCELLED, None)
            return
        row.state, row.attempts, row.updated_at = JobState.RUNNING.value, row.attempts + 1, utcnow()
        kind, args = row.kind, dict(row.args)
        db.commit()
    run = Run(p.sessions, job_id)
    try:
        result = function(kind)(p, run, args)
    except JobCancelled:
        with p.session() as db:
            _finish(db, db.get_one(JobRecord, job_id), JobState.CANCELLED, None)
        return
    except TemoinError as exc:  # the request cannot be done (a hold, a deleted recording...): say why, no retry
        with p.session() as db:
            _finish(db, db.get_one(JobRecord, job_id), JobState.FAILED, str(exc))
        return
    except BaseException as exc:
        with p.session() as db:
            _finish(db, db.get_one(JobRecord, job_id), JobState.FAILED, f"{type(exc).__name__}: {exc}")
        raise
    with p.session() as db:
        _finish(db, db.get_one(JobRecord, job_id), JobState.DONE, None, result if isinstance(result, dict) else None)


def _finish(db: Session, row: JobRecord, state: JobState, error: str | None, result: dict | None = None) -> None:
    db.refresh(row)
    if row.state == JobState.DONE and state != JobState.DONE:
        return  # another attempt (a worker taken for dead that was only slow) finished it: that result stands
    row.state, row.error, row.updated_at = state.value, error, utcnow()
    if result is not None:
        row.result = result
    if state == JobState.DONE and row.total:
        row.done = row.total
    db.commit()


KEEP_FINISHED_DAYS = 7  # a finished job's row (its arguments name recordings and recipients) is kept this long


def purge_finished(db: Session, now: datetime) -> int:
    """Delete the rows of jobs finished more than KEEP_FINISHED_DAYS ago (the periodic pass); what a job made keeps
    its own record (an extraction's row, the journal)."""
    result = db.execute(
        delete(JobRecord).where(
            JobRecord.state.in_([s.value for s in FINISHED]),
            JobRecord.updated_at < now - timedelta(days=KEEP_FINISHED_DAYS),
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def fail_unfinished_inline(p: Any) -> int:
    """At a server's start on SQLite with in-process jobs: jobs left queued or running died with the last process
    (no other process runs them), so they are marked failed, saying so. Elsewhere nothing: on PostgreSQL another
    process may be running them (and the workers take over a dead one's jobs)."""
    if p.settings.jobs != "inline" or not p.settings.database_url.startswith("sqlite"):
        return 0
    with p.session() as db:
        result = db.execute(
            update(JobRecord)
            .where(JobRecord.state.in_([JobState.QUEUED.value, JobState.RUNNING.value, JobState.CANCELLING.value]))
            .values(
                state=JobState.FAILED.value,
                error="the server stopped before this job finished: ask for it again",
                updated_at=utcnow(),
            )
        )
        db.commit()
        return int(getattr(result, "rowcount", 0) or 0)


class Backend(Protocol):
    name: str

    def enqueue(self, job_id: str, kind: str) -> int | None:
        """Hand the job over to run; returns the queue's own id of it, if any."""
        ...

    def withdraw(self, queue_job_id: int | None) -> bool:
        """Keep a queued job from starting; False: it may start yet (it then sees its cancellation and stops)."""
        ...

    def close(self) -> None: ...


class Jobs:
    """The platform's job queue: `submit`, `get`, `cancel`, whichever backend runs them."""

    def __init__(self, p: Any, backend: Backend) -> None:
        self._p = p
        self.backend = backend

    def submit(
        self,
        kind: str,
        args: dict,
        *,
        tenant_id: int | None = None,
        created_by: int | None = None,
        subject: str | None = None,
    ) -> JobRecord:
        with self._p.session() as db:
            row = self.add(db, kind, args, tenant_id=tenant_id, created_by=created_by, subject=subject)
            db.commit()
            db.refresh(row)
            db.expunge(row)  # as it was asked for: the answer says "queued" even if a thread starts it at once
        return self.start(row)

    def add(
        self,
        db: Session,
        kind: str,
        args: dict,
        *,
        tenant_id: int | None = None,
        created_by: int | None = None,
        subject: str | None = None,
    ) -> JobRecord:
        """The job's row, added to `db`'s transaction (with what it works on, and an admission check under the same
        lock): the caller commits, then `start`s it. A row committed and never started is failed by `start`."""
        function(kind)  # a name with no function is refused now, not in the worker
        row = JobRecord(id=new_id(), kind=kind, args=args, tenant_id=tenant_id, created_by=created_by, subject=subject)
        db.add(row)
        db.flush()
        return row

    def start(self, row: JobRecord) -> JobRecord:
        """Hand a committed job row over to the backend."""
        job_id, kind = row.id, row.kind
        try:
            queue_id = self.backend.enqueue(job_id, kind)
        except Exception as exc:
            with self._p.session() as db:
                _finish(db, db.get_one(JobRecord, job_id), JobState.FAILED, f"could not be queued: {exc}")
            raise
        if queue_id is not None:
            with self._p.session() as db:
                db.execute(update(JobRecord).where(JobRecord.id == job_id).values(queue_job_id=queue_id))
                db.commit()
            if inspect(row).detached:  # a row of the caller's session is left to it (its next read has it)
                row.queue_job_id = queue_id
        return row

    def get(self, db: Session, job_id: str, tenant_id: int | None, kind: str | None = None) -> JobRecord:
        """The job, if it is of the tenant (and of `kind`); else NotFound."""
        row = db.get(JobRecord, job_id)
        if row is None or (tenant_id is not None and row.tenant_id != tenant_id) or (kind and row.kind != kind):
            raise NotFound(f"no job {job_id} in your service")
        return row

    def cancel(self, db: Session, job_id: str, tenant_id: int | None, kind: str | None = None) -> JobRecord:
        """Ask the job to stop: a queued one never starts, a running one stops at its next progress report and
        keeps nothing. A finished job cannot be cancelled (Conflict)."""
        row = self.get(db, job_id, tenant_id, kind)
        if row.state in FINISHED:
            raise Conflict(f"job {job_id} is already {row.state}: there is nothing to cancel")
        queued = row.state == JobState.QUEUED
        db.execute(
            update(JobRecord)
            .where(JobRecord.id == job_id, JobRecord.state.in_([JobState.QUEUED.value, JobState.RUNNING.value]))
            .values(state=JobState.CANCELLING.value, updated_at=utcnow())
        )
        db.commit()
        db.refresh(row)
        if queued and row.state == JobState.CANCELLING and self.backend.withdraw(row.queue_job_id):
            _finish(db, row, JobState.CANCELLED, None)
        return row

    def close(self) -> None:
        self.backend.close()


__all__ = [
    "FINISHED",
    "Backend",
    "JobCancelled",
    "JobRecord",
    "JobState",
    "Jobs",
    "Periodic",
    "Run",
    "execute",
    "periodic",
    "register",
    "register_periodic",
]
