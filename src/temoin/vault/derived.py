"""What is made from a recording besides its own blobs (kept in the blob store too: vault.artefact_blobs), and goes
with it (L241-2, R241-13: the images are deleted, not only the original): access copies (the face thumbnails, the
face tracks and the redacted copy), server-side backups of a live feed of the same camera at the same time, and
extraction packages.

No registry table: each kind is found from the rows that already name its recording, so nothing made later can
be forgotten in a registry. The kinds are owned by the packages that make them (rights.artefacts, live.artefacts,
extraction.artefacts) and registered by the platform. Deletion is two-step like the vault's: keys and paths are
cleared in the deleting transaction (with the certificate), the files are removed once it commits; files a crash
leaves behind are found again by `remove_orphans`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy.orm import Session

from temoin.vault import artefact_blobs
from temoin.vault.context import VaultContext

ORPHAN_AGE_S = 3600  # a file younger than this may belong to a row not committed yet (a package being recorded)
ACCESS_COPY, LIVE_BACKUP, EXTRACTION_PACKAGE = "access_copy", "live_backup", "extraction_package"


@dataclass(frozen=True)
class Artefact:
    kind: str
    id: str
    paths: tuple[str, ...]  # names (vault.artefact_blobs): removed from the store, and from TEMOIN_HOME if made before
    what: tuple[str, ...]  # in words, for the certificate
    sha256: str | None = None

    def describe(self) -> dict[str, Any]:
        return {"kind": self.kind, "id": self.id, "what": list(self.what), "sha256": self.sha256}


class ArtefactKind(Protocol):
    """One kind of artefact, owned by the package above the vault that makes it (rights, live, extraction).

    The vault cannot import those packages (they import the vault): each registers its kind, and the platform
    (temoin.platform, the composition root) registers them all before anything is opened."""

    kind: str

    def of_recordings(self, p: VaultContext, db: Session, rows: Sequence[Any]) -> Iterable[tuple[str, Artefact]]:
        """(recording id, artefact) for each artefact still present made from these recordings."""
        ...

    def clear(self, db: Session, artefact: Artefact, now: datetime, reason: str) -> bool:
        """Clear its key and path in the caller's transaction; False when it was cleared already."""
        ...

    def stale_files(self, p: VaultContext, db: Session, older_than: float) -> list[str]:
        """Its artefacts' names (in the store, or under TEMOIN_HOME if made before) older than `older_than` (a
        time.time()) that no row points to."""
        ...

    def expire(self, p: VaultContext, db: Session, now: datetime) -> int:
        """Remove those past their own period (journaled, committed); how many. 0 for kinds that have none."""
        ...


_KINDS: dict[str, ArtefactKind] = {}


def register(kind: ArtefactKind) -> None:
    _KINDS[kind.kind] = kind


def _kinds() -> list[ArtefactKind]:
    if not _KINDS:  # deleting a recording without its copies would break R241-13: refuse rather than forget them
        raise RuntimeError("no kind of derived artefact is registered: open the platform (temoin.platform) first")
    return list(_KINDS.values())


def of_recordings(p: VaultContext, db: Session, rows: Sequence[Any]) -> dict[str, list[Artefact]]:
    """Every artefact still present that was made from these recordings (rows with id, tenant_id, device_id,
    started_at, ended_at), by recording id."""
    out: dict[str, list[Artefact]] = {r.id: [] for r in rows}
    for kind in _kinds():
        for rid, artefact in kind.of_recordings(p, db, rows):
            out[rid].append(artefact)
    return out


def destroy(db: Session, artefacts: Iterable[Artefact], now: datetime, reason: str) -> list[str]:
    """Clear keys and paths of these artefacts in the caller's transaction; returns the paths to remove once it
    commits. A sealed copy or backup is unreadable from here on (its data key is gone)."""
    paths: list[str] = []
    for a in artefacts:
        if _KINDS[a.kind].clear(db, a, now, reason):
            paths.extend(a.paths)
    return paths


def remove_files(p: VaultContext, paths: Iterable[str]) -> int:
    """Remove these artefacts (after the commit that cleared them), from the blob store and, for those made before
    artefacts went to the store, from under TEMOIN_HOME. Returns how many files or folders went."""
    return artefact_blobs.remove(p.store, p.settings.home, paths)


def expire(p: VaultContext, db: Session, now: datetime) -> dict[str, int]:
    """Artefacts past their own period (live backups: the recordings' period), by kind: how many went."""
    return {kind.kind: kind.expire(p, db, now) for kind in _kinds()}


def remove_orphans(p: VaultContext, db: Session) -> int:
    """Files of artefacts already cleared (a deletion killed after its commit, a job that finished after its
    recording was deleted): access copy folders, live backups and packages that no row points to any more."""
    old = time.time() - ORPHAN_AGE_S
    return remove_files(p, [path for kind in _kinds() for path in kind.stale_files(p, db, old)])
