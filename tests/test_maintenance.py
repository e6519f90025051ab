"""One periodic pass: what the server's scheduler does on its own, `temoin maintenance run` does when asked,
duty for duty (retention, journal prune, expired extraction packages, seal)."""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, update
from typer.testing import CliRunner

from temoin import maintenance
from temoin.cli import app as cli_app
from temoin.db import utcnow
from temoin.identity.models import DeviceNonce
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.journal.models import JournalCheckpoint, JournalHead
from temoin.vault.models import Recording, RecordingState
from tests.helpers import make_commune, upload


def _due_work(platform, client, commune, tag: str) -> tuple[str, Path]:
    """One piece of work for each duty: a recording past its retention, journal entries past the journal's
    retention, an extraction package past its pick-up time; the chain moves, so a seal is due."""
    from temoin.extraction.models import Extraction
    from temoin.identity.models import User

    rid, _ = upload(platform, client, commune, duration_s=1, segment_s=1)
    package = platform.settings.home / "extractions" / f"{tag}.zip"
    package.parent.mkdir(parents=True, exist_ok=True)
    package.write_bytes(b"PK plaintext copy")
    old = utcnow() - timedelta(days=4 * 366)
    with platform.session() as db:
        tenant = platform.tenant(db, commune.slug)
        db.execute(update(Recording).where(Recording.id == rid).values(retention_until=utcnow() - timedelta(days=1)))
        for n in range(2):
            platform.journal.write(
                db,
                EntryDraft(
                    action=Action.MODIFICATION, event=f"test.old_{tag}", actor=Actor.system("test"), details={"n": n}
                ),
                tenant_id=tenant.id,
                tenant_slug=tenant.slug,
                at=old + timedelta(hours=n),
            )
        chief = db.scalar(select(User).where(User.tenant_id == tenant.id).limit(1))
        db.add(
            Extraction(
                id=f"ext-{tag}",
                tenant_id=tenant.id,
                created_by=chief.id,
                recipient_name="OPJ",
                recipient_kind="judicial",
                procedure_type="judicial",
                reference="PV 1",
                recording_ids=[],
                media_kind="original",
                package_path=f"extractions/{tag}.zip",
                package_sha256="0" * 64,
                package_bytes=17,
                sums_sha256="0" * 64,
                expires_at=utcnow() - timedelta(days=1),
            )
        )
        # A camera request nonce past any replay window (twice the clock window), and one still within it.
        device_id = commune.cameras[0][0]
        db.add(DeviceNonce(device_id=device_id, nonce=f"old-{tag}", at=utcnow() - timedelta(hours=1)))
        db.add(DeviceNonce(device_id=device_id, nonce=f"new-{tag}", at=utcnow()))
        db.commit()
    return rid, package


def _duties_done(platform, commune, rid: str, package: Path, prunes_before: int) -> dict[str, bool]:
    with platform.session() as db:
        recording = db.get(Recording, rid)
        checkpoints = db.scalars(select(JournalCheckpoint).where(JournalCheckpoint.chain == commune.slug)).all()
        head = db.get(JournalHead, commune.slug)
        seals = [cp.seq for cp in checkpoints if cp.kind == "seal"]
        nonces = set(db.scalars(select(DeviceNonce.nonce).where(DeviceNonce.nonce.like("%-" + package.stem))))
        return {
            "old nonces forgotten": nonces == {f"new-{package.stem}"},
            "recording deleted": recording.state == RecordingState.DELETED,
            "journal pruned": sum(cp.kind == "prune" for cp in checkpoints) > prunes_before,
            "package deleted": not package.exists(),
            "journal sealed": bool(seals) and max(seals) == head.seq,
        }


def _prunes(platform, commune) -> int:
    with platform.session() as db:
        return len(
            db.scalars(
                select(JournalCheckpoint).where(
                    JournalCheckpoint.chain == commune.slug, JournalCheckpoint.kind == "prune"
                )
            ).all()
        )


class _Stop(Exception):
    pass


def test_maintenance_run_does_every_duty_of_the_servers_pass(platform, client, settings, monkeypatch):
    from temoin.web import app as web_app

    commune = make_commune(platform, cameras=1)
    calls: list[str] = []
    real = maintenance.periodic_pass

    def spy(*args, **kwargs):
        calls.append("pass")
        return real(*args, **kwargs)

    monkeypatch.setattr(maintenance, "periodic_pass", spy)

    # The server's scheduler, one turn: stopped where it would wait for the next interval.
    rid, package = _due_work(platform, client, commune, "server")
    before = _prunes(platform, commune)

    async def stop(_seconds: float) -> None:
        raise _Stop

    with monkeypatch.context() as patched, pytest.raises(_Stop):
        patched.setattr(web_app.asyncio, "sleep", stop)
        asyncio.run(web_app._retention_loop(platform))
    server = _duties_done(platform, commune, rid, package, before)
    assert all(server.values()), server
    assert calls == ["pass"]

    # The command, on the same kind of work.
    rid, package = _due_work(platform, client, commune, "cli")
    before = _prunes(platform, commune)
    assert not any(_duties_done(platform, commune, rid, package, before).values())
    env = {"TEMOIN_HOME": str(settings.home), "TEMOIN_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    result = CliRunner().invoke(cli_app, ["maintenance", "run"], env=env)
    assert result.exit_code == 0, result.output
    assert _duties_done(platform, commune, rid, package, before) == server
    assert calls == ["pass", "pass"]  # the very function the scheduler runs
    assert "retention: 1 recordings deleted" in result.output
    assert int(re.search(r"journal: (\d+) entries pruned", result.output)[1]) >= 2  # the old ones, and before
    assert "extractions: 1 expired packages deleted" in result.output
    assert "1 chains sealed" in result.output

    # `temoin retention run` still runs that pass.
    result = CliRunner().invoke(cli_app, ["retention", "run"], env=env)
    assert result.exit_code == 0, result.output
    assert calls == ["pass", "pass", "pass"]
    assert "0 recordings deleted" in result.output and "0 expired extraction packages deleted" in result.output
