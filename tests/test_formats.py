"""What a person reads is in French, numbers and dates the French way, with labels rather than codes: the journal
page and the annual report PDF (the prefect's copy). The CSV keeps ISO dates and dot decimals for scripts."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from temoin.db import utcnow
from temoin.evidence.manifest import Trigger
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.access import Role
from temoin.reports.annual import PARIS, Figures, Period, period_rows
from temoin.texts import number, when
from tests.helpers import make_commune, pdf_text, sign_in, upload

ISO_DATE = re.compile(r"\b\d{4}-\d\d-\d\d\b")
FRENCH_MOMENT = re.compile(r"\b\d\d/\d\d/\d{4} \d\d:\d\d:\d\d\b")


def test_numbers_and_dates_the_french_way_and_the_english_way() -> None:
    moment = datetime(2026, 12, 6, 22, 40, tzinfo=UTC)
    assert when("fr", moment) == "06/12/2026 23:40:00" and when("fr", moment, time=False) == "06/12/2026"
    assert number("fr", 1.0234) == "1,02" and number("en", 1.0234) == "1.02"
    f = Figures(period=Period.year(2026), hours=1.0234)
    rows = {item: value for _section, item, value in period_rows(f)}
    assert rows["Heures enregistrées"] == "1,02 h"
    assert {item: value for _s, item, value in period_rows(f, csv=True)}["Heures enregistrées"] == "1.02"


def test_the_journal_page_shows_french_dates_and_sentences_not_codes(platform, client) -> None:
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(
        f"/api/v1/recordings/{rid}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "complaint", "text": "réclamation n° 12"}},
    )
    assert r.status_code == 201, r.text
    sign_in(platform, client, commune.users[Role.MAYOR])
    page = client.get("/journal").text
    table = page.split('id="journal"')[1].split("</table>")[0]
    assert FRENCH_MOMENT.search(table) and not ISO_DATE.search(table)
    assert "Collecte : enregistrement versé au coffre" in table and "recording.ingested" not in table.replace(
        'data-event="recording.ingested"', ""
    )
    assert "Plainte ou réclamation" in table and "<b>complaint</b>" not in table
    assert ">consultation<" in table and ">collecte<" in table  # the journal's action, in French
    english = client.get("/journal?lang=en").text.split('id="journal"')[1]
    assert "Collection: recording ingested" in english and ">Complaint<" in english


def test_the_annual_report_pdf_reads_french_labels_and_numbers(platform, client) -> None:
    commune = make_commune(platform, cameras=1)
    now = utcnow().replace(microsecond=0)
    rid, _ = upload(platform, client, commune, started_at=now - timedelta(minutes=10), trigger=Trigger.FLAGRANT_OFFENCE)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    assert (
        client.post(
            f"/api/v1/recordings/{rid}/consultations",
            headers={"X-CSRF-Token": csrf},
            json={"motive": {"code": "judicial_procedure", "text": "PV 1"}},
        ).status_code
        == 201
    )
    with platform.session() as db:  # an extraction as the extraction service journals it
        platform.record(
            db,
            EntryDraft(
                action=Action.COMMUNICATION,
                event="extraction.created",
                actor=Actor.system("t"),
                recordings=[rid],
                recipients=["OPJ Martin"],
                details={
                    "extraction_id": 1,
                    "procedure_type": "judicial",
                    "reference": "PV 1",
                    "recipient_kind": "judicial_police",
                    "trimmed": False,
                },
            ),
            platform.tenant(db, commune.slug),
        )
        db.commit()
    year = now.astimezone(PARIS).year
    text = pdf_text(client.get(f"/api/v1/reports/annual/{year}.pdf").content)
    assert "officier ou agent de police judiciaire" in text and "judicial_police" not in text
    assert "flagrant délit" in text.lower() and "flagrant_offence" not in text
    assert "Procédure judiciaire" in text and "judicial_procedure" not in text
    assert re.search(r"Heures enregistrées\s*0(,\d\d?)? h", text), text
    assert re.search(r"établi le \d\d/\d\d/\d{4} \d\d:\d\d", text) and not ISO_DATE.search(text)
    csv_text = client.get(f"/api/v1/reports/annual/{year}.csv").text
    assert "judicial_police" not in csv_text and re.search(r"Heures enregistrées,0\.\d\d", csv_text)


def test_the_custody_pdf_names_the_events_recipient_and_procedure_in_french(platform, client, tmp_path) -> None:
    from tests.extraction_helpers import _download, _extract

    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=2, segment_s=1, trigger=Trigger.FLAGRANT_OFFENCE)
    out = _extract(client, sign_in(platform, client, commune.users[Role.CHIEF]), [rid])
    _zip, folder = _download(client, out, tmp_path)
    text = pdf_text((folder / "chain-of-custody.pdf").read_bytes())
    assert "Collecte : enregistrement versé au coffre" in text  # the event's sentence (its code beside it)
    assert "officier ou agent de police judiciaire" in text and "(judicial_police)" not in text
    assert "judiciaire — PV 2026/004512" in text and "flagrant délit" in text and "trigger flagrant_offence" not in text
