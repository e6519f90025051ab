"""The register of citizens' requests (loi 78-17 arts. 104 to 108; CSI R241-15): received, in progress, then
answered, refused, or restricted while a procedure is ongoing (the person then goes through the CNIL).

The person's description and contact are personal data: the journal carries the request's id, never them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.db import utcnow
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.identity.tenant_settings import settings_of
from temoin.journal.entry import Action, EntryDraft
from temoin.law.legal_time import PARIS
from temoin.law.profiles import add_months
from temoin.rights.models import OPEN_STATUSES, RequestKind, RequestStatus, RightsRequest
from temoin.vault.context import VaultContext
from temoin.vault.holds import ProcedureType
from temoin.vault.models import Hold

# What a restricted person is told (loi 78-17 arts. 107 and 108; CSI R241-15).
CNIL_INDIRECT_ROUTE = (
    "Votre demande fait l'objet d'une restriction afin de ne pas nuire à une procédure en cours "
    "(articles 107 et 108 de la loi n° 78-17 du 6 janvier 1978, article R241-15 du code de la sécurité "
    "intérieure). Vous pouvez exercer votre droit par l'intermédiaire de la Commission nationale de "
    "l'informatique et des libertés (CNIL, 3 place de Fontenoy, TSA 80715, 75334 Paris Cedex 07, www.cnil.fr), "
    "qui mènera les vérifications et vous indiquera qu'il y a été procédé (droit d'accès indirect)."
)

FINAL = (RequestStatus.ANSWERED, RequestStatus.REFUSED, RequestStatus.RESTRICTED)
TRANSITIONS: dict[RequestStatus, tuple[RequestStatus, ...]] = {
    RequestStatus.RECEIVED: (RequestStatus.IN_PROGRESS, *FINAL),
    RequestStatus.IN_PROGRESS: FINAL,
    # The procedure is over: the restriction is lifted and the request handled again.
    RequestStatus.RESTRICTED: (RequestStatus.IN_PROGRESS,),
    RequestStatus.ANSWERED: (),
    RequestStatus.REFUSED: (),
}


class RightsError(errors.Conflict, ValueError):
    """A request that cannot be done as asked in its present state (the message says why and what to do)."""


class InvalidRequest(errors.InvalidInput, ValueError):
    """A new request whose content is incomplete or wrong (the message says what to give)."""


class RequestNotFound(errors.NotFound, LookupError):
    pass


def today_paris(now: datetime | None = None) -> date:
    return (now or utcnow()).astimezone(PARIS).date()


def deadline_for(tenant: Tenant, received_on: date) -> date:
    """The day by which the person must have an answer: receipt + the tenant's rights_deadline_months."""
    return add_months(received_on, settings_of(tenant).rights_deadline_months)


def is_overdue(req: RightsRequest, today: date | None = None) -> bool:
    return req.status in OPEN_STATUSES and (today or today_paris()) > req.deadline


def recipient(req: RightsRequest) -> str:
    """How the journal names the person: by the request, never by name."""
    return f"personne concernée (demande de droits n° {req.id})"


@dataclass
class NewRequest:
    kind: RequestKind
    person_description: str
    contact: str
    received_on: date | None = None
    facts_start: datetime | None = None
    facts_end: datetime | None = None
    place_lat: float | None = None
    place_lon: float | None = None
    radius_m: float | None = None
    agent_ref: str | None = None
    commune: str | None = None  # in an EPCI: the requester's commune (INSEE code) among those served


def may_see(user: User, req: RightsRequest) -> bool:
    """Whether the user may know of this request: EPCI-wide users see every request of their tenant; a user
    limited to some communes sees only those communes' requests (one of no commune is not theirs)."""
    return req.tenant_id == user.tenant_id and (user.communes is None or req.commune in user.communes)


def commune_for(user: User, tenant: Tenant, commune: str | None) -> str | None:
    """The commune a new request belongs to: required in an EPCI (one it serves, and one of the user's own
    communes for a commune-limited user); none in a single commune's tenant."""
    commune = (commune or "").strip() or None
    served = [str(c) for c in tenant.communes or []]
    if tenant.kind != "epci" or not served:
        if commune is not None:
            raise InvalidRequest(f"{tenant.name} serves one commune: leave the requester's commune empty")
        return None
    mine = served if user.communes is None else [c for c in served if c in user.communes]
    if commune is None and len(mine) == 1:
        return mine[0]  # a user of one commune registers that commune's requests
    if commune is None:
        raise InvalidRequest(
            f"say which commune the requester is of (an INSEE code among {', '.join(mine)}): the "
            "request is handled by that commune's users"
        )
    if commune not in served:
        raise InvalidRequest(
            f"{tenant.name} serves the communes {', '.join(served)}, not {commune}: give the "
            "requester's commune among them"
        )
    if commune not in mine:
        raise InvalidRequest(
            f"you handle the requests of {', '.join(mine)} only, not {commune}: the request is "
            f"registered by a user of {commune} or of the whole EPCI"
        )
    return commune


def create_request(p: VaultContext, db: Session, user: User, tenant: Tenant, new: NewRequest) -> RightsRequest:
    description, contact = new.person_description.strip(), new.contact.strip()
    if len(description) < 3:
        raise InvalidRequest(
            "describe the person (what they wore, where and when they were) so that the recordings can be found"
        )
    if len(contact) < 3:
        raise InvalidRequest("give the person's contact (postal or e-mail address) to send the answer to")
    received = new.received_on or today_paris()
    if received > today_paris():
        raise InvalidRequest(f"the request cannot have been received in the future ({received.isoformat()})")
    if new.facts_start and new.facts_end and new.facts_end <= new.facts_start:
        raise InvalidRequest("the end of the facts' time window is before its start")
    if (new.place_lat is None) != (new.place_lon is None):
        raise InvalidRequest("give both latitude and longitude of the place, or neither")
    commune = commune_for(user, tenant, new.commune)
    req = RightsRequest(
        tenant_id=tenant.id,
        kind=RequestKind(new.kind).value,
        status=RequestStatus.RECEIVED.value,
        person_description=description,
        contact=contact,
        received_on=received,
        deadline=deadline_for(tenant, received),
        facts_start=new.facts_start,
        facts_end=new.facts_end,
        place_lat=new.place_lat,
        place_lon=new.place_lon,
        radius_m=new.radius_m,
        agent_ref=(new.agent_ref or "").strip() or None,
        erased=[],
        commune=commune,
        created_by=user.id,
    )
    db.add(req)
    db.flush()
    p.record(
        db,
        EntryDraft(
            action=Action.MODIFICATION,
            event="rights.request.created",
            actor=actor_of(user),
            details={
                "request_id": req.id,
                "kind": req.kind,
                "received_on": received.isoformat(),
                "deadline": req.deadline.isoformat(),
            }
            | ({"commune": commune} if commune else {}),
        ),
        tenant,
    )
    db.commit()
    return req


def list_requests(
    db: Session,
    tenant: Tenant,
    viewer: User | None,
    *,
    status: RequestStatus | None = None,
    overdue: bool | None = None,
    commune: str | None = None,
    limit: int = 500,
) -> list[RightsRequest]:
    """The register as `viewer` may see it (a commune-limited user: their communes' requests only); None is the
    server's operator at the command line (ids and dates, no personal data shown)."""
    stmt = select(RightsRequest).where(RightsRequest.tenant_id == tenant.id)
    if viewer is not None and viewer.communes is not None:
        stmt = stmt.where(RightsRequest.commune.in_(viewer.communes))
    if commune is not None:
        stmt = stmt.where(RightsRequest.commune == commune)
    if status is not None:
        stmt = stmt.where(RightsRequest.status == RequestStatus(status).value)
    if overdue is not None:
        late = (RightsRequest.status.in_([s.value for s in OPEN_STATUSES])) & (RightsRequest.deadline < today_paris())
        stmt = stmt.where(late if overdue else ~late)
    return list(db.scalars(stmt.order_by(RightsRequest.deadline, RightsRequest.id).limit(limit)))


def get_request(p: VaultContext, db: Session, user: User, request_id: int) -> RightsRequest:
    req = db.get(RightsRequest, request_id)
    if req is None or req.tenant_id != user.tenant_id:
        if req is not None:  # another commune's register: refused and journaled
            p.record(
                db,
                EntryDraft(
                    action=Action.SECURITY,
                    event="access.cross_tenant",
                    actor=actor_of(user),
                    details={"asked_for": f"rights_request:{request_id}"},
                ),
                db.get_one(Tenant, user.tenant_id),
            )
            db.commit()
        raise RequestNotFound(f"no rights request {request_id} in your register")
    if not may_see(user, req):  # another commune's request inside the EPCI: as if it did not exist, journaled
        p.record(
            db,
            EntryDraft(
                action=Action.SECURITY,
                event="access.other_commune",
                actor=actor_of(user),
                details={"asked_for": f"rights_request:{request_id}"},
            ),
            db.get_one(Tenant, user.tenant_id),
        )
        db.commit()
        raise RequestNotFound(f"no rights request {request_id} in your register")
    return req


def judicial_holds(db: Session, tenant_id: int, recording_ids: list[str]) -> list[Hold]:
    """Active holds of a judicial procedure on these recordings: access should then be restricted."""
    if not recording_ids:
        return []
    return list(
        db.scalars(
            select(Hold).where(
                Hold.tenant_id == tenant_id,
                Hold.recording_id.in_(recording_ids),
                Hold.lifted_at.is_(None),
                Hold.procedure_type == ProcedureType.JUDICIAL.value,
            )
        )
    )


class DeliveryRestricted(RightsError):
    """Nothing may be handed to the person: their request is restricted, or a judicial procedure holds the
    recording. The message carries the route through the CNIL."""


def delivery_refusal(db: Session, req: RightsRequest, recording_id: str) -> DeliveryRestricted | None:
    """Why a copy of `recording_id` may not be handed over for `req` now, or None when it may.

    Checked at delivery time, not at approval: a restriction or a judicial hold can come after the review."""
    if req.status == RequestStatus.RESTRICTED:
        ref = f" (procedure {req.procedure_reference})" if req.procedure_reference else ""
        return DeliveryRestricted(
            f"request {req.id} is restricted{ref}: no copy is handed over while the restriction stands. The person "
            f"is told of the indirect route through the CNIL (loi 78-17 arts. 107-108, CSI R241-15). "
            f"Lift the restriction (status in_progress) once the procedure allows it. {CNIL_INDIRECT_ROUTE}"
        )
    held = judicial_holds(db, req.tenant_id, [recording_id])
    if held:
        return DeliveryRestricted(
            f"{recording_id} is held for a judicial procedure ({held[0].reference}): handing a copy to the person "
            "could harm the procedure, so it is refused. Answer the request with a restriction (status "
            "restricted): the person then exercises the right of access indirectly through the CNIL (loi 78-17 "
            f"arts. 107-108, CSI R241-15). {CNIL_INDIRECT_ROUTE}"
        )
    return None


def set_status(
    p: VaultContext,
    db: Session,
    user: User,
    req: RightsRequest,
    status: RequestStatus,
    *,
    decision: str | None = None,
    reason: str | None = None,
    procedure_reference: str | None = None,
) -> RightsRequest:
    """Move a request along; a final status is the answer sent to the person (journaled as a communication)."""
    current, target = RequestStatus(req.status), RequestStatus(status)
    if target not in TRANSITIONS[current]:
        allowed = ", ".join(s.value for s in TRANSITIONS[current]) or "none: the request is closed"
        raise RightsError(f"a request {current.value} cannot become {target.value}; allowed: {allowed}")
    decision, reason = (decision or "").strip() or None, (reason or "").strip() or None
    if target in (RequestStatus.ANSWERED, RequestStatus.REFUSED) and not decision:
        raise RightsError("say what was decided (the answer sent to the person)")
    if target in (RequestStatus.REFUSED, RequestStatus.RESTRICTED) and not reason:
        raise RightsError(
            "a refusal or a restriction must give its reason (it is told to the person and to the CNIL if asked)"
        )
    if target == RequestStatus.RESTRICTED:
        # The person is always told of the indirect route through the CNIL.
        decision = CNIL_INDIRECT_ROUTE if not decision else f"{decision}\n\n{CNIL_INDIRECT_ROUTE}"
        req.procedure_reference = (procedure_reference or "").strip()[:200] or None
    req.status = target.value
    if decision is not None:
        req.decision = decision
    if reason is not None:
        req.reason = reason
    now = utcnow()
    req.updated_at = now
    req.closed_at = now if target in FINAL else None
    tenant = db.get_one(Tenant, req.tenant_id)
    details = {"request_id": req.id, "kind": req.kind, "from": current.value, "to": target.value}
    if target in FINAL:
        details["on_time"] = today_paris(now) <= req.deadline
        p.record(
            db,
            EntryDraft(
                action=Action.COMMUNICATION,
                event=f"rights.request.{target.value}",
                actor=actor_of(user),
                recipients=[recipient(req)],
                details=details,
            ),
            tenant,
        )
    else:
        p.record(
            db,
            EntryDraft(
                action=Action.MODIFICATION, event="rights.request.status", actor=actor_of(user), details=details
            ),
            tenant,
        )
    db.commit()
    return req
