"""Extractions for a procedure: packages anyone can verify, for a named recipient."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.extraction import jobs as extraction_jobs, package as pkg
from temoin.extraction.models import Extraction
from temoin.jobs import JobRecord
from temoin.law.access import Permission
from temoin.platform import Platform
from temoin.web.byte_ranges import byte_range, ranged_response
from temoin.web.deps import Principal, before_streaming, get_db, get_platform, require

router = APIRouter(prefix="/api/v1/extractions", tags=["extractions"])
pages = APIRouter(include_in_schema=False)


class TrimIn(BaseModel):
    recording_id: str
    start_s: float = Field(ge=0, description="seconds from the recording's start; cut at the keyframe at or before")
    end_s: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> TrimIn:
        if self.end_s <= self.start_s:
            raise ValueError("end_s must be after start_s")
        return self


class ExtractionIn(BaseModel):
    recording_ids: list[str] = Field(min_length=1, max_length=pkg.MAX_RECORDINGS)
    recipient_name: str = Field(min_length=2, max_length=200)
    recipient_kind: pkg.RecipientKind
    procedure_type: pkg.ProcedureType
    reference: str = Field(min_length=3, max_length=200)
    trim: TrimIn | None = None


class ExtractionOut(BaseModel):
    id: str
    created_at: datetime
    recipient_name: str
    recipient_kind: str
    procedure_type: str
    reference: str
    recording_ids: list[str]
    media_kind: str
    trim: dict | None
    sha256: str = Field(description="SHA-256 of the zip")
    size: int
    sums_sha256: str = Field(description="SHA-256 of the signed SHA256SUMS inside the package")
    expires_at: datetime
    available: bool
    downloads: int
    download_url: str

    @classmethod
    def of(cls, row: Extraction) -> ExtractionOut:
        return cls(
            id=row.id,
            created_at=row.created_at,
            recipient_name=row.recipient_name,
            recipient_kind=row.recipient_kind,
            procedure_type=row.procedure_type,
            reference=row.reference,
            recording_ids=list(row.recording_ids),
            media_kind=row.media_kind,
            trim=row.trim,
            sha256=row.package_sha256,
            size=row.package_bytes,
            sums_sha256=row.sums_sha256,
            expires_at=row.expires_at,
            available=row.package_path is not None,
            downloads=row.downloads,
            download_url=f"/api/v1/extractions/{row.id}/package",
        )


@router.post(
    "",
    response_model=ExtractionOut,
    status_code=201,
    summary="Build a package of recordings for a named recipient and procedure (journaled)",
)
def create(
    body: ExtractionIn,
    who: Principal = require(Permission.RECORDINGS_EXTRACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> ExtractionOut:
    row, _ = pkg.extract(p, db, who.user, _request(body))
    return ExtractionOut.of(row)


class ExtractionJobOut(BaseModel):
    id: str
    state: str = Field(description="queued, running, done, failed, cancelling, cancelled")
    done: int = Field(description="bytes packaged so far")
    total: int = Field(description="bytes to package (0 until the job starts)")
    attempts: int = Field(description="runs started (more than one when a worker died and another took it over)")
    error: str | None
    extraction_id: str
    extraction: ExtractionOut | None = Field(description="the package, once done")
    status_url: str

    @classmethod
    def of(cls, job: JobRecord, row: Extraction | None) -> ExtractionJobOut:
        return cls(
            id=job.id,
            state=job.state,
            done=job.done,
            total=job.total,
            attempts=job.attempts,
            error=job.error,
            extraction_id=job.subject or "",
            extraction=ExtractionOut.of(row) if row is not None else None,
            status_url=f"/api/v1/extractions/jobs/{job.id}",
        )


def _request(body: ExtractionIn) -> pkg.ExtractionRequest:
    trim = pkg.TrimRequest(body.trim.recording_id, body.trim.start_s, body.trim.end_s) if body.trim else None
    return pkg.ExtractionRequest(
        recording_ids=body.recording_ids,
        recipient_name=body.recipient_name.strip(),
        recipient_kind=body.recipient_kind,
        procedure_type=body.procedure_type,
        reference=body.reference.strip(),
        trim=trim,
    )


@router.post(
    "/jobs",
    response_model=ExtractionJobOut,
    status_code=202,
    summary="Ask for a package in the background: checked now, built by a job (follow it at status_url)",
)
def create_job(
    body: ExtractionIn,
    who: Principal = require(Permission.RECORDINGS_EXTRACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> ExtractionJobOut:
    request = _request(body)
    plan = pkg.prepare(p, db, who.user, request)  # refused now (right, recordings, trim), not later in a worker
    job = p.jobs.submit(
        extraction_jobs.KIND,
        extraction_jobs.job_args(who.user, request, plan.extraction_id),
        tenant_id=who.user.tenant_id,
        created_by=who.user.id,
        subject=plan.extraction_id,
    )
    return ExtractionJobOut.of(job, None)


def _job_out(p: Platform, db: Session, job: JobRecord) -> ExtractionJobOut:
    row = db.get(Extraction, job.subject) if job.subject else None
    return ExtractionJobOut.of(job, row if row is not None and row.tenant_id == job.tenant_id else None)


@router.get("/jobs/{job_id}", response_model=ExtractionJobOut, summary="A background extraction: progress, outcome")
def get_job(
    job_id: str,
    who: Principal = require(Permission.RECORDINGS_EXTRACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> ExtractionJobOut:
    return _job_out(p, db, p.jobs.get(db, job_id, who.user.tenant_id, extraction_jobs.KIND))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=ExtractionJobOut,
    summary="Cancel a background extraction: a queued one never starts, a running one stops and keeps nothing",
)
def cancel_job(
    job_id: str,
    who: Principal = require(Permission.RECORDINGS_EXTRACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> ExtractionJobOut:
    return _job_out(p, db, p.jobs.cancel(db, job_id, who.user.tenant_id, extraction_jobs.KIND))


@router.get("", response_model=list[ExtractionOut], summary="Extractions of your service, newest first")
def list_extractions(
    who: Principal = require(Permission.RECORDINGS_EXTRACT), db: Session = Depends(get_db)
) -> list[ExtractionOut]:
    rows = db.scalars(
        select(Extraction)
        .where(Extraction.tenant_id == who.user.tenant_id)
        .order_by(Extraction.created_at.desc())
        .limit(500)
    )
    return [ExtractionOut.of(r) for r in rows]


@router.get(
    "/{extraction_id}/package",
    response_class=StreamingResponse,
    summary="The package (zip) for its recipient; journaled as a communication",
)
def download(
    extraction_id: str,
    request: Request,
    who: Principal = require(Permission.RECORDINGS_EXTRACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> StreamingResponse:
    size = pkg.get_own(p, db, who.user, extraction_id).package_bytes
    wanted = byte_range(request.headers.get("range"), size)
    row, chunks = pkg.open_package(p, db, who.user, extraction_id, wanted)
    headers = {
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="temoin-extraction-{row.id}.zip"',
        "X-Content-SHA256": row.package_sha256,
    }
    before_streaming(db)
    return ranged_response(
        chunks,
        size,
        wanted,
        "application/zip",
        headers,
    )
