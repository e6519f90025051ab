"""Limitation and rectification requests take effect on the recordings they name (loi 78-17 arts. 106-107).

- Limitation freezes each named recording (vault.limitation): kept, not consulted, extracted, copied or deleted,
  until a person with the rights register lifts it, naming why. Both are journaled.
- Rectification: footage is evidence and is never altered. What the person says is inaccurate (a wrong time, a
  wrong agent, a wrong place...) is attached to the recording as a note: shown with it, listed in the API, carried
  in its extraction packages. Journaled.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.law.access import Permission, Role, allows
from temoin.rights.erasure import stored_recordings
from temoin.rights.models import RequestKind, RightsRequest
from temoin.rights.register import RightsError
from temoin.vault.catalogue import in_communes
from temoin.vault.context import VaultContext
from temoin.vault.limitation import active_limitations
from temoin.vault.models import Limitation, Recording, RecordingNote

MAX_NOTE = 4000


def _stored(p: VaultContext, db: Session, user: User, req: RightsRequest, recording_ids: list[str]) -> list[Recording]:
    ids = sorted({r.strip() for r in recording_ids if r.strip()})
    if not ids:
        raise RightsError("name the recordings concerned (from the candidates)")
    return stored_recordings(p, db, user, req, ids)[1]


def limit(p: VaultContext, db: Session, user: User, req: RightsRequest, recording_ids: list[str]) -> list[Limitation]:
    """Freeze the named recordings for a limitation request, all or none; journaled per recording."""
    if req.kind != RequestKind.LIMITATION:
        raise RightsError(f"request {req.id} is a {req.kind} request: only a limitation request freezes recordings")
    recs = _stored(p, db, user, req, recording_ids)
    already = {lim.recording_id for lim in active_limitations(db, [r.id for r in recs]) if lim.request_id == req.id}
    if already:
        raise RightsError(f"already frozen for request {req.id}: {', '.join(sorted(already))}; nothing was done")
    tenant = db.get_one(Tenant, req.tenant_id)
    made = []
    for rec in recs:
        lim = Limitation(tenant_id=rec.tenant_id, recording_id=rec.id, request_id=req.id, placed_by=user.id)
        db.add(lim)
        p.record(
            db,
            EntryDraft(
                action=Action.MODIFICATION,
                event="recording.limited",
                actor=actor_of(user),
                recordings=[rec.id],
                cameras=[rec.device_id],
                details={"request_id": req.id, "together_with": len(recs)},
            ),
            tenant,
        )
        made.append(lim)
    db.commit()
    return made


def lift(p: VaultContext, db: Session, user: User, req: RightsRequest, recording_id: str, reason: str) -> Limitation:
    """A person lifts the request's limitation of one recording, saying why (never the system); journaled. The
    recording's retention applies again (if its period is over, the next sweep deletes it)."""
    if not allows(Role(user.role), Permission.RIGHTS_MANAGE):
        raise RightsError(
            f"your role ({user.role}) may not lift a limitation: the rights officer, the chief or the mayor does"
        )
    reason = (reason or "").strip()
    if len(reason) < 3:
        raise RightsError("say why the limitation is lifted (it is journaled)")
    lim = next((x for x in active_limitations(db, [recording_id]) if x.request_id == req.id), None)
    rec = db.get(Recording, recording_id)
    if lim is None or lim.tenant_id != req.tenant_id or rec is None or not in_communes(user, rec):
        raise RightsError(f"{recording_id} is not frozen by request {req.id}")
    lim.lifted_by, lim.lifted_at, lim.lift_reason = user.id, utcnow(), reason
    p.record(
        db,
        EntryDraft(
            action=Action.MODIFICATION,
            event="recording.limitation_lifted",
            actor=actor_of(user),
            recordings=[recording_id],
            cameras=[rec.device_id],
            details={
                "request_id": req.id,
                "reason": reason,
                "still_limited": len(active_limitations(db, [recording_id])) - 1,
                "retention_until": rec.retention_until.isoformat(),
            },
        ),
        db.get_one(Tenant, req.tenant_id),
    )
    db.commit()
    return lim


def rectify(
    p: VaultContext, db: Session, user: User, req: RightsRequest, recording_ids: list[str], text: str
) -> list[RecordingNote]:
    """Attach the rectification to each named recording (the footage is never changed); journaled per recording
    with the request's id, not the note (it may name the person)."""
    if req.kind != RequestKind.RECTIFICATION:
        raise RightsError(f"request {req.id} is a {req.kind} request: only a rectification request adds a note")
    text = (text or "").strip()
    if len(text) < 3:
        raise RightsError("write the rectification: what is inaccurate and what is right")
    if len(text) > MAX_NOTE:
        raise RightsError(f"the rectification is longer than {MAX_NOTE} characters")
    recs = _stored(p, db, user, req, recording_ids)
    tenant = db.get_one(Tenant, req.tenant_id)
    made = []
    for rec in recs:
        note = RecordingNote(
            tenant_id=rec.tenant_id, recording_id=rec.id, request_id=req.id, text=text, written_by=user.id
        )
        db.add(note)
        p.record(
            db,
            EntryDraft(
                action=Action.MODIFICATION,
                event="recording.rectified",
                actor=actor_of(user),
                recordings=[rec.id],
                cameras=[rec.device_id],
                details={"request_id": req.id, "chars": len(text)},
            ),
            tenant,
        )
        made.append(note)
    db.commit()
    return made


def notes_of(db: Session, recording_id: str) -> list[RecordingNote]:
    return list(
        db.scalars(
            select(RecordingNote)
            .where(RecordingNote.recording_id == recording_id)
            .order_by(RecordingNote.written_at, RecordingNote.id)
        )
    )
