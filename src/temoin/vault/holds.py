"""Holds: a recording needed by a judicial, administrative or disciplinary procedure is kept under
that procedure's rules. Lifting the hold hands it back to its retention rule.
"""

from __future__ import annotations

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
    reference = reference.strip()
    if len(reference) < 3:
        raise HoldError("a hold needs the procedure's reference (e.g. the parquet's number)")
    if active_hold(db, rec.id) is not None:
        raise HoldError(f"{rec.id} is already on hold")
    hold = Hold(tenant_id=rec.tenant_id, recording_id=rec.id, procedure_type=ProcedureType(procedure).value,
                reference=reference, placed_by=user.id)
    db.add(hold)
    p.record(db, EntryDraft(action=Action.MODIFICATION, event="hold.placed", actor=actor_of(user),
                            recordings=[rec.id], cameras=[rec.device_id],
                            details={"procedure": hold.procedure_type, "reference": reference}),
             db.get(Tenant, rec.tenant_id))
    db.commit()
    return hold


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
