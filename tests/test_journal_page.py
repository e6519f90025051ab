"""The auditor's journal page: filters by day range, event kind, actor and recording, kept in the URL; paged
(older entries below the last one shown, the filters carried along)."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from temoin.db import utcnow
from temoin.law.access import Role
from temoin.law.legal_time import PARIS
from temoin.web.routes import journal as journal_routes
from tests.helpers import make_commune, sign_in, upload

ROW = re.compile(r"<tr[^>]*><td>(\d+)</td>.*?</tr>", re.S)


def rows(html: str) -> list[str]:
    return [m.group(0) for m in ROW.finditer(html)]


def test_the_auditor_filters_the_journal_and_pages_through_it(platform, client, monkeypatch) -> None:
    commune = make_commune(platform, cameras=1)
    first, _ = upload(platform, client, commune, duration_s=2)
    second, _ = upload(platform, client, commune, duration_s=2)
    chief = commune.users[Role.CHIEF]
    csrf = sign_in(platform, client, chief)
    for rid in (first, second, first):
        r = client.post(
            f"/api/v1/recordings/{rid}/consultations",
            headers={"X-CSRF-Token": csrf},
            json={"motive": {"code": "report_facts", "text": "Rapport sur l'intervention"}},
        )
        assert r.status_code == 201, r.text
    sign_in(platform, client, commune.users[Role.AUDITOR])

    everything = client.get("/journal")
    assert everything.status_code == 200
    assert len(rows(everything.text)) > 3

    # One recording and one kind of event: the chief's two viewings of the first recording, nothing else.
    r = client.get("/journal", params={"recording": first, "event": "recording.consulted"})
    found = rows(r.text)
    assert len(found) == 2
    assert all(first in row and "recording.consulted" in row and second not in row for row in found)
    assert f'value="{first}"' in r.text  # the filters stay in the form (and the URL)
    assert '<option value="recording.consulted" selected>' in r.text

    # One actor: only the chief's own actions.
    r = client.get("/journal", params={"actor": chief})
    mine = rows(r.text)
    assert len(mine) >= 3 and len(mine) < len(rows(everything.text))
    assert all("(Responsable du service)" in row for row in mine), mine
    assert not rows(client.get("/journal", params={"actor": "nobody-here"}).text)
    assert "Aucune entrée ne correspond à ces filtres." in client.get("/journal", params={"actor": "nobody"}).text

    # Days, in Paris time, both ends included.
    today = utcnow().astimezone(PARIS).date()
    assert len(rows(client.get("/journal", params={"start": str(today), "end": str(today)}).text)) == len(
        rows(everything.text)
    )
    assert not rows(client.get("/journal", params={"start": str(today + timedelta(days=1))}).text)
    assert not rows(client.get("/journal", params={"end": str(today - timedelta(days=1))}).text)
    bad = client.get("/journal", params={"start": "06/12/2026"})
    assert bad.status_code == 200 and "Date illisible" in bad.text

    # Paged: with two entries a page, "older" goes on below the last one shown and keeps the filters.
    monkeypatch.setattr(journal_routes, "JOURNAL_PAGE", 2)
    seen: list[int] = []
    url = "/journal?event=recording.consulted"
    while url:
        r = client.get(url)
        seen += [int(m.group(1)) for m in ROW.finditer(r.text)]
        older = re.search(r'<a href="([^"]+)" id="journal-older"', r.text)
        url = older.group(1).replace("&amp;", "&") if older else None
        if url:
            assert parse_qs(urlsplit(url).query)["event"] == ["recording.consulted"]
    assert len(seen) == 3 and seen == sorted(seen, reverse=True)
    assert 'id="journal-newest"' in r.text  # a later page links back to the newest

    # The API takes the same filters.
    r = client.get("/api/v1/journal", params={"recording": second, "event": "recording.consulted"})
    assert r.status_code == 200 and len(r.json()) == 1
