"""Scrub: re-read every stored blob, decrypt it and re-hash it against the signed manifest.

Reports each problem precisely: which recording, which segment, what is wrong, where.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import jobs
from temoin.coordination import locks_for
from temoin.evidence import crypto
from temoin.evidence.chain import chain_links
from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.vault.context import VaultContext
from temoin.vault.models import Recording, RecordingState
from temoin.vault.receipts import declared_lost
from temoin.vault.storage import BlobMissing, blob_key


@dataclass(frozen=True)
class Corruption:
    recording_id: str
    segment: int | None
    message: str

    def __str__(self) -> str:
        where = f"segment {self.segment}" if self.segment is not None else "recording"
        return f"{self.recording_id} {where}: {self.message}"


@dataclass
class ScrubResult:
    recordings: int = 0
    segments: int = 0
    bytes: int = 0
    lost: int = 0  # segments declared lost at the camera: never stored, so not read
    problems: list[Corruption] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_recording(p: VaultContext, rec: Recording, tenant_slug: str) -> tuple[list[Corruption], int]:
    problems: list[Corruption] = []
    checked = 0
    try:
        data_key = crypto.unwrap_key(p.keyring.master_key, rec.wrapped_key or b"", rec.id)
    except crypto.IntegrityError as exc:
        return [Corruption(rec.id, None, str(exc))], 0
    links = chain_links(rec.id, (bytes.fromhex(s.sha256) for s in rec.segments))
    if not links or links[-1].hex() != rec.chain_head:
        problems.append(Corruption(rec.id, None, "catalogued segment hashes do not chain to the signed head"))
    declared = set(declared_lost(rec))
    for seg in rec.segments:
        if not seg.complete:  # lost on the camera before hand-over (named in the receipt): never stored
            if seg.index not in declared:
                problems.append(
                    Corruption(
                        rec.id,
                        seg.index,
                        "not in the vault, and the signed receipt does not declare it lost at the camera",
                    )
                )
            continue
        hasher, size = hashlib.sha256(), 0
        try:
            with p.store.open(blob_key(tenant_slug, rec.id, seg.index)) as fh:
                for plain in crypto.open_records(fh, data_key):
                    hasher.update(plain)
                    size += len(plain)
        except BlobMissing:
            problems.append(Corruption(rec.id, seg.index, "blob missing from the store"))
            continue
        except crypto.IntegrityError as exc:
            problems.append(Corruption(rec.id, seg.index, str(exc)))
            continue
        checked += size
        if size != seg.size:
            problems.append(Corruption(rec.id, seg.index, f"holds {size} bytes, the manifest says {seg.size}"))
        elif hasher.hexdigest() != seg.sha256:
            problems.append(
                Corruption(rec.id, seg.index, f"SHA-256 {hasher.hexdigest()} differs from the manifest's {seg.sha256}")
            )
    return problems, checked


def scrub(p: VaultContext, db: Session, progress: Callable[[int, int], None] | None = None) -> ScrubResult:
    """Check every stored recording; one scrub at a time across nodes (each corruption journaled once)."""
    with locks_for(db).held("vault.scrub"):
        return _scrub(p, db, progress)


def _scrub(p: VaultContext, db: Session, progress: Callable[[int, int], None] | None) -> ScrubResult:
    result = ScrubResult()
    slugs = {tid: slug for tid, slug in db.execute(select(Tenant.id, Tenant.slug))}
    ids = list(db.scalars(select(Recording.id).where(Recording.state == RecordingState.STORED).order_by(Recording.id)))
    for n, rid in enumerate(ids, start=1):
        rec = db.get(Recording, rid)
        if rec is None or rec.state != RecordingState.STORED:
            continue  # deleted by retention meanwhile
        problems, checked = check_recording(p, rec, slugs[rec.tenant_id])
        result.recordings += 1
        stored = sum(1 for s in rec.segments if s.complete)
        result.segments += stored
        result.lost += rec.segment_count - stored
        result.bytes += checked
        result.problems += problems
        db.expunge(rec)
        if progress:
            progress(n, len(ids))
    by_tenant: dict[int, list[Corruption]] = {}
    for problem in result.problems:
        rec = db.get_one(Recording, problem.recording_id)
        by_tenant.setdefault(rec.tenant_id, []).append(problem)
    for tenant_id, problems in by_tenant.items():
        p.record(
            db,
            EntryDraft(
                action=Action.SECURITY,
                event="vault.corruption",
                actor=Actor.system("scrub"),
                recordings=sorted({c.recording_id for c in problems}),
                details={"problems": [str(c) for c in problems[:100]]},
            ),
            db.get_one(Tenant, tenant_id),
        )
    db.commit()
    return result


SCRUB_JOB = "vault.scrub"


def _scrub_job(p: VaultContext, run: jobs.Run, args: dict) -> dict:
    """The scrub as a job (`temoin vault scrub --queue`): read-only until its one closing transaction, so an
    attempt after a killed one starts again from the first recording."""
    with p.session() as db:
        result = scrub(p, db, progress=run.progress)
    return {
        "recordings": result.recordings,
        "segments": result.segments,
        "bytes": result.bytes,
        "lost": result.lost,
        "problems": [str(c) for c in result.problems[:100]],
    }


jobs.register(SCRUB_JOB, _scrub_job)
