"""The status of each job, in our own table on both backends: what the web UI reads (progress, outcome) and where a
cancellation is asked (the running job sees it at its next progress report)."""

from __future__ import annotations

from collections.abc import MutableMapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, BigInteger, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from temoin.db import Base, UTCDateTime, utcnow


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLING = "cancelling"  # asked; the running job stops at its next progress report
    CANCELLED = "cancelled"


FINISHED = (JobState.DONE, JobState.FAILED, JobState.CANCELLED)


class JobRecord(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))  # the registered job function's name
    tenant_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_by: Mapped[int | None] = mapped_column(Integer, nullable=True)
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True)  # what it makes (an extraction's id)
    args: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16), default=JobState.QUEUED.value)
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    result: Mapped[dict | None] = mapped_column(JSON, nullable=True)  # the job function's summary, when done
    queue_job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # procrastinate's job id
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (Index("ix_jobs_tenant_created", "tenant_id", "created_at"),)


def not_the_queues(name: str | None, type_: Any, parent_names: MutableMapping[Any, str | None]) -> bool:
    """Alembic's include_name: procrastinate's own tables (applied by migration 0022, changed only by its release
    migrations) are not compared with our models."""
    table = name if type_ == "table" else parent_names.get("table_name")
    return not (table or "").startswith("procrastinate_")
