"""Reports: the annual report's figures on known data (recordings, hours, consultations and extractions by
procedure type, rights requests, deletions on time or late), its CSV and PDF, the monthly statistics and the
public notice."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from sqlalchemy import update

from temoin.db import utcnow
from temoin.identity.service import update_settings
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.access import Role
from temoin.reports.annual import PARIS
from temoin.vault.models import Recording
from temoin.vault.retention import sweep
from tests.helpers import make_commune, sign_in, upload


def _h(csrf: str) -> dict:
    return {"X-CSRF-Token": csrf}


def _rows(text: str) -> dict[tuple[str, str], str]:
    reader = csv.reader(io.StringIO(text))
    assert next(reader) == ["section", "item", "value"]
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
    for rid, code, text in ((a, "judicial_procedure", "PV 2026/001"), (b, "judicial_procedure", "pv  2026/001"),
                            (a, "administrative_procedure", "ARR-12"), (b, "incident_review", "relecture")):
        r = client.post(f"/api/v1/recordings/{rid}/consultations", headers=_h(csrf),
                        json={"motive": {"code": code, "text": text}})
        assert r.status_code == 201, r.text
    with platform.session() as db:  # extractions as the extraction engineer's contract journals them
        tenant = platform.tenant(db, commune.slug)
        for kind, ref, who in (("judicial", "PV 2026/001", "opj"), ("disciplinary", "CD-7", "disciplinary_authority")):
            platform.record(db, EntryDraft(action=Action.COMMUNICATION, event="extraction.created",
                                           actor=Actor.system("test"), recordings=[a], recipients=["OPJ Martin"],
                                           details={"extraction_id": 1, "procedure_type": kind, "reference": ref,
                                                    "recipient_kind": who, "trimmed": False}), tenant)
        db.commit()
    for kind in ("access", "erasure"):
        r = client.post("/api/v1/rights/requests", headers=_h(csrf),
                        json={"kind": kind, "person_description": "casquette bleue", "contact": "x@example.org"})
        assert r.status_code == 201
    erasure = r.json()["id"]
    assert client.post(f"/api/v1/rights/requests/{erasure}/erasure", headers=_h(csrf),
                       json={"recording_ids": [d]}).status_code == 200
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
    assert f["consultations_by_motive"] == {"administrative_procedure": 1, "incident_review": 1,
                                            "judicial_procedure": 2}
    assert f["extractions"] == 2 and f["extractions_by_procedure"] == {"disciplinary": 1, "judicial": 1}
    # One judicial procedure (consulted twice, extracted once: same reference), one administrative, one disciplinary.
    assert f["procedures"] == {"judicial": 1, "administrative": 1, "disciplinary": 1}
    assert f["rights_requests"] == 2 and f["rights_by_kind"] == {"access": 1, "erasure": 1}
    assert f["deletions"] == 3 and f["deletions_early"] == 1 and f["deletions_on_time"] == 1
    assert f["deletions_late"] == 1

    r = client.get(f"/api/v1/reports/annual/{year}.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = _rows(r.text)
    assert rows[("Enregistrements", "Nombre d'enregistrements")] == "4"
    assert rows[("Caméras", "Caméras autorisées par le préfet (R241-8)")] == "5"
    section = "Procédures ayant nécessité une consultation ou une extraction"
    assert [rows[(section, k)] for k in ("judiciaires", "administratives", "disciplinaires")] == ["1", "1", "1"]
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
        update_settings(platform, db, platform.tenant(db, commune.slug),
                        {"notice_controller": "Le maire, Mme Martin", "dpo_contact": "dpo@mairie.example"})
        db.commit()
    text = " ".join(s["text"] for s in client.get("/api/v1/reports/notice").json()["sections"])
    assert "Mme Martin" in text and "dpo@mairie.example" in text
    text = " ".join(s["text"] for s in client.get("/api/v1/reports/notice",
                                                   params={"dpo_contact": "rgpd@x.example"}).json()["sections"])
    assert "rgpd@x.example" in text and "dpo@mairie.example" not in text
    # Who may not read reports is refused.
    sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    assert client.get("/api/v1/reports/notice").status_code == 403
