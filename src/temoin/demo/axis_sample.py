"""The demo's Axis Body Worn recording: a simulated Body Worn system hands one recording over the Swift API."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from rich.console import Console

from temoin.axis import connection
from temoin.axis.simulator import (
    BodyWornError,
    BodyWornSystem,
    Bookmark,
    Recording,
    sample_recording,
)
from temoin.demo.commune import walk
from temoin.journal.entry import Actor
from temoin.platform import Platform

SERIAL = "ACCC8E-DEMO-W110"
USER_UUID = "6f1c7d2e-0b1a-4c55-9a59-3f9a1c2b7d10"  # stable: the demo's Axis user across runs


def hand_over(p: Platform, base_url: str, tenant_slug: str, agent_number: str, console: Console) -> bool:
    """Issue a connection file, then run the whole Axis sequence for one encrypted recording."""
    with p.session() as db:
        issued = connection.issue(p, db, p.tenant(db, tenant_slug), urls=[base_url], by=Actor.system("demo"))
    bws = BodyWornSystem(issued.connection_file, name="Poste de police (Axis)")
    try:
        bws.authenticate()
        bws.capabilities()
        bws.register_system()
        bws.register_user(USER_UUID, "Julien Moreau", agent_number)
        r = bws.register_device(SERIAL, "Axis W110 (démo)")
        if r.status_code != 201:
            console.print(f"[yellow]Axis demo camera not registered ({r.status_code}: {r.text.strip()})[/yellow]")
            return False
        started = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
        rec: Recording = sample_recording(
            USER_UUID,
            SERIAL,
            started_at=started,
            duration_s=6,
            clip_s=3,
            seed=7,
            bookmarks=[
                Bookmark(
                    at=started + timedelta(seconds=2),
                    description="Contrôle routier, conducteur agité",
                    category_id="refusal_to_comply",
                    category_name="refus d'obtempérer",
                )
            ],
        )
        rec.track = [
            (lat, lon, started + timedelta(seconds=i)) for i, (lat, lon) in enumerate(walk("Avenue de la Mer", 7))
        ]
        rec.user_uuid = USER_UUID
        bws.upload(rec)
    except BodyWornError as exc:
        console.print(f"[yellow]Axis demo hand-over failed: {exc}[/yellow]")
        return False
    finally:
        bws.http.close()
    console.print(
        f"1 recording handed over by a simulated Axis Body Worn system (camera {SERIAL}, "
        f"container {rec.container}, {uuid.UUID(USER_UUID).hex[:8]})"
    )
    return True
