"""Citizens' rights: the register and its deadlines, restriction with the CNIL's indirect route, candidate
recordings by time, place and agent, early erasure with certificates (refused under a hold), tenants apart,
and the access copy from face tracks to the requester's download."""

from __future__ import annotations

import time
from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from temoin.coordination import locks_for
from temoin.evidence.canonical import b64d
from temoin.evidence.signing import verify
from temoin.identity.models import Tenant
from temoin.law.access import Role
from temoin.rights import jobs as rights_jobs, register
from temoin.rights.copy_jobs import copy_lock
from temoin.rights.models import CopyState, RedactedCopy
from temoin.rights.register import CNIL_INDIRECT_ROUTE, deadline_for
from temoin.vault.models import DeletionCertificate, Recording
from tests.artefact_helpers import artefact_raw
from tests.extraction_helpers import _wait
from tests.helpers import JUSTIFIED, approve_erasure, make_commune, sign_in, upload
from tests.rights_helpers import AVENUE, _create, _entries, _h, _scene


def test_deadline_follows_the_tenant_setting_and_late_requests_are_flagged(platform, client):
    commune = make_commune(platform, cameras=0)
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    fresh = _create(client, csrf, received_on="2026-01-31")
    assert fresh["deadline"] == "2026-03-31"  # two months by default
    with platform.session() as db:
        assert deadline_for(platform.tenant(db, commune.slug), date(2025, 12, 31)) == date(2026, 2, 28)
    today = register.today_paris()
    recent = _create(client, csrf, received_on=today.isoformat())
    old = _create(client, csrf, received_on=(today - timedelta(days=70)).isoformat())
    assert recent["overdue"] is False and old["overdue"] is True
    overdue = client.get("/api/v1/rights/requests", params={"overdue": True}).json()
    assert {r["id"] for r in overdue} >= {old["id"]} and recent["id"] not in {r["id"] for r in overdue}
    # A request answered is no longer overdue, even past its deadline.
    r = client.post(
        f"/api/v1/rights/requests/{old['id']}/status",
        headers=_h(csrf),
        json={"status": "answered", "decision": "Aucun enregistrement vous concernant n'est conservé."},
    )
    assert r.status_code == 200 and r.json()["overdue"] is False
    assert _entries(platform, "rights.request.answered")[0]["details"]["on_time"] is False
    # A commune that answers within one month.
    with platform.session() as db:
        tenant = platform.tenant(db, commune.slug)
        tenant.settings = {**(tenant.settings or {}), "rights_deadline_months": 1}
        db.commit()
    assert _create(client, csrf, received_on="2026-01-31")["deadline"] == "2026-02-28"
    # Bad input is refused with a reason, never a crash.
    r = client.post(
        "/api/v1/rights/requests",
        headers=_h(csrf),
        json={
            "kind": "access",
            "person_description": "x y z",
            "contact": "a@b.c",
            "received_on": (today + timedelta(days=3)).isoformat(),
        },
    )
    assert r.status_code == 422 and "future" in r.json()["detail"]
    # The person's description is personal data: the journal names the request, not the person.
    created = _entries(platform, "rights.request.created")
    assert len(created) == 4 and all("veste rouge" not in str(e) and "dupont" not in str(e) for e in created)


def test_restriction_answers_with_the_cnil_indirect_route(platform, client):
    commune = make_commune(platform, cameras=0)
    csrf = sign_in(platform, client, commune.users[Role.MAYOR])
    req = _create(client, csrf)
    url = f"/api/v1/rights/requests/{req['id']}/status"
    r = client.post(url, headers=_h(csrf), json={"status": "refused", "decision": "Refus."})
    assert r.status_code == 409 and "reason" in r.json()["detail"]  # a refusal says why
    assert client.post(url, headers=_h(csrf), json={"status": "in_progress"}).json()["status"] == "in_progress"
    r = client.post(
        url,
        headers=_h(csrf),
        json={"status": "restricted", "reason": "enquête judiciaire en cours", "procedure_reference": "PV 2026/0042"},
    )
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["status"] == "restricted" and out["decision"] == CNIL_INDIRECT_ROUTE
    assert "CNIL" in out["decision"] and "indirect" in out["decision"]
    assert out["procedure_reference"] == "PV 2026/0042" and out["closed_at"]
    # Closed: it cannot be answered again; the procedure over, the request goes back in progress.
    r = client.post(url, headers=_h(csrf), json={"status": "answered", "decision": "x"})
    assert r.status_code == 409 and "in_progress" in r.json()["detail"]
    assert client.post(url, headers=_h(csrf), json={"status": "in_progress"}).json()["status"] == "in_progress"
    told = _entries(platform, "rights.request.restricted")
    assert told[0]["action"] == "communication" and told[0]["recipients"] == [
        f"personne concernée (demande de droits n° {req['id']})"
    ]
    # The page shows the register with the request and its deadline.
    page = client.get("/rights")
    assert page.status_code == 200 and f'data-request="{req["id"]}"' in page.text
    assert "CNIL" in client.get(f"/rights/{req['id']}").text


def test_candidates_by_time_place_and_agent_and_the_restriction_proposed_under_a_judicial_hold(platform, client):
    commune, t0, avenue, quay, _later = _scene(platform, client)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    window = {
        "facts_start": (t0 - timedelta(minutes=10)).isoformat(),
        "facts_end": (t0 + timedelta(minutes=10)).isoformat(),
    }
    req = _create(client, csrf, **window)
    url = f"/api/v1/rights/requests/{req['id']}/candidates"
    found = client.get(url).json()
    assert [c["recording_id"] for c in found["candidates"]] == [avenue, quay]  # by time; the later one is out
    assert found["candidates"][0]["overlap_s"] == 2.0 and found["candidates"][0]["distance_m"] is None
    near = client.get(url, params={"lat": AVENUE[0], "lon": AVENUE[1], "radius_m": 300}).json()["candidates"]
    assert [c["recording_id"] for c in near] == [avenue] and near[0]["distance_m"] < 10
    wide = client.get(url, params={"lat": AVENUE[0], "lon": AVENUE[1], "radius_m": 5000}).json()["candidates"]
    assert [c["recording_id"] for c in wide] == [avenue, quay] and 1000 < wide[1]["distance_m"] < 2000
    assert [c["recording_id"] for c in client.get(url, params={"agent": "POR-0002"}).json()["candidates"]] == [quay]
    assert client.get(url).json()["propose_restriction"] is False
    r = client.post(
        f"/api/v1/recordings/{quay}/holds",
        headers=_h(csrf),
        json={"procedure": "judicial", "reference": "PV 2026/0042"},
    )
    assert r.status_code == 201
    found = client.get(url).json()
    assert found["propose_restriction"] is True and found["judicial_holds"] == [quay]
    assert "propose-restriction" in client.get(f"/rights/{req['id']}").text
    # Without a time for the facts, the register says what is missing.
    bare = _create(client, csrf)
    r = client.get(f"/api/v1/rights/requests/{bare['id']}/candidates")
    assert r.status_code == 422 and "time" in r.json()["detail"]


def test_erasure_deletes_with_a_certificate_and_is_refused_under_a_hold(platform, client):
    commune, t0, avenue, quay, _later = _scene(platform, client)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    access = _create(client, csrf)
    r = client.post(
        f"/api/v1/rights/requests/{access['id']}/erasure", headers=_h(csrf), json={"recording_ids": [avenue]}
    )
    assert r.status_code == 409 and "erasure request" in r.json()["detail"]
    window = {
        "facts_start": (t0 - timedelta(minutes=10)).isoformat(),
        "facts_end": (t0 + timedelta(minutes=10)).isoformat(),
    }
    req = _create(client, csrf, kind="erasure", **window)
    url = f"/api/v1/rights/requests/{req['id']}/erasure"
    assert (
        client.post(
            f"/api/v1/recordings/{quay}/holds",
            headers=_h(csrf),
            json={"procedure": "administrative", "reference": "ARR-2026-7"},
        ).status_code
        == 201
    )
    r = client.post(url, headers=_h(csrf), json={"recording_ids": [avenue, quay]})
    assert r.status_code == 409 and quay in r.json()["detail"] and "Nothing was erased" in r.json()["detail"]
    with platform.session() as db:
        assert db.get(Recording, avenue).state == "stored" and db.get(Recording, quay).state == "stored"
    r = client.post(url, headers=_h(csrf), json={"recording_ids": [avenue]})
    assert r.status_code == 201, r.text
    proposal = r.json()
    assert proposal["state"] == "pending" and proposal["recording_ids"] == [avenue]
    with platform.session() as db:  # proposed, not erased
        assert db.get(Recording, avenue).state == "stored"
    r = approve_erasure(platform, client, commune, proposal["id"])
    assert r.status_code == 200, r.text
    erased = r.json()["erased"]
    with platform.session() as db:
        rec = db.get(Recording, avenue)
        cert = db.get(DeletionCertificate, erased[0]["certificate_id"])
        tenant = db.get(Tenant, rec.tenant_id)
        assert rec.state == "deleted" and rec.wrapped_key is None and rec.state_reason == "rights_erasure"
        assert cert.recording_id == avenue and '"reason":"rights_erasure"' in cert.body
        assert f'"rights_request":{req["id"]}' in cert.body
        assert verify(platform.keyring.public_key, b64d(cert.signature), cert.body.encode())
    assert not (platform.settings.vault_dir / "blobs" / tenant.slug / avenue).exists()
    assert erased == [{"recording_id": avenue, "certificate_id": erased[0]["certificate_id"]}]
    deleted = _entries(platform, "recording.deleted.rights_erasure")
    assert len(deleted) == 1 and deleted[0]["recordings"] == [avenue]
    assert deleted[0]["actor"]["id"] == commune.users[Role.MAYOR]
    assert _entries(platform, "rights.erasure.refused")[0]["recordings"] == [quay]
    (approved,) = _entries(platform, "rights.erasure.approved")
    assert approved["details"]["proposed_by"] == commune.users[Role.CHIEF]
    # Erasing it again: it is gone, said plainly.
    assert (
        client.post(
            url, headers=_h(sign_in(platform, client, commune.users[Role.CHIEF])), json={"recording_ids": [avenue]}
        ).status_code
        == 404
    )


def test_a_dpo_alone_cannot_erase_and_only_candidates_or_justified_recordings(platform, client):
    """The attack: a DPO files an erasure "request" and erases any recording, alone. Now the recordings must be
    among the request's candidates or justified one by one, and a second person approves."""
    commune, t0, avenue, _quay, later = _scene(platform, client)
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    window = {
        "facts_start": (t0 - timedelta(minutes=10)).isoformat(),
        "facts_end": (t0 + timedelta(minutes=10)).isoformat(),
    }
    req = _create(client, csrf, kind="erasure", **window)
    url = f"/api/v1/rights/requests/{req['id']}/erasure"
    # `later` (3 h after the facts) is no candidate: refused without a justification, or with a token one.
    for body in ({"recording_ids": [later]}, {"recording_ids": [later], "justifications": {later: "because"}}):
        r = client.post(url, headers=_h(csrf), json=body)
        assert r.status_code == 409 and later in r.json()["detail"] and "justify" in r.json()["detail"], r.text
    r = client.post(
        url, headers=_h(csrf), json={"recording_ids": [avenue, later], "justifications": {later: JUSTIFIED}}
    )
    assert r.status_code == 201, r.text
    proposal = r.json()
    assert proposal["justified"] == [later]
    # The proposer cannot approve it.
    r = client.post(
        f"/api/v1/rights/erasure-proposals/{proposal['id']}/decision", headers=_h(csrf), json={"approve": True}
    )
    assert r.status_code == 409 and "four eyes" in r.json()["detail"]
    with platform.session() as db:
        assert db.get(Recording, avenue).state == "stored" and db.get(Recording, later).state == "stored"
    # A second person may reject it, with a reason; nothing is erased.
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    decide = f"/api/v1/rights/erasure-proposals/{proposal['id']}/decision"
    assert client.post(decide, headers=_h(csrf), json={"approve": False}).status_code == 409  # the reason
    r = client.post(decide, headers=_h(csrf), json={"approve": False, "reason": "the quay recording is the one"})
    assert r.status_code == 200 and r.json()["erased"] == []
    assert client.post(decide, headers=_h(csrf), json={"approve": True}).status_code == 409  # decided already
    with platform.session() as db:
        assert db.get(Recording, avenue).state == "stored" and db.get(Recording, later).state == "stored"
    (proposed,) = _entries(platform, "rights.erasure.proposed")
    assert proposed["details"]["justified"] == [later] and JUSTIFIED not in str(proposed)
    (rejected,) = _entries(platform, "rights.erasure.rejected")
    assert rejected["actor"]["id"] == commune.users[Role.CHIEF]
    assert [x["state"] for x in client.get(url).json()] == ["rejected"]
    # Through the page: proposed by the DPO, approved by the mayor.
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    r = client.post(
        f"/rights/{req['id']}/erasure", data={"csrf_token": csrf, "recording_id": avenue}, follow_redirects=False
    )
    assert r.status_code == 303, r.text
    pending = [x for x in client.get(url).json() if x["state"] == "pending"]
    assert len(pending) == 1
    page = client.get(f"/rights/{req['id']}").text
    assert f"/rights/erasure-proposals/{pending[0]['id']}/decision" not in page  # not offered to its author
    csrf = sign_in(platform, client, commune.users[Role.MAYOR])
    assert f"/rights/erasure-proposals/{pending[0]['id']}/decision" in client.get(f"/rights/{req['id']}").text
    # The page states what is erased, irreversibly, and asks for EFFACER typed: a click alone erases nothing.
    page = client.get(f"/rights/{req['id']}").text
    assert "irréversible" in page and f"1 enregistrement(s) : {avenue}," in page and 'pattern="EFFACER"' in page
    for typed in ("", "effacer ?"):
        r = client.post(
            f"/rights/erasure-proposals/{pending[0]['id']}/decision",
            data={"csrf_token": csrf, "decision": "approve", "confirm": typed},
            follow_redirects=False,
        )
        assert r.status_code == 422 and "tapez EFFACER pour confirmer" in r.text
    with platform.session() as db:
        assert db.get(Recording, avenue).state == "stored"
    r = client.post(
        f"/rights/erasure-proposals/{pending[0]['id']}/decision",
        data={"csrf_token": csrf, "decision": "approve", "confirm": "EFFACER"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    with platform.session() as db:
        assert db.get(Recording, avenue).state == "deleted" and db.get(Recording, later).state == "stored"


def test_an_erasure_acts_on_the_candidates_the_request_search_lists_for_one_time_of_the_facts(platform, client):
    """One time of the facts alone is widened by an hour on its open side, the same for the candidate search and
    the erasure: what the search lists needs no justification, what it does not list needs one."""
    commune, t0, avenue, quay, later = _scene(platform, client)
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    cases = [
        ({"facts_start": (t0 + timedelta(hours=2, minutes=30)).isoformat()}, [later], avenue),
        ({"facts_end": (t0 + timedelta(minutes=10)).isoformat()}, [avenue, quay], later),
    ]
    for facts, listed, unlisted in cases:
        req = _create(client, csrf, kind="erasure", **facts)
        found = client.get(f"/api/v1/rights/requests/{req['id']}/candidates").json()["candidates"]
        assert [c["recording_id"] for c in found] == listed
        url = f"/api/v1/rights/requests/{req['id']}/erasure"
        r = client.post(url, headers=_h(csrf), json={"recording_ids": [unlisted]})
        assert r.status_code == 409 and unlisted in r.json()["detail"] and "justify" in r.json()["detail"]
        r = client.post(url, headers=_h(csrf), json={"recording_ids": listed})
        assert r.status_code == 201 and r.json()["justified"] == [], r.text


def test_another_communes_register_and_recordings_are_out_of_reach(platform, client):
    a = make_commune(platform, "aval", cameras=1)
    b = make_commune(platform, "brume", cameras=1)
    rid_b, _ = upload(platform, client, b, duration_s=1, segment_s=1)
    csrf_b = sign_in(platform, client, b.users[Role.DPO])
    req_b = _create(client, csrf_b)
    csrf = sign_in(platform, client, a.users[Role.CHIEF])
    assert client.get("/api/v1/rights/requests").json() == []
    assert client.get(f"/api/v1/rights/requests/{req_b['id']}").status_code == 404
    assert (
        client.post(
            f"/api/v1/rights/requests/{req_b['id']}/status", headers=_h(csrf), json={"status": "in_progress"}
        ).status_code
        == 404
    )
    assert client.get(f"/rights/{req_b['id']}").status_code == 404
    mine = _create(client, csrf, kind="erasure")
    r = client.post(
        f"/api/v1/rights/requests/{mine['id']}/erasure",
        headers=_h(csrf),
        json={"recording_ids": [rid_b], "justifications": {rid_b: JUSTIFIED}},
    )
    assert r.status_code == 404
    with platform.session() as db:
        assert db.get(Recording, rid_b).state == "stored"
    attempts = [e for e in _entries(platform, "access.cross_tenant") if e["chain"] == "aval"]
    assert len(attempts) == 4  # the three register look-ups and the erasure attempt


def test_a_role_that_redacts_but_does_not_read_the_register_sees_no_request(platform, client):
    commune = make_commune(platform, cameras=0)
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    req = _create(client, csrf, person_description="manteau vert, rue du Port", contact="secret@example.org")
    # The designated agent may prepare copies, not read the register: a failed start shows no request.
    csrf = sign_in(platform, client, commune.users[Role.DESIGNATED_AGENT])
    r = client.post(
        f"/rights/{req['id']}/copies", data={"recording_id": "rec-unknown", "csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 404 and "rec-unknown" in r.text
    assert "manteau vert" not in r.text and "secret@example.org" not in r.text
    assert client.get(f"/rights/{req['id']}", follow_redirects=False).status_code == 403


def test_without_the_redaction_engine_copies_are_refused_with_a_clear_message(platform, client, monkeypatch):
    from temoin.rights import copy_jobs

    def missing():
        raise copy_jobs.EngineMissing("the redaction engine (temoin.rights.redaction) is not available")

    monkeypatch.setattr(copy_jobs, "engine", missing)
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    req = _create(client, csrf)
    r = client.post(f"/api/v1/rights/requests/{req['id']}/copies", headers=_h(csrf), json={"recording_id": rid})
    assert r.status_code == 503 and "redaction engine" in r.json()["detail"]
    api_retry = r.headers.get("Retry-After")
    assert client.get(f"/api/v1/rights/requests/{req['id']}/copies").json() == []
    # The page answers as the API does: unavailable for now, not a conflict with the request.
    r = client.post(
        f"/rights/{req['id']}/copies", data={"recording_id": rid, "csrf_token": csrf}, follow_redirects=False
    )
    assert r.status_code == 503 and "redaction engine" in r.text
    assert r.headers["Retry-After"] == api_retry == "30"  # as the API's answer: the page may be asked again later
    assert client.get(f"/api/v1/rights/requests/{req['id']}/copies").json() == []


@pytest.mark.slow
def test_access_copy_from_face_tracks_to_the_requesters_download(platform, client):
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=4, segment_s=2)  # two segments, joined for the copy
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    req = _create(client, csrf)
    r = client.post(f"/api/v1/rights/requests/{req['id']}/copies", headers=_h(csrf), json={"recording_id": rid})
    assert r.status_code == 202, r.text
    copy = _wait(client, r.json()["id"])
    assert copy["state"] == "tracks_ready", copy
    faces = client.get(f"/api/v1/rights/copies/{copy['id']}/faces").json()
    assert all(f["thumbnail"] is None or f["thumbnail"].startswith("data:image/jpeg;base64,") for f in faces)
    keep = [faces[0]["id"]] if faces else []
    r = client.post(
        f"/api/v1/rights/copies/{copy['id']}/redact",
        headers=_h(csrf),
        json={
            "keep_tracks": keep,
            "add_regions": [{"start_frame": 0, "end_frame": 10, "x": 10, "y": 10, "w": 40, "h": 40}],
        },
    )
    assert r.status_code == 202, r.text
    copy = _wait(client, copy["id"])
    assert copy["state"] == "to_review", copy
    # Nothing leaves before a person reviewed it.
    assert client.get(f"/api/v1/rights/copies/{copy['id']}/download").status_code == 409
    video = client.get(f"/api/v1/rights/copies/{copy['id']}/video")
    assert video.status_code == 200 and len(video.content) == copy["size_bytes"]
    assert video.headers["accept-ranges"] == "bytes"
    # A player seeks with byte ranges; only the viewing that reads from byte 0 is journaled.
    viewed = len(_entries(platform, "rights.copy.viewed"))
    part = client.get(f"/api/v1/rights/copies/{copy['id']}/video", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == video.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{copy['size_bytes']}"
    tail = client.get(f"/api/v1/rights/copies/{copy['id']}/video", headers={"Range": "bytes=-50"})
    assert tail.status_code == 206 and tail.content == video.content[-50:]
    assert len(_entries(platform, "rights.copy.viewed")) == viewed
    beyond = client.get(f"/api/v1/rights/copies/{copy['id']}/video", headers={"Range": "bytes=999999999-"})
    assert beyond.status_code == 416 and beyond.headers["content-range"] == f"bytes */{copy['size_bytes']}"
    start = client.get(f"/api/v1/rights/copies/{copy['id']}/video", headers={"Range": "bytes=0-"})
    assert start.status_code == 206 and start.content == video.content
    assert len(_entries(platform, "rights.copy.viewed")) == viewed + 1
    r = client.post(f"/api/v1/rights/copies/{copy['id']}/review", headers=_h(csrf), json={"approve": False})
    assert r.status_code == 409  # a rejection says why
    # Four eyes: the chief who produced the copy cannot approve it; a designated agent (who may redact) does.
    r = client.post(f"/api/v1/rights/copies/{copy['id']}/review", headers=_h(csrf), json={"approve": True})
    assert r.status_code == 409 and "four eyes" in r.json()["detail"]
    csrf = sign_in(platform, client, commune.users[Role.DESIGNATED_AGENT])
    r = client.post(f"/api/v1/rights/copies/{copy['id']}/review", headers=_h(csrf), json={"approve": True})
    assert r.status_code == 200 and r.json()["state"] == "approved"
    (approved,) = _entries(platform, "rights.copy.approved")
    assert approved["actor"]["id"] == commune.users[Role.DESIGNATED_AGENT]
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    got = client.get(f"/api/v1/rights/copies/{copy['id']}/download")
    assert got.status_code == 200 and got.content == video.content
    import hashlib

    assert hashlib.sha256(got.content).hexdigest() == copy["sha256"]
    import io

    import av

    with av.open(io.BytesIO(got.content)) as container:
        assert container.streams.video and container.duration
    # The copy is sealed at rest; no clear media is left behind.
    stored = artefact_raw(platform.store, f"rights/{commune.slug}/copy-{copy['id']}")
    assert len(stored) == 3 and all(got.content[:64] not in raw for raw in stored)  # in the blob store, sealed
    assert not (platform.settings.home / "rights").exists()
    assert not any((platform.settings.home / "tmp").iterdir())
    produced = _entries(platform, "rights.copy.produced")
    assert produced[0]["details"]["detections"] == 0  # the reviewed tracks were applied, not detected again
    delivered = _entries(platform, "rights.copy.delivered")
    assert delivered[0]["action"] == "communication" and delivered[0]["recordings"] == [rid]
    assert delivered[0]["recipients"] == [f"personne concernée (demande de droits n° {req['id']})"]
    events = {
        e["event"] for e in _entries(platform, "rights.copy.started") + _entries(platform, "rights.copy.faces_viewed")
    }
    assert events == {"rights.copy.started", "rights.copy.faces_viewed"}


def test_an_erasure_cut_before_its_files_are_removed_leaves_them_to_the_next_pass(platform, client, monkeypatch):
    """The keys are destroyed with the certificate; the folders are removed after the commit. A failure (or a
    crash) in between leaves them recorded as pending, and the next periodic pass removes them (not only the daily
    store audit); the erasure itself is done and said so."""
    from sqlalchemy import select

    from temoin.vault.models import PendingBlobDeletion
    from temoin.vault.retention import sweep

    commune, t0, avenue, _quay, _later = _scene(platform, client)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    window = {
        "facts_start": (t0 - timedelta(minutes=10)).isoformat(),
        "facts_end": (t0 + timedelta(minutes=10)).isoformat(),
    }
    req = _create(client, csrf, kind="erasure", **window)
    r = client.post(f"/api/v1/rights/requests/{req['id']}/erasure", headers=_h(csrf), json={"recording_ids": [avenue]})
    assert r.status_code == 201, r.text

    def failing(prefixes: list[str]) -> int:
        raise OSError(5, "Input/output error")  # the disk fails, or the process dies, after the commit

    monkeypatch.setattr(platform.store, "delete_prefixes", failing)
    assert approve_erasure(platform, client, commune, r.json()["id"]).status_code == 200  # the erasure is done
    monkeypatch.undo()
    folder = platform.settings.vault_dir / "blobs" / commune.slug / avenue
    with platform.session() as db:
        assert db.get(Recording, avenue).state == "deleted"  # the keys went with the certificate
        assert db.scalars(select(PendingBlobDeletion.prefix)).all() == [f"{commune.slug}/{avenue}"]
    assert folder.exists()
    with platform.session() as db:
        sweep(platform, db, orphans=False)
        assert db.scalars(select(PendingBlobDeletion.prefix)).all() == []
    assert not folder.exists()


def test_a_second_attempt_at_a_copy_step_waits_for_the_first_then_finds_it_done(platform, client):
    """Two attempts of one step (a worker taken for dead while it was only slow) would decrypt into the same private
    folder and stage the same sealed files: the second waits for the first, on every node, then does nothing."""
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=2, segment_s=2)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    req = _create(client, csrf)
    with platform.session() as db:
        copy_id = (db.scalar(select(func.max(RedactedCopy.id))) or 0) + 1
    locks = locks_for(platform.engine)
    locks.acquire(copy_lock(copy_id))  # the first attempt, running
    try:
        r = client.post(f"/api/v1/rights/requests/{req['id']}/copies", headers=_h(csrf), json={"recording_id": rid})
        assert r.status_code == 202 and r.json()["id"] == copy_id, r.text
        deadline = time.monotonic() + 30
        while True:  # the second attempt has started, and waits
            with platform.session() as db:
                job = rights_jobs.latest(db, copy_id)
                if job is not None and job.state == "running":
                    break
            assert time.monotonic() < deadline, "the copy's job never started"
            time.sleep(0.1)
        time.sleep(2)
        copy = client.get(f"/api/v1/rights/copies/{copy_id}").json()
        assert (copy["state"], copy["progress"]) == ("detecting", 0), copy
        assert not list((platform.settings.home / "tmp").glob(f"rights-copy-{copy_id}-*")), "nothing decrypted"
        with platform.session() as db:  # the first attempt finds no face and ends its step
            row = db.get_one(RedactedCopy, copy_id)
            row.state, row.progress, row.tracks = CopyState.TRACKS_READY.value, 1.0, []
            db.commit()
    finally:
        locks.release(copy_lock(copy_id))
    deadline = time.monotonic() + 30
    while True:
        with platform.session() as db:
            job = rights_jobs.latest(db, copy_id)
            assert job is not None
            if job.state != "running":
                break
        assert time.monotonic() < deadline, "the waiting attempt never ended"
        time.sleep(0.1)
    assert job.state == "done", job.error
    # It did nothing of its own: no detection journaled, the first attempt's result stands.
    assert not [e for e in _entries(platform, "rights.copy.faces_found") if e["details"]["copy_id"] == copy_id]
    assert client.get(f"/api/v1/rights/copies/{copy_id}").json()["state"] == "tracks_ready"
