"""The journal as one user may read it. In an EPCI a user limited to some communes reads only the entries about
recordings of those communes (every recording an entry names), and entries about no recording only when they
are their own actions: the rest would tell them of other communes' recordings, people and staff. Verifying the
whole chain needs every entry: it stays with EPCI-wide users (the auditor)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.identity.models import Tenant, User
from temoin.journal.models import JournalEntry
from temoin.vault.models import Recording

SCAN_BATCH = 500


class VerificationRefused(errors.Forbidden):
    """A commune-limited user asked to verify the whole chain, which holds other communes' entries."""


def may_verify(user: User) -> bool:
    return user.communes is None


def check_may_verify(user: User) -> None:
    if not may_verify(user):
        raise VerificationRefused(
            f"verifying the journal reads every entry of the EPCI, and you are limited to the communes "
            f"{', '.join(user.communes or [])}: ask a user of the whole EPCI (the auditor or the DPO) to verify it"
        )


def _readable(body: dict, user: User, communes: dict[str, str | None]) -> bool:
    recordings = [str(r) for r in body.get("recordings") or []]
    if recordings:  # deny by default: every named recording must be of one of the user's communes
        return all(communes.get(r) in (user.communes or []) for r in recordings)
    actor = body.get("actor") or {}
    return actor.get("kind") == "user" and actor.get("id") == user.username


@dataclass(frozen=True)
class JournalFilter:
    """What the auditor narrows the journal to: a time range [since, until), an event kind, an actor (their id or
    name, exact), a recording named by the entry."""

    since: datetime | None = None
    until: datetime | None = None
    event: str | None = None
    actor: str | None = None
    recording: str | None = None

    def where(self, stmt: Select) -> Select:
        if self.since is not None:
            stmt = stmt.where(JournalEntry.at >= self.since)
        if self.until is not None:
            stmt = stmt.where(JournalEntry.at < self.until)
        if self.event:
            stmt = stmt.where(JournalEntry.event == self.event)
        # The body is the record: a cheap substring test first, the parsed body decides (matches).
        for text in (self.actor, self.recording):
            if text:
                stmt = stmt.where(JournalEntry.body.contains(text, autoescape=True))
        return stmt

    def matches(self, body: dict) -> bool:
        actor = body.get("actor") or {}
        if self.actor and self.actor not in (actor.get("id"), actor.get("name")):
            return False
        return not self.recording or self.recording in [str(r) for r in body.get("recordings") or []]


def entries_for(
    db: Session, user: User, tenant: Tenant, limit: int, before: int | None = None, where: JournalFilter | None = None
) -> list[JournalEntry]:
    """The tenant's entries this user may read, newest first (`before`: only those with a lower sequence;
    `where`: only those matching the filter)."""
    stmt = select(JournalEntry).where(JournalEntry.chain == tenant.slug)
    if where is not None:
        stmt = where.where(stmt)
    if user.communes is None and (where is None or not (where.actor or where.recording)):
        if before is not None:
            stmt = stmt.where(JournalEntry.seq < before)
        return list(db.scalars(stmt.order_by(JournalEntry.seq.desc()).limit(limit)))
    found: list[JournalEntry] = []
    while len(found) < limit:
        batch = stmt if before is None else stmt.where(JournalEntry.seq < before)
        rows = list(db.scalars(batch.order_by(JournalEntry.seq.desc()).limit(SCAN_BATCH)))
        if not rows:
            break
        bodies = [orjson.loads(e.body) for e in rows]
        if user.communes is None:
            communes: dict[str, str | None] = {}
        else:
            named = {str(r) for b in bodies for r in b.get("recordings") or []}
            communes = (
                dict(
                    db.execute(
                        select(Recording.id, Recording.commune).where(
                            Recording.tenant_id == tenant.id, Recording.id.in_(named)
                        )
                    ).all()
                )
                if named
                else {}
            )
        found += [
            e
            for e, b in zip(rows, bodies, strict=True)
            if (user.communes is None or _readable(b, user, communes)) and (where is None or where.matches(b))
        ]
        before = rows[-1].seq
    return found[:limit]


def event_kinds(db: Session, tenant: Tenant) -> list[str]:
    """The kinds of event the tenant's journal holds, for the filter's list."""
    return sorted(db.scalars(select(JournalEntry.event).where(JournalEntry.chain == tenant.slug).distinct()))
