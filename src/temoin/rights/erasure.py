"""Early erasure for a person's request: the named recordings are deleted before their retention ends, each
with a signed deletion certificate (vault.retention), unless a hold for a procedure forbids it.

Four eyes: one person proposes (propose_erasure), a second person approves (decide_erasure), and only then is
anything deleted. A proposal names only recordings the request's candidate search finds (rights.candidates,
from the facts recorded on the request) or recordings the proposer justifies one by one."""

from __future__ import annotations

import logging

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.db import utcnow
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.rights.candidates import SearchWindowInvalid, candidates_for_request
from temoin.rights.models import ErasureProposal, ProposalState, RequestKind, RequestStatus, RightsRequest
from temoin.rights.register import RightsError, may_see
from temoin.vault import derived
from temoin.vault.catalogue import in_communes
from temoin.vault.context import VaultContext
from temoin.vault.limitation import active_limitations
from temoin.vault.models import DeletionCertificate, Hold, PendingBlobDeletion, Recording, RecordingState
from temoin.vault.retention import delete_recording

log = logging.getLogger(__name__)


class ErasureRefused(errors.Conflict):
    """A hold keeps at least one of the recordings: nothing was erased."""

    def __init__(self, held: dict[str, str]) -> None:
        self.held = held
        names = ", ".join(f"{rid} ({procedure})" for rid, procedure in sorted(held.items()))
        super().__init__(
            f"erasure refused: {names} kept for a procedure (hold). Nothing was erased. The person "
            "may be answered with a restriction (indirect route through the CNIL), or the hold "
            "lifted by the service once the procedure allows it"
        )


class RecordingsNotFound(errors.NotFound, LookupError):
    pass


class ProposalNotFound(errors.NotFound, LookupError):
    pass


MIN_JUSTIFICATION = 10


def candidate_ids(db: Session, user: User, req: RightsRequest) -> set[str]:
    """The recordings the request's candidate search finds (rights.candidates, from the facts recorded on the
    request): exactly those its page lists, so an erasure acts on nothing the search did not show."""
    try:
        found = candidates_for_request(db, user, req)
    except SearchWindowInvalid:  # no time for the facts: no candidate, each recording needs a justification
        return set()
    return {c.recording_id for c in found.candidates}


def _clean_ids(req: RightsRequest, recording_ids: list[str]) -> list[str]:
    if req.kind != RequestKind.ERASURE:
        raise RightsError(f"request {req.id} is a {req.kind} request: only an erasure request deletes recordings")
    ids = sorted({r.strip() for r in recording_ids if r.strip()})
    if not ids:
        raise RightsError("name the recordings to erase (from the candidates)")
    return ids


def propose_erasure(
    p: VaultContext,
    db: Session,
    user: User,
    req: RightsRequest,
    recording_ids: list[str],
    justifications: dict[str, str] | None = None,
) -> ErasureProposal:
    """Propose to erase these recordings for the request; nothing is deleted until a second person approves.

    A recording the request's candidate search does not find needs a justification (why it shows the person)."""
    ids = _clean_ids(req, recording_ids)
    given = {k.strip(): (v or "").strip() for k, v in (justifications or {}).items() if (v or "").strip()}
    strangers = sorted(set(given) - set(ids))
    if strangers:
        raise RightsError(f"justifications for {', '.join(strangers)}, which the proposal does not name")
    tenant, _recs = stored_recordings(p, db, user, req, ids)
    _refuse_if_held(p, db, user, req, tenant, ids)
    found = candidate_ids(db, user, req)
    unjustified = [rid for rid in ids if rid not in found and len(given.get(rid, "")) < MIN_JUSTIFICATION]
    if unjustified:
        raise RightsError(
            f"{', '.join(unjustified)} not among the recordings the request's candidate search finds "
            "(its time, place and agent): record the facts on the request, or justify each one (why "
            f"it shows the person, {MIN_JUSTIFICATION} characters at least)"
        )
    justified = {rid: text for rid, text in given.items() if rid not in found}
    proposal = ErasureProposal(
        tenant_id=tenant.id,
        request_id=req.id,
        recording_ids=ids,
        justifications=justified,
        state=ProposalState.PENDING.value,
        proposed_by=user.id,
    )
    db.add(proposal)
    db.flush()
    # The justifications may describe the person: they stay on the proposal, the journal says which were justified.
    p.record(
        db,
        EntryDraft(
            action=Action.MODIFICATION,
            event="rights.erasure.proposed",
            actor=actor_of(user),
            recordings=ids,
            details={"request_id": req.id, "proposal_id": proposal.id, "justified": sorted(justified)},
        ),
        tenant,
    )
    db.commit()
    return proposal


def get_proposal(db: Session, user: User, proposal_id: int) -> ErasureProposal:
    proposal = db.get(ErasureProposal, proposal_id)
    req = db.get(RightsRequest, proposal.request_id) if proposal is not None else None
    if proposal is None or proposal.tenant_id != user.tenant_id or req is None or not may_see(user, req):
        raise ProposalNotFound(f"no erasure proposal {proposal_id} in your commune")
    return proposal


def proposals_of(db: Session, req: RightsRequest) -> list[ErasureProposal]:
    return list(
        db.scalars(select(ErasureProposal).where(ErasureProposal.request_id == req.id).order_by(ErasureProposal.id))
    )


def decide_erasure(
    p: VaultContext, db: Session, user: User, proposal: ErasureProposal, *, approve: bool, reason: str | None = None
) -> list[dict]:
    """A second person approves (the recordings are erased now) or rejects (with a reason) a proposal.
    Returns the erased [{recording_id, certificate_id}] ([] when rejected)."""
    if proposal.state != ProposalState.PENDING:
        raise RightsError(f"erasure proposal {proposal.id} is already {proposal.state}")
    if proposal.proposed_by == user.id:
        raise RightsError("four eyes: a second person approves an erasure, not the one who proposed it")
    req = db.get_one(RightsRequest, proposal.request_id)
    tenant = db.get_one(Tenant, proposal.tenant_id)
    proposer = db.get_one(User, proposal.proposed_by)
    reason = (reason or "").strip() or None
    if not approve:
        if not reason:
            raise RightsError("say why the erasure is rejected")
        proposal.state, proposal.decided_by, proposal.decided_at = ProposalState.REJECTED.value, user.id, utcnow()
        proposal.reason = reason
        p.record(
            db,
            EntryDraft(
                action=Action.MODIFICATION,
                event="rights.erasure.rejected",
                actor=actor_of(user),
                recordings=list(proposal.recording_ids),
                details={
                    "request_id": req.id,
                    "proposal_id": proposal.id,
                    "proposed_by": proposer.username,
                    "reason": reason,
                },
            ),
            tenant,
        )
        db.commit()
        return []
    return _erase(p, db, user, req, list(proposal.recording_ids), proposal, proposer)


def stored_recordings(
    p: VaultContext, db: Session, user: User, req: RightsRequest, ids: list[str]
) -> tuple[Tenant, list]:
    """The request's tenant and the named recordings still stored in the user's communes; any missing one is
    refused (all or none), and one of another tenant journaled."""
    tenant = db.get_one(Tenant, req.tenant_id)
    recs = list(
        db.scalars(
            select(Recording).where(
                Recording.id.in_(ids), Recording.tenant_id == tenant.id, Recording.state == RecordingState.STORED
            )
        )
    )
    recs = [r for r in recs if in_communes(user, r)]  # another commune of the EPCI: as if not here
    missing = sorted(set(ids) - {r.id for r in recs})
    if missing:
        foreign = list(
            db.scalars(select(Recording.id).where(Recording.id.in_(missing), Recording.tenant_id != tenant.id))
        )
        if foreign:
            p.record(
                db,
                EntryDraft(
                    action=Action.SECURITY,
                    event="access.cross_tenant",
                    actor=actor_of(user),
                    details={"asked_for": foreign, "rights_request": req.id},
                ),
                tenant,
            )
            db.commit()
        raise RecordingsNotFound(
            f"no stored recording {', '.join(missing)} in your commune (already deleted, or never here)"
        )
    return tenant, recs


def _refuse_if_held(
    p: VaultContext, db: Session, user: User, req: RightsRequest, tenant: Tenant, ids: list[str]
) -> None:
    held = dict(
        db.execute(
            select(Hold.recording_id, Hold.procedure_type).where(Hold.recording_id.in_(ids), Hold.lifted_at.is_(None))
        ).all()
    )
    held |= {lim.recording_id: f"limitation, request {lim.request_id}" for lim in active_limitations(db, ids)}
    if held:
        p.record(
            db,
            EntryDraft(
                action=Action.MODIFICATION,
                event="rights.erasure.refused",
                actor=actor_of(user),
                recordings=sorted(held),
                details={"request_id": req.id, "reason": "hold"},
            ),
            tenant,
        )
        db.commit()
        raise ErasureRefused(held)


def _erase(
    p: VaultContext,
    db: Session,
    user: User,
    req: RightsRequest,
    ids: list[str],
    proposal: ErasureProposal,
    proposer: User,
) -> list[dict]:
    """Delete the recordings (all or none), record them on the request; returns [{recording_id, certificate_id}]."""
    tenant, recs = stored_recordings(p, db, user, req, ids)
    _refuse_if_held(p, db, user, req, tenant, ids)  # a hold may have come since the proposal
    actor = actor_of(user)
    p.record(
        db,
        EntryDraft(
            action=Action.MODIFICATION,
            event="rights.erasure.approved",
            actor=actor,
            recordings=ids,
            details={"request_id": req.id, "proposal_id": proposal.id, "proposed_by": proposer.username},
        ),
        tenant,
    )
    files: list[str] = []
    for rec in recs:
        files += delete_recording(
            p,
            db,
            rec,
            reason="rights_erasure",
            actor=actor,
            details={"rights_request": req.id, "erasure_proposal": proposal.id},
        )
    db.flush()
    certs = dict(
        db.execute(
            select(DeletionCertificate.recording_id, DeletionCertificate.id).where(
                DeletionCertificate.recording_id.in_(ids)
            )
        ).all()
    )
    done = [{"recording_id": rid, "certificate_id": certs[rid]} for rid in ids]
    req.erased = [*(req.erased or []), *done]
    if req.status == RequestStatus.RECEIVED:  # acted upon: no longer merely received (the answer comes next)
        req.status, req.updated_at = RequestStatus.IN_PROGRESS.value, utcnow()
        p.record(
            db,
            EntryDraft(
                action=Action.MODIFICATION,
                event="rights.request.status",
                actor=actor,
                details={
                    "request_id": req.id,
                    "kind": req.kind,
                    "from": RequestStatus.RECEIVED.value,
                    "to": RequestStatus.IN_PROGRESS.value,
                    "after": "erasure",
                },
            ),
            tenant,
        )
    proposal.state, proposal.decided_by, proposal.decided_at = ProposalState.APPROVED.value, user.id, utcnow()
    p.record(
        db,
        EntryDraft(
            action=Action.MODIFICATION,
            event="rights.erasure.done",
            actor=actor,
            recordings=ids,
            details={
                "request_id": req.id,
                "proposal_id": proposal.id,
                "certificates": [d["certificate_id"] for d in done],
            },
        ),
        tenant,
    )
    prefixes = [f"{tenant.slug}/{rid}" for rid in ids]
    # Recorded with the keys' destruction: a crash before the folders are removed leaves them to the next pass.
    now = utcnow()
    db.execute(insert(PendingBlobDeletion), [{"prefix": x, "recorded_at": now} for x in prefixes])
    db.commit()  # keys destroyed and journaled: from here the bytes are unreadable
    try:
        p.store.delete_prefixes(prefixes)
    except (errors.TemoinError, OSError) as exc:  # the erasure is done (keys gone): the files wait for the next pass
        log.warning("erasure %s: the recordings' files are left to the next pass: %s", proposal.id, exc)
    else:
        db.execute(delete(PendingBlobDeletion).where(PendingBlobDeletion.prefix.in_(prefixes)))
        db.commit()
    derived.remove_files(p, files)  # thumbnails, tracks, copies, live backups, packages: gone with them
    return done
