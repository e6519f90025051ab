"""Redacted-copy jobs are bounded (docs/security.md, "Web and transport"): a fixed number of workers, a share per
tenant (429) and a ceiling for the server (503), both with Retry-After; and no database connection is held while
the faces are being found. The engine is replaced by one that waits on the test (the boundary we do not own is
the detector's run time); everything else is real. Each test on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from types import SimpleNamespace

import pytest
from sqlalchemy import event

from temoin.law.access import Role
from temoin.rights import copies
from temoin.settings import Settings
from tests.helpers import make_commune, sign_in, upload


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"redaction_workers": 1, "redaction_jobs_per_tenant": 2, "redaction_jobs_max": 3})


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
    monkeypatch.setattr(copies, "engine", lambda: fake)

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
    assert start(a, rec_a).status_code == 202  # waits for the one worker
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

    gate.set()
    copies.wait(first.json()["id"], 60)
    queue = copies.queue_of(platform)
    for _ in range(600):
        if queue.held() == 0:
            break
        threading.Event().wait(0.1)
    assert queue.held() == 0
    assert seen_while_detecting and set(seen_while_detecting) == {0}  # no connection held across the detection
    assert start(a, rec_a).status_code == 202  # room again
