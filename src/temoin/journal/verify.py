"""Verifying the journal: each sink on its own, then the two against each other.

Finds and names an altered, deleted, inserted or reordered entry. An attacker who rewrites one
sink and recomputes its hashes is caught by the other sink and by the platform-signed checkpoints.
Checkpoints are chained to each other (a removed one is named) and, given the witness's log, compared
with what the witness received. For each chain the report says what the last seal covers and what
is not sealed yet. Verification only reads: it never repairs a sink.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import zip_longest
from pathlib import Path

import orjson
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.evidence.canonical import b64d
from temoin.evidence.keys import KeySet
from temoin.evidence.signing import verify as verify_signature
from temoin.journal.entry import GENESIS
from temoin.journal.models import JournalCheckpoint, JournalHead
from temoin.journal.sinks import FileSink, complete_end
from temoin.journal.witness import WitnessedCheckpoint, WitnessLog

# A seal pass covers every entry committed before it; an entry's time is taken before its commit
# and a pass seals chains one after the other: this much slack before calling a tail "skipped".
SEAL_MARGIN = timedelta(seconds=60)


@dataclass(frozen=True)
class Problem:
    sink: str  # "database", "file", "both"
    chain: str
    seq: int | None
    kind: str  # altered | deleted | inserted | reordered | mismatch | checkpoint | unsealed | interrupted
    message: str

    def __str__(self) -> str:
        return f"[{self.chain}] {self.sink}: {self.message}"


@dataclass
class ChainReport:
    chain: str
    sink: str
    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)
    # Hashes at the sequence numbers that signed checkpoints vouch for.
    vouched: dict[int, str] = field(default_factory=dict, repr=False)
    # The sink's chained checkpoints by number, as stored (compared with the witness's).
    checkpoint_bodies: dict[int, bytes] = field(default_factory=dict, repr=False)
    last_seal: Checkpoint | None = None
    unsealed: int = 0  # entries after the last seal
    unsealed_since: datetime | None = None  # time of the oldest of them


@dataclass(frozen=True)
class Checkpoint:
    kind: str
    seq: int
    hash: str
    at: str
    n: int | None = None
    witnessed: bool = False  # known from the witness's log, not from this sink

    @property
    def name(self) -> str:
        return f"the witness's signed checkpoint {self.n}" if self.witnessed else "a signed checkpoint"


def _signature_ok(public_key: bytes | KeySet, signature: str, body: bytes) -> bool:
    return signed_by_platform(public_key, signature, body)


def _check_links(parsed: list[tuple[bytes, str, dict | None]], report: ChainReport) -> bool:
    """Walk the checkpoint chain (`n`, `prev_checkpoint`); name removed, altered or inserted checkpoints.
    Returns whether it is intact."""
    intact = True
    prev_n, prev_hash = 0, ""
    legacy: set[str] = set()

    def problem(message: str) -> None:
        nonlocal intact
        intact = False
        report.problems.append(Problem(report.sink, report.chain, None, "checkpoint", message))

    for body, _, fields in parsed:
        digest = hashlib.sha256(body).hexdigest()
        if fields is None or "n" not in fields:
            legacy.add(digest)  # made before checkpoints were chained
            continue
        try:
            n, link = int(fields["n"]), str(fields.get("prev_checkpoint"))
        except (TypeError, ValueError):
            problem("a checkpoint's number is unreadable (altered)")
            continue
        report.checkpoint_bodies.setdefault(n, body)
        what = f"checkpoint {n} ({fields.get('kind')} of entry {fields.get('seq')}, made {fields.get('at')})"
        if n <= prev_n:
            problem(f"{what} appears again after checkpoint {prev_n} (duplicate or inserted)")
            continue
        if n > prev_n + 1:
            gap = f"{prev_n + 1}" if n == prev_n + 2 else f"{prev_n + 1} to {n - 1}"
            problem(f"checkpoint {gap} missing (removed) before {what}")
        elif link != (prev_hash if prev_n else GENESIS) and not (prev_n == 0 and link in legacy):
            problem(f"{what} does not chain onto checkpoint {prev_n}: one of them was altered or replaced")
        prev_n, prev_hash = n, digest
    return intact


def signed_by_platform(keys: bytes | KeySet, signature: str, body: bytes) -> bool:
    """By the platform key the checkpoint names, valid at the time it states (key rotation keeps old
    checkpoints verifiable); `keys` may be one raw key (no history)."""
    try:
        raw_signature = b64d(signature)
        if isinstance(keys, bytes):
            return verify_signature(keys, raw_signature, body)
        claims = orjson.loads(body)
        at = datetime.fromisoformat(claims["at"])
        return keys.verify(raw_signature, body, key_id=claims.get("platform_key_id"), at=at)
    except (ValueError, KeyError, TypeError):
        return False


def _signed_checkpoints(
    raw: list[tuple[bytes, str]], public_key: bytes | KeySet, report: ChainReport
) -> list[Checkpoint]:
    parsed: list[tuple[bytes, str, dict | None]] = []
    for body, signature in raw:
        try:
            fields = orjson.loads(body)
        except ValueError:
            fields = None
        parsed.append((body, signature, fields if isinstance(fields, dict) else None))
    intact = _check_links(parsed, report)
    chained = [i for i, (_, _, f) in enumerate(parsed) if f is not None and "n" in f]
    # An intact chain is vouched for by its last checkpoint's signature: one signature check, not one
    # per seal (a seal a minute is half a million a year).
    if intact and chained:
        body, signature, _ = parsed[chained[-1]]
        intact = _signature_ok(public_key, signature, body)
    trusted = set(chained[:-1]) if intact else set()
    found = []
    for i, (body, signature, fields) in enumerate(parsed):
        if i not in trusted and not _signature_ok(public_key, signature, body):
            report.problems.append(
                Problem(
                    report.sink,
                    report.chain,
                    None,
                    "checkpoint",
                    "a checkpoint's platform signature is invalid: forged or altered",
                )
            )
            continue
        try:
            if fields is None:  # not a JSON object
                raise ValueError
            found.append(Checkpoint(fields["kind"], int(fields["seq"]), fields["hash"], fields["at"], fields.get("n")))
        except (TypeError, KeyError, ValueError):
            report.problems.append(
                Problem(report.sink, report.chain, None, "checkpoint", "a signed checkpoint is unreadable")
            )
    return found


def _with_witness(
    checkpoints: list[Checkpoint], report: ChainReport, witnessed: dict[int, WitnessedCheckpoint]
) -> list[Checkpoint]:
    """Name the checkpoints the witness received that this sink lacks or holds differently, and add
    them to what the entries are checked against."""
    extra = []
    missing: list[int] = []
    for n, w in sorted(witnessed.items()):
        fields = w.fields
        local = report.checkpoint_bodies.get(n)
        if local == w.body:
            continue
        if local is None:
            missing.append(n)
        else:
            try:
                here = orjson.loads(local)
                here = f"{here['kind']} of entry {here['seq']}, made {here['at']}"
            except (ValueError, KeyError, TypeError):
                here = "unreadable"
            report.problems.append(
                Problem(
                    report.sink,
                    report.chain,
                    None,
                    "checkpoint",
                    f"checkpoint {n} ({here}) differs from the one the witness received ({fields['kind']} of entry "
                    f"{fields['seq']}, made {fields['at']}): the checkpoint chain was rewritten",
                )
            )
        extra.append(Checkpoint(fields["kind"], int(fields["seq"]), fields["hash"], fields["at"], n, witnessed=True))
    for first, last in _runs(missing):
        fields = witnessed[last].fields
        which = f"checkpoint {first} (a" if first == last else f"checkpoints {first} to {last} (the last a"
        report.problems.append(
            Problem(
                report.sink,
                report.chain,
                None,
                "checkpoint",
                f"{which} {fields['kind']} of entry {fields['seq']}, made {fields['at']}), received by the witness, "
                "missing here: checkpoints were removed",
            )
        )
    return checkpoints + extra


def _runs(numbers: list[int]) -> Iterator[tuple[int, int]]:
    run: list[int] = []
    for n in numbers:
        if run and n != run[-1] + 1:
            yield run[0], run[-1]
            run = []
        run.append(n)
    if run:
        yield run[0], run[-1]


def _where(sink: str, chain: str, place: object, lineno: int) -> str:
    """Where an entry is, formatted only when a problem is reported (a million f-strings would cost more than
    the hashing): a database entry by its seq, a file line by its file and number."""
    if sink == "database":
        return f"database entry {place}"
    return f"file {chain}/{getattr(place, 'name', place)} line {lineno}"


def _parse(body: bytes) -> tuple[dict, int, str] | None:
    """(fields, seq, prev) of an entry body, or None when it is unreadable."""
    try:
        fields = orjson.loads(body)
        return fields, int(fields["seq"]), str(fields["prev"])
    except (ValueError, KeyError, TypeError):
        return None


class _Walk:
    """One sink's walk along a chain, fed one entry at a time: the two sinks are walked side by side, so an
    entry both hold alike is parsed and hashed once for both."""

    def __init__(self, report: ChainReport, checkpoints: list[Checkpoint]) -> None:
        self.report, self.checkpoints = report, checkpoints
        prunes = [cp for cp in checkpoints if cp.kind == "prune"]
        self.start = start = max(prunes, key=lambda cp: cp.seq) if prunes else None
        self.expected_seq, self.expected_prev = (start.seq + 1, start.hash) if start else (1, GENESIS)
        self.pruned_to = start.seq if start else 0
        self.wanted = {cp.seq for cp in checkpoints}
        seals = [cp for cp in checkpoints if cp.kind == "seal"]
        report.last_seal = max(seals, key=lambda cp: (cp.seq, cp.n or 0)) if seals else None
        # The first entry no seal covers: its time is the age of the unsealed tail.
        self.tail_from = max(report.last_seal.seq if report.last_seal else 0, self.pruned_to) + 1
        self.tail_at: object = None
        self.seen_max = self.expected_seq - 1
        self.missing: dict[int, Problem] = {}
        self.sink, self.chain = report.sink, report.chain

    def problem(self, seq: int | None, kind: str, message: str) -> None:
        self.report.problems.append(Problem(self.sink, self.chain, seq, kind, message))

    def entry(
        self,
        parsed: tuple[dict, int, str] | None,
        digest: str,
        stored_hash: str,
        place: object,
        lineno: int = 0,
        column_seq: int | None = None,
        column_prev: str | None = None,
        column_event: str | None = None,
    ) -> None:
        """One entry: `parsed` its body (None: unreadable), `digest` the SHA-256 of its body, `stored_hash` the hash
        the sink keeps beside it, `place` (and `lineno`) where it is, the `column_*` the database's indexed columns."""
        report = self.report
        report.entries += 1
        if parsed is None:
            self.problem(
                column_seq, "altered", f"{_where(self.sink, self.chain, place, lineno)}: entry unreadable (altered)"
            )
            return
        body, seq, prev = parsed
        if seq <= self.pruned_to and self.start is not None:
            return  # pruned behind the checkpoint; removal was interrupted
        if report.first_seq is None:
            report.first_seq = seq
        if digest != stored_hash:
            self.problem(
                seq,
                "altered",
                f"{_where(self.sink, self.chain, place, lineno)}: entry {seq} was altered (content does not match its "
                "hash)",
            )
        if body.get("chain") != self.chain:
            self.problem(
                seq,
                "inserted",
                f"{_where(self.sink, self.chain, place, lineno)}: entry {seq} belongs to chain {body.get('chain')!r}",
            )
        if column_seq is not None and (column_seq != seq or column_prev != prev or column_event != body.get("event")):
            self.problem(
                column_seq,
                "altered",
                f"{_where(self.sink, self.chain, place, lineno)}: indexed columns disagree with the entry's content "
                "(altered)",
            )
        if seq in self.wanted:
            report.vouched[seq] = stored_hash
        if seq == self.tail_from and self.tail_at is None:
            self.tail_at = body.get("at")
        expected_seq = self.expected_seq
        if seq == expected_seq:
            if prev != self.expected_prev:
                self.problem(
                    seq,
                    "altered",
                    f"{_where(self.sink, self.chain, place, lineno)}: entry {seq} does not chain onto entry {seq - 1}: "
                    f"entry {seq - 1} was altered or replaced",
                )
            self.expected_seq, self.expected_prev = seq + 1, stored_hash
        elif seq > expected_seq:
            gap = f"{expected_seq}" if seq == expected_seq + 1 else f"{expected_seq} to {seq - 1}"
            self.missing[expected_seq] = Problem(
                self.sink,
                self.chain,
                expected_seq,
                "deleted",
                f"{_where(self.sink, self.chain, place, lineno)}: entry {gap} missing (deleted) before entry {seq}",
            )
            self.expected_seq, self.expected_prev = seq + 1, stored_hash
        elif seq in self.missing:
            # A missing entry that turns up later: the entries were reordered, not deleted.
            gap_problem = self.missing.pop(seq)
            if f"entry {seq} missing" not in gap_problem.message:
                report.problems.append(gap_problem)
            self.problem(
                seq,
                "reordered",
                f"{_where(self.sink, self.chain, place, lineno)}: entry {seq} is out of order (after entry "
                f"{self.seen_max})",
            )
        else:
            self.problem(
                seq,
                "inserted",
                f"{_where(self.sink, self.chain, place, lineno)}: entry {seq} appears again after entry "
                f"{self.seen_max} (duplicate or inserted)",
            )
        if seq > self.seen_max:
            self.seen_max = seq

    def finish(self) -> None:
        report, start = self.report, self.start
        report.problems.extend(self.missing.values())
        report.last_seq = self.expected_seq - 1 if report.entries else (start.seq if start else None)
        report.last_hash = self.expected_prev
        # A chain left with no entry at all ends at 0: a checkpoint beyond that means entries were deleted.
        end = report.last_seq if report.last_seq is not None else 0
        beyond: dict[bool, Checkpoint] = {}
        for cp in self.checkpoints:
            if cp.kind == "seal" and cp.seq in report.vouched and report.vouched[cp.seq] != cp.hash:
                source = "the witness's signed checkpoint" if cp.witnessed else "the platform-signed checkpoint"
                self.problem(
                    cp.seq,
                    "altered",
                    f"entry {cp.seq} differs from {source} of {cp.at}: the chain was rewritten after it",
                )
            if cp.seq > end and (cp.witnessed not in beyond or cp.seq > beyond[cp.witnessed].seq):
                beyond[cp.witnessed] = cp
        for cp in beyond.values():  # the furthest one says it all
            self.problem(
                end + 1,
                "deleted",
                f"{cp.name} vouches for entry {cp.seq} but the chain ends at {end}: entries were deleted at the end",
            )
        if report.entries and end >= self.tail_from:
            report.unsealed = end - self.tail_from + 1
            report.unsealed_since = _parse_time(self.tail_at)


def _parse_time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


@dataclass
class StoredCheckpoints:
    """A chain's checkpoints as each sink holds them, read once for every check: (body, signature, token)."""

    database: list[tuple[bytes, str, str | None]]
    file: list[tuple[bytes, str, str | None]]


def read_checkpoints(db: Session, sink: FileSink, chain: str) -> StoredCheckpoints:
    return StoredCheckpoints(_db_checkpoints(db, chain), sink.read_checkpoint_lines(chain))


def _db_checkpoints(db: Session, chain: str) -> list[tuple[bytes, str, str | None]]:
    rows = db.scalars(select(JournalCheckpoint).where(JournalCheckpoint.chain == chain).order_by(JournalCheckpoint.id))
    return [(r.body.encode(), r.signature, r.timestamp_token) for r in rows]


def _signed_pairs(rows: list[tuple[bytes, str, str | None]]) -> list[tuple[bytes, str]]:
    return [(body, signature) for body, signature, _token in rows]


_BATCH = 2_000
# The body as bytes straight from the driver (hashed as stored; no decode into str and encode back per row).
_COLUMNS = {
    "sqlite": "SELECT seq, prev_hash, event, hash, CAST(body AS BLOB) FROM journal_entries",
    "postgresql": "SELECT seq, prev_hash, event, hash, convert_to(body, 'UTF8') FROM journal_entries",
}
# (first batch, next batches) in the driver's own placeholder style: SQLite's ? or psycopg's %s.
_ROWS = {
    "sqlite": (
        f"{_COLUMNS['sqlite']} WHERE chain = ? ORDER BY seq LIMIT {_BATCH}",
        f"{_COLUMNS['sqlite']} WHERE chain = ? AND seq > ? ORDER BY seq LIMIT {_BATCH}",
    ),
    "postgresql": (
        f"{_COLUMNS['postgresql']} WHERE chain = %s ORDER BY seq LIMIT {_BATCH}",
        f"{_COLUMNS['postgresql']} WHERE chain = %s AND seq > %s ORDER BY seq LIMIT {_BATCH}",
    ),
}


def _db_rows(db: Session, chain: str) -> Iterator[tuple[int, str, str, str, bytes]]:
    """(seq, prev_hash, event, hash, body) of the chain's rows in seq order, through the driver's own cursor (no
    ORM or result wrapping per row), a batch at a time by seq ((chain, seq) is unique: no row is skipped or read
    twice), so a million rows are never all in memory."""
    conn = db.connection()
    first, more = _ROWS[conn.dialect.name]
    cursor = conn.connection.cursor()
    try:
        cursor.execute(first, (chain,))
        while rows := cursor.fetchall():
            for seq, prev, event, digest, body in rows:
                yield seq, prev, event, digest, bytes(body)  # psycopg gives a memoryview for bytea
            if len(rows) < _BATCH:
                return
            cursor.execute(more, (chain, rows[-1][0]))
    finally:
        cursor.close()


_READ = 8 << 20  # month files are read in pieces of this size, split into lines in one call each


def _file_lines(sink: FileSink, chain: str) -> Iterator[tuple[Path, int, str, bytes]]:
    """(path, line number, stored hash, body) of every complete line of the chain's month files, in order: what
    FileSink.read gives, as plain tuples, each file read in large pieces rather than line by line."""
    for path in sink.files(chain):
        _, end = complete_end(path)  # a partial last line is not an entry
        lineno, left, rest = 0, end, b""
        with path.open("rb") as fh:
            while left > 0:
                piece = fh.read(min(_READ, left))
                if not piece:
                    break
                left -= len(piece)
                lines = (rest + piece).split(b"\n")
                rest = lines.pop()  # the start of a line the next piece ends (empty at the end)
                for raw in lines:
                    lineno += 1
                    digest, _, body = raw.partition(b" ")
                    yield path, lineno, digest.decode("ascii", "replace"), body


def _db_records(db: Session, chain: str) -> Iterator[tuple[int, str]]:
    """(seq, stored hash) of the chain's database rows: to name the differences between the sinks."""
    for seq, _prev, _event, digest, _body in _db_rows(db, chain):
        yield seq, digest


def _database_walk(
    db: Session,
    chain: str,
    public_key: bytes | KeySet,
    witnessed: dict[int, WitnessedCheckpoint] | None,
    stored: StoredCheckpoints | None,
) -> _Walk:
    report = ChainReport(chain=chain, sink="database")
    rows = stored.database if stored is not None else _db_checkpoints(db, chain)
    checkpoints = _signed_checkpoints(_signed_pairs(rows), public_key, report)
    if witnessed:
        checkpoints = _with_witness(checkpoints, report, witnessed)
    return _Walk(report, checkpoints)


def _database_end(db: Session, walk: _Walk) -> ChainReport:
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
) -> _Walk:
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
    checkpoints = _signed_checkpoints(_signed_pairs(rows), public_key, report)
    if witnessed:
        checkpoints = _with_witness(checkpoints, report, witnessed)
    return _Walk(report, checkpoints)


def _feed_database(walk: _Walk, rows: Iterable[tuple[int, str, str, str, bytes]]) -> None:
    sha256, entry = hashlib.sha256, walk.entry
    for seq, prev, event, stored_hash, body in rows:
        entry(_parse(body), sha256(body).hexdigest(), stored_hash, seq, 0, seq, prev, event)


def _feed_file(walk: _Walk, lines: Iterable[tuple[Path, int, str, bytes]]) -> None:
    sha256, entry = hashlib.sha256, walk.entry
    for path, lineno, stored_hash, body in lines:
        entry(_parse(body), sha256(body).hexdigest(), stored_hash, path, lineno)


def _feed_both(db_walk: _Walk, file_walk: _Walk, rows: Iterator, lines: Iterator) -> None:
    """One pass along both sinks, entry beside entry: a body both sinks hold byte for byte alike (every entry of
    an intact journal) is parsed and hashed once; each sink's walk still judges its own copy."""
    sha256, db_entry, file_entry = hashlib.sha256, db_walk.entry, file_walk.entry
    for row, line in zip_longest(rows, lines):
        if row is None:
            _feed_file(file_walk, [line])
            continue
        seq, prev, event, stored_hash, body = row
        parsed, digest = _parse(body), sha256(body).hexdigest()
        db_entry(parsed, digest, stored_hash, seq, 0, seq, prev, event)
        if line is not None:
            path, lineno, file_hash, file_body = line
            if file_body != body:
                parsed, digest = _parse(file_body), sha256(file_body).hexdigest()
            file_entry(parsed, digest, file_hash, path, lineno)


def verify_database(
    db: Session,
    chain: str,
    public_key: bytes | KeySet,
    witnessed: dict[int, WitnessedCheckpoint] | None = None,
    stored: StoredCheckpoints | None = None,
) -> ChainReport:
    walk = _database_walk(db, chain, public_key, witnessed, stored)
    _feed_database(walk, _db_rows(db, chain))
    return _database_end(db, walk)


def verify_file(
    sink: FileSink,
    chain: str,
    public_key: bytes | KeySet,
    witnessed: dict[int, WitnessedCheckpoint] | None = None,
    stored: StoredCheckpoints | None = None,
) -> ChainReport:
    walk = _file_walk(sink, chain, public_key, witnessed, stored)
    _feed_file(walk, _file_lines(sink, chain))
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
    _feed_both(db_walk, file_walk, _db_rows(db, chain), _file_lines(sink, chain))
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
    db_hashes: dict[int, str] = dict(_db_records(db, chain)) if db_report.entries < 5_000_000 else {}
    seen: set[int] = set()
    for _path, _lineno, stored_hash, body in _file_lines(sink, chain):
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
        at = _parse_time(r.last_seal.at) if r.last_seal else None
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
