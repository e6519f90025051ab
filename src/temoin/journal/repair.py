"""Bringing the file sink back level with the database, after a crash or a full disk.

Run only at `temoin serve` start-up and by `temoin journal repair`: never before a verification,
which must see the sinks as they are. An interrupted last line is cut off; then the database's
entries (and checkpoints) are appended only if they carry on exactly from the file's last valid
line, otherwise nothing is copied and the reason is given. Each repair is itself journaled.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import orjson
from sqlalchemy import column, select, table
from sqlalchemy.orm import Session

from temoin.journal.checkpoints import body_hash
from temoin.journal.entry import GENESIS, PLATFORM_CHAIN, Action, Actor, EntryDraft
from temoin.journal.models import JournalCheckpoint, JournalEntry, JournalHead
from temoin.journal.service import Journal
from temoin.journal.sinks import FileSink, checkpoint_line, complete_end

_BATCH = 5_000


@dataclass
class ChainRepair:
    chain: str
    interrupted: list[dict] = field(default_factory=list)  # {"file", "at", "bytes"} cut off
    appended: int = 0
    from_seq: int | None = None
    gaps_filled: int = 0  # entries put back in the middle of the file
    checkpoints_appended: int = 0
    refused: str | None = None  # why entries were not copied

    @property
    def changed(self) -> bool:
        return bool(self.interrupted or self.appended or self.checkpoints_appended or self.gaps_filled)


def _file_end(sink: FileSink, chain: str) -> tuple[int, str]:
    """(seq, hash) of the file's last valid entry; behind a prune, the prune checkpoint's."""
    last = sink.last_line(chain)
    if last is not None:
        body = orjson.loads(last.body)
        if hashlib.sha256(last.body).hexdigest() != last.hash:
            raise ValueError(f"the file's last line (entry {body.get('seq')}) does not match its hash")
        return int(body["seq"]), last.hash
    prunes = [orjson.loads(b) for b, _ in sink.read_checkpoints(chain)]
    prunes = [cp for cp in prunes if cp.get("kind") == "prune"]
    if prunes:
        latest = max(prunes, key=lambda cp: int(cp["seq"]))
        return int(latest["seq"]), str(latest["hash"])
    return 0, GENESIS


def _fill_gaps(db: Session, sink: FileSink, chain: str, result: ChainRepair) -> None:
    """Entries missing in the middle of the file (a write lost while later ones landed) are put back
    where the file's own next line proves them: it carries the hash of the last one missing."""
    # The last line and the line count come from the same read: an entry appended meanwhile by the running server
    # is either in both or in neither (counted but not spanned, it would hide a gap).
    lines, last = 0, None
    for path in sink.files(chain):
        _, end = complete_end(path)
        with path.open("rb") as fh:
            data = fh.read(end)
        if data.endswith(b"\n"):
            lines += data.count(b"\n")
            last = data[data.rfind(b"\n", 0, len(data) - 1) + 1 : -1].partition(b" ")[2]
    first = next(iter(sink.read(chain)), None)
    if first is None or last is None:
        return
    try:
        span = int(orjson.loads(last)["seq"]) - int(orjson.loads(first.body)["seq"]) + 1
    except (ValueError, KeyError, TypeError):
        return
    if lines >= span:
        return  # no gap (the cheap check: as many lines as sequence numbers)
    gaps: list[tuple[int, str, int, str]] = []  # (seq before, its hash, seq after, its prev)
    before: tuple[int, str] | None = None
    for line in sink.read(chain):
        try:
            fields = orjson.loads(line.body)
            seq, prev = int(fields["seq"]), str(fields["prev"])
        except (ValueError, KeyError, TypeError):
            return  # an unreadable line: leave the file to verification
        if before is not None and seq > before[0] + 1:
            gaps.append((before[0], before[1], seq, prev))
        before = (seq, line.hash)
    inserted: dict[str, list[tuple[int, bytes]]] = {}
    for after_seq, after_hash, next_seq, next_prev in gaps:
        rows = db.execute(
            select(JournalEntry.seq, JournalEntry.at, JournalEntry.hash, JournalEntry.body)
            .where(JournalEntry.chain == chain, JournalEntry.seq > after_seq, JournalEntry.seq < next_seq)
            .order_by(JournalEntry.seq)
        ).all()
        expected, prev, missing = after_seq + 1, after_hash, []
        for row in rows:
            body = row.body.encode()
            fields = orjson.loads(body)
            if (
                row.seq != expected
                or hashlib.sha256(body).hexdigest() != row.hash
                or fields.get("prev") != prev
                or fields.get("seq") != row.seq
            ):
                break
            missing.append((row.at.strftime("%Y-%m"), row.seq, row.hash.encode() + b" " + body))
            expected, prev = row.seq + 1, row.hash
        if expected != next_seq or prev != next_prev:
            gap = (
                f"entry {after_seq + 1}" if next_seq == after_seq + 2 else f"entries {after_seq + 1} to {next_seq - 1}"
            )
            result.refused = (
                f"the file lacks {gap} and the database's copy does not fit between its entries "
                f"{after_seq} and {next_seq}: not copied; run `temoin journal verify`"
            )
            continue
        for month, seq, raw in missing:
            inserted.setdefault(month, []).append((seq, raw))
    for month, new in inserted.items():

        def merge(data: bytes, new: list[tuple[int, bytes]] = new) -> list[bytes] | None:
            if data and not data.endswith(b"\n"):
                return None  # a partial line appeared: the next repair cuts it first
            existing = [(int(orjson.loads(raw.partition(b" ")[2])["seq"]), raw) for raw in data.splitlines()]
            have = {seq for seq, _ in existing}
            return [raw for _, raw in sorted(existing + [(s, r) for s, r in new if s not in have], key=lambda i: i[0])]

        # Read and replaced under the appenders' lock: an entry the running server appends meanwhile is kept.
        if sink.rewrite(sink.chain_dir(chain) / f"{month}.jsonl", merge):
            result.gaps_filled += len(new)


def _append_entries(db: Session, sink: FileSink, chain: str, result: ChainRepair) -> None:
    head = db.get(JournalHead, chain)
    if head is None:
        return
    try:
        seq, prev = _file_end(sink, chain)
    except (ValueError, KeyError, TypeError) as exc:
        result.refused = f"the file cannot be continued ({exc}); run `temoin journal verify`"
        return
    if seq >= head.seq:
        return
    rows = db.execute(
        select(JournalEntry.seq, JournalEntry.at, JournalEntry.prev_hash, JournalEntry.hash, JournalEntry.body)
        .where(JournalEntry.chain == chain, JournalEntry.seq > seq, JournalEntry.seq <= head.seq)
        .order_by(JournalEntry.seq)
    ).all()
    lines: list[tuple[str, str, bytes]] = []
    expected_seq, expected_prev = seq + 1, prev
    for row in rows:
        body = row.body.encode()
        fields = orjson.loads(body)
        if row.seq != expected_seq:
            result.refused = (
                f"the database lacks entry {expected_seq}, which the file needs next after its entry "
                f"{expected_seq - 1}: nothing copied; run `temoin journal verify`"
            )
            return
        if hashlib.sha256(body).hexdigest() != row.hash or fields.get("seq") != row.seq:
            result.refused = (
                f"the database's entry {row.seq} does not match its hash: nothing copied; run `temoin journal verify`"
            )
            return
        if fields.get("prev") != expected_prev or row.prev_hash != expected_prev:
            where = "the file's last entry" if expected_seq == seq + 1 else "the entry before it"
            result.refused = (
                f"the database's entry {row.seq} does not chain onto {where} ({expected_seq - 1}): "
                "the sinks disagree, nothing copied; run `temoin journal verify`"
            )
            return
        lines.append((row.at.strftime("%Y-%m"), row.hash, body))
        expected_seq, expected_prev = row.seq + 1, row.hash
    if expected_seq - 1 != head.seq:
        result.refused = (
            f"the database's chain head counts {head.seq} entries but entries stop at "
            f"{expected_seq - 1}: nothing copied; run `temoin journal verify`"
        )
        return
    for start in range(0, len(lines), _BATCH):
        by_month: dict[str, list[tuple[str, bytes]]] = {}
        for month, digest, body in lines[start : start + _BATCH]:
            by_month.setdefault(month, []).append((digest, body))
        for month, batch in by_month.items():
            sink.append(chain, month, batch)
    result.appended, result.from_seq = len(lines), seq + 1 if lines else None


def _append_checkpoints(db: Session, sink: FileSink, chain: str, result: ChainRepair) -> None:
    in_file = sink.read_checkpoints(chain)
    rows = db.scalars(
        select(JournalCheckpoint).where(JournalCheckpoint.chain == chain).order_by(JournalCheckpoint.id)
    ).all()
    if len(rows) <= len(in_file):
        return
    # The file must be the start of the database's list, byte for byte; only the rest is appended.
    for (body, signature), row in zip(in_file, rows):
        if body != row.body.encode() or signature != row.signature:
            if result.refused is None:
                result.refused = (
                    "the file's checkpoints differ from the database's: no checkpoint copied; "
                    "run `temoin journal verify`"
                )
            return
    missing = rows[len(in_file) :]
    prev = body_hash(in_file[-1][0]) if in_file else None
    for row in missing:
        fields = orjson.loads(row.body)
        if "n" in fields and prev is not None and fields.get("prev_checkpoint") != prev:
            if result.refused is None:
                result.refused = (
                    f"the database's checkpoint {fields['n']} does not chain onto the file's last one: "
                    "no checkpoint copied; run `temoin journal verify`"
                )
            return
        prev = body_hash(row.body)
    sink.append_checkpoints(chain, [checkpoint_line(r.signature, r.body.encode(), r.timestamp_token) for r in missing])
    result.checkpoints_appended = len(missing)


def repair(db: Session, journal: Journal, *, trigger: str, chains: list[str] | None = None) -> list[ChainRepair]:
    """Cut interrupted writes, append what the file lacks at its end; journal what was done."""
    sink = journal.sink
    if chains is None:
        chains = sorted(set(db.scalars(select(JournalHead.chain))) | set(sink.chains()))
    results = []
    for chain in chains:
        result = ChainRepair(chain)
        for found in sink.interrupted(chain):
            sink.cut_interrupted(found)
            result.interrupted.append({"file": found.path.name, "at": found.at, "bytes": found.length})
        _fill_gaps(db, sink, chain, result)
        _append_entries(db, sink, chain, result)
        _append_checkpoints(db, sink, chain, result)
        db.rollback()
        if result.changed:
            _journal_it(db, journal, result, trigger)
        results.append(result)
    return results


def _journal_it(db: Session, journal: Journal, result: ChainRepair, trigger: str) -> None:
    # The tenants' table by name: identity (which owns it) sits above the journal.
    tenants = table("tenants", column("id"), column("slug"))
    tenant = (
        None
        if result.chain == PLATFORM_CHAIN
        else db.execute(select(tenants.c.id, tenants.c.slug).where(tenants.c.slug == result.chain)).first()
    )
    details = {
        "chain": result.chain,
        "trigger": trigger,
        "entries_appended": result.appended,
        "from_seq": result.from_seq,
        "entries_put_back": result.gaps_filled,
        "checkpoints_appended": result.checkpoints_appended,
        "interrupted_writes_removed": result.interrupted,
    }
    draft = EntryDraft(
        action=Action.SECURITY, event="journal.file_repaired", actor=Actor.system("journal"), details=details
    )
    journal.write(db, draft, tenant_id=tenant.id if tenant else None, tenant_slug=tenant.slug if tenant else None)
    db.commit()
