"""Extraction packages: recordings handed to a named recipient for a procedure, in a form anyone can verify
with standard tools (sha256sum, openssl, ffprobe) or `temoin verify`, offline.

The package is a folder `temoin-extraction-<id>/` (layout in docs/extraction.md), delivered as a zip of it.
The zip is written in one pass: each segment is decrypted record by record from the vault, hashed and
written into the zip as it goes, and the zip itself is hashed as it is written (never a whole recording in
memory, never a second read). Only the zip is kept, under TEMOIN_HOME/extractions/<tenant>/, for
PACKAGE_DAYS days: it is plaintext by nature, and the vault keeps the originals.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.extraction.models import Extraction, MediaKind, ProcedureType, RecipientKind
from temoin.extraction.plan import (
    MAX_RECORDINGS,
    ExtractionConflict,
    ExtractionError,
    ExtractionFault,
    ExtractionForbidden,
    ExtractionInvalid,
    ExtractionNotFound,
    ExtractionRequest,
    PackageGone,
    TrimRequest,
    _redactor,
    prepare,
)
from temoin.extraction.writing import SIGNATURE, SUMS, TIMESTAMP, Built, Progress, _details, build
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.vault import holds
from temoin.vault.context import VaultContext

PACKAGE_DAYS = 7

# What callers name as `package.X` (the web routes, the CLI, the tests): the planning and writing halves too.
__all__ = [
    "MAX_RECORDINGS",
    "PACKAGE_DAYS",
    "SIGNATURE",
    "SUMS",
    "TIMESTAMP",
    "Built",
    "ExtractionConflict",
    "ExtractionError",
    "ExtractionFault",
    "ExtractionForbidden",
    "ExtractionInvalid",
    "ExtractionNotFound",
    "ExtractionRequest",
    "MediaKind",
    "PackageGone",
    "ProcedureType",
    "Progress",
    "RecipientKind",
    "TrimRequest",
    "_redactor",
    "build",
    "extract",
    "get_own",
    "open_package",
    "prepare",
    "purge_expired",
]


# The journal's motive of an extraction: its procedure, with the reference as the words saying what for.
_MOTIVES = {
    ProcedureType.JUDICIAL: "judicial_procedure",
    ProcedureType.ADMINISTRATIVE: "administrative_procedure",
    ProcedureType.DISCIPLINARY: "disciplinary_procedure",
    ProcedureType.TRAINING: "training",
}

# --- the operation ---------------------------------------------------------------------------------------


def extract(
    p: VaultContext,
    db: Session,
    user: User,
    request: ExtractionRequest,
    progress: Progress | None = None,
    extraction_id: str | None = None,
) -> tuple[Extraction, Built]:
    """Check, build the package, then record it and journal it (one transaction) for its recipient.
    `extraction_id`: the id a queued extraction was given (the job's attempts all build that one)."""
    purge_expired(p, db)
    plan = prepare(p, db, user, request, extraction_id)
    built = build(p, plan, progress)
    try:
        row = Extraction(
            id=plan.extraction_id,
            tenant_id=user.tenant_id,
            created_by=user.id,
            created_at=plan.created_at,
            recipient_name=request.recipient_name,
            recipient_kind=request.recipient_kind.value,
            procedure_type=request.procedure_type.value,
            reference=request.reference,
            recording_ids=[r.row["id"] for r in plan.recordings],
            trim=next((r.get("trim") for r in built.manifest["recordings"] if r.get("trim")), None),
            media_kind=plan.media_kind.value,
            package_path=str(built.path.relative_to(p.settings.home)),
            package_sha256=built.sha256,
            package_bytes=built.size,
            sums_sha256=built.sums_sha256,
            expires_at=plan.created_at + timedelta(days=PACKAGE_DAYS),
            downloads=0,
            redacted=plan.media_kind == MediaKind.REDACTED,
        )
        db.add(row)
        db.flush()  # the holds name it
        holds.place_extraction_holds(p, db, user, row)  # a procedure's originals outlive the package
        p.record(
            db,
            EntryDraft(
                action=Action.COMMUNICATION,
                event="extraction.created",
                actor=plan.actor,
                recordings=row.recording_ids,
                cameras=plan.cameras,
                recipients=[request.recipient_name],
                details=_details(plan, built),
                motive={"code": _MOTIVES[request.procedure_type], "text": request.reference},
            ),
            db.get(Tenant, user.tenant_id),
        )
        db.commit()
    except BaseException:
        db.rollback()
        built.path.unlink(missing_ok=True)
        raise
    return row, built


def get_own(p: VaultContext, db: Session, user: User, extraction_id: str) -> Extraction:
    """An extraction of the user's tenant, or ExtractionNotFound; asking for another's is journaled."""
    row = db.get(Extraction, extraction_id)
    if row is None or row.tenant_id != user.tenant_id:
        if row is not None:
            p.record(
                db,
                EntryDraft(
                    action=Action.SECURITY,
                    event="access.cross_tenant",
                    actor=actor_of(user),
                    details={"asked_for": extraction_id, "what": "extraction"},
                ),
                db.get(Tenant, user.tenant_id),
            )
            db.commit()
        raise ExtractionNotFound(f"no extraction {extraction_id} in your service")
    return row


def open_package(p: VaultContext, db: Session, user: User, extraction_id: str) -> tuple[Extraction, Path]:
    """The zip, for its recipient: journaled as a communication (who fetched it, for whom)."""
    row = get_own(p, db, user, extraction_id)
    if row.package_path is None:
        raise PackageGone(
            f"the package of {extraction_id} was deleted on "
            f"{row.package_deleted_at:%Y-%m-%d} (packages are kept {PACKAGE_DAYS} days); "
            "make a new extraction"
        )
    path = p.settings.home / row.package_path
    if not path.exists():
        raise PackageGone(f"the package file of {extraction_id} is gone from {path.parent}; make a new extraction")
    row.downloads += 1
    p.record(
        db,
        EntryDraft(
            action=Action.COMMUNICATION,
            event="extraction.downloaded",
            actor=actor_of(user),
            recordings=list(row.recording_ids),
            recipients=[row.recipient_name],
            details={
                "extraction_id": row.id,
                "package_sha256": row.package_sha256,
                "reference": row.reference,
                "download": row.downloads,
            },
        ),
        db.get(Tenant, user.tenant_id),
    )
    db.commit()
    return row, path


def purge_expired(p: VaultContext, db: Session, now: datetime | None = None) -> int:
    """Delete the zips past their time (plaintext copies); the rows and the journal stay. Returns how many.

    Run by each new extraction and meant for the retention pass as well."""
    now = now or utcnow()
    rows = list(
        db.scalars(select(Extraction).where(Extraction.package_path.is_not(None), Extraction.expires_at <= now))
    )
    actor = Actor.system("retention")
    for row in rows:
        assert row.package_path is not None, "selected with package_path IS NOT NULL"
        (p.settings.home / row.package_path).unlink(missing_ok=True)
        row.package_path, row.package_deleted_at = None, now
        p.record(
            db,
            EntryDraft(
                action=Action.ERASURE,
                event="extraction.package_deleted",
                actor=actor,
                recordings=list(row.recording_ids),
                recipients=[row.recipient_name],
                details={"extraction_id": row.id, "package_sha256": row.package_sha256, "kept_days": PACKAGE_DAYS},
            ),
            db.get(Tenant, row.tenant_id),
        )
    db.commit()
    return len(rows)
