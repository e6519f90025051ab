"""A live backup survives a crash of the server recording it: what was received up to (about) the kill stays
readable. The writer checkpoints every few seconds (the local file synced, the S3 chunk being filled PUT), and the
next start-up cuts what a dead server left staged at its last authenticated record and promotes it, journaled once."""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import sys
import time
from datetime import timedelta
from pathlib import Path

import av
import pytest
from sqlalchemy import select

from temoin.db import utcnow
from temoin.evidence import crypto
from temoin.identity.models import Tenant
from temoin.live import backup, backup_recovery, sessions
from temoin.live.models import LiveMediaOwner, LiveSession
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.vault import artefact_blobs
from temoin.vault.stores import open_blob_store
from tests.artefact_helpers import artefact_keys, staged_artefacts
from tests.helpers import make_commune
from tests.live_helpers import FIX, entries, publisher
from tests.s3_helpers import BOTH_STORES
from tests.serve_helpers import ServerProcess, base_env, free_port

# `temoin serve` itself, with the tenant's legal profile allowing backups (no shipped profile does yet).
SERVE = """
import sys
from temoin.law.profiles import get_profile
from temoin.live import hub
allowing = get_profile("fr-police-municipale").model_copy(update={"live_backup_recording": True})
hub.get_profile = lambda _id: allowing
from temoin.cli import main
sys.argv = ["temoin", "serve", "--port", sys.argv[1]]
main()
"""


def _serve(settings: Settings, port: int, log: Path) -> ServerProcess:
    """SERVE in its own process, answering. Every end here is a SIGKILL (a start that fails too: grace 0)."""
    server = ServerProcess(
        "the server",
        [sys.executable, "-c", SERVE, str(port)],
        env=base_env(settings, TEMOIN_BLOB_STORE_URL=settings.blob_store_url or ""),
        cwd=settings.home,
        log=log,
        url=f"http://127.0.0.1:{port}",
        grace_s=0,
    )
    server.wait_answering(60)
    return server


@pytest.mark.slow
@BOTH_STORES
def test_a_backup_cut_by_a_sigkill_is_recovered_at_the_next_start(platform: Platform, settings: Settings, tmp_path):
    commune = make_commune(platform, cameras=1)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    server = _serve(settings, port, log)
    try:

        async def story() -> tuple[str, float]:
            camera = publisher(url, commune)
            sid = (await camera.start(position=FIX)).session_id
            started = time.monotonic()
            # Streaming until the writer has checkpointed at least twice, then the server dies.
            while time.monotonic() - started < 3 * backup._Behind.CHECKPOINT_S:
                await asyncio.sleep(0.2)
            assert staged_artefacts(platform.store), "nothing of the backup reached the store while it streamed"
            streamed = time.monotonic() - started
            server.kill()
            await camera.aclose()
            return sid, streamed

        sid, streamed = asyncio.run(story())
    finally:
        server.kill()

    with platform.session() as db:
        s = db.get_one(LiveSession, sid)
        assert s.backup_file and s.backup_sha256 is None and not s.backup_cut_short
        name = s.backup_file
    key = artefact_blobs.key(name, backup.BACKUP_FILE)
    assert not platform.store.exists(key) and staged_artefacts(platform.store)  # unreadable until recovered

    _serve(settings, port, log).kill()  # the start-up recovers it before the server answers

    with platform.session() as db:
        s = db.get_one(LiveSession, sid)
        assert s.backup_cut_short and s.backup_sha256 and s.backup_bytes and s.backup_file == name
        assert sessions.view(s)["backup_cut_short"] is True  # what the CSU's sessions API says of it
        wrapped, sha256, size = s.backup_key, s.backup_sha256, s.backup_bytes
    assert artefact_keys(platform.store, name) == [key] and not staged_artefacts(platform.store)
    plain = b"".join(
        backup.read_backup(platform.store, platform.settings.home, name, platform.keyring.master_key, wrapped, sid)
    )
    assert len(plain) == size and hashlib.sha256(plain).hexdigest() == sha256
    frames = 0
    with av.open(io.BytesIO(plain)) as ts:
        assert sorted(st.codec_context.name for st in ts.streams) == ["h264", "opus"]
        for frame in ts.decode(video=0):
            assert frame.width > 16
            frames += 1
    (recovered,) = [e for e in entries(platform, commune.slug) if e["event"] == "live.backup_recovered"]
    details = recovered["details"]
    assert details["live_session"] == sid and details["bytes"] == size and details["sha256"] == sha256
    # Up to about the kill: at most one checkpoint's worth lost, and the media's start (ICE, first keyframe).
    assert streamed - backup._Behind.CHECKPOINT_S - 3 <= details["seconds"] <= streamed, (details, streamed)
    assert frames >= 10 * details["seconds"], frames  # the camera's 15 fps, give or take a loaded machine

    # Recovered once: the next start finds nothing left, journals nothing more.
    with platform.session():
        assert backup_recovery.recover(platform, at_start=True) == 0
    assert len([e for e in entries(platform, commune.slug) if e["event"] == "live.backup_recovered"]) == 1


@BOTH_STORES
def test_a_checkpointed_writer_leaves_all_it_was_given_to_another_process(platform: Platform, settings: Settings):
    """What a killed writer leaves after a checkpoint, as another process's store sees it: everything given before
    it, in records that authenticate; on S3 in chunks of at least 5 MiB (promotion stays server-side)."""
    data_key = crypto.new_data_key()
    key = artefact_blobs.key("live-backup/x/crashed.ts.sealed", backup.BACKUP_FILE)
    writer = artefact_blobs.SealedWriter(platform.store, key, data_key)
    given = os.urandom(6 * 1024 * 1024 + 12345)
    for start in range(0, len(given), 700_000):  # a checkpoint every 700 kB: short records, S3 chunks re-PUT
        writer.write(given[start : start + 700_000])
        writer.checkpoint()
    writer.write(b"LOST-AFTER-THE-LAST-CHECKPOINT")  # pending plaintext: a kill now loses it
    other = open_blob_store(
        settings.blob_store_url, settings.vault_dir
    )  # another process: nothing of this one's memory
    if hasattr(other, "bucket"):
        sizes = [size for _, size in other._chunks(key)[0]]
        assert len(sizes) == 2 and sizes[0] >= 5 * 1024 * 1024, sizes
    found = artefact_blobs.salvage(other, key, data_key)
    assert found == (hashlib.sha256(given).hexdigest(), len(given))
    assert b"".join(artefact_blobs.read(other, key, data_key)) == given
    assert not staged_artefacts(platform.store)
    # Damage past the last record (a record torn by the kill) is cut off, not kept.
    torn = artefact_blobs.key("live-backup/x/torn.ts.sealed", backup.BACKUP_FILE)
    w = artefact_blobs.SealedWriter(platform.store, torn, data_key)
    w.write(b"A" * 1000)
    w.checkpoint()
    platform.store.append_staged(torn, None, b"\x00\x00\x10\x00garbage")
    platform.store.checkpoint_staged(torn)
    platform.store.sync_staged(torn)
    assert artefact_blobs.salvage(open_blob_store(settings.blob_store_url, settings.vault_dir), torn, data_key) == (
        hashlib.sha256(b"A" * 1000).hexdigest(),
        1000,
    )
    assert b"".join(artefact_blobs.read(platform.store, torn, data_key)) == b"A" * 1000


def _left_staged(platform: Platform, commune, *, ended: bool) -> str:
    """A live session whose backup a server left staged (checkpointed, never promoted), as after a kill."""
    sid = f"live-{os.urandom(8).hex()}"
    data_key, wrapped = backup.new_key(platform.keyring.master_key, sid)
    name = backup.backup_name(commune.slug, sid)
    writer = artefact_blobs.SealedWriter(platform.store, artefact_blobs.key(name, backup.BACKUP_FILE), data_key)
    writer.write(b"\x47" * 188 * 100)
    writer.checkpoint()
    platform.store.sync_staged(writer.key)  # the writer's process is gone: no handle left open
    with platform.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == commune.slug))
        long_ago = utcnow() - timedelta(hours=1)
        db.add(
            LiveSession(
                id=sid,
                tenant_id=tenant.id,
                device_id=commune.cameras[0][0],
                reason="threat",
                state="ended" if ended else "streaming",
                requested_at=long_ago,
                ended_at=long_ago if ended else None,
                backup_file=name,
                backup_key=wrapped,
            )
        )
        db.commit()
    return sid


def test_with_several_nodes_only_backups_no_live_node_writes_are_recovered(platform: Platform, monkeypatch):
    """A lease held by another node, or staged bytes still moving, keep a backup staged; a lapsed lease (or an ended
    session with none) and bytes untouched for a while let it be recovered, by the periodic pass too."""
    commune = make_commune(platform, cameras=1)
    single = backup_recovery.recover(platform, at_start=False)
    assert single == 0  # one node: its periodic pass never touches them (its own streams may be writing)
    monkeypatch.setattr(
        platform,
        "settings",
        platform.settings.model_copy(update={"node_url": "http://127.0.0.1:9", "node_secret": "s" * 32}),
    )
    held, lapsed, ended = (_left_staged(platform, commune, ended=e) for e in (False, False, True))
    with platform.session() as db:
        now = utcnow()
        db.add(LiveMediaOwner(stream=held, node_url="http://127.0.0.1:8", expires_at=now + timedelta(minutes=5)))
        db.add(LiveMediaOwner(stream=lapsed, node_url="http://127.0.0.1:8", expires_at=now - timedelta(seconds=5)))
        db.commit()
    assert backup_recovery.recover(platform, at_start=False) == 0  # bytes written just now: maybe still moving
    monkeypatch.setattr(backup_recovery, "STALE_S", -60.0)  # as if untouched for a while
    assert backup_recovery.recover(platform, at_start=False) == 2
    with platform.session() as db:
        cut = {s.id: s.backup_cut_short for s in db.scalars(select(LiveSession))}
    assert cut == {held: False, lapsed: True, ended: True}
    assert backup_recovery.recover(platform, at_start=True) == 0  # another node's lease holds, even at a start
