"""The whole cluster (issue 21, "the test that proves it"): two `temoin serve` nodes and one `temoin worker`, real
processes each with a data folder of its own, sharing one PostgreSQL database, the S3 store (SeaweedFS) and NATS
JetStream, with the job queue on PostgreSQL. A camera's upload survives its node's SIGKILL by resuming through the
other; a live button on A alerts a CSU browser on B; a reviewer on A plays what B stored; an extraction asked on B
is packaged by the worker and downloaded from A; a retention pass run by both nodes at once deletes each due
recording once; and every node's journal verifies afterwards."""

from __future__ import annotations

import hashlib
import threading
import time
import zipfile
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import orjson
import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select, update

from temoin.camera.offload import VaultClient
from temoin.db import utcnow
from temoin.demo.samples import sample_recording
from temoin.identity.models import User
from temoin.identity.service import totp_secret_of
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.vault.models import DeletionCertificate, Recording, RecordingState
from tests.cluster_helpers import Cluster, Process, serve, sign_in_browser, sign_in_http, wait_up, worker
from tests.extraction_helpers import _verify
from tests.helpers import agent_number, make_commune
from tests.live_helpers import FIX, on_shift, signed
from tests.s3_helpers import BUCKET

pytestmark = [pytest.mark.slow, pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)]

PIECE = 4096  # the camera's upload pieces here: several per segment, so that "half" is a real midpoint


@pytest.fixture
def cluster(tmp_path: Path, database_url: str, s3_server, nats_stream) -> Iterator[Cluster]:
    url, stream = nats_stream
    yield Cluster(
        root=tmp_path,
        database_url=database_url,
        blob_store_url=s3_server.url(),
        events_url=url,
        events_stream=stream,
    )


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for proc in started:
        proc.stop()


def _stored_plaintext(http: httpx.Client, csrf: str, rid: str, sizes: list[int]) -> list[bytes]:
    """The review page's way: a consultation (with its motive), then each segment by byte ranges under its grant."""
    r = http.post(
        f"/api/v1/recordings/{rid}/consultations",
        headers={"X-CSRF-Token": csrf},
        json={"motive": {"code": "report_facts", "text": "Rapport sur l'intervention"}},
    )
    assert r.status_code == 201, r.text
    out = []
    for url, size in zip(r.json()["segments"], sizes, strict=True):
        half = size // 2
        first = http.get(url, headers={"Range": f"bytes=0-{half - 1}"})
        assert first.status_code == 206, first.text
        assert first.headers["content-range"] == f"bytes 0-{half - 1}/{size}"
        rest = http.get(url, headers={"Range": f"bytes={half}-"})
        assert rest.status_code == 206, rest.text
        out.append(first.content + rest.content)
    return out


def test_two_nodes_and_a_worker_share_one_database_one_store_and_one_bus(
    cluster, processes, tmp_path, browser, s3_server
):
    # --- set-up, before any node runs: node A's data folder, the commune, the accounts ---------------------------
    setup = Settings(
        home=cluster.home("a"),
        database_url=cluster.database_url,
        blob_store_url=cluster.blob_store_url,
        secure_cookies=False,
        jobs="postgresql",
    )
    p = Platform.open(setup, init=True)
    try:
        commune = make_commune(p, cameras=3)
        on_shift(p, commune, camera=2)
        with p.session() as db:
            totp = {
                role: totp_secret_of(p, db.scalar(select(User).where(User.username == commune.users[role])))
                for role in (Role.CHIEF, Role.CSU_OPERATOR)
            }
        public_key = p.keyring.public_key
        fingerprint = p.keyring.fingerprint
    finally:
        p.close()
    cluster.give_keys("a", "b", "w")

    a, b, w = serve(cluster, "a"), serve(cluster, "b"), worker(cluster, "w")
    processes.extend([a, b, w])
    wait_up(a, b)

    # --- 1. half a recording through A, A killed, the rest through B: the vault holds the camera's bytes ---------
    cam_id, cam_key = commune.cameras[0]
    recording, segments = sample_recording(
        cam_key,
        camera_id=cam_id,
        agent_id=agent_number(commune),
        started_at=utcnow() - timedelta(minutes=3),
        duration_s=3,
        segment_s=1,
    )
    rid = recording.manifest.recording_id
    assert len(segments) == 3 and all(len(s) > 3 * PIECE for s in segments), [len(s) for s in segments]
    total = sum(len(s) for s in segments)
    camera = VaultClient(a.url, cam_id, cam_key, public_key)
    camera.send_manifest(recording)
    sent = 0
    # Piece by piece, until half the recording (the middle of the second segment) is through A.
    index, offset = 0, 0
    while sent < total // 2:
        data = segments[index]
        end = min(offset + PIECE, len(data))
        r = camera.http.put(
            f"/api/v1/ingest/recordings/{rid}/segments/{index}",
            content=data[offset:end],
            headers={"Content-Range": f"bytes {offset}-{end - 1}/{len(data)}"},
        )
        assert r.status_code == 200, r.text
        sent += end - offset
        index, offset = (index + 1, 0) if end == len(data) else (index, end)
    assert index == 1 and 0 < offset < len(segments[1])
    camera.close()
    a.kill()

    # The camera's own client, pointed at B: it asks what the vault holds and sends only the rest.
    camera = VaultClient(b.url, cam_id, cam_key, public_key)
    assert camera.received(rid, 0) == len(segments[0])
    assert camera.received(rid, 1) == offset  # every piece A answered is in the shared store
    moved: list[int] = []
    receipt = camera.offload(recording, segments, progress=moved.append)
    camera.close()
    assert sum(moved) == total  # what it held, then what was left: each byte once
    assert receipt.matches(recording.manifest)  # the vault's hashes are the camera's

    # --- 2. A is back; a live button on a camera connected to A alerts a CSU browser on B ------------------------
    a = serve(cluster, "a")
    processes.append(a)
    context = browser.new_context(base_url=b.url, locale="fr-FR", viewport={"width": 1400, "height": 900})
    context.set_default_timeout(20_000)
    try:
        sign_in_browser(context, commune.users[Role.CSU_OPERATOR], totp[Role.CSU_OPERATOR])
        page = context.new_page()
        page.goto("/live")
        expect(page.locator("#live-connection")).to_have_text("Canal d'événements connecté")
        wait_up(a)
        path = "/api/v1/live/sessions"
        body = orjson.dumps({"reason": "threat", "position": FIX.model_dump(mode="json")})
        r = httpx.post(
            f"{a.url}{path}",
            content=body,
            headers={**signed(commune, "POST", path, 2, body), "Content-Type": "application/json"},
        )
        assert r.status_code == 201, r.text
        sid = r.json()["id"]
        expect(page.locator("#csu-alert")).to_be_visible()
        page.locator("#csu-ack").click()
        expect(page.locator("#csu-alert-acked")).not_to_have_text("—")
        path = f"/api/v1/live/camera/sessions/{sid}"
        seen = httpx.get(f"{a.url}{path}", headers=signed(commune, "GET", path, 2))
        assert seen.status_code == 200 and seen.json()["state"] == "acknowledged", seen.text
    finally:
        context.close()

    # --- 3. a reviewer on A plays the recording stored through B: the camera's bytes, by byte ranges -------------
    staff_a = httpx.Client(base_url=a.url, timeout=30)
    csrf = sign_in_http(staff_a, commune.users[Role.CHIEF], totp[Role.CHIEF])
    played = _stored_plaintext(staff_a, csrf, rid, [len(s) for s in segments])
    assert [hashlib.sha256(s).hexdigest() for s in played] == [hashlib.sha256(s).hexdigest() for s in segments]

    # --- 4. an extraction asked on B (the same session: any node serves it), packaged by the worker, from A ------
    staff_b = httpx.Client(base_url=b.url, timeout=30, cookies=staff_a.cookies)
    r = staff_b.post(
        "/api/v1/extractions/jobs",
        headers={"X-CSRF-Token": csrf},
        json={
            "recording_ids": [rid],
            "recipient_name": "OPJ Claire Martin, commissariat de Port-Témoin",
            "recipient_kind": "judicial_police",
            "procedure_type": "judicial",
            "reference": "PV 2026/004512",
        },
    )
    assert r.status_code == 202, r.text
    job = r.json()
    deadline = time.monotonic() + 90
    while True:
        state = staff_a.get(job["status_url"]).json()  # followed from A
        if state["state"] not in ("queued", "running"):
            break
        assert w.alive(), w.tail()
        assert time.monotonic() < deadline, f"job still {state}\n{w.tail()}"
        time.sleep(0.2)
    assert state["state"] == "done", f"{state}\n{w.tail()}"
    ext = state["extraction"]
    package = staff_a.get(ext["download_url"])
    assert package.status_code == 200, f"{package.status_code} {package.text[:300]}"
    assert hashlib.sha256(package.content).hexdigest() == ext["sha256"]
    zpath = tmp_path / "package.zip"
    zpath.write_bytes(package.content)
    with zipfile.ZipFile(zpath) as zf:
        assert zf.testzip() is None
    code, output = _verify(zpath, None, "--fingerprint", fingerprint)
    assert code == 0, output
    staff_a.close()
    staff_b.close()

    # --- 5. recordings past their retention; the periodic pass run by both nodes at once -------------------------
    due: list[str] = []
    for n, node in enumerate((a, b, a)):
        cam_id, cam_key = commune.cameras[1]
        rec, segs = sample_recording(
            cam_key,
            camera_id=cam_id,
            agent_id=agent_number(commune),
            started_at=utcnow() - timedelta(minutes=10 - n),
            duration_s=1,
            segment_s=1,
            seed=n + 1,
        )
        client = VaultClient(node.url, cam_id, cam_key, public_key)
        client.offload(rec, segs)
        client.close()
        due.append(rec.manifest.recording_id)
    with cluster.db() as db:
        db.execute(update(Recording).where(Recording.id.in_(due)).values(retention_until=utcnow() - timedelta(days=1)))
        db.commit()
    gate = threading.Barrier(2)
    results: dict[str, tuple[int, str]] = {}

    def sweep(name: str) -> None:
        gate.wait()
        done = cluster.cli(name, "retention", "run")
        results[name] = (done.returncode, done.stdout + done.stderr)

    sweeps = [threading.Thread(target=sweep, args=(name,)) for name in ("a", "b")]
    for t in sweeps:
        t.start()
    for t in sweeps:
        t.join(180)
    assert all(code == 0 for code, _ in results.values()), results
    with cluster.db() as db:
        for r_id in due:
            assert db.get(Recording, r_id).state == RecordingState.DELETED
            count = db.scalar(
                select(func.count()).select_from(DeletionCertificate).where(DeletionCertificate.recording_id == r_id)
            )
            assert count == 1, f"{r_id}: {count} certificates"
        assert db.get(Recording, rid).state == RecordingState.STORED  # not due: kept
    prefix = cluster.blob_store_url.split("/", 3)[3].split("?")[0]
    for r_id in due:
        listed = s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix=f"{prefix}/blobs/{commune.slug}/{r_id}/")
        assert not listed.get("Contents"), listed["Contents"]

    # --- 6. every node stopped; each data folder's journal file and the database verify -------------------------
    for proc in processes:
        proc.stop()
    failed = {}
    for name in ("a", "b", "w"):
        done = cluster.cli(name, "journal", "verify")
        if done.returncode != 0:
            failed[name] = done.stdout + done.stderr
    assert not failed, "\n".join(f"journal of {name}:\n{said}" for name, said in failed.items())
