"""Live backups a dead server left staged (SIGKILL, power cut mid-stream): cut to their last authenticated record,
promoted, their row marked cut short and the recovery journaled once, so they play and expire like any backup.

Never one a live node is still writing. One node does it at a time (a coordination lock). Which backups are left:
- at a server's start-up with one node (TEMOIN_NODE_URL unset: one process records every stream, on SQLite or
  PostgreSQL): every backup not stored, since this process has not started any yet;
- with several nodes (at start-up and in every periodic pass): a backup whose stream no other node holds a lease on
  (`live_media_owners`: lapsed, or none and the session ended a while ago), and whose staged bytes have not moved
  for STALE_S (a node cut from the database past its lease may still be writing: its checkpoints show it).
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.evidence.crypto import unwrap_key
from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.live import backup
from temoin.live.models import LiveMediaOwner, LiveSession
from temoin.vault import artefact_blobs
from temoin.vault.context import VaultContext

log = logging.getLogger("temoin.live")
LOCK = "live.backup-recovery"
STALE_S = 30.0  # several nodes: staged bytes untouched this long (a writer checkpoints every few seconds)
ENDED_GRACE = timedelta(minutes=5)  # several nodes, no lease: the owner had this long to promote it itself


def recover(p: VaultContext, *, at_start: bool) -> int:
    """Recover the backups dead servers left staged (see the module's doc); returns how many were recovered. The
    caller holds the coordination lock LOCK (one node at a time)."""
    several = bool(p.settings.node_url)
    if not at_start and not several:
        return 0  # one node: this process may be writing any of them; its next start recovers what it leaves
    with p.session() as db:
        left = list(
            db.scalars(
                select(LiveSession).where(
                    LiveSession.backup_file.is_not(None),
                    LiveSession.backup_key.is_not(None),
                    LiveSession.backup_sha256.is_(None),
                )
            )
        )
        done = 0
        for s in left:
            try:
                if not several or _abandoned(p, db, s, at_start):
                    done += _recover_one(p, db, s)
            except Exception:  # one backup that cannot be read now must not stop the others, nor the start-up
                db.rollback()
                log.exception("live backup %s could not be recovered; the next pass tries again", s.backup_file)
        return done


def _abandoned(p: VaultContext, db: Session, s: LiveSession, at_start: bool) -> bool:
    now = utcnow()
    lease = db.get(LiveMediaOwner, s.id)
    if lease is not None and lease.expires_at > now and not (at_start and lease.node_url == p.settings.node_url):
        return False  # a node holds the stream (this node's own lease at its start-up is its dead predecessor's)
    if lease is None and (s.ended_at is None or s.ended_at > now - ENDED_GRACE):
        return False
    assert s.backup_file is not None, "selected with backup_file IS NOT NULL"
    prefix = artefact_blobs.prefix(s.backup_file) + "/"
    newest = max((mtime for _, mtime in p.store.listing(prefix)), default=0.0)
    return newest < time.time() - STALE_S


def _recover_one(p: VaultContext, db: Session, s: LiveSession) -> int:
    assert s.backup_file is not None and s.backup_key is not None, "selected with both set"
    name = s.backup_file
    data_key = unwrap_key(p.keyring.master_key, s.backup_key, f"live:{s.id}")
    found = backup.salvage(p.store, name, data_key)
    if found is None and (p.settings.home / name).is_file():
        return 0  # made before backups went to the blob store: its partial file is read from TEMOIN_HOME as it was
    sha256, size, seconds = found if found is not None else (None, 0, None)
    s.backup_sha256, s.backup_bytes, s.backup_cut_short = sha256, size, True
    if not size:  # nothing received, or nothing that authenticates: no backup to read
        s.backup_file, s.backup_key = None, None
    p.record(
        db,
        EntryDraft(
            action=Action.COLLECTION,
            event="live.backup_recovered",
            actor=Actor.system("live"),
            cameras=[s.device_id],
            details={
                "live_session": s.id,
                "file": name if size else None,
                "sha256": sha256,
                "bytes": size,
                "seconds": seconds,
                "reason": "the server recording it stopped mid-stream; kept up to its last complete record",
            },
        ),
        db.get_one(Tenant, s.tenant_id),
    )
    db.commit()
    log.warning("live backup %s recovered after a crash: %d bytes, %s s", name, size, seconds)
    return 1
