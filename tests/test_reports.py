"""Reports: the annual report's figures on known data (recordings, hours, consultations and extractions by
procedure type, rights requests, deletions on time or late), its CSV and PDF, the monthly statistics and the
public notice."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import select, update

from temoin.db import utcnow
from temoin.identity import service, shifts
from temoin.identity.models import Device, User
from temoin.identity.service import update_settings
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.access import Role
from temoin.reports.annual import PARIS
from temoin.vault.models import Hold, Recording
from temoin.vault.retention import sweep
from tests.helpers import JUSTIFIED, approve_erasure, make_commune, sign_in, upload


def _h(csrf: str) -> dict:
    return {"X-CSRF-Token": csrf}


def _rows(text: str) -> dict[tuple[str, str], str]:
    reader = csv.reader(io.StringIO(text))
    assert next(reader) == ["section", "item", "value (ISO 8601 dates, dot decimals)"]
    return {(section, item): value for section, item, value in reader}


def test_annual_report_counts_what_happened(platform, client):
    commune = make_commune(platform, cameras=2, authorised=5)
    now = utcnow().replace(microsecond=0)
    year = now.astimezone(PARIS).year
    start = now - timedelta(minutes=30)
    a, _ = upload(platform, client, commune, started_at=start, duration_s=4, segment_s=2)
    b, _ = upload(platform, client, commune, camera=1, started_at=start, agent="POR-0002", duration_s=2, segment_s=2)
    c, _ = upload(platform, client, commune, started_at=start + timedelta(minutes=5), duration_s=2, segment_s=2)
    d, _ = upload(platform, client, commune, started_at=start + timedelta(minutes=6), duration_s=2, segment_s=2)
    other = make_commune(platform, "autre", cameras=1)
    upload(platform, client, other, started_at=start, duration_s=2, segment_s=2)  # not counted

    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    for rid, code, text in (
        (a, "judicial_procedure", "PV 2026/001"),
        (b, "judicial_procedure", "pv  2026/001"),
        (a, "administrative_procedure", "ARR-12"),
        (b, "incident_review", "relecture"),
    ):
        r = client.post(
            f"/api/v1/recordings/{rid}/consultations", headers=_h(csrf), json={"motive": {"code": code, "text": text}}
        )
        assert r.status_code == 201, r.text
    assert (
        client.post(
            f"/api/v1/recordings/{a}/holds",
            headers=_h(csrf),
            json={"procedure": "judicial", "reference": "PV 2026/001"},
        ).status_code
        == 201
    )
    with platform.session() as db:  # the wearing agent had a camera this year
        tenant = platform.tenant(db, commune.slug)
        agent = db.scalar(select(User).where(User.username == commune.users[Role.AGENT]))
        shifts.check_out(platform, db, db.get(Device, commune.cameras[0][0]), agent, Actor.system("test"))
        db.commit()
    with platform.session() as db:  # extractions as the extraction engineer's contract journals them
        tenant = platform.tenant(db, commune.slug)
        for kind, ref, who in (("judicial", "PV 2026/001", "opj"), ("disciplinary", "CD-7", "disciplinary_authority")):
            platform.record(
                db,
                EntryDraft(
                    action=Action.COMMUNICATION,
                    event="extraction.created",
                    actor=Actor.system("test"),
                    recordings=[a],
                    recipients=["OPJ Martin"],
                    details={
                        "extraction_id": 1,
                        "procedure_type": kind,
                        "reference": ref,
                        "recipient_kind": who,
                        "trimmed": False,
                    },
                ),
                tenant,
            )
        db.commit()
    for kind in ("access", "erasure"):
        r = client.post(
            "/api/v1/rights/requests",
            headers=_h(csrf),
            json={"kind": kind, "person_description": "casquette bleue", "contact": "x@example.org"},
        )
        assert r.status_code == 201
    erasure = r.json()["id"]
    r = client.post(
        f"/api/v1/rights/requests/{erasure}/erasure",
        headers=_h(csrf),
        json={"recording_ids": [d], "justifications": {d: JUSTIFIED}},
    )
    assert r.status_code == 201, r.text
    assert approve_erasure(platform, client, commune, r.json()["id"], approver=Role.MAYOR).status_code == 200
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    # Retention: c's period ended an hour ago (deleted on time), b's three days ago (deleted late).
    with platform.session() as db:
        db.execute(update(Recording).where(Recording.id == c).values(retention_until=now - timedelta(hours=1)))
        db.execute(update(Recording).where(Recording.id == b).values(retention_until=now - timedelta(days=3)))
        db.commit()
        assert sorted(sweep(platform, db).deleted) == sorted([b, c])

    figures = client.get(f"/api/v1/reports/annual/{year}").json()
    f = figures["figures"]
    assert figures["authorised_cameras"] == 5 and figures["cameras_in_service"] == 2
    assert figures["authorised_agents"] == 1 and figures["designated_agents"] == 1
    assert f["recordings"] == 4 and f["seconds"] == 10.0 and f["cameras_used"] == 2 and f["agents_recorded"] == 2
    assert f["consultations"] == 4
    assert f["consultations_by_motive"] == {
        "administrative_procedure": 1,
        "incident_review": 1,
        "judicial_procedure": 2,
    }
    assert f["extractions"] == 2 and f["extractions_by_procedure"] == {"disciplinary": 1, "judicial": 1}
    # Procedures come from holds and extractions (rows), not from the journal or a consultation's text.
    assert f["procedures"] == {"judicial": 1, "administrative": 0, "disciplinary": 0}
    assert f["rights_requests"] == 2 and f["rights_by_kind"] == {"access": 1, "erasure": 1}
    assert f["deletions"] == 3 and f["deletions_early"] == 1 and f["deletions_on_time"] == 1
    assert f["deletions_late"] == 1

    r = client.get(f"/api/v1/reports/annual/{year}.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = _rows(r.text)
    assert rows[("Enregistrements", "Nombre d'enregistrements")] == "4"
    assert rows[("Caméras", "Caméras autorisées par le préfet (R241-8)")] == "5"
    section = "Procédures ayant nécessité une extraction ou une conservation"
    assert [rows[(section, k)] for k in ("judiciaires", "administratives", "disciplinaires")] == ["1", "0", "0"]
    assert rows[("Consultations par motif", "Procédure judiciaire")] == "2"
    assert rows[("Extractions par type de procédure", "disciplinaires")] == "1"
    assert rows[("Effacements", "Après l'échéance (en retard)")] == "1"
    r = client.get(f"/api/v1/reports/annual/{year}.pdf")
    assert r.status_code == 200 and r.content.startswith(b"%PDF") and r.headers["content-type"] == "application/pdf"

    month = now.astimezone(PARIS).strftime("%Y-%m")
    m = client.get(f"/api/v1/reports/monthly/{month}").json()
    assert m["recordings"] == 4 and m["extractions"] == 2 and m["rights_requests"] == 2
    assert m["deletions_on_time"] == 1 and m["deletions_late"] == 1
    assert _rows(client.get(f"/api/v1/reports/monthly/{month}.csv").text)[("Service", "Mois")] == month
    assert client.get("/api/v1/reports/monthly/2026-13").status_code == 422
    assert client.get(f"/api/v1/reports/annual/{year - 1}").json()["figures"]["recordings"] == 0
    page = client.get("/reports", params={"year": year, "month": month})
    assert page.status_code == 200 and "annual-rows" in page.text and "Procédure judiciaire" in page.text


def test_annual_report_counts_the_years_wearers_and_procedures_from_holds_and_extractions(platform, client):
    """R241-17 asks for the agents authorised (here: those who wore a camera that year, from the shift
    assignments, not today's roster) and the procedures that needed the recordings (from the holds and the
    extractions that name them, not from free motive text)."""
    commune = make_commune(platform, cameras=2, authorised=4)
    now = utcnow().replace(microsecond=0)
    year = now.astimezone(PARIS).year
    last_year = now.replace(year=year - 1, month=3, day=10)
    with platform.session() as db:
        tenant = platform.tenant(db, commune.slug)
        first = db.scalar(select(User).where(User.username == commune.users[Role.AGENT]))
        for n in (2, 3):  # the second wears a camera this year; the third never does
            service.create_user(
                platform,
                db,
                tenant,
                username=f"agent-{n}",
                display_name=f"Agent {n}",
                role=Role.AGENT,
                agent_number=f"POR-000{n}",
            )
        second = db.scalar(select(User).where(User.username == "agent-2"))
        cam0, cam1 = (db.get(Device, c[0]) for c in commune.cameras)
        old = shifts.check_out(platform, db, cam0, first, Actor.system("test"))
        shifts.check_in(platform, db, cam0, Actor.system("test"))
        old.checked_out_at, old.checked_in_at = last_year, last_year + timedelta(hours=8)
        first.active = False  # the first agent left the service since
        shifts.check_out(platform, db, cam1, second, Actor.system("test"))
        db.commit()

    rid, _ = upload(platform, client, commune, camera=1, agent="POR-0002", duration_s=2, segment_s=2)
    older, _ = upload(platform, client, commune, camera=1, agent="POR-0002", duration_s=2, segment_s=2, seed=3)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    # A consultation for a procedure that nothing else records is not a procedure of the report.
    assert (
        client.post(
            f"/api/v1/recordings/{rid}/consultations",
            headers=_h(csrf),
            json={"motive": {"code": "judicial_procedure", "text": "PV 2026/777"}},
        ).status_code
        == 201
    )
    assert (
        client.post(
            f"/api/v1/recordings/{rid}/holds",
            headers=_h(csrf),
            json={"procedure": "judicial", "reference": "PV 2026/001"},
        ).status_code
        == 201
    )
    for kind, recipient, reference in (
        ("judicial", "judicial_police", " pv  2026/001"),  # the same procedure
        ("disciplinary", "disciplinary_authority", "CD-7"),
    ):
        r = client.post(
            "/api/v1/extractions",
            headers=_h(csrf),
            json={
                "recording_ids": [rid],
                "recipient_name": "M. Martin",
                "recipient_kind": recipient,
                "procedure_type": kind,
                "reference": reference,
            },
        )
        assert r.status_code == 201, r.text
    # An administrative hold placed last year counts for last year only.
    assert (
        client.post(
            f"/api/v1/recordings/{older}/holds",
            headers=_h(csrf),
            json={"procedure": "administrative", "reference": "ARR-12"},
        ).status_code
        == 201
    )
    with platform.session() as db:
        db.execute(update(Hold).where(Hold.recording_id == older).values(placed_at=last_year))
        db.commit()

    this = client.get(f"/api/v1/reports/annual/{year}").json()
    before = client.get(f"/api/v1/reports/annual/{year - 1}").json()
    assert this["authorised_agents"] == 1 and before["authorised_agents"] == 1
    assert this["figures"]["procedures"] == {"judicial": 1, "administrative": 0, "disciplinary": 1}
    assert before["figures"]["procedures"] == {"judicial": 0, "administrative": 1, "disciplinary": 0}
    rows = _rows(client.get(f"/api/v1/reports/annual/{year}.csv").text)
    assert rows[("Agents", "Agents ayant porté une caméra dans l'année (affectations)")] == "1"


def test_public_notice_from_the_tenant_and_the_given_contacts(platform, client):
    commune = make_commune(platform, cameras=0, authorised=6)
    sign_in(platform, client, commune.users[Role.DPO])
    notice = client.get("/api/v1/reports/notice", params={"dpo_contact": "dpo@port-temoin.fr"}).json()
    text = " ".join(s["text"] for s in notice["sections"])
    assert commune.slug.title() in notice["title"]
    assert "6 caméras" in text and "1 mois" in text and "dpo@port-temoin.fr" in text
    assert "CNIL" in text and "2 mois" in text  # the tenant's rights deadline, and the complaint
    r = client.get("/api/v1/reports/notice.pdf", params={"controller": "Le maire, M. Dupont"})
    assert r.status_code == 200 and r.content.startswith(b"%PDF")
    page = client.get("/reports", params={"rights_address": "Mairie, 1 place de la République"})
    assert page.status_code == 200 and "1 place de la République" in page.text and "notice-text" in page.text
    # Kept in the tenant's settings, the contacts come without being given each time; a given one wins.
    with platform.session() as db:
        update_settings(
            platform,
            db,
            platform.tenant(db, commune.slug),
            {"notice_controller": "Le maire, Mme Martin", "dpo_contact": "dpo@mairie.example"},
        )
        db.commit()
    text = " ".join(s["text"] for s in client.get("/api/v1/reports/notice").json()["sections"])
    assert "Mme Martin" in text and "dpo@mairie.example" in text
    text = " ".join(
        s["text"]
        for s in client.get("/api/v1/reports/notice", params={"dpo_contact": "rgpd@x.example"}).json()["sections"]
    )
    assert "rgpd@x.example" in text and "dpo@mairie.example" not in text
    # Who may not read reports is refused.
    sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    assert client.get("/api/v1/reports/notice").status_code == 403
