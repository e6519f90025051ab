"""Citizens' rights requests as web pages: the register, a request with its candidates, erasure proposals, the
redacted copy's page. A refusal is shown on the page itself (HTML), with the domain error's message."""

from __future__ import annotations

from datetime import date, datetime

from fastapi import APIRouter, Depends, Form, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.geo.street_map import street_index
from temoin.geo.streets import place_of
from temoin.law.access import Permission, allows
from temoin.platform import Platform
from temoin.rights import copies as copies_mod, copy_jobs, erasure, register
from temoin.rights.candidates import SearchWindowInvalid, candidates_for_request
from temoin.rights.erasure import ErasureRefused, RecordingsNotFound
from temoin.rights.models import RedactedCopy, RequestKind, RequestStatus
from temoin.vault import integrity
from temoin.vault.models import Recording
from temoin.web import problems
from temoin.web.deps import Principal, get_db, get_platform
from temoin.web.i18n import gettext, lang_of
from temoin.web.rights.schemas import RowId
from temoin.web.templating import page

pages = APIRouter(include_in_schema=False)


def _page(request: Request, name: str, who: Principal, status: int = 200, **context) -> HTMLResponse:
    return page(request, name, status=status, who=who, **context)


def _page_guard(permission: Permission):
    from temoin.web.pages import PageRequire

    return Depends(PageRequire(permission))


def _parse_dt(value: str) -> datetime | None:
    """A datetime-local field (Paris time) or an ISO time with offset."""
    value = value.strip()
    if not value:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=register.PARIS)


def _float(value: str) -> float | None:
    value = value.strip().replace(",", ".")
    return float(value) if value else None


@pages.get("/rights")
def rights_page(
    request: Request, who: Principal = _page_guard(Permission.RIGHTS_MANAGE), db: Session = Depends(get_db)
) -> HTMLResponse:
    from temoin.identity.tenant_settings import settings_of

    return _page(
        request,
        "rights.html",
        who,
        requests=register.list_requests(db, who.tenant, who.user),
        is_overdue=register.is_overdue,
        kinds=[k.value for k in RequestKind],
        months=settings_of(who.tenant).rights_deadline_months,
    )


@pages.post("/rights")
def rights_create(
    request: Request,
    kind: str = Form(""),
    person_description: str = Form(""),
    contact: str = Form(""),
    received_on: str = Form(""),
    facts_start: str = Form(""),
    facts_end: str = Form(""),
    lat: str = Form(""),
    lon: str = Form(""),
    radius_m: str = Form(""),
    agent: str = Form(""),
    commune: str = Form(""),
    who: Principal = _page_guard(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    from temoin.identity.tenant_settings import settings_of

    try:
        req = register.create_request(
            p,
            db,
            who.user,
            who.tenant,
            register.NewRequest(
                kind=RequestKind(kind),
                person_description=person_description,
                contact=contact,
                received_on=date.fromisoformat(received_on) if received_on.strip() else None,
                facts_start=_parse_dt(facts_start),
                facts_end=_parse_dt(facts_end),
                place_lat=_float(lat),
                place_lon=_float(lon),
                radius_m=_float(radius_m),
                agent_ref=agent,
                commune=commune,
            ),
        )
    except (ValueError, register.RightsError) as exc:
        return _page(
            request,
            "rights.html",
            who,
            status=422,
            error=str(exc),
            requests=register.list_requests(db, who.tenant, who.user),
            is_overdue=register.is_overdue,
            kinds=[k.value for k in RequestKind],
            months=settings_of(who.tenant).rights_deadline_months,
        )
    return RedirectResponse(f"/rights/{req.id}", 303)


def _request_page(
    request: Request, who: Principal, p: Platform, db: Session, request_id: int, status: int = 200, **extra
) -> HTMLResponse:
    try:
        req = register.get_request(p, db, who.user, request_id)
    except register.RequestNotFound:
        lang = lang_of(request)
        return _page(
            request, "error.html", who, status=404, title=gettext(lang, "Not found"), error=gettext(lang, "No request.")
        )
    found, window_error = None, None
    try:
        found = candidates_for_request(db, who.user, req)
    except SearchWindowInvalid as exc:
        window_error = exc.message
    copies = list(db.scalars(select(RedactedCopy).where(RedactedCopy.request_id == req.id).order_by(RedactedCopy.id)))
    streets = street_index(db, who.tenant.id, who.tenant.demo)
    return _page(
        request,
        "rights_request.html",
        who,
        status=status,
        req=req,
        overdue=register.is_overdue(req),
        place=lambda lat, lon: place_of(streets, lat, lon),  # a position as its nearest street
        found=found,
        window_error=window_error,
        copies=copies,
        proposals=erasure.proposals_of(db, req),
        next_statuses=[s.value for s in register.TRANSITIONS[RequestStatus(req.status)]],
        can_redact=allows(who.role, Permission.RECORDINGS_REDACT),
        **extra,
    )


@pages.get("/rights/{request_id}")
def request_page(
    request_id: RowId,
    request: Request,
    who: Principal = _page_guard(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> HTMLResponse:
    return _request_page(request, who, p, db, request_id)


@pages.post("/rights/{request_id}/status")
def request_status(
    request_id: RowId,
    request: Request,
    status: str = Form(""),
    decision: str = Form(""),
    reason: str = Form(""),
    procedure_reference: str = Form(""),
    who: Principal = _page_guard(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    try:
        req = register.get_request(p, db, who.user, request_id)
        register.set_status(
            p,
            db,
            who.user,
            req,
            RequestStatus(status),
            decision=decision,
            reason=reason,
            procedure_reference=procedure_reference,
        )
    except register.RequestNotFound:
        return _request_page(request, who, p, db, request_id)
    except (ValueError, register.RightsError) as exc:
        return _request_page(request, who, p, db, request_id, status=409, error=str(exc))
    return RedirectResponse(f"/rights/{request_id}", 303)


@pages.post("/rights/{request_id}/erasure")
async def request_erasure(
    request_id: RowId,
    request: Request,
    who: Principal = _page_guard(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    form = await request.form()
    ids = [str(v) for v in form.getlist("recording_id")]
    extra = str(form.get("extra_recording", "")).strip()
    justifications = {extra: str(form.get("justification", ""))} if extra else {}

    def work() -> Response:
        try:
            req = register.get_request(p, db, who.user, request_id)
            erasure.propose_erasure(p, db, who.user, req, [*ids, *([extra] if extra else [])], justifications)
        except register.RequestNotFound:
            return _request_page(request, who, p, db, request_id)
        except (register.RightsError, RecordingsNotFound, ErasureRefused) as exc:
            return _request_page(request, who, p, db, request_id, status=409, error=str(exc))
        return RedirectResponse(f"/rights/{request_id}", 303)

    return await run_in_threadpool(work)


@pages.post("/rights/erasure-proposals/{proposal_id}/decision")
def erasure_decision(
    proposal_id: int,
    request: Request,
    decision: str = Form(""),
    reason: str = Form(""),
    confirm: str = Form(""),
    who: Principal = _page_guard(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    try:
        proposal = erasure.get_proposal(db, who.user, proposal_id)
    except erasure.ProposalNotFound as exc:
        return _page(
            request, "error.html", who, status=404, title=gettext(lang_of(request), "Not found"), error=str(exc)
        )
    if decision == "approve" and confirm.strip() != "EFFACER":  # irreversible: typed, not one click
        return _request_page(
            request,
            who,
            p,
            db,
            proposal.request_id,
            status=422,
            error=gettext(lang_of(request), "Nothing was erased: type EFFACER to confirm the permanent erasure."),
        )
    try:
        erasure.decide_erasure(p, db, who.user, proposal, approve=decision == "approve", reason=reason)
    except (register.RightsError, RecordingsNotFound, ErasureRefused) as exc:
        return _request_page(request, who, p, db, proposal.request_id, status=409, error=str(exc))
    return RedirectResponse(f"/rights/{proposal.request_id}", 303)


@pages.post("/rights/{request_id}/copies")
def request_copy(
    request_id: RowId,
    request: Request,
    recording_id: str = Form(""),
    who: Principal = _page_guard(Permission.RECORDINGS_REDACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    try:
        req = register.get_request(p, db, who.user, request_id)
        copy = copies_mod.start_copy(p, db, who.user, req, recording_id)
    except (register.RequestNotFound, copies_mod.CopyNotFound, register.RightsError, copy_jobs.EngineMissing) as exc:
        # Not the request's page: a role that may redact need not be one that reads the register. The API's
        # status (a missing engine: 503, with its Retry-After), from the one table.
        response = _page(
            request,
            "error.html",
            who,
            status=problems.status_of(exc)[0],
            title=gettext(lang_of(request), "Error"),
            error=str(exc),
        )
        response.headers.update(problems.retry_headers(exc))
        return response
    return RedirectResponse(f"/rights/copies/{copy.id}", 303)


@pages.get("/rights/copies/{copy_id}")
def copy_page(
    copy_id: RowId,
    request: Request,
    who: Principal = _page_guard(Permission.RECORDINGS_REDACT),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> HTMLResponse:
    try:
        copy = copies_mod.get_copy(p, db, who.user, copy_id)
    except copies_mod.CopyNotFound as exc:
        return _page(
            request, "error.html", who, status=404, title=gettext(lang_of(request), "Not found"), error=str(exc)
        )
    rec = db.get_one(Recording, copy.recording_id)
    return _page(
        request,
        "rights_copy.html",
        who,
        copy=copy,
        rec=rec,
        duration_s=round(sum(s.duration_s for s in integrity.stored_segments(rec)), 3),
        can_deliver=allows(who.role, Permission.RIGHTS_MANAGE),
        can_see_request=allows(who.role, Permission.RIGHTS_MANAGE),
    )
