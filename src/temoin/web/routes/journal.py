"""The journal as the auditor reads it: the tenant's entries, and a verification of both sinks."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from sqlalchemy.orm import Session

from temoin.errors import InvalidInput
from temoin.journal.service import parse_body
from temoin.journal.verify import verify_all
from temoin.law.access import Permission
from temoin.platform import Platform
from temoin.vault import journal_reading as reading
from temoin.web.deps import Principal, get_db, get_platform, require

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
