"""Holds: a recording needed by a judicial, administrative or disciplinary procedure is kept under
that procedure's rules. Lifting the hold hands it back to its retention rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.db import utcnow
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.law.access import Permission, Role, allows
from temoin.vault.context import VaultContext
from temoin.vault.models import Hold, Recording
from temoin.vault.retention import active_hold


class HandedOver(Protocol):
    """An extraction (extraction.models.Extraction, above the vault): what its holds name."""

    id: str
    procedure_type: str
    reference: str
    recording_ids: list


class ProcedureType(StrEnum):
    JUDICIAL = "judicial"
    ADMINISTRATIVE = "administrative"
    DISCIPLINARY = "disciplinary"


class HoldError(errors.Conflict, ValueError):
    pass


def place_hold(
    p: VaultContext, db: Session, user: User, rec: Recording, procedure: ProcedureType, reference: str
) -> Hold:
    return place_holds(p, db, user, [rec], procedure, reference)[0]


def place_holds(
    p: VaultContext, db: Session, user: User, recs: Sequence[Recording], procedure: ProcedureType, reference: str
) -> list[Hold]:
    """One hold, one procedure and reference, on every recording of an incident: all or nothing.

    Each hold is journaled on its own; the holds and their entries commit in one transaction."""
    reference = reference.strip()
    if len(reference) < 3:
        raise HoldError("a hold needs the procedure's reference (e.g. the parquet's number)")
    if not recs:
        raise HoldError("choose at least one recording to put on hold")
    if len({r.id for r in recs}) != len(recs):
        raise HoldError("the same recording is named twice")
    held = sorted(r.id for r in recs if active_hold(db, r.id) is not None)
    if held:
        raise HoldError(f"already on hold: {', '.join(held)}; nothing was placed (lift it first or leave it out)")
    made = []
    for rec in recs:
        hold = Hold(
            tenant_id=rec.tenant_id,
            recording_id=rec.id,
            procedure_type=ProcedureType(procedure).value,
            reference=reference,
            placed_by=user.id,
        )
        db.add(hold)
        p.record(
            db,
            EntryDraft(
                action=Action.MODIFICATION,
                event="hold.placed",
                actor=actor_of(user),
                recordings=[rec.id],
                cameras=[rec.device_id],
                details={"procedure": hold.procedure_type, "reference": reference, "together_with": len(recs)},
            ),
            db.get_one(Tenant, rec.tenant_id),
        )
        made.append(hold)
    db.commit()
    return made


def place_extraction_holds(p: VaultContext, db: Session, user: User, extraction: HandedOver) -> list[Hold]:
    """A package handed over for a judicial, administrative or disciplinary procedure: each original it holds is
    kept for that procedure (a hold naming the extraction and its reference), until a person lifts it.

    In the extraction's transaction (the caller commits): no package for a procedure without its hold. The
    package itself is a plaintext copy and keeps its pick-up period; the original is what the procedure needs."""
    if extraction.procedure_type not in {t.value for t in ProcedureType}:
        return []  # training: anonymised copies, nothing to keep
    made = []
    for rec in db.scalars(select(Recording).where(Recording.id.in_(list(extraction.recording_ids)))):
        hold = Hold(
            tenant_id=rec.tenant_id,
            recording_id=rec.id,
            procedure_type=extraction.procedure_type,
            reference=extraction.reference[:200],
            placed_by=user.id,
            extraction_id=extraction.id,
        )
        db.add(hold)
        p.record(
            db,
            EntryDraft(
                action=Action.MODIFICATION,
                event="hold.placed",
                actor=actor_of(user),
                recordings=[rec.id],
                cameras=[rec.device_id],
                details={
                    "procedure": hold.procedure_type,
                    "reference": hold.reference,
                    "extraction_id": extraction.id,
                    "together_with": len(extraction.recording_ids),
                },
            ),
            db.get_one(Tenant, rec.tenant_id),
        )
        made.append(hold)
    return made


def _describe(hold: Hold) -> str:
    made_by = f", extraction {hold.extraction_id}" if hold.extraction_id else ""
    return f"hold {hold.id} ({hold.procedure_type} {hold.reference}{made_by})"


def lift_hold(
    p: VaultContext, db: Session, user: User, rec: Recording, reason: str, hold_id: int | None = None
) -> Hold:
    """A person entitled to holds lifts one (the procedure allows it): never the system, always journaled. With
    several procedures holding the recording, say which hold: the others keep it."""
    if not allows(Role(user.role), Permission.RECORDINGS_HOLD):
        raise HoldError(f"your role ({user.role}) may not lift a hold: the service's chief or the mayor does")
    active = list(
        db.scalars(
            select(Hold).where(Hold.recording_id == rec.id, Hold.lifted_at.is_(None)).order_by(Hold.placed_at, Hold.id)
        )
    )
    if not active:
        raise HoldError(f"{rec.id} is not on hold")
    if hold_id is not None:
        hold = next((h for h in active if h.id == hold_id), None)
        if hold is None:
            raise HoldError(f"{rec.id} has no active hold {hold_id}; active: {'; '.join(map(_describe, active))}")
    elif len(active) > 1:
        raise HoldError(
            f"{rec.id} is kept by {len(active)} procedures: {'; '.join(map(_describe, active))}. Name "
            "the hold to lift (hold_id); the others keep the recording"
        )
    else:
        hold = active[0]
    hold.lifted_by, hold.lifted_at, hold.lift_reason = user.id, utcnow(), reason.strip() or None
    p.record(
        db,
        EntryDraft(
            action=Action.MODIFICATION,
            event="hold.lifted",
            actor=actor_of(user),
            recordings=[rec.id],
            cameras=[rec.device_id],
            details={
                "procedure": hold.procedure_type,
                "reference": hold.reference,
                "hold_id": hold.id,
                "extraction_id": hold.extraction_id,
                "still_held": len(active) - 1,
                "reason": reason,
                "retention_until": rec.retention_until.isoformat(),
            },
        ),
        db.get_one(Tenant, rec.tenant_id),
    )
    db.commit()
    return hold


def holds_of(db: Session, recording_id: str) -> list[Hold]:
    """Every hold of a recording, the active one first, then the lifted ones newest first."""
    rows = list(db.scalars(select(Hold).where(Hold.recording_id == recording_id).order_by(Hold.placed_at.desc())))
    return sorted(rows, key=lambda h: h.lifted_at is not None)
