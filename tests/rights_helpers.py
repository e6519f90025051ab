"""What the rights tests share: a request created through the API, the journal's entries of an event, the
three-recording scene of the candidates search."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from temoin.db import utcnow
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from tests.helpers import make_commune, upload

AVENUE = (43.556, 4.07)  # the start of "Avenue de la Mer" in the demo commune; "Quai des Pêcheurs" is 1.4 km away


def _h(csrf: str) -> dict:
    return {"X-CSRF-Token": csrf}


def _entries(platform, event: str) -> list[dict]:
    with platform.session() as db:
        return [
            parse_body(e.body)
            for e in db.scalars(select(JournalEntry).where(JournalEntry.event == event).order_by(JournalEntry.id))
        ]


def _create(client, csrf: str, **kw) -> dict:
    body = {
        "kind": "access",
        "person_description": "veste rouge, devant la mairie vers 18 h",
        "contact": "dupont@example.org",
        **kw,
    }
    r = client.post("/api/v1/rights/requests", headers=_h(csrf), json=body)
    assert r.status_code == 201, r.text
    return r.json()


def _scene(platform, client):
    """Three recordings: on the avenue at t0 (agent A), on the quay at t0 (agent B), on the avenue 3 h later."""
    commune = make_commune(platform, cameras=2)
    t0 = utcnow().replace(microsecond=0) - timedelta(hours=4)
    avenue, _ = upload(platform, client, commune, started_at=t0, duration_s=2, segment_s=2)
    quay, _ = upload(
        platform,
        client,
        commune,
        camera=1,
        started_at=t0 + timedelta(seconds=30),
        agent="POR-0002",
        duration_s=2,
        segment_s=2,
        street="Quai des Pêcheurs",
    )
    later, _ = upload(platform, client, commune, started_at=t0 + timedelta(hours=3), duration_s=2, segment_s=2)
    return commune, t0, avenue, quay, later
