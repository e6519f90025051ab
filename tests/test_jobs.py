"""Background jobs (temoin.jobs): an extraction asked for through the API and packaged by a job, in the process
(SQLite, TEMOIN_JOBS=inline) or by real `temoin worker` processes on PostgreSQL, surviving a SIGKILLed worker,
and cancelled; the periodic pass run by the workers as one job per period."""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import subprocess
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from temoin import jobs, maintenance
from temoin.db import utcnow
from temoin.errors import Conflict, Unavailable
from temoin.extraction import package as pkg
from temoin.extraction.models import Extraction
from temoin.extraction.writing import package_name
from temoin.jobs import JobRecord
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.rights import jobs as rights_jobs
from temoin.settings import Settings
from temoin.vault import artefact_blobs
from temoin.web.app import create_app
from tests.artefact_helpers import staged_artefacts
from tests.extraction_helpers import _download, _pinned, _verify
from tests.helpers import TEMOIN, make_commune, run, sign_in, upload
from tests.serve_helpers import base_env

BODY = {
    "recipient_name": "OPJ Claire Martin, commissariat de Port-Témoin",
    "recipient_kind": "judicial_police",
    "procedure_type": "judicial",
    "reference": "PV 2026/004512",
}

# A job for the tests of the mechanism itself: reports progress until told to stop, or until released.
_release = threading.Event()


def _slow(p, run: jobs.Run, args: dict) -> None:
    for i in range(10_000):
        run.progress(i, 10_000)
        if _release.wait(0.05):
            return


jobs.register("test.slow", _slow)


def _overtaken(p, run: jobs.Run, args: dict) -> None:
    """An attempt that another attempt finished meanwhile (its worker was only slow, not dead), then fails."""
    with p.session() as db:
        db.get_one(JobRecord, run.job_id).state = "done"
        db.commit()
    raise RuntimeError("duplicate key: the other attempt made it")


jobs.register("test.overtaken", _overtaken)


def _ask(client: TestClient, csrf: str, rid: str) -> dict:
    r = client.post("/api/v1/extractions/jobs", headers={"X-CSRF-Token": csrf}, json={"recording_ids": [rid], **BODY})
    assert r.status_code == 202, r.text
    out = r.json()
    assert out["state"] == "queued" and out["extraction"] is None and out["extraction_id"]
    return out


def _wait(client: TestClient, job: dict, until: Callable[[dict], bool], timeout_s: float = 60) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        r = client.get(job["status_url"])
        assert r.status_code == 200, r.text
        out = r.json()
        if until(out):
            return out
        assert time.monotonic() < deadline, f"job still {out}"
        time.sleep(0.1)


def _whole(client: TestClient, p: Platform, done: dict, tmp_path: Path) -> None:
    """The package downloads, its bytes are the recorded ones, and `temoin verify` accepts it."""
    ext = done["extraction"]
    assert ext is not None and ext["available"]
    zpath, _ = _download(client, ext, tmp_path)
    with zipfile.ZipFile(zpath) as zf:
        assert zf.testzip() is None
    key, *more = _pinned(p)
    code, output = _verify(zpath, key, *more)
    assert code == 0, output
    assert not staged_artefacts(p.store), "a half-written package was left"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_an_extraction_job_runs_in_the_process_and_can_be_cancelled(platform, client, tmp_path):
    assert platform.jobs.backend.name == "inline"
    commune = make_commune(platform, cameras=1)
    rid, _ = upload(platform, client, commune, duration_s=2, segment_s=2)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])

    done = _wait(client, _ask(client, csrf, rid), lambda o: o["state"] not in ("queued", "running"))
    assert done["state"] == "done", done
    assert done["attempts"] == 1 and done["done"] == done["total"] > 0
    _whole(client, platform, done, tmp_path)

    # The pool's threads busy with slow jobs: an extraction asked now waits, and is cancelled before it starts.
    _release.clear()
    with platform.session() as db:
        tenant_id = platform.tenant(db, commune.slug).id
    busy = [platform.jobs.submit("test.slow", {}, tenant_id=tenant_id) for _ in range(2)]
    waiting = _ask(client, csrf, rid)
    r = client.post(f"{waiting['status_url']}/cancel", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["state"] in ("cancelling", "cancelled"), r.text

    # A running job stops at its next progress report; the thread it frees finds the extraction cancelled.
    with platform.session() as db:
        assert platform.jobs.cancel(db, busy[0].id, tenant_id).state == "cancelling"
    out = _wait(client, waiting, lambda o: o["state"] == "cancelled")
    _release.set()
    assert out["extraction"] is None
    with platform.session() as db:
        assert db.get(Extraction, waiting["extraction_id"]) is None
        assert db.get_one(JobRecord, busy[0].id).state == "cancelled"
    deadline = time.monotonic() + 10
    while True:
        with platform.session() as db:
            if db.get_one(JobRecord, busy[1].id).state == "done":
                with pytest.raises(Conflict, match="already done"):
                    platform.jobs.cancel(db, busy[1].id, tenant_id)
                break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert not [k for k, _ in platform.store.listing(f"{artefact_blobs.ROOT}/") if waiting["extraction_id"] in k]
    # A job of another kind is not found through the extraction routes.
    assert client.get(f"/api/v1/extractions/jobs/{busy[0].id}").status_code == 404


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_on_sqlite_a_job_cut_short_by_a_stop_is_failed_at_the_next_start(platform):
    with platform.session() as db:
        db.add(JobRecord(id="job-cut-short", kind="test.slow", args={}, state="running", done=0, total=0, attempts=1))
        db.commit()
    maintenance.start_up(platform)
    with platform.session() as db:
        row = db.get_one(JobRecord, "job-cut-short")
        assert row.state == "failed" and "ask for it again" in (row.error or "")
    # The periodic pass deletes the rows of jobs finished a week ago (their arguments name people and recordings).
    assert maintenance.periodic_pass(platform, utcnow() + timedelta(days=6), orphans=False).jobs_purged == 0
    assert maintenance.periodic_pass(platform, utcnow() + timedelta(days=8), orphans=False).jobs_purged == 1
    with platform.session() as db:
        assert db.get(JobRecord, "job-cut-short") is None


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_an_attempt_failing_after_another_finished_the_job_leaves_it_done(platform):
    job = platform.jobs.submit("test.overtaken", {})
    deadline = time.monotonic() + 10
    while True:
        with platform.session() as db:
            row = db.get_one(JobRecord, job.id)
            if row.attempts and row.updated_at > row.created_at and row.state != "running":
                break
        assert time.monotonic() < deadline
        time.sleep(0.05)
    platform.jobs.close()  # the pool's thread is done with it
    with platform.session() as db:
        row = db.get_one(JobRecord, job.id)
        assert row.state == "done" and row.error is None, (row.state, row.error)


def test_an_unreachable_queue_is_a_clear_unavailable_not_a_hang():
    from temoin.jobs.queue import QueueBackend

    backend = QueueBackend("postgresql://postgres@127.0.0.1:1/nothing", wait_s=0.5)
    started = time.monotonic()
    with pytest.raises(Unavailable, match="job queue cannot be reached"):
        backend.enqueue("job-x", "extraction.package")
    assert time.monotonic() - started < 10
    assert backend.withdraw(1) is False  # a cancellation then waits for the job to start and see it
    backend.close()


def test_a_worker_needs_the_queue_and_says_so(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMOIN_")}
    env.update(TEMOIN_HOME=str(tmp_path / "home"))
    refused = run(env, "worker")
    assert refused.returncode == 2 and "TEMOIN_JOBS=postgresql" in refused.stderr, refused.stderr
    refused = run({**env, "TEMOIN_JOBS": "postgresql"}, "worker")
    assert refused.returncode == 2 and "needs a PostgreSQL database" in refused.stderr, refused.stderr


# --- PostgreSQL and real workers ----------------------------------------------------------------------------


def _black_hole() -> socket.socket:
    """A TCP port that accepts connections and never answers: a TSA that hangs, so a build stays half-written."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    return s


def _worker_env(settings: Settings, **more: str) -> dict[str, str]:
    return base_env(
        settings,
        TEMOIN_JOBS="postgresql",
        TEMOIN_WORKER_HEARTBEAT_S="0.5",
        TEMOIN_WORKER_STALLED_AFTER_S="5",  # generous: the machine is shared, a busy worker is not a dead one
        TEMOIN_RETENTION_INTERVAL_S="2",
        **more,
    )


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    started: list[subprocess.Popen] = []

    def start(env: dict[str, str], name: str) -> subprocess.Popen:
        log = (tmp_path / f"{name}.log").open("wb")
        proc = subprocess.Popen([*TEMOIN, "worker"], env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_workers_package_survive_a_sigkill_and_cancel(database_url, tmp_path, start_worker):
    settings = Settings(home=tmp_path / "home", database_url=database_url, secure_cookies=False, jobs="postgresql")
    p = Platform.open(settings, init=True)
    try:
        with TestClient(create_app(p, scheduler=False), base_url="http://testserver") as client:
            _scenario(p, client, tmp_path, start_worker)
    finally:
        p.close()


def _scenario(p: Platform, client: TestClient, tmp_path: Path, start_worker) -> None:
    commune = make_commune(p, cameras=1)
    rid, _ = upload(p, client, commune, duration_s=2, segment_s=2)
    csrf = sign_in(p, client, commune.users[Role.CHIEF])

    # No worker yet: the job waits in the queue, and a cancelled one is withdrawn from it.
    withdrawn = _ask(client, csrf, rid)
    r = client.post(f"{withdrawn['status_url']}/cancel", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["state"] == "cancelled", r.text
    assert client.post(f"{withdrawn['status_url']}/cancel", headers={"X-CSRF-Token": csrf}).status_code == 409

    # Worker A takes the job and hangs half-way (its TSA never answers): SIGKILLed with a .part on disk.
    job = _ask(client, csrf, rid)
    hole = _black_hole()
    try:
        port = hole.getsockname()[1]
        a = start_worker(
            _worker_env(p.settings, TEMOIN_TSA_URL=f"http://127.0.0.1:{port}/", TEMOIN_TSA_TIMEOUT_S="120"), "a"
        )
        name = package_name(commune.slug, job["extraction_id"])
        deadline = time.monotonic() + 60
        while not p.store.staged_keys(artefact_blobs.prefix(name)):  # being written, sealed, into the store
            assert a.poll() is None, (tmp_path / "a.log").read_text()
            assert time.monotonic() < deadline, (tmp_path / "a.log").read_text()
            time.sleep(0.05)
        running = client.get(job["status_url"]).json()
        assert running["state"] == "running" and running["attempts"] == 1, running
        a.send_signal(signal.SIGKILL)
        a.wait(10)
    finally:
        hole.close()

    # Worker B finds the job of the dead worker and makes the whole package; the download is whole.
    b = start_worker(_worker_env(p.settings), "b")
    done = _wait(client, job, lambda o: o["state"] in ("done", "failed", "cancelled"), timeout_s=90)
    assert done["state"] == "done" and done["attempts"] == 2, ((tmp_path / "b.log").read_text(), done)
    assert done["extraction"]["id"] == job["extraction_id"]
    _whole(client, p, done, tmp_path)
    with p.session() as db:
        row = db.get_one(Extraction, job["extraction_id"])
        pkg.copy_package(p, row, tmp_path / "again.zip")
        assert hashlib.sha256((tmp_path / "again.zip").read_bytes()).hexdigest() == row.package_sha256
        # The withdrawn job never ran.
        assert db.get(Extraction, withdrawn["extraction_id"]) is None
        assert db.get_one(JobRecord, withdrawn["id"]).state == "cancelled"
        assert list(db.scalars(select(Extraction.id))) == [job["extraction_id"]]

    # The scrub, queued from the command line, run by the worker; its outcome read back as `temoin jobs show`.
    env = _worker_env(p.settings)
    queued = run(env, "vault", "scrub", "--queue")
    assert queued.returncode == 0, queued.stderr
    scrub_id = queued.stdout.split("job ", 1)[1].split(":", 1)[0]
    deadline = time.monotonic() + 60
    while (shown := run(env, "jobs", "show", scrub_id)).returncode == 0 and " done " not in shown.stdout:
        assert " failed " not in shown.stdout and time.monotonic() < deadline, shown.stdout + shown.stderr
        time.sleep(0.2)
    assert shown.returncode == 0 and '"recordings": 1' in shown.stdout and '"problems": []' in shown.stdout, (
        shown.stdout + shown.stderr
    )
    listed = run(env, "jobs", "list")
    assert listed.returncode == 0 and scrub_id in listed.stdout and job["id"] in listed.stdout, listed.stdout
    late = run(env, "jobs", "cancel", scrub_id)
    assert late.returncode == 1 and "already done" in late.stderr, late.stdout + late.stderr

    # The periodic pass runs as a job, one per period for the whole cluster (procrastinate's periodic defers).
    conninfo = p.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    deadline = time.monotonic() + 30
    with psycopg.connect(conninfo, autocommit=True) as conn:
        while True:
            rows = conn.execute(
                "SELECT periodic_id, count(*), count(DISTINCT defer_timestamp) FROM procrastinate_periodic_defers "
                "GROUP BY periodic_id"
            ).fetchall()
            passes = {r[0]: (r[1], r[2]) for r in rows}
            if "periodic_pass" in passes:
                break
            assert time.monotonic() < deadline, (tmp_path / "b.log").read_text()
            time.sleep(0.2)
        assert all(n == distinct for n, distinct in passes.values()), passes
        failed = conn.execute("SELECT task_name FROM procrastinate_jobs WHERE status = 'failed'").fetchall()
        assert not failed, (failed, (tmp_path / "b.log").read_text())
        # Worker A's own duties hung on its TSA too: left to the next period, never run twice.
        assert conn.execute(
            "SELECT count(*) FROM procrastinate_jobs WHERE status = 'doing' AND task_name LIKE 'temoin.periodic.%' "
            "AND (worker_id IS NULL OR worker_id NOT IN (SELECT id FROM procrastinate_workers "
            "WHERE last_heartbeat > now() - interval '5 seconds'))"
        ).fetchone() == (0,)

    # Cancelled while a worker builds it (worker C waits on its TSA with the zip half-written): nothing is kept.
    b.send_signal(signal.SIGTERM)
    assert b.wait(30) == 0, (tmp_path / "b.log").read_text()
    doomed = _ask(client, csrf, rid)
    hole = _black_hole()
    try:
        port = hole.getsockname()[1]
        c = start_worker(
            _worker_env(p.settings, TEMOIN_TSA_URL=f"http://127.0.0.1:{port}/", TEMOIN_TSA_TIMEOUT_S="5"), "c"
        )
        name = package_name(commune.slug, doomed["extraction_id"])
        deadline = time.monotonic() + 60
        while not p.store.staged_keys(artefact_blobs.prefix(name)):
            assert c.poll() is None and time.monotonic() < deadline, (tmp_path / "c.log").read_text()
            time.sleep(0.05)
        r = client.post(f"{doomed['status_url']}/cancel", headers={"X-CSRF-Token": csrf})
        assert r.status_code == 200 and r.json()["state"] == "cancelling", r.text
        out = _wait(client, doomed, lambda o: o["state"] not in ("running", "cancelling"), timeout_s=60)
    finally:
        hole.close()
    assert out["state"] == "cancelled" and out["extraction"] is None, out
    assert not list(p.store.listing(artefact_blobs.prefix(name) + "/"))
    with p.session() as db:
        assert db.get(Extraction, doomed["extraction_id"]) is None


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_worker_makes_a_redacted_copy_and_survives_a_sigkill(database_url, tmp_path, start_worker):
    """A redacted copy asked for through the web API: its face detection, admitted against the `jobs` table, is
    run by a `temoin worker`; that worker is SIGKILLed midway (with the clear media decrypted on disk), another
    takes the job over and finishes it whole; the redaction is then run by a worker too."""
    settings = Settings(
        home=tmp_path / "home",
        database_url=database_url,
        secure_cookies=False,
        jobs="postgresql",
        redaction_jobs_per_tenant=1,
    )
    p = Platform.open(settings, init=True)
    try:
        with TestClient(create_app(p, scheduler=False), base_url="http://testserver") as client:
            _redaction_scenario(p, client, tmp_path, start_worker)
    finally:
        p.close()


def _copy_job(p: Platform, copy_id: int) -> JobRecord:
    with p.session() as db:
        job = rights_jobs.latest(db, copy_id)
        assert job is not None, f"copy {copy_id} has no job"
        db.expunge(job)
        return job


def _wait_copy(client: TestClient, copy_id: int, log: Path, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while (copy := client.get(f"/api/v1/rights/copies/{copy_id}").json())["state"] in ("detecting", "redacting"):
        assert time.monotonic() < deadline, (copy, log.read_text())
        time.sleep(0.2)
    return copy


def _redaction_scenario(p: Platform, client: TestClient, tmp_path: Path, start_worker) -> None:
    commune = make_commune(p, cameras=1)
    rid, _ = upload(p, client, commune, duration_s=2, segment_s=2)
    csrf = sign_in(p, client, commune.users[Role.CHIEF])
    h = {"X-CSRF-Token": csrf}
    req = client.post(
        "/api/v1/rights/requests",
        headers=h,
        json={"kind": "access", "person_description": "veste rouge", "contact": "x@example.org"},
    )
    assert req.status_code == 201, req.text
    asked = client.post(f"/api/v1/rights/requests/{req.json()['id']}/copies", headers=h, json={"recording_id": rid})
    assert asked.status_code == 202, asked.text
    copy_id = asked.json()["id"]
    # No worker yet: the job waits in the queue, and holds the commune's one place (counted in the jobs table).
    assert _copy_job(p, copy_id).state == "queued"
    busy = client.post(f"/api/v1/rights/requests/{req.json()['id']}/copies", headers=h, json={"recording_id": rid})
    assert busy.status_code == 429 and busy.headers["retry-after"] == "30", busy.text
    assert len(client.get(f"/api/v1/rights/requests/{req.json()['id']}/copies").json()) == 1  # nothing half made
    assert client.get(f"/api/v1/rights/copies/{copy_id}").json()["state"] == "detecting"

    # Worker A decrypts the recording and starts detecting; its first progress write waits on the copy's row,
    # which the test holds: SIGKILLed there, it leaves the clear media in its private folder.
    conninfo = p.settings.database_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(conninfo) as holder:
        holder.execute("SELECT id FROM redacted_copies WHERE id = %s FOR UPDATE", (copy_id,))
        a = start_worker(_worker_env(p.settings, TEMOIN_DB_LOCK_TIMEOUT_S="300"), "ra")
        deadline = time.monotonic() + 120
        while (job := _copy_job(p, copy_id)).done == 0:
            assert a.poll() is None and time.monotonic() < deadline, (job.state, (tmp_path / "ra.log").read_text())
            time.sleep(0.05)
        assert job.state == "running" and job.attempts == 1, job
        leftovers = list((p.settings.home / "tmp").glob(f"rights-copy-{copy_id}-*/*.mp4"))
        assert leftovers, "the attempt decrypted the recording into its private folder"
        a.send_signal(signal.SIGKILL)
        a.wait(10)
        holder.rollback()
    assert client.get(f"/api/v1/rights/copies/{copy_id}").json()["state"] == "detecting"  # not failed: retried

    # Worker B takes over the dead worker's job: the faces are found once, the killed attempt's files are gone.
    b = start_worker(_worker_env(p.settings), "rb")
    copy = _wait_copy(client, copy_id, tmp_path / "rb.log")
    assert copy["state"] == "tracks_ready" and copy["progress"] == 1.0, (copy, (tmp_path / "rb.log").read_text())
    job = _copy_job(p, copy_id)
    assert (job.state, job.attempts) == ("done", 2), job
    assert not [x for x in leftovers if x.exists()], "the killed attempt's clear media was removed"
    faces = client.get(f"/api/v1/rights/copies/{copy_id}/faces")
    assert faces.status_code == 200, faces.text
    with p.session() as db:
        found = db.scalars(select(JobRecord).where(JobRecord.subject == str(copy_id))).all()
        assert [(j.kind, j.state) for j in found] == [(rights_jobs.DETECT, "done")]
        assert rights_jobs.held(db) == 0

    # The redaction, by the worker too: the sealed copy is whole and can be watched for review.
    r = client.post(f"/api/v1/rights/copies/{copy_id}/redact", headers=h, json={"keep_tracks": [], "add_regions": []})
    assert r.status_code == 202 and r.json()["state"] == "redacting", r.text
    copy = _wait_copy(client, copy_id, tmp_path / "rb.log")
    assert copy["state"] == "to_review", (copy, (tmp_path / "rb.log").read_text())
    assert _copy_job(p, copy_id).kind == rights_jobs.REDACT
    video = client.get(f"/api/v1/rights/copies/{copy_id}/video")
    assert video.status_code == 200 and len(video.content) == copy["size_bytes"]
    assert hashlib.sha256(video.content).hexdigest() == copy["sha256"]
    assert not list((p.settings.home / "tmp").glob("rights-copy-*")), "no clear media left behind"
    b.send_signal(signal.SIGTERM)
    assert b.wait(30) == 0, (tmp_path / "rb.log").read_text()
