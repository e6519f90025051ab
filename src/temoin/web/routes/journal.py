"""The journal as the auditor reads it: the tenant's entries, and a verification of both sinks."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.errors import InvalidInput
from temoin.identity.devices import camera_names
from temoin.journal.service import parse_body
from temoin.journal.verify import verify_all
from temoin.law.access import Permission
from temoin.law.legal_time import PARIS
from temoin.platform import Platform
from temoin.vault import journal_reading as reading
from temoin.web.deps import Principal, get_db, get_platform, require
from temoin.web.i18n import gettext, lang_of
from temoin.web.pages import PageRequire
from temoin.web.templating import page

router = APIRouter(prefix="/api/v1/journal", tags=["journal"])


class EntryOut(BaseModel):
    seq: int
    at: datetime
    action: str
    event: str
    body: dict
    hash: str


class VerifyOut(BaseModel):
    ok: bool
    entries: int
    problems: list[str]


@router.get(
    "",
    response_model=list[EntryOut],
    summary="Journal entries of your tenant, newest first (in an EPCI, a "
    "user limited to communes reads those about their communes' recordings and their own actions)",
)
def entries(
    limit: int = Query(100, ge=1, le=1000),
    before: int | None = None,
    since: datetime | None = Query(None, description="entries at or after this time"),
    until: datetime | None = Query(None, description="entries before this time"),
    event: str | None = Query(None, max_length=64, description="one kind of event, e.g. recording.consulted"),
    actor: str | None = Query(None, max_length=200, description="the actor's id or name, exact"),
    recording: str | None = Query(None, max_length=128, description="entries naming this recording"),
    who: Principal = require(Permission.JOURNAL_READ),
    db: Session = Depends(get_db),
) -> list[EntryOut]:
    for moment in (since, until):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput("since and until need a time zone (e.g. 2026-12-06T00:00:00+01:00)")
    where = reading.JournalFilter(since=since, until=until, event=event, actor=actor, recording=recording)
    return [
        EntryOut(seq=e.seq, at=e.at, action=e.action, event=e.event, body=parse_body(e.body), hash=e.hash)
        for e in reading.entries_for(db, who.user, who.tenant, limit, before, where)
    ]


@router.get(
    "/verify", response_model=VerifyOut, summary="Verify your tenant's chain in both sinks (EPCI-wide users only)"
)
def verify(
    who: Principal = require(Permission.JOURNAL_READ),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> VerifyOut:
    reading.check_may_verify(who.user)
    result = verify_all(db, p.journal.sink, p.keyring.trusted, chains=[who.tenant.slug])
    return VerifyOut(
        ok=result.ok,
        entries=sum(r.entries for r in result.reports if r.sink == "database"),
        problems=[str(x) for x in result.problems],
    )


# --- the page -----------------------------------------------------------------------------------------------

pages = APIRouter(include_in_schema=False)

JOURNAL_PAGE = 100


@pages.get("/journal")
def journal(
    request: Request,
    verify: bool = False,
    start: str = "",
    end: str = "",
    event: str = "",
    actor: str = "",
    recording: str = "",
    before: int | None = Query(None, ge=1),
    who: Principal = Depends(PageRequire(Permission.JOURNAL_READ)),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> HTMLResponse:
    from datetime import date, time, timedelta

    from temoin.identity.models import User
    from temoin.vault import journal_reading as reading

    lang = lang_of(request)
    form = {"start": start, "end": end, "event": event, "actor": actor.strip(), "recording": recording.strip()}
    errors = []
    try:  # whole days in Paris time, both ends included
        since = datetime.combine(date.fromisoformat(start), time(), PARIS) if start.strip() else None
        until = datetime.combine(date.fromisoformat(end) + timedelta(days=1), time(), PARIS) if end.strip() else None
    except ValueError:
        since = until = None
        errors.append(gettext(lang, "Unreadable date: use the picker (day/month/year)."))
    where = reading.JournalFilter(
        since=since, until=until, event=event or None, actor=form["actor"] or None, recording=form["recording"] or None
    )
    found = [] if errors else reading.entries_for(db, who.user, who.tenant, JOURNAL_PAGE + 1, before, where)
    entries = [(e, parse_body(e.body)) for e in found[:JOURNAL_PAGE]]
    # Keyset paging: the next page starts below the last sequence shown; the filters stay in the URL.
    query = {k: v for k, v in form.items() if v}
    older = f"/journal?{urlencode({**query, 'before': entries[-1][0].seq})}" if len(found) > JOURNAL_PAGE else None
    newest = f"/journal?{urlencode(query)}" if before is not None else None
    can_verify = reading.may_verify(who.user)  # the whole chain: EPCI-wide users only
    result = (
        verify_all(db, p.journal.sink, p.keyring.trusted, chains=[who.tenant.slug]) if verify and can_verify else None
    )
    actors = sorted(db.scalars(select(User.username).where(User.tenant_id == who.tenant.id)))
    cameras = camera_names(db, {str(c) for _, body in entries for c in body.get("cameras") or []})
    return page(
        request,
        "journal.html",
        who=who,
        entries=entries,
        result=result,
        can_verify=can_verify,
        form=form,
        errors=errors,
        events=reading.event_kinds(db, who.tenant),
        actors=actors,
        older=older,
        newest=newest,
        filtered=bool(query),
        camera_names=cameras,
    )
