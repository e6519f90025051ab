"""Redacted-copy jobs (temoin.jobs) are bounded (docs/security.md, "Bounded inputs and work"): a share per tenant
(429) and a ceiling for the server (503), both with Retry-After, counted in the `jobs` table; and no database
connection is held while the faces are being found. The engine is replaced by one that waits on the test (the
boundary we do not own is the detector's run time); everything else is real. Each test on SQLite and PostgreSQL
(in-process jobs; tests/test_redaction_worker.py has a `temoin worker` make a copy)."""

from __future__ import annotations

import threading
from collections import Counter
from types import SimpleNamespace

import pytest
from sqlalchemy import event

from temoin.law.access import Role
from temoin.rights import copy_jobs, jobs as rights_jobs
from temoin.settings import Settings
from tests.helpers import make_commune, sign_in, upload
from tests.rights_helpers import _entries


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"job_threads": 1, "redaction_jobs_per_tenant": 2, "redaction_jobs_max": 3})


def test_redaction_jobs_are_bounded_per_tenant_and_in_all_and_hold_no_connection(platform, client, monkeypatch) -> None:
    gate = threading.Event()
    running = threading.Event()
    held: Counter[int] = Counter()  # database connections checked out, by thread
    seen_while_detecting: list[int] = []
    event.listen(platform.engine, "checkout", lambda *a: held.update([threading.get_ident()]))
    event.listen(platform.engine, "checkin", lambda *a: held.subtract([threading.get_ident()]))

    def detect_tracks(src, progress=None):
        seen_while_detecting.append(held[threading.get_ident()])
        running.set()
        assert gate.wait(60)
        return []

    fake = SimpleNamespace(detect_tracks=detect_tracks, redact_file=lambda *a, **k: None, ManualRegion=tuple)
    monkeypatch.setattr(copy_jobs, "engine", lambda: fake)

    a, b = make_commune(platform, "port-temoin", cameras=1), make_commune(platform, "autre-ville", cameras=1)
    rec_a, _ = upload(platform, client, a, duration_s=1, segment_s=1)
    rec_b, _ = upload(platform, client, b, duration_s=1, segment_s=1)

    def start(commune, rid: str):
        csrf = sign_in(platform, client, commune.users[Role.CHIEF])
        r = client.post(
            "/api/v1/rights/requests",
            headers={"X-CSRF-Token": csrf},
            json={"kind": "access", "person_description": "veste rouge", "contact": "x@example.org"},
        )
        assert r.status_code == 201, r.text
        return client.post(
            f"/api/v1/rights/requests/{r.json()['id']}/copies",
            headers={"X-CSRF-Token": csrf},
            json={"recording_id": rid},
        )

    first = start(a, rec_a)
    assert first.status_code == 202, first.text
    assert running.wait(30)
    waiting = start(a, rec_a)
    assert waiting.status_code == 202  # waits for the one job thread
    busy = start(a, rec_a)
    assert busy.status_code == 429, busy.text
    assert busy.headers["retry-after"] == "30" and busy.headers["content-type"] == "application/problem+json"
    assert "your commune already has 2 redaction jobs" in busy.json()["detail"]
    # Another commune still has its share, up to the server's ceiling.
    assert start(b, rec_b).status_code == 202
    full = start(b, rec_b)
    assert full.status_code == 503 and full.headers["retry-after"] == "30", full.text
    assert "retry" in full.json()["detail"]
    # A refused start left nothing behind: only the admitted copies exist.
    from sqlalchemy import func, select

    from temoin.rights.models import RedactedCopy

    with platform.session() as db:
        assert db.scalar(select(func.count()).select_from(RedactedCopy)) == 3

    with platform.session() as db:
        assert (rights_jobs.held(db, platform.tenant(db, a.slug).id), rights_jobs.held(db)) == (2, 3)
    sign_in(platform, client, a.users[Role.CHIEF])
    first_copy = client.get(f"/api/v1/rights/copies/{first.json()['id']}").json()
    assert first_copy["state"] == "detecting", first_copy  # its job runs: the copy page says so

    gate.set()
    for _ in range(600):
        with platform.session() as db:
            if rights_jobs.held(db) == 0:
                break
        threading.Event().wait(0.1)
    with platform.session() as db:
        assert rights_jobs.held(db) == 0
    done = client.get(f"/api/v1/rights/copies/{first.json()['id']}").json()
    assert done["state"] == "tracks_ready", done
    second = client.get(f"/api/v1/rights/copies/{waiting.json()['id']}").json()
    assert second["state"] == "tracks_ready", second
    assert seen_while_detecting and set(seen_while_detecting) == {0}  # no connection held across the detection
    assert start(a, rec_a).status_code == 202  # room again


def test_a_copy_step_is_cancelled_waiting_or_running_and_the_copy_says_so(platform, client, monkeypatch) -> None:
    gate, running = threading.Event(), threading.Event()

    def detect_tracks(src, progress=None):
        running.set()
        while not gate.wait(0.05):
            progress(1, 10)  # where a cancellation is seen
        return []

    fake = SimpleNamespace(detect_tracks=detect_tracks, redact_file=lambda *a, **k: None, ManualRegion=tuple)
    monkeypatch.setattr(copy_jobs, "engine", lambda: fake)
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    h = {"X-CSRF-Token": csrf}
    r = client.post(
        "/api/v1/rights/requests",
        headers=h,
        json={"kind": "access", "person_description": "veste rouge", "contact": "x@example.org"},
    )
    req_id = r.json()["id"]
    first = client.post(f"/api/v1/rights/requests/{req_id}/copies", headers=h, json={"recording_id": rid}).json()
    assert running.wait(30)
    second = client.post(f"/api/v1/rights/requests/{req_id}/copies", headers=h, json={"recording_id": rid}).json()

    # The waiting one never starts; the running one stops at its next progress report.
    for copy in (second, first):
        r = client.post(f"/api/v1/rights/copies/{copy['id']}/cancel", headers=h)
        assert r.status_code == 200 and r.json()["state"] in ("detecting", "failed"), r.text
    for copy in (first, second):
        for _ in range(300):
            got = client.get(f"/api/v1/rights/copies/{copy['id']}").json()
            if got["state"] != "detecting":
                break
            threading.Event().wait(0.1)
        assert got["state"] == "failed" and "cancelled" in got["error"], got
        assert got["tracks"] == []
    with platform.session() as db:
        assert rights_jobs.held(db) == 0
        assert {rights_jobs.latest(db, c["id"]).state for c in (first, second)} == {"cancelled"}
    gate.set()
    again = client.post(f"/api/v1/rights/copies/{first['id']}/cancel", headers=h)
    assert again.status_code == 409 and "no step is under way" in again.json()["detail"], again.text
    # Each failure is journaled.
    failed = _entries(platform, "rights.copy.failed")
    assert sorted(e["details"]["copy_id"] for e in failed) == sorted([first["id"], second["id"]]), failed


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_admission_waits_for_another_node_admitting_at_the_same_moment(platform, client, monkeypatch) -> None:
    """Another node inside its admission (holding the advisory lock, its job rows not yet committed): this node's
    request waits, then counts the other's jobs and refuses. Without the lock both would be admitted."""
    from sqlalchemy import text

    from temoin.coordination import lock_key
    from temoin.jobs import JobRecord

    fake = SimpleNamespace(detect_tracks=lambda src, progress=None: [], redact_file=None, ManualRegion=tuple)
    monkeypatch.setattr(copy_jobs, "engine", lambda: fake)
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(
        "/api/v1/rights/requests",
        headers={"X-CSRF-Token": csrf},
        json={"kind": "access", "person_description": "veste rouge", "contact": "x@example.org"},
    )
    req_id = r.json()["id"]
    answers: list = []
    with platform.session() as other:
        tenant_id = platform.tenant(other, commune.slug).id
        other.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_key(rights_jobs.LOCK)})
        asking = threading.Thread(
            target=lambda: answers.append(
                client.post(
                    f"/api/v1/rights/requests/{req_id}/copies",
                    headers={"X-CSRF-Token": csrf},
                    json={"recording_id": rid},
                )
            )
        )
        asking.start()
        asking.join(1.5)
        assert asking.is_alive() and not answers, "the request went on while another node was admitting"
        for n in range(2):  # the other node's two admitted jobs: this tenant's share
            other.add(JobRecord(id=f"job-other-{n}", kind=rights_jobs.DETECT, args={}, tenant_id=tenant_id))
        other.commit()
    asking.join(30)
    (answer,) = answers
    assert answer.status_code == 429, answer.text
    assert client.get(f"/api/v1/rights/requests/{req_id}/copies").json() == []
