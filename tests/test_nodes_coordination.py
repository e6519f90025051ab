"""Coordination between nodes in the database (issue 21, item 3): two platforms (two nodes: two engines, two sets
of locks) on one PostgreSQL database and one data folder. Concurrent periodic passes delete each due recording once,
with one certificate each; one segment uploaded through both nodes at once is stored whole, and a node that dies
mid-upload lets the other resume; one live button pressed through both nodes opens one session; the journal chain
verifies after concurrent writes and seals from both."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text, update

from temoin import maintenance
from temoin.coordination import lock_key, locks_for
from temoin.db import utcnow
from temoin.demo.samples import sample_recording
from temoin.identity.models import Device
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.journal.models import JournalEntry
from temoin.live import sessions as live_sessions
from temoin.live.events import InProcessEventBus
from temoin.live.models import LiveSession
from temoin.live.sessions import LiveReason, LiveRequest
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.vault import ingest
from temoin.vault.ingest import IngestConflict, SegmentUpload
from temoin.vault.models import DeletionCertificate, Recording, RecordingState
from temoin.vault.storage import blob_key
from temoin.web.app import create_app
from tests.helpers import agent_number, make_commune, upload, vault_client
from tests.journal_helpers import verify

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)


@pytest.fixture
def nodes(settings: Settings) -> Iterator[tuple[Platform, Platform]]:
    a = Platform.open(settings, init=True)
    b = Platform.open(settings)
    yield a, b
    a.close()
    b.close()


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run the calls in threads released together; returns each one's result or the exception it raised."""
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], Any]) -> Any:
        start.wait()
        try:
            return call()
        except Exception as exc:  # noqa: BLE001 - the test looks at what each call did, failures included
            return exc

    with ThreadPoolExecutor(len(calls)) as pool:
        return list(pool.map(run, calls))


def test_two_periodic_passes_at_once_delete_each_due_recording_once(nodes):
    a, b = nodes
    commune = make_commune(a)
    with TestClient(create_app(a, scheduler=False), base_url="http://testserver") as client:
        due = [upload(a, client, commune, duration_s=1, segment_s=1)[0] for _ in range(3)]
        kept, _ = upload(a, client, commune, duration_s=1, segment_s=1)
    with a.session() as db:
        db.execute(update(Recording).where(Recording.id.in_(due)).values(retention_until=utcnow() - timedelta(days=1)))
        db.commit()

    reports = at_once(lambda: maintenance.periodic_pass(a), lambda: maintenance.periodic_pass(b))

    assert not [r for r in reports if isinstance(r, Exception)], reports
    # Every due recording deleted by one pass or the other, never by both.
    assert sorted(r for report in reports for r in report.sweep.deleted) == sorted(due)
    with a.session() as db:
        certificates = db.execute(
            select(DeletionCertificate.recording_id, func.count()).group_by(DeletionCertificate.recording_id)
        ).all()
        assert sorted(certificates) == sorted((rid, 1) for rid in due)
        states = {row.id: row.state for row in db.execute(select(Recording.id, Recording.state))}
        assert {rid: states[rid] for rid in due} == dict.fromkeys(due, RecordingState.DELETED)
        assert states[kept] == RecordingState.STORED
        deletions = db.scalars(select(JournalEntry.body).where(JournalEntry.event.like("recording.deleted.%"))).all()
        for rid in due:
            assert sum(rid in body for body in deletions) == 1, f"{rid} journaled as deleted more than once"
    assert verify(a).problems == []


def _manifest_sent(p: Platform, commune) -> tuple[str, bytes]:
    """A recording announced to the vault (manifest only); returns its id and the bytes of its one segment."""
    camera = commune.cameras[0]
    signed, segments = sample_recording(
        camera[1], camera_id=camera[0], agent_id=agent_number(commune), started_at=utcnow(), duration_s=2, segment_s=2
    )
    with TestClient(create_app(p, scheduler=False), base_url="http://testserver") as client:
        vault_client(p, client, camera).send_manifest(signed)
    return signed.manifest.recording_id, segments[0]


def _upload_whole(p: Platform, device_id: str, rid: str, data: bytes) -> ingest.SegmentStatus:
    with p.session() as db:
        up = SegmentUpload(p, db, db.get_one(Device, device_id), rid, 0, 0, len(data))
        for n in range(0, len(data), 4096):
            up.feed(data[n : n + 4096])
        return up.finish()


def test_one_segment_uploaded_through_two_nodes_at_once_is_stored_whole(nodes):
    a, b = nodes
    commune = make_commune(a)
    device_id = commune.cameras[0][0]
    rid, data = _manifest_sent(a, commune)

    results = at_once(lambda: _upload_whole(a, device_id, rid, data), lambda: _upload_whole(b, device_id, rid, data))

    stored = [r for r in results if isinstance(r, ingest.SegmentStatus)]
    refused = [r for r in results if isinstance(r, IngestConflict)]
    # One node wrote the segment; the other was told it is being (or was) uploaded, never both at once.
    assert len(stored) == 1 and stored[0].complete and len(refused) == 1, results
    with b.session() as db:
        receipt = ingest.complete(b, db, db.get_one(Device, device_id), rid)
    assert receipt.receipt.recording_id == rid
    assert _plaintext(b, commune.slug, rid) == data


def test_a_node_that_dies_mid_upload_lets_another_resume_it(nodes):
    a, b = nodes
    commune = make_commune(a)
    device_id = commune.cameras[0][0]
    rid, data = _manifest_sent(a, commune)
    half = len(data) // 2
    with a.session() as db_a:
        through_a = SegmentUpload(a, db_a, db_a.get_one(Device, device_id), rid, 0, 0, len(data))
        through_a.feed(data[:half])
        a.store.sync_staged(through_a.key)
        # While A writes, B refuses the same segment: the lock is PostgreSQL's, not this process's.
        with b.session() as db_b, pytest.raises(IngestConflict, match="already being uploaded"):
            SegmentUpload(b, db_b, db_b.get_one(Device, device_id), rid, 0, 0, len(data))
        with a.engine.connect() as conn:
            holders = conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = (:k & 4294967295)"),
                {"k": lock_key(f"upload:{blob_key(commune.slug, rid, 0)}")},
            ).scalar()
        assert holders == 1
        # A dies (killed: no finish, no release): its connection to PostgreSQL closes, and its locks with it.
        locks_for(a.engine).close()
        with b.session() as db_b:
            device = db_b.get_one(Device, device_id)
            # The camera asks B what the vault holds (whole sealed records of what A received), and goes on from there.
            resume_at = ingest.upload_status(b, db_b, device, rid).segments[0].received
            assert 0 <= resume_at <= half
            through_b = SegmentUpload(b, db_b, device, rid, 0, resume_at, len(data))
            through_b.feed(data[resume_at:])
            assert through_b.finish().complete
            receipt = ingest.complete(b, db_b, device, rid)
    assert receipt.receipt.recording_id == rid
    assert _plaintext(b, commune.slug, rid) == data


def _plaintext(p: Platform, slug: str, rid: str) -> bytes:
    from temoin.evidence import crypto

    with p.session() as db:
        rec = db.get_one(Recording, rid)
        assert rec.wrapped_key is not None
        key = crypto.unwrap_key(p.keyring.master_key, rec.wrapped_key, rid)
    with p.store.open(blob_key(slug, rid, 0)) as fh:
        out = b"".join(crypto.open_records(fh, key))
    return out


def test_one_live_button_press_through_two_nodes_opens_one_session(nodes):
    a, b = nodes
    commune = make_commune(a)
    device_id = commune.cameras[0][0]

    def press(p: Platform) -> tuple[str, bool]:
        with p.session() as db:
            s, created = live_sessions.request(
                p, db, InProcessEventBus(), db.get_one(Device, device_id), LiveRequest(reason=LiveReason.THREAT)
            )
            return s.id, created

    for _ in range(3):  # a race lost by luck once is not proof: three presses, each through both nodes at once
        results = at_once(lambda: press(a), lambda: press(b))
        assert not [r for r in results if isinstance(r, Exception)], results
        assert len({sid for sid, _ in results}) == 1 and sorted(c for _, c in results) == [False, True]
        with a.session() as db:
            s = db.get_one(LiveSession, results[0][0])
            s.state = "ended"
            db.commit()
    with a.session() as db:
        assert db.scalar(select(func.count()).select_from(LiveSession)) == 3


def test_the_journal_chain_verifies_after_concurrent_writes_and_seals_from_two_nodes(nodes):
    a, b = nodes
    commune = make_commune(a)

    def write(p: Platform, node: str) -> None:
        for n in range(30):
            with p.session() as db:
                p.record(
                    db,
                    EntryDraft(
                        action=Action.CONSULTATION, event="test.node", actor=Actor.system(node), details={"n": n}
                    ),
                    p.tenant(db, commune.slug),
                )
                db.commit()
            if n % 10 == 9:
                maintenance.seal_journal(p)

    results = at_once(lambda: write(a, "a"), lambda: write(b, "b"))
    assert results == [None, None]
    with a.session() as db:
        seqs = db.scalars(select(JournalEntry.seq).where(JournalEntry.chain == commune.slug)).all()
        assert sorted(seqs) == list(range(1, len(seqs) + 1))
        assert db.scalar(select(func.count()).where(JournalEntry.event == "test.node")) == 60
    maintenance.seal_journal(b)
    result = verify(b)
    assert result.problems == [], result.problems
