"""The platform's periodic duties, in one place: `periodic_pass` is what the server's scheduler (or, with
TEMOIN_JOBS=postgresql, one `temoin worker` of the cluster) runs every TEMOIN_RETENTION_INTERVAL_S, and what
`temoin maintenance run` (and `temoin retention run`) run once.

One pass: delete the recordings whose retention is over (and the live backups past theirs), prune journal
entries past the journal's retention (behind a signed checkpoint), delete extraction packages past their
pick-up time (and the rows of background jobs finished a week ago), then seal the journal and send the
checkpoints to the witness. Sealing alone also runs every TEMOIN_JOURNAL_SEAL_INTERVAL_S in the server (or a
worker), so no stretch of the journal stays unsealed long.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from temoin import jobs
from temoin.coordination import locks_for
from temoin.db import utcnow
from temoin.extraction.package import purge_expired
from temoin.identity.devices import purge_nonces
from temoin.identity.models import Tenant
from temoin.journal.checkpoints import prune, seal
from temoin.journal.repair import ChainRepair, repair
from temoin.journal.witness import WitnessUnreachable, flush, pending
from temoin.law.profiles import get_profile
from temoin.live import backup_recovery
from temoin.platform import Platform
from temoin.vault import retention

log = logging.getLogger("temoin.maintenance")
PERIODIC_LOCK = "maintenance.periodic-pass"
SEAL_LOCK = "journal.seal"
REPAIR_LOCK = "journal.repair"


@dataclass
class Sealing:
    chains: int  # chains sealed
    witnessed: int | None  # checkpoints delivered to the witness; None: no witness configured
    waiting: int = 0  # checkpoints the witness has not had yet (it was unreachable)


@dataclass
class PassReport:
    """What one periodic pass did."""

    sweep: retention.SweepResult  # recordings deleted or kept by a hold, live backups expired, blobs removed
    journal_pruned: int  # journal entries past the journal's retention, removed behind a prune checkpoint
    packages_purged: int  # extraction packages deleted at the end of their pick-up time
    sealing: Sealing
    nonces_purged: int = 0  # camera request nonces past any replay window
    jobs_purged: int = 0  # rows of background jobs finished more than jobs.KEEP_FINISHED_DAYS ago


def periodic_pass(
    p: Platform,
    now: datetime | None = None,
    *,
    orphans: bool = True,
    progress: Callable[[int, int], None] | None = None,
) -> PassReport:
    """The server's periodic pass, once. `orphans`: also look through the whole blob store for what a killed
    sweep left (slow on a large vault: the server does it at start-up, then daily)."""
    # One pass at a time across nodes: each due recording deleted once, each prune checkpoint written once. A node
    # that finds a pass under way waits for it, then finds nothing left to do.
    with locks_for(p.engine).held(PERIODIC_LOCK):
        return _periodic_pass(p, now or utcnow(), orphans, progress)


def _periodic_pass(
    p: Platform, now: datetime, orphans: bool, progress: Callable[[int, int], None] | None
) -> PassReport:
    _recover_backups(p, at_start=False)  # several nodes: what a dead node left staged
    with p.session() as db:
        result = retention.sweep(p, db, now, orphans=orphans, progress=progress)
        pruned = 0
        for tenant in db.scalars(select(Tenant)).all():
            pruned += prune(db, p.journal.sink, p.keyring, tenant.slug, get_profile(tenant.profile).journal_cutoff(now))
        purged = purge_expired(p, db, now)  # extraction packages are plaintext copies: kept only for their pick-up time
        nonces = purge_nonces(p, db, now)
        jobs_purged = jobs.purge_finished(db, now)
        db.commit()
    return PassReport(result, pruned, purged, seal_journal(p), nonces, jobs_purged)


def seal_journal(p: Platform) -> Sealing:
    """Seal every chain whose head moved, then send the witness what it has not had yet (one node at a time: each
    head sealed once)."""
    with locks_for(p.engine).held(SEAL_LOCK), p.session() as db:
        sealed = seal(db, p.journal.sink, p.keyring, p.timestamper)
        if p.witness is None:
            return Sealing(sealed, None)
        try:
            return Sealing(sealed, flush(db, p.witness))
        except WitnessUnreachable as exc:
            db.rollback()
            waiting = pending(db, p.witness)
            # Kept locally and sent by the next pass; the platform goes on.
            log.warning("%s; %d checkpoints kept to send later", exc, waiting)
            return Sealing(sealed, 0, waiting)


def register_duties(p: Platform) -> None:
    """The periodic duties, for the workers (TEMOIN_JOBS=postgresql): each runs once per period for the whole
    cluster; the pass and the daily orphan scan share a lock, so never two at once."""
    interval = p.settings.retention_interval_s
    jobs.register_periodic("periodic_pass", interval, lambda q: periodic_pass(q, orphans=False), lock="periodic_pass")
    jobs.register_periodic("orphan_scan", 86400, lambda q: periodic_pass(q, orphans=True), lock="periodic_pass")
    jobs.register_periodic("journal_seal", max(1.0, p.settings.journal_seal_interval_s), seal_journal)


def certify_keys(p: Platform) -> None:
    """Camera keys carried over by migration 0012 get their platform certificate (journaled)."""
    from temoin.identity.devices import certify_uncertified

    with p.session() as db:
        certify_uncertified(p, db)


def _recover_backups(p: Platform, *, at_start: bool) -> None:
    try:
        with locks_for(p.engine).held(backup_recovery.LOCK):
            backup_recovery.recover(p, at_start=at_start)
    except Exception:  # the store or the database failing now: the next pass (or start) tries again
        log.exception("live backups left by a crash not recovered this time")


def start_up(p: Platform) -> list[ChainRepair]:
    """The server's start-up: certify camera keys that have no certificate yet (those carried over by
    migration 0012), fail the in-process jobs the last stop cut short, bring the journal file level with the
    database (journaled), recover the live backups a killed server left staged (journaled), then seal."""
    certify_keys(p)
    lost = jobs.fail_unfinished_inline(p)
    if lost:
        log.warning("%d background jobs were cut short by the last stop: marked failed (ask for them again)", lost)
    # Nodes starting together on one journal folder: one repairs, the next finds the file level.
    with locks_for(p.engine).held(REPAIR_LOCK), p.session() as db:
        repairs = repair(db, p.journal, trigger="server start-up")
    for r in repairs:
        if r.changed:
            log.warning(
                "journal %s: file repaired at start-up (%d entries appended from %s, %d put back in the "
                "middle, %d checkpoints, %d interrupted writes removed)",
                r.chain,
                r.appended,
                r.from_seq,
                r.gaps_filled,
                r.checkpoints_appended,
                len(r.interrupted),
            )
        if r.refused:
            log.error("journal %s: file not repaired: %s", r.chain, r.refused)
    # Live backups a killed server left staged: readable again (before this node records any of its own).
    _recover_backups(p, at_start=True)
    seal_journal(p)
    return repairs
