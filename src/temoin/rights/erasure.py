"""Early erasure for a person's request: the named recordings are deleted before their retention ends, each
with a signed deletion certificate (vault.retention), unless a hold for a procedure forbids it."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.platform import Platform
from temoin.rights.models import RequestKind, RightsRequest
from temoin.rights.register import RightsError
from temoin.vault import derived
from temoin.vault.limitation import active_limitations
from temoin.vault.models import DeletionCertificate, Hold, Recording, RecordingState
from temoin.vault.retention import delete_recording


class ErasureRefused(Exception):
    """A hold keeps at least one of the recordings: nothing was erased."""

    def __init__(self, held: dict[str, str]) -> None:
        self.held = held
        names = ", ".join(f"{rid} ({procedure})" for rid, procedure in sorted(held.items()))
        super().__init__(f"erasure refused: {names} kept for a procedure (hold). Nothing was erased. The person "
                         "may be answered with a restriction (indirect route through the CNIL), or the hold "
                         "lifted by the service once the procedure allows it")


class RecordingsNotFound(LookupError):
    pass


def erase_for_request(p: Platform, db: Session, user: User, req: RightsRequest,
                      recording_ids: list[str]) -> list[dict]:
    """Delete the recordings (all or none), record them on the request; returns [{recording_id, certificate_id}]."""
    if req.kind != RequestKind.ERASURE:
        raise RightsError(f"request {req.id} is a {req.kind} request: only an erasure request deletes recordings")
    ids = sorted({r.strip() for r in recording_ids if r.strip()})
    if not ids:
        raise RightsError("name the recordings to erase (from the candidates)")
    tenant = db.get(Tenant, req.tenant_id)
    recs = list(db.scalars(select(Recording).where(Recording.id.in_(ids), Recording.tenant_id == tenant.id,
                                                   Recording.state == RecordingState.STORED)))
    missing = sorted(set(ids) - {r.id for r in recs})
    if missing:
        foreign = list(db.scalars(select(Recording.id).where(Recording.id.in_(missing),
                                                             Recording.tenant_id != tenant.id)))
        if foreign:
            p.record(db, EntryDraft(action=Action.SECURITY, event="access.cross_tenant", actor=actor_of(user),
                                    details={"asked_for": foreign, "rights_request": req.id}), tenant)
            db.commit()
        raise RecordingsNotFound(f"no stored recording {', '.join(missing)} in your commune (already deleted, or "
                                 "never here)")
    held = dict(db.execute(select(Hold.recording_id, Hold.procedure_type).where(
        Hold.recording_id.in_(ids), Hold.lifted_at.is_(None))).all())
    held |= {lim.recording_id: f"limitation, request {lim.request_id}" for lim in active_limitations(db, ids)}
    if held:
        p.record(db, EntryDraft(action=Action.MODIFICATION, event="rights.erasure.refused", actor=actor_of(user),
                                recordings=sorted(held), details={"request_id": req.id, "reason": "hold"}), tenant)
        db.commit()
        raise ErasureRefused(held)
    actor = actor_of(user)
    files: list[str] = []
    for rec in recs:
        files += delete_recording(p, db, rec, reason="rights_erasure", actor=actor,
                                  details={"rights_request": req.id})
    db.flush()
    certs = dict(db.execute(select(DeletionCertificate.recording_id, DeletionCertificate.id).where(
        DeletionCertificate.recording_id.in_(ids))).all())
    done = [{"recording_id": rid, "certificate_id": certs[rid]} for rid in ids]
    req.erased = [*(req.erased or []), *done]
    p.record(db, EntryDraft(action=Action.MODIFICATION, event="rights.erasure.done", actor=actor, recordings=ids,
                            details={"request_id": req.id, "certificates": [d["certificate_id"] for d in done]}),
             tenant)
    db.commit()  # keys destroyed and journaled: from here the bytes are unreadable
    p.store.delete_prefixes([f"{tenant.slug}/{rid}" for rid in ids])
    derived.remove_files(p, files)  # thumbnails, tracks, copies, live backups, packages: gone with them
    return done
