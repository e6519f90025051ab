"""Extraction packages: recordings handed to a named recipient for a procedure, in a form anyone can verify
with standard tools (sha256sum, openssl, ffprobe) or `temoin verify`, offline.

The package is a folder `temoin-extraction-<id>/` (layout in docs/extraction.md), delivered as a zip of it.
The zip is written in one pass: each segment is decrypted record by record from the vault, hashed and
written into the zip as it goes, and the zip itself is hashed as it is written (never a whole recording in
memory, never a second read). Only the zip is kept, sealed in the platform's blob store under a data key of its
own (vault.artefact_blobs: any node serves it, the store never sees it in clear), for PACKAGE_DAYS days; it is
decrypted as it is downloaded. Its SHA-256 is the plaintext zip's, the one its recipient gets.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.evidence import crypto
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
from temoin.extraction.writing import (
    PACKAGE_FILE,
    SIGNATURE,
    SUMS,
    TIMESTAMP,
    Built,
    Progress,
    _details,
    build,
    key_context,
)
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.vault import artefact_blobs, holds
from temoin.vault.context import VaultContext
from temoin.vault.storage import BlobMissing

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
    "copy_package",
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
            package_path=built.name,
            package_key=built.wrapped_key,
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
            db.get_one(Tenant, user.tenant_id),
        )
        db.commit()
    except BaseException:
        db.rollback()
        artefact_blobs.remove(p.store, p.settings.home, [built.name])
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
                db.get_one(Tenant, user.tenant_id),
            )
            db.commit()
        raise ExtractionNotFound(f"no extraction {extraction_id} in your service")
    return row


def open_package(
    p: VaultContext, db: Session, user: User, extraction_id: str, byte_range: tuple[int, int] | None = None
) -> tuple[Extraction, Iterator[bytes]]:
    """The zip (or bytes [start, end) of it), for its recipient: decrypted from the blob store as it is read (a
    package made before is read as the file it was). Journaled as a communication (who fetched it, for whom)."""
    row = get_own(p, db, user, extraction_id)
    if row.package_path is None:
        raise PackageGone(
            f"the package of {extraction_id} was deleted on "
            f"{row.package_deleted_at:%Y-%m-%d} (packages are kept {PACKAGE_DAYS} days); "
            "make a new extraction"
        )
    try:
        chunks = _package_bytes(p, row, byte_range)
    except BlobMissing:
        raise PackageGone(f"the package of {extraction_id} is gone from the store; make a new extraction") from None
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
        db.get_one(Tenant, user.tenant_id),
    )
    db.commit()
    return row, chunks


def _package_bytes(p: VaultContext, row: Extraction, byte_range: tuple[int, int] | None) -> Iterator[bytes]:
    assert row.package_path is not None, "checked by the caller"
    legacy = p.settings.home / row.package_path
    if row.package_key is None:  # made before packages were sealed in the store: the plaintext zip on this disk
        if not legacy.is_file():
            raise BlobMissing(f"{legacy} is missing")
        return _file_range(legacy, byte_range)
    data_key = crypto.unwrap_key(p.keyring.master_key, row.package_key, key_context(row.id))
    return artefact_blobs.read(p.store, artefact_blobs.key(row.package_path, PACKAGE_FILE), data_key, byte_range)


def copy_package(p: VaultContext, row: Extraction, target: Path) -> None:
    """The zip written to `target`, decrypted record by record: the copy its maker takes at once (`temoin
    extraction create --out`), part of the communication the creation journaled."""
    tmp = target.with_name(target.name + ".part")
    try:
        with tmp.open("wb") as out:
            for chunk in _package_bytes(p, row, None):
                out.write(chunk)
        tmp.replace(target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _file_range(path: Path, byte_range: tuple[int, int] | None) -> Iterator[bytes]:
    fh = path.open("rb")

    def chunks() -> Iterator[bytes]:
        with fh:
            start, end = byte_range or (0, None)
            fh.seek(start)
            left = None if end is None else end - start
            while left is None or left > 0:
                chunk = fh.read(1024 * 1024 if left is None else min(left, 1024 * 1024))
                if not chunk:
                    return
                if left is not None:
                    left -= len(chunk)
                yield chunk

    return chunks()


def purge_expired(p: VaultContext, db: Session, now: datetime | None = None) -> int:
    """Delete the zips past their time; the rows and the journal stay. Returns how many. Keys and names are
    cleared in one transaction, the blobs removed once it commits (one left by a crash between the two is found
    again by the orphan sweep, and unreadable already: its key is gone).

    Run by each new extraction and meant for the retention pass as well."""
    now = now or utcnow()
    rows = list(
        db.scalars(select(Extraction).where(Extraction.package_path.is_not(None), Extraction.expires_at <= now))
    )
    actor = Actor.system("retention")
    names = []
    for row in rows:
        assert row.package_path is not None, "selected with package_path IS NOT NULL"
        names.append(row.package_path)
        row.package_path, row.package_key, row.package_deleted_at = None, None, now
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
            db.get_one(Tenant, row.tenant_id),
        )
    db.commit()
    artefact_blobs.remove(p.store, p.settings.home, names)
    return len(rows)
