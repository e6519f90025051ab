"""The review of recordings through the API and the pages: each search filter narrows the results (time,
agent, camera, trigger, category, hold state, an area the GPS track passes through), tenants apart, holds
for an incident placed all or nothing, a lifted hold handing the recording back to the retention sweep,
and what the recording page says of integrity.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from temoin.db import utcnow
from temoin.demo.commune import streets
from temoin.evidence.manifest import Trigger
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.vault import retention
from temoin.vault.models import Hold, Recording, RecordingState
from temoin.vault.tracks import Track
from tests.helpers import Commune, make_commune, sign_in, upload

RUE_DU_PORT = streets()["Rue du Port"][0]  # (lat, lon) where the walks along these streets start
BD_DES_PINS = streets()["Boulevard des Pins"][0]


def box(lat: float, lon: float, half: float = 0.0008) -> str:
    """A rectangle around a point, as the map sends it (its four corners)."""
    s, n, w, e = lat - half, lat + half, lon - half, lon + half
    return f"{s},{w};{n},{w};{n},{e};{s},{e}"


def ids(response) -> list[str]:
    assert response.status_code == 200, response.text
    return [r["id"] for r in response.json()]


def held_count(platform: Platform) -> int:
    with platform.session() as db:
        return db.scalar(select(func.count()).select_from(Hold).where(Hold.lifted_at.is_(None)))


def events(platform: Platform, event: str) -> list[dict]:
    with platform.session() as db:
        return [
            parse_body(e.body)
            for e in db.scalars(select(JournalEntry).where(JournalEntry.event == event).order_by(JournalEntry.id))
        ]


@pytest.fixture
def scene(platform: Platform, client: TestClient) -> tuple[Commune, dict[str, str]]:
    """Three recordings of one commune: different agents, cameras, triggers, times and streets."""
    commune = make_commune(platform, cameras=2)
    now = utcnow()
    recs = {
        "port": upload(
            platform,
            client,
            commune,
            camera=0,
            started_at=now - timedelta(hours=2),
            duration_s=2,
            segment_s=2,
            street="Rue du Port",
            trigger=Trigger.INCIDENT,
        )[0],
        "pins": upload(
            platform,
            client,
            commune,
            camera=1,
            agent="POR-0002",
            started_at=now - timedelta(hours=1),
            duration_s=2,
            segment_s=2,
            street="Boulevard des Pins",
            trigger=Trigger.FLAGRANT_OFFENCE,
        )[0],
        "old": upload(
            platform,
            client,
            commune,
            camera=0,
            started_at=now - timedelta(days=3),
            duration_s=2,
            segment_s=2,
            street="Avenue de la Mer",
            trigger=Trigger.AUTOMATIC,
        )[0],
    }
    return commune, recs


PLACE_MOTIVE = {"motive_code": "incident_review", "motive_text": "rixe signalée rue du Port"}


def test_each_filter_narrows_the_search(platform, client, scene) -> None:
    commune, recs = scene
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    # A search by area shows places (R241-10): it carries a motive.
    search = lambda **params: ids(  # noqa: E731 - a one-line helper
        client.get(
            "/api/v1/recordings",
            params={
                **params,
                **(PLACE_MOTIVE if "area" in params else {}),
            },
        )
    )
    assert search() == [recs["pins"], recs["port"], recs["old"]]  # newest first
    now = utcnow()
    # Time: recordings running within the range (aware times; a time without zone is UTC).
    assert search(start=(now - timedelta(days=1)).isoformat()) == [recs["pins"], recs["port"]]
    assert search(end=(now - timedelta(hours=1, minutes=30)).isoformat()) == [recs["port"], recs["old"]]
    naive = (now - timedelta(hours=1, minutes=30)).replace(tzinfo=None).isoformat()
    assert search(start=naive) == [recs["pins"]]
    # Agent, camera, trigger.
    assert search(agent="POR-0002") == [recs["pins"]]
    assert search(agent="POR-0001") == [recs["port"], recs["old"]]
    assert search(camera=commune.cameras[0][0]) == [recs["port"], recs["old"]]
    assert search(trigger="automatic") == [recs["old"]]
    assert search(trigger="person_request") == []
    # Category: tag one, it alone comes back.
    r = client.put(
        f"/api/v1/recordings/{recs['port']}/categories",
        headers={"X-CSRF-Token": csrf},
        json={"categories": ["violence", "arrest"]},
    )
    assert r.status_code == 200
    assert search(category="violence") == [recs["port"]]
    assert search(category="rescue") == []
    # Place: an area around the start of Rue du Port holds the first walk only; one far away, none.
    assert search(area=box(*RUE_DU_PORT)) == [recs["port"]]
    assert search(area=box(*BD_DES_PINS)) == [recs["pins"]]
    assert search(area=box(43.60, 4.20)) == []
    triangle = (
        f"{RUE_DU_PORT[0] - 0.001},{RUE_DU_PORT[1] - 0.001};{RUE_DU_PORT[0] + 0.001},{RUE_DU_PORT[1]};"
        f"{RUE_DU_PORT[0] - 0.001},{RUE_DU_PORT[1] + 0.001}"
    )
    assert search(area=triangle) == [recs["port"]]  # any polygon, not only rectangles
    # Filters combine, and pagination applies after the area.
    both = (
        f"{RUE_DU_PORT[0] - 0.001},4.06;{BD_DES_PINS[0] + 0.001},4.06;{BD_DES_PINS[0] + 0.001},4.0795;"
        f"{RUE_DU_PORT[0] - 0.001},4.0795"
    )
    assert search(area=both) == [recs["pins"], recs["port"], recs["old"]]
    assert search(area=both, limit=1, offset=1) == [recs["port"]]
    assert search(area=both, agent="POR-0001") == [recs["port"], recs["old"]]
    assert search(area=both, category="violence") == [recs["port"]]
    assert search(area=both, category="violence", trigger="flagrant_offence") == []
    # Hold state.
    r = client.post(
        f"/api/v1/recordings/{recs['old']}/holds",
        headers={"X-CSRF-Token": csrf},
        json={"procedure": "judicial", "reference": "PV 2026/118"},
    )
    assert r.status_code == 201
    assert search(state="on_hold") == [recs["old"]]
    assert search(state="not_on_hold") == [recs["pins"], recs["port"]]
    with platform.session() as db:
        db.get(Recording, recs["pins"]).retention_until = utcnow() + timedelta(days=2)
        db.commit()
    assert search(state="expiring") == [recs["pins"]]
    # Bad input says what is wrong, never a server error.
    for bad in ("43.5,4.0;43.6", "north,south;a,b;c,d", "91,4;92,4;93,5"):
        r = client.get("/api/v1/recordings", params={"area": bad})
        assert r.status_code == 422 and "area" in r.json()["detail"], bad
    assert client.get("/api/v1/recordings", params={"state": "gone"}).status_code == 422


def test_a_track_passes_through_an_area_between_two_fixes() -> None:
    # Fixes one minute apart (a car): the line between them crosses the area, no fix lies inside it.
    t0 = utcnow()
    track = Track.of(
        [
            {"t": t0.isoformat(), "lat": 43.550, "lon": 4.070},
            {"t": (t0 + timedelta(seconds=60)).isoformat(), "lat": 43.550, "lon": 4.090},
        ]
    )
    across = ((43.549, 4.079), (43.551, 4.079), (43.551, 4.081), (43.549, 4.081))
    beside = ((43.552, 4.079), (43.553, 4.079), (43.553, 4.081), (43.552, 4.081))
    assert track.passes_through(across)
    assert not track.passes_through(beside)
    assert not Track().passes_through(across)


def test_the_search_page_reads_paris_time_and_the_area(platform, client, scene) -> None:
    commune, recs = scene
    sign_in(platform, client, commune.users[Role.CHIEF])
    page = client.get("/recordings")
    assert page.status_code == 200 and all(f'data-recording="{rid}"' in page.text for rid in recs.values())
    # The area drawn on the map comes as a form field; results are listed with their tracks for the map.
    page = client.get("/recordings", params={"area": box(*RUE_DU_PORT), **PLACE_MOTIVE})
    assert f'data-recording="{recs["port"]}"' in page.text and f'data-recording="{recs["pins"]}"' not in page.text
    assert '"points": [[' in page.text
    # datetime-local fields are Europe/Paris times.
    with platform.session() as db:
        pins_start = db.get(Recording, recs["pins"]).started_at
    from zoneinfo import ZoneInfo

    paris = pins_start.astimezone(ZoneInfo("Europe/Paris")).replace(tzinfo=None)
    page = client.get(
        "/recordings",
        params={
            "start": (paris - timedelta(minutes=1)).isoformat(timespec="minutes"),
            "end": (paris + timedelta(minutes=1)).isoformat(timespec="minutes"),
        },
    )
    assert f'data-recording="{recs["pins"]}"' in page.text and f'data-recording="{recs["port"]}"' not in page.text
    # Unreadable input is explained, in French first, in English with ?lang=en.
    page = client.get("/recordings", params={"area": "nowhere", "start": "yesterday"})
    assert page.status_code == 200 and "Zone illisible" in page.text and "Date ou heure illisible" in page.text
    page = client.get("/recordings", params={"area": "nowhere", "lang": "en"})
    assert "Unreadable area" in page.text and 'lang="en"' in page.text


def test_tenants_apart_and_a_bulk_hold_is_all_or_nothing(platform, client, scene) -> None:
    commune, recs = scene
    other = make_commune(platform, "brume", cameras=1)
    theirs, _ = upload(platform, client, other, duration_s=2, segment_s=2, street="Rue du Port")
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    # Their recording walks the same street: it is not found, by any filter.
    assert theirs not in ids(client.get("/api/v1/recordings", params={"area": box(*RUE_DU_PORT), **PLACE_MOTIVE}))
    assert theirs not in ids(client.get("/api/v1/recordings", params={"camera": other.cameras[0][0]}))
    assert theirs not in client.get("/recordings").text
    assert client.get(f"/api/v1/recordings/{theirs}/track").status_code == 404

    url = "/api/v1/recordings/holds"
    headers = {"X-CSRF-Token": csrf}
    incident = {"procedure": "judicial", "reference": "Parquet 26/0412"}
    # One id of another tenant: 404, nothing held, and the attempt is journaled.
    r = client.post(url, headers=headers, json={"recording_ids": [recs["port"], theirs], **incident})
    assert r.status_code == 404 and held_count(platform) == 0
    assert any(e["details"]["asked_for"] == theirs for e in events(platform, "access.cross_tenant"))
    # One already on hold: 409 naming it, nothing else held.
    assert (
        client.post(
            f"/api/v1/recordings/{recs['old']}/holds",
            headers=headers,
            json={"procedure": "disciplinary", "reference": "CD-2026-3"},
        ).status_code
        == 201
    )
    r = client.post(url, headers=headers, json={"recording_ids": [recs["port"], recs["old"]], **incident})
    assert r.status_code == 409 and recs["old"] in r.json()["detail"] and held_count(platform) == 1
    for bad in (
        {"recording_ids": [], **incident},
        {"recording_ids": [recs["port"]], "procedure": "civil", "reference": "X-1"},
        {"recording_ids": [recs["port"]], "procedure": "judicial", "reference": "  "},
    ):
        assert client.post(url, headers=headers, json=bad).status_code in (409, 422), bad
    assert held_count(platform) == 1
    # The incident's recordings, held together: one hold each, each journaled with the reference.
    r = client.post(url, headers=headers, json={"recording_ids": [recs["port"], recs["pins"]], **incident})
    assert r.status_code == 201 and sorted(r.json()["recording_ids"]) == sorted([recs["port"], recs["pins"]])
    placed = [e for e in events(platform, "hold.placed") if e["details"]["reference"] == "Parquet 26/0412"]
    assert sorted(e["recordings"][0] for e in placed) == sorted([recs["port"], recs["pins"]])
    assert all(e["action"] == "modification" and e["actor"]["id"] == commune.users[Role.CHIEF] for e in placed)
    assert {r["id"]: r["on_hold"] for r in client.get("/api/v1/recordings").json()} == {
        recs["port"]: True,
        recs["pins"]: True,
        recs["old"]: True,
    }
    # Roles without the hold permission are refused.
    csrf = sign_in(platform, client, commune.users[Role.DESIGNATED_AGENT])
    r = client.post(url, headers={"X-CSRF-Token": csrf}, json={"recording_ids": [recs["port"]], **incident})
    assert r.status_code == 403


def test_lifting_a_hold_hands_the_recording_back_to_the_retention_sweep(platform, client) -> None:
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    headers = {"X-CSRF-Token": csrf}
    assert (
        client.post(
            "/api/v1/recordings/holds",
            headers=headers,
            json={"recording_ids": [rid], "procedure": "administrative", "reference": "ARR-2026-77"},
        ).status_code
        == 201
    )
    with platform.session() as db:  # its retention period is over
        db.get(Recording, rid).retention_until = utcnow() - timedelta(days=1)
        db.commit()
        result = retention.sweep(platform, db)
    assert result.deleted == [] and result.held == 1  # the hold keeps it
    r = client.post(f"/api/v1/recordings/{rid}/holds/lift", headers=headers, json={"reason": "classement sans suite"})
    assert r.status_code == 200
    lifted = events(platform, "hold.lifted")
    assert lifted[-1]["recordings"] == [rid] and lifted[-1]["details"]["reason"] == "classement sans suite"
    with platform.session() as db:
        result = retention.sweep(platform, db)
        assert result.deleted == [rid]
        assert db.get(Recording, rid).state == RecordingState.DELETED
    assert rid not in ids(client.get("/api/v1/recordings"))
    assert client.get(f"/recordings/{rid}").status_code == 404


def test_integrity_shows_what_is_known_and_a_check_on_demand_is_journaled(platform, client) -> None:
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    known = client.get(f"/api/v1/recordings/{rid}/integrity").json()
    assert known["signature_ok"] and known["chain_ok"] and known["stored_at"] and known["last_full_check"] is None
    page = client.get(f"/recordings/{rid}")
    assert "Signature de la caméra : valide" in page.text and "Chaîne des segments : intègre" in page.text
    check = client.post(f"/api/v1/recordings/{rid}/integrity", headers={"X-CSRF-Token": csrf}).json()
    assert check["ok"] and check["problems"] == []
    assert client.get(f"/api/v1/recordings/{rid}/integrity").json()["last_full_check"]["ok"] is True
    entry = events(platform, "recording.verified")[-1]
    assert entry["recordings"] == [rid] and entry["action"] == "security" and entry["details"]["ok"] is True
    # A manifest altered in the database no longer matches the camera's signature: the page says so.
    with platform.session() as db:
        rec = db.get(Recording, rid)
        rec.manifest = rec.manifest.replace('"POR-0001"', '"POR-0666"')
        db.commit()
    assert client.get(f"/api/v1/recordings/{rid}/integrity").json()["signature_ok"] is False
    assert "Signature de la caméra : INVALIDE" in client.get(f"/recordings/{rid}").text


def test_a_segment_is_served_by_byte_ranges_under_the_grant(platform, client) -> None:
    """The review timeline seeks inside a segment with byte ranges: each one needs the consultation's grant."""
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=2)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(
        f"/api/v1/recordings/{rid}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "report_facts", "text": "Rapport sur l'intervention"}},
    )
    url = r.json()["segments"][0]
    whole = client.get(url)
    assert whole.status_code == 200 and whole.headers["accept-ranges"] == "bytes"
    part = client.get(url, headers={"Range": "bytes=100-1099"})
    assert part.status_code == 206 and part.content == whole.content[100:1100]
    assert part.headers["content-range"] == f"bytes 100-1099/{len(whole.content)}"
    assert client.get(url, headers={"Range": f"bytes={len(whole.content)}-"}).status_code == 416
    assert client.get(url.split("?")[0] + "?grant=forged", headers={"Range": "bytes=0-9"}).status_code == 403


@pytest.mark.parametrize("what", ["segment", "package"])
def test_a_body_being_streamed_holds_no_database_connection(platform, client, server_url, monkeypatch, what) -> None:
    """A paused player keeps its segment request open for as long as it likes, a recipient's slow link its package
    download: each one holding a database connection would drain the pool (every other request then waits, then
    503) with a few reviewers watching."""
    import threading

    import httpx

    from tests.extraction_helpers import _extract

    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=2)
    reading, go_on = threading.Event(), threading.Event()
    real_open = type(platform.store).open

    def slow_open(store, key):  # the blob's first read waits until the test has looked at the pool
        fh = real_open(store, key)
        read = fh.read

        def held_read(*args):
            reading.set()
            go_on.wait(10)
            return read(*args)

        fh.read = held_read
        return fh

    with httpx.Client(base_url=server_url, timeout=30) as http:
        csrf = sign_in(platform, http, commune.users[Role.CHIEF])
        r = http.post(
            f"/api/v1/recordings/{rid}/consultations",
            headers={"X-CSRF-Token": csrf},
            json={"motive": {"code": "judicial_procedure", "text": "réquisition du parquet n° 4512"}},
        )
        url = r.json()["segments"][0] if what == "segment" else _extract(http, csrf, [rid])["download_url"]
        monkeypatch.setattr(type(platform.store), "open", slow_open)
        with http.stream("GET", url) as streaming:
            assert streaming.status_code == 200
            assert reading.wait(10), f"the {what} was not being read"
            held = platform.engine.pool.checkedout()
            go_on.set()
            body = streaming.read()
    assert held == 0, f"{held} database connection(s) held while the {what} streamed"
    assert len(body) > 1000
