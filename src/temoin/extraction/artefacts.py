"""Extraction packages as artefacts of their recordings (vault.derived): a package goes with the originals."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.extraction.models import Extraction
from temoin.vault import artefact_blobs
from temoin.vault.context import VaultContext
from temoin.vault.derived import EXTRACTION_PACKAGE, Artefact


class Packages:
    kind = EXTRACTION_PACKAGE

    def of_recordings(self, p: VaultContext, db: Session, rows: Sequence[Any]) -> Iterable[tuple[str, Artefact]]:
        wanted = {r.id for r in rows}
        tenants = {r.tenant_id for r in rows}
        for ext in db.scalars(
            select(Extraction)
            .where(Extraction.tenant_id.in_(tenants), Extraction.package_path.is_not(None))
            .order_by(Extraction.id)
        ):
            assert ext.package_path is not None, "selected with package_path IS NOT NULL"
            for rid in wanted.intersection(ext.recording_ids or []):
                yield (
                    rid,
                    Artefact(
                        EXTRACTION_PACKAGE,
                        ext.id,
                        (ext.package_path,),
                        (f"{ext.media_kind} package",),
                        ext.package_sha256,
                    ),
                )

    def clear(self, db: Session, artefact: Artefact, now: datetime, reason: str) -> bool:
        ext = db.get_one(Extraction, artefact.id)  # the artefact was listed from this row
        if ext.package_path is None:
            return False
        ext.package_path, ext.package_key, ext.package_deleted_at = None, None, now
        return True

    def stale_files(self, p: VaultContext, db: Session, older_than: float) -> list[str]:
        packages = set(db.scalars(select(Extraction.package_path).where(Extraction.package_path.is_not(None))))
        found = artefact_blobs.names_older_than(p.store, p.settings.home, "extractions", "*/*.zip", older_than)
        return sorted(found - packages)

    def expire(self, p: VaultContext, db: Session, now: datetime) -> int:
        return 0  # packages have their own pick-up period: extraction.package.purge_expired, run by maintenance


PACKAGES = Packages()
