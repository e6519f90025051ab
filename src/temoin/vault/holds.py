"""Holds: a recording needed by a judicial, administrative or disciplinary procedure is kept under
that procedure's rules. Lifting the hold hands it back to its retention rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.platform import Platform
from temoin.vault.models import Hold, Recording
from temoin.vault.retention import active_hold


class ProcedureType(StrEnum):
    JUDICIAL = "judicial"
    ADMINISTRATIVE = "administrative"
    DISCIPLINARY = "disciplinary"


class HoldError(ValueError):
    pass


def place_hold(p: Platform, db: Session, user: User, rec: Recording, procedure: ProcedureType,
               reference: str) -> Hold:
    return place_holds(p, db, user, [rec], procedure, reference)[0]


def place_holds(p: Platform, db: Session, user: User, recs: Sequence[Recording], procedure: ProcedureType,
                reference: str) -> list[Hold]:
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
        hold = Hold(tenant_id=rec.tenant_id, recording_id=rec.id, procedure_type=ProcedureType(procedure).value,
                    reference=reference, placed_by=user.id)
        db.add(hold)
        p.record(db, EntryDraft(action=Action.MODIFICATION, event="hold.placed", actor=actor_of(user),
                                recordings=[rec.id], cameras=[rec.device_id],
                                details={"procedure": hold.procedure_type, "reference": reference,
                                         "together_with": len(recs)}),
                 db.get(Tenant, rec.tenant_id))
        made.append(hold)
    db.commit()
    return made


def lift_hold(p: Platform, db: Session, user: User, rec: Recording, reason: str) -> Hold:
    hold = active_hold(db, rec.id)
    if hold is None:
        raise HoldError(f"{rec.id} is not on hold")
    hold.lifted_by, hold.lifted_at, hold.lift_reason = user.id, utcnow(), reason.strip() or None
    p.record(db, EntryDraft(action=Action.MODIFICATION, event="hold.lifted", actor=actor_of(user),
                            recordings=[rec.id], cameras=[rec.device_id],
                            details={"procedure": hold.procedure_type, "reference": hold.reference,
                                     "reason": reason, "retention_until": rec.retention_until.isoformat()}),
             db.get(Tenant, rec.tenant_id))
    db.commit()
    return hold


def holds_of(db: Session, recording_id: str) -> list[Hold]:
    """Every hold of a recording, the active one first, then the lifted ones newest first."""
    from sqlalchemy import select

    rows = list(db.scalars(select(Hold).where(Hold.recording_id == recording_id).order_by(Hold.placed_at.desc())))
    return sorted(rows, key=lambda h: h.lifted_at is not None)
