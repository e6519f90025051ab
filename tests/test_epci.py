"""An EPCI runs one service for several communes, each commune's data kept apart: a recording takes the commune
its GPS track starts in (the territory's features carry INSEE codes), and a user limited to commune A never
learns of commune B's recordings (search, details, consultation, extraction)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import pytest
from sqlalchemy import select, update

from temoin.geo.communes import commune_at, commune_of
from temoin.identity import service
from temoin.identity.models import User
from temoin.law.access import Role
from temoin.rights.erasure import ProposalNotFound, get_proposal
from temoin.vault.limitation import active_limitations
from temoin.vault.models import Recording
from tests.helpers import PASSWORD, Commune, enrol_camera, sign_in, upload

WEST, EAST = "34001", "34002"
PARIS = ZoneInfo("Europe/Paris")


def _square(lon0: float, lon1: float) -> list[list[list[float]]]:
    return [[[lon0, 43.54], [lon1, 43.54], [lon1, 43.58], [lon0, 43.58], [lon0, 43.54]]]


TERRITORY = {
    "type": "FeatureCollection",
    "features": [
        {
            "type": "Feature",
            "properties": {"insee": WEST, "nom": "Ouest"},
            "geometry": {"type": "Polygon", "coordinates": _square(4.06, 4.08)},
        },
        {
            "type": "Feature",
            "properties": {"insee": EAST, "nom": "Est"},
            "geometry": {"type": "Polygon", "coordinates": _square(4.08, 4.10)},
        },
    ],
}


def test_the_commune_of_a_position() -> None:
    assert commune_at(TERRITORY, 43.556, 4.07) == WEST and commune_at(TERRITORY, 43.553, 4.087) == EAST
    assert commune_at(TERRITORY, 43.60, 4.07) is None
    assert commune_of(TERRITORY, [(43.60, 4.07), (43.553, 4.087), (43.556, 4.07)]) == EAST  # first fix in one
    assert commune_of({"type": "Polygon", "coordinates": _square(4.06, 4.10)}, [(43.556, 4.07)]) is None


def _epci(platform) -> Commune:
    epci = Commune("agglo")
    with platform.session() as db:
        tenant = service.create_tenant(
            platform,
            db,
            slug="agglo",
            name="Agglo du Littoral",
            profile="fr-police-municipale",
            authorised_cameras=4,
            territory=TERRITORY,
            kind="epci",
            communes=[WEST, EAST],
        )
        for username, communes in (("chief-all", None), ("chief-west", [WEST]), ("chief-east", [EAST])):
            service.create_user(
                platform,
                db,
                tenant,
                username=username,
                display_name=username,
                role=Role.CHIEF,
                password=PASSWORD,
                communes=communes,
            )
        db.commit()
    epci.cameras.append(enrol_camera(platform, "agglo", "agglo-cam-0"))
    return epci


def test_users_of_one_commune_never_see_anothers_recordings(platform, client):
    epci = _epci(platform)
    west, _ = upload(platform, client, epci, street="Avenue de la Mer", duration_s=2, segment_s=2)
    east, _ = upload(platform, client, epci, street="Quai des Pêcheurs", duration_s=2, segment_s=2, seed=2)
    unplaced, _ = upload(platform, client, epci, street="Avenue de la Mer", duration_s=2, segment_s=2, seed=3)
    with platform.session() as db:
        assert db.get(Recording, west).commune == WEST and db.get(Recording, east).commune == EAST
        db.execute(update(Recording).where(Recording.id == unplaced).values(commune=None))  # no fix in a commune
        db.commit()

    def listed() -> set[str]:
        r = client.get("/api/v1/recordings")
        assert r.status_code == 200, r.text
        return {rec["id"] for rec in r.json()}

    sign_in(platform, client, "chief-all")
    assert listed() == {west, east, unplaced}

    for user, mine, theirs in (("chief-west", west, east), ("chief-east", east, west)):
        csrf = sign_in(platform, client, user)
        assert listed() == {mine}, user
        assert client.get(f"/api/v1/recordings/{mine}").status_code == 200
        for rid in (theirs, unplaced):
            assert client.get(f"/api/v1/recordings/{rid}").status_code == 404
            r = client.post(
                f"/api/v1/recordings/{rid}/consultations",
                headers={"X-CSRF-Token": csrf},
                json={"motive": {"code": "incident_review", "text": "relecture"}},
            )
            assert r.status_code == 404, r.text
            r = client.post(
                "/api/v1/extractions",
                headers={"X-CSRF-Token": csrf},
                json={
                    "recording_ids": [rid],
                    "recipient_name": "OPJ Martin",
                    "recipient_kind": "judicial_police",
                    "procedure_type": "judicial",
                    "reference": "PV 2026/1",
                },
            )
            assert r.status_code in (403, 404) and rid not in r.text.replace(f"no recording {rid}", ""), r.text


def test_a_user_is_limited_only_to_communes_the_epci_serves(platform):
    _epci(platform)
    with platform.session() as db:
        tenant = platform.tenant(db, "agglo")
        for communes in (["99999"], []):
            with pytest.raises(service.IdentityError, match="serves the communes 34001, 34002"):
                service.create_user(
                    platform,
                    db,
                    tenant,
                    username="x-user",
                    display_name="x",
                    role=Role.CHIEF,
                    password=PASSWORD,
                    communes=communes,
                )


def _rights_request(client, csrf: str, commune: str | None, **extra) -> httpx.Response:
    now = datetime.now(UTC)
    body = {
        "kind": "access",
        "person_description": "veste rouge, devant la mairie",
        "contact": "a@example.org",
        "facts_start": (now - timedelta(minutes=30)).isoformat(),
        "facts_end": (now + timedelta(minutes=30)).isoformat(),
        **({"commune": commune} if commune else {}),
        **extra,
    }
    return client.post("/api/v1/rights/requests", headers={"X-CSRF-Token": csrf}, json=body)


def test_rights_requests_belong_to_a_commune_and_its_users_alone_handle_them(platform, client):
    epci = _epci(platform)
    west, _ = upload(platform, client, epci, street="Avenue de la Mer", duration_s=2, segment_s=2)
    east, _ = upload(platform, client, epci, street="Quai des Pêcheurs", duration_s=2, segment_s=2, seed=2)

    csrf = sign_in(platform, client, "chief-all")
    r = _rights_request(client, csrf, None)  # an EPCI-wide user must say which commune the requester is of
    assert r.status_code == 422 and "34001, 34002" in r.text, r.text
    assert _rights_request(client, csrf, "99999").status_code == 422
    of_east = _rights_request(client, csrf, EAST)
    assert of_east.status_code == 201 and of_east.json()["commune"] == EAST, of_east.text
    of_east = of_east.json()["id"]
    # The EPCI-wide user's candidate search spans every commune.
    found = client.get(f"/api/v1/rights/requests/{of_east}/candidates").json()["candidates"]
    assert {c["recording_id"] for c in found} == {west, east}

    csrf = sign_in(platform, client, "chief-west")
    assert _rights_request(client, csrf, EAST).status_code == 422  # not one of theirs
    mine = _rights_request(client, csrf, None, kind="limitation")  # one commune: theirs by default
    assert mine.status_code == 201 and mine.json()["commune"] == WEST, mine.text
    mine = mine.json()["id"]
    assert [r["id"] for r in client.get("/api/v1/rights/requests").json()] == [mine]
    assert client.get(f"/api/v1/rights/requests/{of_east}").status_code == 404
    assert client.get(f"/api/v1/rights/requests/{of_east}/candidates").status_code == 404
    r = client.post(
        f"/api/v1/rights/requests/{of_east}/status", headers={"X-CSRF-Token": csrf}, json={"status": "in_progress"}
    )
    assert r.status_code == 404, r.text
    page = client.get("/rights")
    assert (
        page.status_code == 200
        and f'data-request="{mine}"' in page.text
        and f'data-request="{of_east}"' not in page.text
    )
    assert client.get(f"/rights/{of_east}").status_code == 404
    # Their candidate search finds only their communes' recordings.
    found = client.get(f"/api/v1/rights/requests/{mine}/candidates").json()["candidates"]
    assert [c["recording_id"] for c in found] == [west]
    # Another commune's recording cannot be frozen, rectified or proposed for erasure through their request.
    r = client.post(
        f"/api/v1/rights/requests/{mine}/limitations", headers={"X-CSRF-Token": csrf}, json={"recording_ids": [east]}
    )
    assert r.status_code == 404 and east in r.text, r.text
    with platform.session() as db:
        assert not active_limitations(db, [east])

    csrf = sign_in(platform, client, "chief-east")
    assert [r["id"] for r in client.get("/api/v1/rights/requests").json()] == [of_east]
    assert client.get(f"/api/v1/rights/requests/{mine}").status_code == 404


def test_erasure_proposals_and_copies_stay_inside_their_commune(platform, client):
    epci = _epci(platform)
    west, _ = upload(platform, client, epci, street="Avenue de la Mer", duration_s=2, segment_s=2)
    east, _ = upload(platform, client, epci, street="Quai des Pêcheurs", duration_s=2, segment_s=2, seed=2)
    csrf = sign_in(platform, client, "chief-all")
    req = _rights_request(client, csrf, WEST, kind="erasure").json()["id"]
    r = client.post(
        f"/api/v1/rights/requests/{req}/erasure", headers={"X-CSRF-Token": csrf}, json={"recording_ids": [east]}
    )
    assert r.status_code == 201, r.text  # the EPCI-wide user found it among the candidates
    proposal = r.json()["id"]
    # A user of the request's commune cannot approve the erasure of another commune's recording.
    csrf = sign_in(platform, client, "chief-west")
    r = client.post(
        f"/api/v1/rights/erasure-proposals/{proposal}/decision", headers={"X-CSRF-Token": csrf}, json={"approve": True}
    )
    assert r.status_code == 404, r.text
    # Nor can a user of the other commune reach a proposal of a request that is not theirs.
    csrf = sign_in(platform, client, "chief-east")
    r = client.post(
        f"/api/v1/rights/erasure-proposals/{proposal}/decision", headers={"X-CSRF-Token": csrf}, json={"approve": True}
    )
    assert r.status_code == 404, r.text
    with platform.session() as db:
        assert db.get(Recording, east).state == "stored" and db.get(Recording, west).state == "stored"
        user = db.scalar(select(User).where(User.username == "chief-east"))
        with pytest.raises(ProposalNotFound):
            get_proposal(db, user, proposal)


def _with_journal_readers(platform) -> None:
    with platform.session() as db:
        tenant = platform.tenant(db, "agglo")
        for username, role, communes in (("mayor-west", Role.MAYOR, [WEST]), ("auditor-all", Role.AUDITOR, None)):
            service.create_user(
                platform,
                db,
                tenant,
                username=username,
                display_name=username,
                role=role,
                password=PASSWORD,
                communes=communes,
            )
        db.commit()


def test_a_commune_limited_user_reads_only_their_communes_journal(platform, client):
    epci = _epci(platform)
    _with_journal_readers(platform)
    west, _ = upload(platform, client, epci, street="Avenue de la Mer", duration_s=2, segment_s=2)
    east, _ = upload(platform, client, epci, street="Quai des Pêcheurs", duration_s=2, segment_s=2, seed=2)
    motive = {"motive": {"code": "incident_review", "text": "relecture"}}
    csrf = sign_in(platform, client, "chief-all")
    for rid in (west, east):
        r = client.post(f"/api/v1/recordings/{rid}/consultations", headers={"X-CSRF-Token": csrf}, json=motive)
        assert r.status_code in (200, 201), r.text

    sign_in(platform, client, "auditor-all")
    everything = client.get("/api/v1/journal", params={"limit": 1000}).json()
    assert any(east in e["body"]["recordings"] for e in everything)
    assert any(not e["body"]["recordings"] and e["body"]["actor"]["id"] != "auditor-all" for e in everything)
    verified = client.get("/api/v1/journal/verify")
    assert verified.status_code == 200 and verified.json()["ok"], verified.text

    sign_in(platform, client, "mayor-west")
    seen = client.get("/api/v1/journal", params={"limit": 1000}).json()
    assert seen and {e["event"] for e in seen if e["body"]["recordings"]} >= {"recording.consulted"}
    for e in seen:
        if e["body"]["recordings"]:
            assert e["body"]["recordings"] == [west], e
        else:  # about no recording: their own actions only (signing in), never the EPCI's administration
            assert e["body"]["actor"]["id"] == "mayor-west", e
    assert east not in str(seen)
    # Paging with `before` goes on through the entries they may read.
    first = client.get("/api/v1/journal", params={"limit": 1}).json()
    older = client.get("/api/v1/journal", params={"limit": 1000, "before": first[0]["seq"]}).json()
    assert [e["seq"] for e in first + older] == [e["seq"] for e in seen]
    r = client.get("/api/v1/journal/verify")
    assert r.status_code == 403 and "whole EPCI" in r.text, r.text
    page = client.get("/journal", params={"verify": 1})
    assert page.status_code == 200 and west in page.text and east not in page.text
    assert 'id="verify"' not in page.text and 'id="verdict"' not in page.text


def test_reports_per_commune_and_a_commune_limited_user_gets_only_theirs(platform, client, tmp_path, monkeypatch):
    epci = _epci(platform)
    upload(platform, client, epci, street="Avenue de la Mer", duration_s=2, segment_s=2)
    for seed in (2, 3):
        upload(platform, client, epci, street="Quai des Pêcheurs", duration_s=2, segment_s=2, seed=seed)
    csrf = sign_in(platform, client, "chief-all")
    for commune in (WEST, EAST, EAST):
        assert _rights_request(client, csrf, commune).status_code == 201
    today = datetime.now(UTC).astimezone(PARIS)
    year, month = today.year, f"{today.year:04d}-{today.month:02d}"

    def annual(**params) -> httpx.Response:
        return client.get(f"/api/v1/reports/annual/{year}", params=params)

    def figures(**params) -> tuple[int, int]:
        r = annual(**params)
        assert r.status_code == 200, r.text
        m = client.get(f"/api/v1/reports/monthly/{month}", params=params)
        assert m.status_code == 200, m.text
        f = r.json()["figures"]
        assert (f["recordings"], f["rights_requests"]) == (m.json()["recordings"], m.json()["rights_requests"])
        return f["recordings"], f["rights_requests"]

    assert figures() == (3, 3)
    assert figures(commune=WEST) == (1, 1) and figures(commune=EAST) == (2, 2)
    r = annual(commune="99999")
    assert r.status_code == 422 and "34001, 34002" in r.text, r.text
    csv = client.get(f"/api/v1/reports/annual/{year}.csv", params={"commune": EAST}).text
    assert "Communes de l'EPCI couvertes (code INSEE),34002" in csv and "Nombre d'enregistrements,2" in csv

    sign_in(platform, client, "chief-west")
    assert figures() == (1, 1)  # theirs without asking
    assert figures(commune=WEST) == (1, 1)
    for r in (
        annual(commune=EAST),
        client.get(f"/api/v1/reports/monthly/{month}.csv", params={"commune": EAST}),
        client.get("/reports", params={"commune": EAST}),
    ):
        assert r.status_code == 403, r.text
    page = client.get("/reports")
    assert page.status_code == 200 and "Communes de l&#39;EPCI couvertes" in page.text

    from typer.testing import CliRunner

    from temoin.cli import app

    monkeypatch.setenv("TEMOIN_HOME", str(platform.settings.home))
    monkeypatch.setenv("TEMOIN_DATABASE_URL", platform.settings.database_url)
    out = tmp_path / "east.csv"
    result = CliRunner().invoke(app, ["report", "monthly", "agglo", month, "--commune", EAST, "--csv", str(out)])
    assert result.exit_code == 0, result.output
    assert "Nombre d'enregistrements,2" in out.read_text(encoding="utf-8")
    result = CliRunner().invoke(app, ["report", "annual", "agglo", str(year), "--commune", "99999"])
    assert result.exit_code == 2 and "34001, 34002" in result.output, result.output
