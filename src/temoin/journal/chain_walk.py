"""One sink's walk along a chain, entry by entry: each entry's hash, link and place checked against the
checkpoints; the database's rows and the file's lines read in large batches."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from datetime import datetime
from itertools import zip_longest
from pathlib import Path

import orjson
from sqlalchemy.orm import Session

from temoin.journal.entry import GENESIS
from temoin.journal.findings import ChainReport, Checkpoint, Problem
from temoin.journal.sinks import FileSink, complete_end


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


class ChainWalk:
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
            report.unsealed_since = parse_time(self.tail_at)


def parse_time(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(value))
    except ValueError:
        return None


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


def db_rows(db: Session, chain: str) -> Iterator[tuple[int, str, str, str, bytes]]:
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


def file_lines(sink: FileSink, chain: str) -> Iterator[tuple[Path, int, str, bytes]]:
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


def db_records(db: Session, chain: str) -> Iterator[tuple[int, str]]:
    """(seq, stored hash) of the chain's database rows: to name the differences between the sinks."""
    for seq, _prev, _event, digest, _body in db_rows(db, chain):
        yield seq, digest


def feed_database(walk: ChainWalk, rows: Iterable[tuple[int, str, str, str, bytes]]) -> None:
    sha256, entry = hashlib.sha256, walk.entry
    for seq, prev, event, stored_hash, body in rows:
        entry(_parse(body), sha256(body).hexdigest(), stored_hash, seq, 0, seq, prev, event)


def feed_file(walk: ChainWalk, lines: Iterable[tuple[Path, int, str, bytes]]) -> None:
    sha256, entry = hashlib.sha256, walk.entry
    for path, lineno, stored_hash, body in lines:
        entry(_parse(body), sha256(body).hexdigest(), stored_hash, path, lineno)


def feed_both(db_walk: ChainWalk, file_walk: ChainWalk, rows: Iterator, lines: Iterator) -> None:
    """One pass along both sinks, entry beside entry: a body both sinks hold byte for byte alike (every entry of
    an intact journal) is parsed and hashed once; each sink's walk still judges its own copy."""
    sha256, db_entry, file_entry = hashlib.sha256, db_walk.entry, file_walk.entry
    for row, line in zip_longest(rows, lines):
        if row is None:
            feed_file(file_walk, [line])
            continue
        seq, prev, event, stored_hash, body = row
        parsed, digest = _parse(body), sha256(body).hexdigest()
        db_entry(parsed, digest, stored_hash, seq, 0, seq, prev, event)
        if line is not None:
            path, lineno, file_hash, file_body = line
            if file_body != body:
                parsed, digest = _parse(file_body), sha256(file_body).hexdigest()
            file_entry(parsed, digest, file_hash, path, lineno)
