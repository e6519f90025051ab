"""Limitation (loi 78-17 art. 107; RGPD art. 18): a person's limitation request freezes the recordings it names.
While frozen a recording is only stored: no consultation, no extraction, no deletion by retention or erasure,
until a person lifts the limitation (rights.limitation). Every path that reads or deletes asks here."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.vault.models import Limitation, Recording


class RecordingLimited(errors.Forbidden, PermissionError):
    """What was asked would process a recording frozen by a limitation request."""

    def __init__(self, limits: list[Limitation], what: str) -> None:
        self.limits = limits
        names = ", ".join(f"{lim.recording_id} (rights request {lim.request_id})" for lim in limits)
        super().__init__(
            f"{names}: frozen by a limitation request (loi 78-17 art. 107): only kept, {what} is not "
            "allowed until the person in charge of rights requests lifts the limitation"
        )


def active_limitations(db: Session, recording_ids: Iterable[str]) -> list[Limitation]:
    ids = list(recording_ids)
    if not ids:
        return []
    return list(
        db.scalars(
            select(Limitation)
            .where(Limitation.recording_id.in_(ids), Limitation.lifted_at.is_(None))
            .order_by(Limitation.recording_id, Limitation.id)
        )
    )


def ensure_not_limited(db: Session, recording_ids: Iterable[str], what: str) -> None:
    limits = active_limitations(db, recording_ids)
    if limits:
        raise RecordingLimited(limits, what)


def limited():
    """SQL: the recording is frozen by a limitation (for the retention sweep's queries)."""
    return exists().where(Limitation.recording_id == Recording.id, Limitation.lifted_at.is_(None))
