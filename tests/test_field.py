"""The law in the field: what the vault checks of the camera's word (time, wearer, place), the place as recorded
data (R241-10) needing a motive, footage left on a camera at check-in, limitation and rectification requests that
take effect, and the server's own retention loop.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from temoin.db import utcnow
from temoin.identity import service
from temoin.identity.models import Tenant
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.law.access import Role
from temoin.law.profiles import get_profile
from temoin.platform import Platform
from temoin.vault.models import Recording, RecordingState
from tests.helpers import Commune, agent_number, make_commune, sign_in, upload

MUNICIPAL = get_profile("fr-police-municipale")


def _h(csrf: str) -> dict:
    return {"X-CSRF-Token": csrf}


def _entries(platform: Platform, event: str) -> list[dict]:
    with platform.session() as db:
        return [
            parse_body(e.body)
            for e in db.scalars(select(JournalEntry).where(JournalEntry.event == event).order_by(JournalEntry.seq))
        ]


def _rec(platform: Platform, rid: str) -> Recording:
    with platform.session() as db:
        return db.get(Recording, rid)


def _check_out(platform: Platform, client, commune: Commune, username: str, camera: int = 0) -> None:
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(
        "/api/v1/shifts/checkout",
        json={"device_id": commune.cameras[camera][0], "username": username},
        headers=_h(csrf),
    )
    assert r.status_code == 201, r.text
    client.cookies.clear()


def _close(a: datetime, b: datetime, seconds: float = 120) -> bool:
    return abs((a - b).total_seconds()) <= seconds


# --- 1. time and wearer checked against the clock offset and the shift -----------------------------------------


def test_a_start_400_days_ahead_is_accepted_flagged_journaled_and_kept_one_period_from_its_arrival(platform, client):
    commune = make_commune(platform)
    future = utcnow() + timedelta(days=400)
    rid, receipt = upload(platform, client, commune, started_at=future)
    rec = _rec(platform, rid)
    assert rec.state == RecordingState.STORED  # evidence is never refused for its clock
    assert "time_in_future" in rec.flags
    # Kept one period from its arrival, not thirteen months (nor deleted at once).
    assert _close(rec.retention_until, MUNICIPAL.retention.deadline(utcnow()), 86400)
    assert rec.retention_until < utcnow() + timedelta(days=40)
    assert receipt.receipt.retention_until == rec.retention_until
    assert _close(rec.declared_started_at, future, 1)
    [entry] = _entries(platform, "ingest.time_implausible")
    assert entry["action"] == "security" and entry["recordings"] == [rid]
    assert entry["details"]["flag"] == "time_in_future"
    [collected] = _entries(platform, "recording.ingested")
    assert "time_in_future" in collected["details"]["flags"]
    # The reviewer sees the flag and the camera's own time.
    sign_in(platform, client, commune.users[Role.CHIEF])
    shown = client.get(f"/api/v1/recordings/{rid}").json()
    assert "time_in_future" in shown["flags"] and shown["declared_started_at"].startswith(future.date().isoformat())


def test_the_measured_clock_offset_corrects_the_time_and_the_declared_time_is_kept(platform, client):
    commune = make_commune(platform)
    true_start = utcnow() - timedelta(hours=2)
    # The camera's clock runs 25 minutes ahead of the platform's, as measured at its last settings poll.
    ahead_ms = 25 * 60 * 1000
    declared = true_start + timedelta(milliseconds=ahead_ms)
    rid, _ = upload(platform, client, commune, started_at=declared, clock_offset_ms=ahead_ms)
    rec = _rec(platform, rid)
    assert _close(rec.started_at, true_start, 1)
    assert _close(rec.declared_started_at, declared, 1)
    assert rec.clock_drift_flag  # still flagged: the clock must be set
    assert "time_in_future" not in (rec.flags or [])


def test_a_clock_never_measured_cannot_have_a_recording_deleted_on_its_word(platform, client):
    from temoin.vault.retention import sweep

    commune = make_commune(platform)
    long_ago = utcnow() - timedelta(days=120)
    unmeasured, _ = upload(platform, client, commune, started_at=long_ago, clock_offset_ms=None)
    measured, _ = upload(platform, client, commune, started_at=long_ago, clock_offset_ms=0)
    for rid in (unmeasured, measured):
        assert "time_beyond_retention" in _rec(platform, rid).flags
    assert len(_entries(platform, "ingest.time_implausible")) == 2
    with platform.session() as db:
        done = sweep(platform, db)
    # A measured clock: the law's period is over, it goes, and the flag and entry say why it arrived late.
    assert done.deleted == [measured]
    # Never measured (a clock reset?): kept one period from its arrival, for a person to look at.
    assert _rec(platform, unmeasured).state == RecordingState.STORED
    assert _rec(platform, unmeasured).retention_until > utcnow() + timedelta(days=25)


def test_the_agent_recorded_is_the_one_the_camera_was_checked_out_to(platform, client):
    commune = make_commune(platform)
    with platform.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == commune.slug))
        service.create_user(
            platform,
            db,
            tenant,
            username="agent-b",
            display_name="Agent B",
            role=Role.AGENT,
            password="correct horse battery staple",
            agent_number="POR-0002",
        )
        db.commit()
    _check_out(platform, client, commune, "agent-b")
    # The camera still declares the previous wearer (its settings were not refreshed, or it lies).
    rid, _ = upload(platform, client, commune, agent=agent_number(commune))
    rec = _rec(platform, rid)
    assert rec.agent_ref == "POR-0002" and rec.declared_agent_ref == agent_number(commune)
    assert "agent_not_on_shift" in rec.flags
    [entry] = _entries(platform, "ingest.agent_not_on_shift")
    assert entry["action"] == "security"
    assert entry["details"] == {
        "declared_agent": agent_number(commune),
        "shift_agent": "POR-0002",
        "started_at": entry["details"]["started_at"],
    }
    # The right wearer declared: nothing flagged about the agent.
    rid2, _ = upload(platform, client, commune, agent="POR-0002")
    rec2 = _rec(platform, rid2)
    assert rec2.agent_ref == "POR-0002" and not {"agent_not_on_shift", "no_shift"} & set(rec2.flags)
    # A camera checked out to nobody: the agent is only the camera's word, and the recording says so.
    rid3, _ = upload(platform, client, commune, camera=1)
    assert "no_shift" in _rec(platform, rid3).flags
    assert len(_entries(platform, "ingest.agent_not_on_shift")) == 1


# --- 2. the territory: required for a police tenant, use outside it reported -------------------------------------

FAR_AWAY = {
    "type": "Polygon",
    "coordinates": [[[2.30, 48.85], [2.31, 48.85], [2.31, 48.86], [2.30, 48.86], [2.30, 48.85]]],
}  # a block of Paris, nowhere near the walk


def test_a_police_tenant_needs_its_territory_and_the_command_line_says_how(platform, settings, monkeypatch):
    from typer.testing import CliRunner

    from temoin.cli import app as cli_app
    from temoin.identity.service import IdentityError

    with platform.session() as db:
        try:
            service.create_tenant(
                platform, db, slug="sans-terre", name="Sans Terre", profile="fr-police-municipale", authorised_cameras=2
            )
        except IdentityError as exc:
            assert "R241-8 II" in str(exc) and "--territory" in str(exc)
        else:
            raise AssertionError("a municipal police tenant was created without its territory")
        # A fire service has no such rule.
        service.create_tenant(
            platform, db, slug="caserne", name="Caserne", profile="fr-sapeurs-pompiers", authorised_cameras=1
        )
        db.commit()
    env = {"TEMOIN_HOME": str(settings.home), "TEMOIN_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    r = CliRunner().invoke(cli_app, ["admin", "tenant", "create", "ville", "Ville", "--cameras", "2"], env=env)
    assert r.exit_code == 1 and "territory" in r.output
    with platform.session() as db:
        assert db.scalar(select(Tenant).where(Tenant.slug == "ville")) is None


def test_use_outside_the_territory_and_recordings_never_checked_reach_the_annual_report(platform, client, settings):
    from typer.testing import CliRunner

    from temoin.cli import app as cli_app

    commune = make_commune(platform)
    with platform.session() as db:  # a tenant made before the territory was required
        db.scalar(select(Tenant).where(Tenant.slug == commune.slug)).territory = None
        db.commit()
    unchecked, _ = upload(platform, client, commune)
    assert "territory_unknown" in _rec(platform, unchecked).flags
    assert not _rec(platform, unchecked).outside_territory  # unknown, not "inside"
    sign_in(platform, client, commune.users[Role.MAYOR])
    year = utcnow().year
    report = client.get(f"/api/v1/reports/annual/{year}").json()
    assert report["territory"] == {"territory_set": False, "unchecked": 1, "outside": []}
    csv = client.get(f"/api/v1/reports/annual/{year}.csv").text
    assert "Territoire autorisé défini,non" in csv and "territoire inconnu),1" in csv

    # The territory is set (command line, journaled); the walk of the next recording lies outside it.
    shape = settings.home / "far.geojson"
    shape.write_text(__import__("json").dumps(FAR_AWAY))
    env = {"TEMOIN_HOME": str(settings.home), "TEMOIN_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    r = CliRunner().invoke(cli_app, ["admin", "tenant", "territory", commune.slug, str(shape)], env=env)
    assert r.exit_code == 0, r.output
    assert len(_entries(platform, "tenant.territory_set")) == 1
    outside, _ = upload(platform, client, commune)
    assert _rec(platform, outside).outside_territory and "territory_unknown" not in _rec(platform, outside).flags
    sign_in(platform, client, commune.users[Role.MAYOR])
    report = client.get(f"/api/v1/reports/annual/{year}").json()
    assert report["territory"]["territory_set"] is True and report["territory"]["unchecked"] == 1
    assert [o["id"] for o in report["territory"]["outside"]] == [outside]
    csv = client.get(f"/api/v1/reports/annual/{year}.csv").text
    assert "Enregistrements faits hors du territoire autorisé,1" in csv and f"hors territoire,{outside}," in csv
    assert client.get(f"/api/v1/reports/annual/{year}.pdf").status_code == 200


# --- 3. the place is recorded data: a motive, journaled ----------------------------------------------------------

MOTIVE = {"code": "incident_review", "text": "rixe avenue de la Mer"}
WHOLE_COMMUNE = "43.50,4.00;43.60,4.00;43.60,4.15;43.50,4.15"


def test_the_gps_track_and_the_area_search_need_a_motive_and_are_journaled(platform, client):
    commune = make_commune(platform)
    rid, _ = upload(platform, client, commune)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])

    # No motive: no place, and nothing shown.
    r = client.get(f"/api/v1/recordings/{rid}/track")
    assert r.status_code == 403 and "R241-10" in r.json()["detail"] and "motive" in r.json()["detail"]
    assert client.post(f"/api/v1/recordings/{rid}/track", headers=_h(csrf), json={}).status_code == 422
    r = client.get("/api/v1/recordings", params={"area": WHOLE_COMMUNE})
    assert r.status_code == 422 and "R241-10" in r.json()["detail"]
    assert _entries(platform, "recording.place_consulted") == []
    # Training is for anonymised images: it does not open places either.
    r = client.post(
        f"/api/v1/recordings/{rid}/track", headers=_h(csrf), json={"motive": {"code": "training", "text": "formation"}}
    )
    assert r.status_code == 403

    # With a motive: the track, and a consultation entry naming the recording and the motive.
    r = client.post(f"/api/v1/recordings/{rid}/track", headers=_h(csrf), json={"motive": MOTIVE})
    assert r.status_code == 200 and len(r.json()) > 3
    [entry] = _entries(platform, "recording.place_consulted")
    assert entry["action"] == "consultation" and entry["recordings"] == [rid] and entry["motive"] == MOTIVE
    r = client.get(
        "/api/v1/recordings",
        params={"area": WHOLE_COMMUNE, "motive_code": MOTIVE["code"], "motive_text": MOTIVE["text"]},
    )
    assert r.status_code == 200 and [x["id"] for x in r.json()] == [rid]
    [searched] = _entries(platform, "recordings.places_consulted")
    assert searched["recordings"] == [rid] and searched["motive"] == MOTIVE and searched["details"]["found"] == 1

    # The pages: no track drawn without a motive; an area without one is explained; with one, drawn and journaled.
    page = client.get("/recordings")
    assert f'data-recording="{rid}"' in page.text and '"points": []' in page.text and "places-hidden" in page.text
    page = client.get("/recordings", params={"area": WHOLE_COMMUNE})
    assert "donnez le motif" in page.text and f'data-recording="{rid}"' not in page.text
    page = client.get(
        "/recordings", params={"area": WHOLE_COMMUNE, "motive_code": MOTIVE["code"], "motive_text": MOTIVE["text"]}
    )
    assert '"points": [[' in page.text
    assert len(_entries(platform, "recordings.places_consulted")) == 2
    page = client.get(f"/recordings/{rid}")
    assert "track-after-motive" in page.text and '"track": []' in page.text
    # The motive starts on an empty choice (none pre-selected), and the server refuses a form sent without one.
    assert '<option value="" selected>— choisir un motif —</option>' in page.text
    assert " selected>" not in page.text.split("— choisir un motif —</option>")[1].split("</select>")[0]
    consulted = len(_entries(platform, "recording.consulted"))
    page = client.post(
        f"/recordings/{rid}/consult", data={"csrf_token": csrf, "motive_code": "", "motive_text": MOTIVE["text"]}
    )
    assert page.status_code == 422 and '<option value="" selected>— choisir un motif —</option>' in page.text
    assert '"track": []' in page.text and len(_entries(platform, "recording.consulted")) == consulted
    page = client.post(
        f"/recordings/{rid}/consult",
        data={"csrf_token": csrf, "motive_code": MOTIVE["code"], "motive_text": MOTIVE["text"]},
    )
    assert page.status_code == 200 and '"track": [[' in page.text
    # The agent's own recording: the agent's motives (R241-11) open its place too, not another's.
    sign_in(platform, client, commune.users[Role.AGENT])
    r = client.post(
        f"/api/v1/recordings/{rid}/track",
        json={"motive": MOTIVE},
        headers=_h(sign_in(platform, client, commune.users[Role.AGENT])),
    )
    assert r.status_code == 403
    r = client.post(
        f"/api/v1/recordings/{rid}/track",
        json={"motive": {"code": "report_facts", "text": "rapport"}},
        headers=_h(sign_in(platform, client, commune.users[Role.AGENT])),
    )
    assert r.status_code == 200


# --- 5. limitation freezes, rectification is attached -------------------------------------------------------------


def _request(client, csrf: str, kind: str) -> int:
    r = client.post(
        "/api/v1/rights/requests",
        headers=_h(csrf),
        json={"kind": kind, "person_description": "veste rouge, devant la mairie", "contact": "dupont@example.org"},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _extract(client, csrf: str, rid: str):
    return client.post(
        "/api/v1/extractions",
        headers=_h(csrf),
        json={
            "recording_ids": [rid],
            "recipient_name": "OPJ Claire Martin",
            "recipient_kind": "judicial_police",
            "procedure_type": "judicial",
            "reference": "PV 2026/004512",
        },
    )


def test_a_limitation_freezes_the_recording_until_a_person_lifts_it(platform, client):
    from temoin.vault.retention import sweep

    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, started_at=utcnow() - timedelta(days=20), duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    req = _request(client, csrf, "limitation")
    wrong = _request(client, csrf, "access")
    r = client.post(f"/api/v1/rights/requests/{wrong}/limitations", headers=_h(csrf), json={"recording_ids": [rid]})
    assert r.status_code == 409 and "limitation request" in r.json()["detail"]
    r = client.post(f"/api/v1/rights/requests/{req}/limitations", headers=_h(csrf), json={"recording_ids": [rid]})
    assert r.status_code == 201 and r.json()["limited"] == [rid]
    [placed] = _entries(platform, "recording.limited")
    assert placed["recordings"] == [rid] and placed["details"]["request_id"] == req

    # Frozen: no consultation (refusal journaled), no extraction, no place, no deletion by retention or erasure.
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(f"/api/v1/recordings/{rid}/consultations", headers=_h(csrf), json={"motive": MOTIVE})
    assert r.status_code == 403 and "limitation" in r.json()["detail"]
    assert _entries(platform, "consultation.refused")[-1]["details"]["reason"] == "limited"
    assert _entries(platform, "recording.consulted") == []
    r = _extract(client, csrf, rid)
    assert r.status_code == 409 and "limitation" in r.json()["detail"]
    r = client.post(f"/api/v1/recordings/{rid}/track", headers=_h(csrf), json={"motive": MOTIVE})
    assert r.status_code == 403
    assert client.get(f"/api/v1/recordings/{rid}").json()["limited"] is True
    assert "recording_limited" not in client.get(f"/recordings/{rid}").text  # the key is translated
    assert 'id="limited"' in client.get(f"/recordings/{rid}").text
    later = utcnow() + timedelta(days=60)
    with platform.session() as db:
        assert sweep(platform, db, now=later).deleted == []
        assert db.get(Recording, rid).state == RecordingState.STORED
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    erasure = _request(client, csrf, "erasure")
    r = client.post(f"/api/v1/rights/requests/{erasure}/erasure", headers=_h(csrf), json={"recording_ids": [rid]})
    assert r.status_code == 409 and "limitation" in r.json()["detail"]

    # Only a person lifts it, saying why; then the rules apply again.
    csrf = sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    r = client.post(
        f"/api/v1/rights/requests/{req}/limitations/lift",
        headers=_h(csrf),
        json={"recording_id": rid, "reason": "contestation tranchée"},
    )
    assert r.status_code == 403  # not their register
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    r = client.post(
        f"/api/v1/rights/requests/{req}/limitations/lift",
        headers=_h(csrf),
        json={"recording_id": rid, "reason": "contestation tranchée"},
    )
    assert r.status_code == 200, r.text
    [lifted] = _entries(platform, "recording.limitation_lifted")
    assert lifted["details"]["reason"] == "contestation tranchée" and lifted["actor"]["id"] == commune.users[Role.DPO]
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    assert (
        client.post(f"/api/v1/recordings/{rid}/consultations", headers=_h(csrf), json={"motive": MOTIVE}).status_code
        == 201
    )
    with platform.session() as db:
        assert sweep(platform, db, now=later).deleted == [rid]


def test_a_rectification_is_attached_shown_and_carried_in_the_package(platform, client):
    import io
    import json
    import zipfile

    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    req = _request(client, csrf, "rectification")
    text = "La personne filmée n'est pas l'auteur des faits : elle était témoin (attestation du 3 mars)."
    r = client.post(
        f"/api/v1/rights/requests/{req}/rectifications", headers=_h(csrf), json={"recording_ids": [rid], "text": text}
    )
    assert r.status_code == 201, r.text
    [entry] = _entries(platform, "recording.rectified")
    assert entry["recordings"] == [rid] and entry["details"]["request_id"] == req
    assert "témoin" not in json.dumps(entry)  # the note may name the person: the journal keeps its request's id
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    assert client.get(f"/api/v1/recordings/{rid}").json()["rectifications"][0]["text"] == text
    assert "elle était témoin" in client.get(f"/recordings/{rid}").text
    r = _extract(client, csrf, rid)
    assert r.status_code == 201, r.text
    package = client.get(r.json()["download_url"])
    assert package.status_code == 200
    with zipfile.ZipFile(io.BytesIO(package.content)) as zf:
        manifest = json.loads(zf.read(f"temoin-extraction-{r.json()['id']}/manifest.json"))
    [row] = manifest["recordings"]
    assert row["rectifications"][0]["text"] == text and row["rectifications"][0]["rights_request"] == req


# --- 4. check-in warns of footage still on the camera ----------------------------------------------------------


def test_check_in_warns_and_journals_footage_not_offloaded(platform, client):
    from temoin.camera.offload import DeviceAuth
    from temoin.camera.platform_link import PlatformLink
    from temoin.demo.samples import sample_recording

    commune = make_commune(platform, cameras=2)
    device_id, key = commune.cameras[0]
    _check_out(platform, client, commune, commune.users[Role.AGENT])
    # The camera tells its pending count in its signed settings poll (as `temoin camera run` does).
    link = PlatformLink(str(client.base_url), device_id, key, http=client)
    link.pending = lambda: 2
    assert link.fetch().agent_id == agent_number(commune)
    # And one upload was started, not finished (the agent undocked mid-transfer).
    signed, _ = sample_recording(
        key, camera_id=device_id, agent_id=agent_number(commune), started_at=utcnow(), duration_s=1, segment_s=1
    )
    r = client.post("/api/v1/ingest/recordings", content=signed.model_dump_json(), auth=DeviceAuth(device_id, key))
    assert r.status_code == 201, r.text
    client.auth = None

    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(f"/api/v1/shifts/checkin/{device_id}", headers=_h(csrf))
    assert r.status_code == 200 and r.json()["checked_in_at"]
    warnings = r.json()["warnings"]
    assert any("2 recording(s) not yet offloaded" in w for w in warnings)
    assert any(signed.manifest.recording_id in w for w in warnings)
    [entry] = _entries(platform, "camera.footage_not_offloaded")
    assert entry["action"] == "security" and entry["recordings"] == [signed.manifest.recording_id]
    assert entry["details"]["reported_pending"] == 2

    # A camera that came back empty: checked in without a warning.
    other = commune.cameras[1][0]
    with platform.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == commune.slug))
        service.create_user(
            platform,
            db,
            tenant,
            username="agent-c",
            display_name="Agent C",
            role=Role.AGENT,
            password="correct horse battery staple",
            agent_number="POR-0003",
        )
        db.commit()
    _check_out(platform, client, commune, "agent-c", camera=1)
    link = PlatformLink(str(client.base_url), other, commune.cameras[1][1], http=client)
    link.pending = lambda: 0
    link.fetch()
    client.auth = None
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(f"/api/v1/shifts/checkin/{other}", headers=_h(csrf))
    assert r.status_code == 200 and r.json()["warnings"] == []
    assert len(_entries(platform, "camera.footage_not_offloaded")) == 1


# --- 6. the server's own loop deletes what is due and seals the journal -----------------------------------------


def test_the_running_server_deletes_a_due_recording_and_seals_the_journal_by_itself(settings):
    import time

    import httpx

    from temoin.journal.models import JournalCheckpoint
    from temoin.vault.models import DeletionCertificate
    from temoin.web.app import create_app
    from tests.conftest import serve_in_thread, stop_served

    p = Platform.open(settings.model_copy(update={"retention_interval_s": 1}), init=True)
    url, server, thread, sock = serve_in_thread(create_app(p, scheduler=True))
    try:
        commune = make_commune(p, cameras=1)
        with httpx.Client(base_url=url, timeout=30) as http:
            rid, _ = upload(p, http, commune, duration_s=1, segment_s=1)
            sign_in(p, http, commune.users[Role.CHIEF])
            assert http.get(f"/api/v1/recordings/{rid}").status_code == 200
            # Its month goes by (nobody calls the sweep: the server's own loop must).
            with p.session() as db:
                db.get(Recording, rid).retention_until = utcnow() - timedelta(minutes=1)
                db.commit()
            deadline = time.monotonic() + 30
            while http.get(f"/api/v1/recordings/{rid}").status_code != 404:
                assert time.monotonic() < deadline, "the server's loop did not delete the due recording"
                time.sleep(0.2)
        with p.session() as db:
            assert db.get(Recording, rid).state == RecordingState.DELETED
            assert db.scalar(select(DeletionCertificate).where(DeletionCertificate.recording_id == rid)) is not None
            erased = db.scalar(select(JournalEntry).where(JournalEntry.event == "recording.deleted.retention"))
            assert parse_body(erased.body)["actor"]["kind"] == "system"
            # ...and the journal head, deletion included, is sealed with the platform key by the same loop.
            deadline = time.monotonic() + 30
            while not db.scalar(
                select(JournalCheckpoint).where(
                    JournalCheckpoint.chain == commune.slug,
                    JournalCheckpoint.kind == "seal",
                    JournalCheckpoint.seq >= erased.seq,
                )
            ):
                assert time.monotonic() < deadline, "the server's loop did not seal the journal"
                time.sleep(0.2)
                db.expire_all()
    finally:
        stop_served(server, thread, sock, 10)
        p.close()
