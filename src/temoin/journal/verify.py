"""Verifying the journal: each sink on its own, then the two against each other.

Finds and names an altered, deleted, inserted or reordered entry. An attacker who rewrites one
sink and recomputes its hashes is caught by the other sink and by the platform-signed checkpoints.
Checkpoints are chained to each other (a removed one is named) and, given the witness's log, compared
with what the witness received. For each chain the report says what the last seal covers and what
is not sealed yet. Verification only reads: it never repairs a sink.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.evidence.keys import KeySet
from temoin.journal import checkpoint_check
from temoin.journal.chain_walk import (
    ChainWalk,
    db_records,
    db_rows,
    feed_both,
    feed_database,
    feed_file,
    file_lines,
    parse_time,
)
from temoin.journal.checkpoint_check import (
    StoredCheckpoints,
    read_checkpoints,
    signed_checkpoints,
    signed_pairs,
    with_witness,
)
from temoin.journal.findings import ChainReport, Problem
from temoin.journal.models import JournalCheckpoint, JournalHead
from temoin.journal.sinks import FileSink
from temoin.journal.witness import WitnessedCheckpoint, WitnessLog

# A seal pass covers every entry committed before it; an entry's time is taken before its commit
# and a pass seals chains one after the other: this much slack before calling a tail "skipped".
SEAL_MARGIN = timedelta(seconds=60)


def _database_walk(
    db: Session,
    chain: str,
    public_key: bytes | KeySet,
    witnessed: dict[int, WitnessedCheckpoint] | None,
    stored: StoredCheckpoints | None,
) -> ChainWalk:
    report = ChainReport(chain=chain, sink="database")
    rows = stored.database if stored is not None else checkpoint_check.db_checkpoints(db, chain)
    checkpoints = signed_checkpoints(signed_pairs(rows), public_key, report)
    if witnessed:
        checkpoints = with_witness(checkpoints, report, witnessed)
    return ChainWalk(report, checkpoints)


def _database_end(db: Session, walk: ChainWalk) -> ChainReport:
    walk.finish()
    report, chain = walk.report, walk.chain
    head = db.get(JournalHead, chain)
    end = report.last_seq if report.last_seq is not None else 0
    if head is not None and head.seq > end:
        report.problems.append(
            Problem(
                "database",
                chain,
                end + 1,
                "deleted",
                f"the chain head counts {head.seq} entries but the last one present is "
                f"{end}: entries were deleted at the end",
            )
        )
    elif head is not None and head.seq < end:
        # Every entry is written with its head in one transaction: one beyond the head did not come from the journal.
        report.problems.append(
            Problem(
                "database",
                chain,
                head.seq + 1,
                "inserted",
                f"the chain head counts {head.seq} entries but entries up to {end} are "
                f"present: entry {head.seq + 1} onwards were inserted",
            )
        )
    return report


def _file_walk(
    sink: FileSink,
    chain: str,
    public_key: bytes | KeySet,
    witnessed: dict[int, WitnessedCheckpoint] | None,
    stored: StoredCheckpoints | None,
) -> ChainWalk:
    report = ChainReport(chain=chain, sink="file")
    for found in sink.interrupted(chain):
        # A write cut short (power lost mid-line): not an entry, and not tampering either.
        report.problems.append(
            Problem(
                "file",
                chain,
                None,
                "interrupted",
                f"file {chain}/{found.path.name}: interrupted write at byte {found.at} ({found.length} bytes of an "
                "unfinished line, not read as an entry): `temoin journal repair` removes it and appends the "
                "missing entries from the database",
            )
        )
    rows = stored.file if stored is not None else sink.read_checkpoint_lines(chain)
    checkpoints = signed_checkpoints(signed_pairs(rows), public_key, report)
    if witnessed:
        checkpoints = with_witness(checkpoints, report, witnessed)
    return ChainWalk(report, checkpoints)


def verify_database(
    db: Session,
    chain: str,
    public_key: bytes | KeySet,
    witnessed: dict[int, WitnessedCheckpoint] | None = None,
    stored: StoredCheckpoints | None = None,
) -> ChainReport:
    walk = _database_walk(db, chain, public_key, witnessed, stored)
    feed_database(walk, db_rows(db, chain))
    return _database_end(db, walk)


def verify_file(
    sink: FileSink,
    chain: str,
    public_key: bytes | KeySet,
    witnessed: dict[int, WitnessedCheckpoint] | None = None,
    stored: StoredCheckpoints | None = None,
) -> ChainReport:
    walk = _file_walk(sink, chain, public_key, witnessed, stored)
    feed_file(walk, file_lines(sink, chain))
    walk.finish()
    return walk.report


def verify_chain(
    db: Session,
    sink: FileSink,
    chain: str,
    public_key: bytes | KeySet,
    witnessed: dict[int, WitnessedCheckpoint] | None = None,
    stored: StoredCheckpoints | None = None,
) -> tuple[ChainReport, ChainReport, list[Problem]]:
    """Both sinks of one chain in one pass: (database report, file report, differences between them)."""
    db_walk = _database_walk(db, chain, public_key, witnessed, stored)
    file_walk = _file_walk(sink, chain, public_key, witnessed, stored)
    feed_both(db_walk, file_walk, db_rows(db, chain), file_lines(sink, chain))
    db_report = _database_end(db, db_walk)
    file_walk.finish()
    return db_report, file_walk.report, compare(db, sink, chain, db_report, file_walk.report)


def compare(
    db: Session, sink: FileSink, chain: str, db_report: ChainReport, file_report: ChainReport, limit: int = 20
) -> list[Problem]:
    """The two sinks must hold the same entries. Two valid chains with the same first entry and the
    same last hash are identical; only when they are not do we walk both to name the differences."""
    if (
        not db_report.problems
        and not file_report.problems
        and db_report.first_seq == file_report.first_seq
        and db_report.last_seq == file_report.last_seq
        and db_report.last_hash == file_report.last_hash
    ):
        return []
    problems: list[Problem] = []
    db_hashes: dict[int, str] = dict(db_records(db, chain)) if db_report.entries < 5_000_000 else {}
    seen: set[int] = set()
    for _path, _lineno, stored_hash, body in file_lines(sink, chain):
        try:
            seq = int(orjson.loads(body)["seq"])
        except (ValueError, KeyError, TypeError):
            continue
        seen.add(seq)
        in_db = db_hashes.get(seq)
        if in_db is None:
            problems.append(
                Problem("database", chain, seq, "deleted", f"entry {seq} is in the file but not in the database")
            )
        elif in_db != stored_hash:
            problems.append(
                Problem("both", chain, seq, "mismatch", f"entry {seq} differs between the database and the file")
            )
        if len(problems) >= limit:
            return problems
    for seq in sorted(set(db_hashes) - seen)[: limit - len(problems)]:
        problems.append(Problem("file", chain, seq, "deleted", f"entry {seq} is in the database but not in the file"))
    return problems


# Chains verified in parallel (one process each, forked) once the journal holds this many entries: below it,
# starting processes costs more than it saves.
PARALLEL_FROM = 100_000

# What forked workers inherit (no pickling: a KeySet holds key objects): set just before the pool starts.
_JOB: dict = {}


def _chain_in_worker(chain: str) -> tuple[ChainReport, ChainReport, list[Problem]]:
    from sqlalchemy.orm import Session as PlainSession

    from temoin.db import make_engine

    job = _JOB
    # The parent's pooled connections came with the fork: forget them here without closing them (SQLAlchemy's
    # rule for forked processes), so that this child can never talk on the parent's sockets.
    job["parent"].dispose(close=False)
    engine = make_engine(job["url"])
    try:
        with PlainSession(engine) as db:
            return verify_chain(db, job["sink"], chain, job["key"], job["witnessed"].get(chain), job["stored"][chain])
    finally:
        engine.dispose()


def _workers(db: Session, chains: list[str], asked: int | None) -> int:
    if asked is not None:
        return max(1, min(asked, len(chains)))
    if len(chains) < 2 or not hasattr(os, "fork"):
        return 1
    url = db.connection().engine.url
    if url.get_backend_name() == "sqlite" and url.database in (None, "", ":memory:"):
        return 1  # another process would not see this database
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    if cores < 2:
        return 1
    total = db.scalar(select(func.sum(JournalHead.seq)).where(JournalHead.chain.in_(chains))) or 0
    return min(cores, len(chains)) if total >= PARALLEL_FROM else 1


@dataclass
class VerifyResult:
    reports: list[ChainReport]
    problems: list[Problem]
    warnings: list[str] = field(default_factory=list)
    # What was read of each chain's checkpoints, for verify_all_seal_timestamps not to read it again.
    checkpoints: dict[str, StoredCheckpoints] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_all(
    db: Session,
    sink: FileSink,
    public_key: bytes | KeySet,
    chains: list[str] | None = None,
    *,
    witness: WitnessLog | None = None,
    seal_interval_s: float = 60.0,
    now: datetime | None = None,
    workers: int | None = None,
) -> VerifyResult:
    """Every chain, both sinks, checkpoints (and the witness's log). `workers`: processes verifying chains side by
    side (default: one per core for a large journal of several chains, else this process alone)."""
    if chains is None:
        chains = sorted(
            set(db.scalars(select(JournalHead.chain)))
            | set(sink.chains())
            | set(db.scalars(select(JournalCheckpoint.chain).distinct()))
            | set(witness.chains if witness else ())
        )
    reports: list[ChainReport] = []
    problems: list[Problem] = []
    read = {chain: read_checkpoints(db, sink, chain) for chain in chains}
    witnessed = {chain: witness.of(chain) for chain in chains} if witness else {}
    count = _workers(db, chains, workers)
    if count > 1:
        # Chains are independent: one process per core (the GIL keeps threads from parsing in parallel).
        _JOB.update(
            url=db.connection().engine.url.render_as_string(hide_password=False),
            parent=db.connection().engine,
            sink=sink,
            key=public_key,
            witnessed=witnessed,
            stored=read,
        )
        try:
            with ProcessPoolExecutor(count, mp_context=multiprocessing.get_context("fork")) as pool:
                done = list(pool.map(_chain_in_worker, chains))
        finally:
            _JOB.clear()
    else:
        done = [verify_chain(db, sink, chain, public_key, witnessed.get(chain), read[chain]) for chain in chains]
    for db_report, file_report, differences in done:
        reports += [db_report, file_report]
        problems += db_report.problems + file_report.problems + differences
    problems += _skipped_tails(reports)
    warnings = []
    if witness is not None:
        problems += [Problem("witness", "-", None, "checkpoint", c) for c in witness.conflicts]
        if witness.not_ours:
            warnings.append(
                f"{witness.not_ours} lines of {witness.path} look like checkpoints but are not signed "
                "by this platform: ignored"
            )
    now = now or utcnow()
    late = timedelta(seconds=seal_interval_s) + SEAL_MARGIN
    for r in reports:
        if r.unsealed_since is not None and now - r.unsealed_since > late:
            warnings.append(
                f"[{r.chain}] {r.sink}: {r.unsealed} entries unsealed since {_utc(r.unsealed_since)}, "
                f"longer than the sealing interval ({seal_interval_s:g} s): is the server's sealing "
                "loop running? If it is, seals were removed"
            )
    return VerifyResult(reports, problems, warnings, read)


def _skipped_tails(reports: list[ChainReport]) -> list[Problem]:
    """A seal pass seals every chain whose head moved. Entries no seal covers although the platform
    sealed (any chain) well after they were written: the seals that covered them were removed."""
    latest: tuple[datetime, str] | None = None
    for r in reports:
        at = parse_time(r.last_seal.at) if r.last_seal else None
        if at is not None and (latest is None or at > latest[0]):
            latest = (at, r.chain)
    problems = []
    for r in reports:
        if latest is None or r.unsealed_since is None or latest[0] - r.unsealed_since <= SEAL_MARGIN:
            continue
        first = (r.last_seq or 0) - r.unsealed + 1
        problems.append(
            Problem(
                r.sink,
                r.chain,
                first,
                "unsealed",
                f"entries {first} to {r.last_seq} are covered by no seal, yet the platform sealed at {_utc(latest[0])} "
                f"(chain {latest[1]}), after entry {first} was written ({_utc(r.unsealed_since)}): the seals that "
                "covered them were removed",
            )
        )
    return problems


def _utc(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
