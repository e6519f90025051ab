"""Admission of the redacted-copy jobs (face detection, redaction) to the one job mechanism (`temoin.jobs`).

At most so many jobs waiting or running per tenant and in all, counted in the `jobs` table so the bound holds
across every node and worker sharing the database: the count and the new job's row (with the copy's change it
works on) are one transaction, under a lock (a PostgreSQL advisory lock, and this process's own). A refusal
comes before anything is written, so it leaves nothing half made. One tenant over its share -> TenantBusy (429),
the whole ceiling reached -> QueueFull (503); both say when to retry.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.coordination import xact_lock
from temoin.jobs import JobRecord, JobState
from temoin.settings import Settings

DETECT = "rights.detect"  # find the faces of a copy's recording
REDACT = "rights.redact"  # produce the redacted copy
KINDS = (DETECT, REDACT)
# A job being cancelled no longer counts: it stops at its next progress report, and `temoin jobs cancel` thus frees
# the place of one that will never report again (left running by an in-process server that died, on PostgreSQL).
ACTIVE = (JobState.QUEUED.value, JobState.RUNNING.value)
RETRY_AFTER_S = 30
LOCK = "rights.copy-jobs"

_local = threading.Lock()  # with SQLite (no advisory lock) this serialises the check-then-insert of one process


class TenantBusy(errors.TooManyRequests):
    pass


class QueueFull(errors.Unavailable):
    pass


def held(db: Session, tenant_id: int | None = None) -> int:
    """Redacted-copy jobs waiting or running: of one tenant, or in all."""
    query = select(func.count()).select_from(JobRecord).where(JobRecord.kind.in_(KINDS), JobRecord.state.in_(ACTIVE))
    if tenant_id is not None:
        query = query.where(JobRecord.tenant_id == tenant_id)
    return int(db.scalar(query) or 0)


@contextmanager
def admission(db: Session, settings: Settings, tenant_id: int) -> Iterator[None]:
    """Check the bounds, then let the caller add its job row (and what it works on) and commit inside the block;
    the lock is held until then. Raises TenantBusy or QueueFull before anything is written."""
    with _local:
        try:
            xact_lock(db, LOCK)
            mine = held(db, tenant_id)
            if mine >= settings.redaction_jobs_per_tenant:
                raise TenantBusy(
                    f"your commune already has {mine} redaction jobs waiting or running, the most it may "
                    f"have at once: retry when one is done (in about {RETRY_AFTER_S} s)"
                )
            if held(db) >= settings.redaction_jobs_max:
                raise QueueFull(
                    f"the server already has {settings.redaction_jobs_max} redaction jobs waiting or running: "
                    f"retry in about {RETRY_AFTER_S} s"
                )
            yield
        finally:
            db.rollback()  # after the caller's commit, nothing; on a refusal or an error, the lock goes with it


def latest(db: Session, copy_id: int) -> JobRecord | None:
    """The copy's newest job (its row is kept KEEP_FINISHED_DAYS after it ended)."""
    return db.scalar(
        select(JobRecord)
        .where(JobRecord.kind.in_(KINDS), JobRecord.subject == str(copy_id))
        .order_by(JobRecord.created_at.desc())
        .limit(1)
    )
