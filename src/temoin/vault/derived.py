"""What is made from a recording outside the vault's blobs, and goes with it (L241-2, R241-13: the images are
deleted, not only the original): access copies (the face thumbnails, the face tracks and the redacted copy),
server-side backups of a live feed of the same camera at the same time, and extraction packages.

No registry table: each kind is found from the rows that already name its recording, so nothing made later can
be forgotten in a registry. Deletion is two-step like the vault's: keys and paths are cleared in the deleting
transaction (with the certificate), the files are removed once it commits; files a crash leaves behind are
found again by `remove_orphans`.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from temoin.evidence.models import Extraction
from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.profiles import get_profile
from temoin.live.models import LiveSession
from temoin.rights.models import CopyState, RedactedCopy
from temoin.vault.context import VaultContext
from temoin.vault.models import Recording, RecordingState

ORPHAN_AGE_S = 3600  # a file younger than this may belong to a row not committed yet (a package being recorded)
ACCESS_COPY, LIVE_BACKUP, EXTRACTION_PACKAGE = "access_copy", "live_backup", "extraction_package"
COPY_FILES = {"thumbnails.sealed": "face thumbnails", "tracks.sealed": "face tracks", "copy.sealed": "redacted copy"}


@dataclass(frozen=True)
class Artefact:
    kind: str
    id: str
    paths: tuple[str, ...]  # relative to TEMOIN_HOME: what is removed from the disk
    what: tuple[str, ...]  # in words, for the certificate
    sha256: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "what": list(self.what), "sha256": self.sha256}


def _copy_artefact(home: Path, copy: RedactedCopy) -> Artefact:
    folder = Path("rights") / (copy.folder or f"missing-copy-{copy.id}")
    present = [name for name in COPY_FILES if (home / folder / name).exists()]
    return Artefact(ACCESS_COPY, str(copy.id), (str(folder),), tuple(COPY_FILES[n] for n in present), copy.sha256)


def _overlaps(rec: Any):  # noqa: ANN202 - a SQL condition
    return (LiveSession.tenant_id == rec.tenant_id) & (LiveSession.device_id == rec.device_id) \
        & (LiveSession.requested_at <= rec.ended_at) \
        & or_(LiveSession.ended_at.is_(None), LiveSession.ended_at >= rec.started_at)


def of_recordings(p: VaultContext, db: Session, rows: Sequence[Any]) -> dict[str, list[Artefact]]:
    """Every artefact still present that was made from these recordings (rows with id, tenant_id, device_id,
    started_at, ended_at), by recording id."""
    home = p.settings.home
    ids = [r.id for r in rows]
    out: dict[str, list[Artefact]] = {rid: [] for rid in ids}
    for copy in db.scalars(select(RedactedCopy).where(RedactedCopy.recording_id.in_(ids),
                                                      RedactedCopy.state != CopyState.DELETED.value)
                           .order_by(RedactedCopy.id)):
        out[copy.recording_id].append(_copy_artefact(home, copy))
    for rec in rows:
        for s in db.scalars(select(LiveSession).where(_overlaps(rec), LiveSession.backup_file.is_not(None))
                            .order_by(LiveSession.requested_at)):
            out[rec.id].append(Artefact(LIVE_BACKUP, s.id, (s.backup_file,), ("live backup",), s.backup_sha256))
    wanted = set(ids)
    tenants = {r.tenant_id for r in rows}
    for ext in db.scalars(select(Extraction).where(Extraction.tenant_id.in_(tenants),
                                                   Extraction.package_path.is_not(None)).order_by(Extraction.id)):
        for rid in wanted.intersection(ext.recording_ids or []):
            out[rid].append(Artefact(EXTRACTION_PACKAGE, ext.id, (ext.package_path,), (f"{ext.media_kind} package",),
                                     ext.package_sha256))
    return out


def destroy(db: Session, artefacts: Iterable[Artefact], now: datetime, reason: str) -> list[str]:
    """Clear keys and paths of these artefacts in the caller's transaction; returns the paths to remove once it
    commits. A sealed copy or backup is unreadable from here on (its data key is gone)."""
    paths: list[str] = []
    for a in artefacts:
        if a.kind == ACCESS_COPY:
            copy = db.get(RedactedCopy, int(a.id))
            if copy.state == CopyState.DELETED.value:
                continue
            copy.state, copy.data_key = CopyState.DELETED.value, None
            copy.error = f"deleted with its recording ({reason}) on {now:%Y-%m-%d}"
        elif a.kind == LIVE_BACKUP:
            s = db.get(LiveSession, a.id)
            if s.backup_file is None:
                continue
            s.backup_key, s.backup_file = None, None  # the hash and size stay, as proof of what was there
        elif a.kind == EXTRACTION_PACKAGE:
            ext = db.get(Extraction, a.id)
            if ext.package_path is None:
                continue
            ext.package_path, ext.package_deleted_at = None, now
        paths.extend(a.paths)
    return paths


def remove_files(p: VaultContext, paths: Iterable[str]) -> int:
    """Remove these files or folders under TEMOIN_HOME (after the commit that cleared them). Returns how many."""
    home = p.settings.home.resolve()
    removed = 0
    for rel in paths:
        path = (home / rel).resolve()
        if home not in path.parents:  # never outside TEMOIN_HOME, whatever a row says
            continue
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
            removed += 1
        elif path.exists():
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def expired_live_backups(p: VaultContext, db: Session, now: datetime) -> int:
    """Live backups are personal data under the same period as recordings: one whose period is over goes, unless a
    recording of the same camera and time is still kept (by a hold: the backup goes with it later). Journaled."""
    gone: list[tuple[LiveSession, str]] = []
    tenants = {t.id: t for t in db.scalars(select(Tenant))}
    for s in db.scalars(select(LiveSession).where(LiveSession.backup_file.is_not(None))):
        tenant = tenants[s.tenant_id]
        if get_profile(tenant.profile).retention.deadline(s.requested_at) > now:
            continue
        kept = db.scalar(select(Recording.id).where(
            Recording.tenant_id == s.tenant_id, Recording.device_id == s.device_id,
            Recording.state != RecordingState.DELETED, Recording.started_at <= (s.ended_at or now),
            Recording.ended_at >= s.requested_at).limit(1))
        if kept is None:
            gone.append((s, s.backup_file))
    for s, path in gone:
        p.record(db, EntryDraft(action=Action.ERASURE, event="live.backup_deleted", actor=Actor.system("retention"),
                                cameras=[s.device_id], details={"live_session": s.id, "file": path,
                                                                "sha256": s.backup_sha256, "reason": "retention"}),
                 tenants[s.tenant_id])
        s.backup_key, s.backup_file = None, None
    db.commit()
    return remove_files(p, [path for _, path in gone])


def remove_orphans(p: VaultContext, db: Session) -> int:
    """Files of artefacts already cleared (a deletion killed after its commit, a job that finished after its
    recording was deleted): access copy folders, live backups and packages that no row points to any more."""
    home = p.settings.home
    stale: list[str] = []
    old = time.time() - ORPHAN_AGE_S
    root = home / "rights"
    live = {row[0] for row in db.execute(select(RedactedCopy.folder).where(
        RedactedCopy.state != CopyState.DELETED.value, RedactedCopy.folder.is_not(None)))}
    for folder in sorted(root.glob("*/copy-*")) if root.exists() else []:
        if str(folder.relative_to(root)) not in live and folder.stat().st_mtime < old:
            stale.append(str(folder.relative_to(home)))
    backups = set(db.scalars(select(LiveSession.backup_file).where(LiveSession.backup_file.is_not(None))))
    for path in sorted(p.settings.live_backup_dir.glob("*/*.sealed")) if p.settings.live_backup_dir.exists() else []:
        if str(path.relative_to(home)) not in backups and path.stat().st_mtime < old:
            stale.append(str(path.relative_to(home)))
    packages = set(db.scalars(select(Extraction.package_path).where(Extraction.package_path.is_not(None))))
    for path in sorted((home / "extractions").glob("*/*.zip")) if (home / "extractions").exists() else []:
        if str(path.relative_to(home)) not in packages and path.stat().st_mtime < old:
            stale.append(str(path.relative_to(home)))
    return remove_files(p, stale)
