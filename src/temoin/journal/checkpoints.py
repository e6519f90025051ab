"""Signed checkpoints: seals (the platform vouches for a chain's head at a time) and pruning.

Entries older than the profile's journal retention (three years) are removed behind a prune
checkpoint that records the last pruned entry's hash, so the remaining chain still verifies.

The checkpoints of a chain form a chain of their own: each body carries its number `n` and the
SHA-256 of the previous checkpoint's body (`prev_checkpoint`), so removing one is named, and the
signature of the last one vouches for all before it. A checkpoint reaches the file sink once its
database transaction commits, as entries do: the file never holds a checkpoint the database lacks.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any, cast

import orjson
from sqlalchemy import CursorResult, delete, event, func, select, update
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.evidence.canonical import b64d, b64e, canonical_bytes
from temoin.evidence.timestamp import Timestamper
from temoin.journal.entry import GENESIS
from temoin.journal.models import JournalCheckpoint, JournalEntry, JournalHead
from temoin.journal.sinks import FileSink, checkpoint_line
from temoin.keyring import Keyring


def _record(
    db: Session,
    sink: FileSink,
    keyring: Keyring,
    chain: str,
    kind: str,
    seq: int,
    digest: str,
    extra: dict | None = None,
    *,
    to_file: bool = True,
) -> JournalCheckpoint:
    link = _link(db, chain)
    with keyring.signing() as signer:  # the key it names signs it, even during a rotation
        at = utcnow()
        body = canonical_bytes(
            {
                "chain": chain,
                "kind": kind,
                "seq": seq,
                "hash": digest,
                "at": at.isoformat(),
                "platform_key_id": signer.key_id,
                **link,
                **(extra or {}),
            }
        )
        signature = signer.sign(body)
    token = None  # a seal's RFC 3161 token is added by `_stamp`, once the chain's head is released
    checkpoint = JournalCheckpoint(
        chain=chain,
        kind=kind,
        seq=seq,
        hash=digest,
        at=at,
        body=body.decode(),
        signature=signature,
        timestamp_token=token,
    )
    db.add(checkpoint)
    db.flush()
    if to_file:
        _to_file_after_commit(db, sink, chain, checkpoint_line(checkpoint.signature, body, token))
    return checkpoint


def body_hash(body: bytes | str) -> str:
    return hashlib.sha256(body.encode() if isinstance(body, str) else body).hexdigest()


def _lock_chain(db: Session, chain: str) -> None:
    """Hold the chain's head row until commit (row lock on PostgreSQL, write lock on SQLite): no entry
    can be appended meanwhile, and two checkpoints of a chain are never made at once."""
    db.execute(
        update(JournalHead).where(JournalHead.chain == chain).values(seq=JournalHead.seq),
        execution_options={"synchronize_session": False},
    )


def _link(db: Session, chain: str) -> dict:
    """`n` and `prev_checkpoint` for the chain's next checkpoint."""
    _lock_chain(db, chain)
    last = db.scalar(
        select(JournalCheckpoint.body)
        .where(JournalCheckpoint.chain == chain)
        .order_by(JournalCheckpoint.id.desc())
        .limit(1)
    )
    if last is None:
        return {"n": 1, "prev_checkpoint": GENESIS}
    # Checkpoints made before they were chained have no `n`: the chain starts after them.
    return {"n": int(orjson.loads(last).get("n", 0)) + 1, "prev_checkpoint": body_hash(last)}


def _to_file_after_commit(db: Session, sink: FileSink, chain: str, line: bytes) -> None:
    pending = db.info.setdefault("temoin.journal.checkpoints", [])
    if not pending:

        @event.listens_for(db, "after_commit", once=True)
        def _write(session: Session) -> None:
            by_chain: dict[str, list[bytes]] = {}
            for c, raw in session.info.pop("temoin.journal.checkpoints", []):
                by_chain.setdefault(c, []).append(raw)
            for c, lines in by_chain.items():
                sink.append_checkpoints(c, lines)

        @event.listens_for(db, "after_rollback", once=True)
        def _drop(session: Session) -> None:
            session.info.pop("temoin.journal.checkpoints", None)

    pending.append((chain, line))


def seal(db: Session, sink: FileSink, keyring: Keyring, timestamper: Timestamper | None = None) -> int:
    """Sign the current head of every chain whose head moved since its last seal, with an RFC 3161 token
    when a TSA is configured. Returns how many.

    Each chain is sealed in its own transaction, its head held: every entry up to the sealed one is
    committed, and any entry after it will be timestamped after the seal. The TSA is asked only once the
    head is released (a slow TSA must never hold up the journal, hence every write); the seal reaches the
    file with its token, or without one if the TSA failed (a crash in between: `temoin journal repair`)."""
    sealed = 0
    for chain, seq in db.execute(select(JournalHead.chain, JournalHead.seq)).all():
        if _last_sealed(db, chain) == seq:
            continue
        _lock_chain(db, chain)
        head = db.execute(select(JournalHead.seq, JournalHead.hash).where(JournalHead.chain == chain)).one()
        if _last_sealed(db, chain) == head.seq:
            db.rollback()
            continue
        checkpoint = _record(db, sink, keyring, chain, "seal", head.seq, head.hash, to_file=timestamper is None)
        db.commit()
        if timestamper is not None:
            _stamp(db, sink, timestamper, checkpoint)
        sealed += 1
    db.rollback()  # end the read transaction: no snapshot held between passes
    return sealed


def _stamp(db: Session, sink: FileSink, timestamper: Timestamper, checkpoint: JournalCheckpoint) -> None:
    """Anchor a committed seal in time, then write it to the file. A TSA outage leaves it without a token
    (the Timestamper logs why and backs off): sealing never waits on it for long."""
    body = checkpoint.body.encode()
    stamp = timestamper.stamp(body, what=f"journal seal {checkpoint.chain}#{checkpoint.seq}", backoff=True)
    token = b64e(stamp.token) if stamp.token else None
    if token is not None:
        checkpoint.timestamp_token = token
        db.commit()
    sink.append_checkpoints(checkpoint.chain, [checkpoint_line(checkpoint.signature, body, token)])


def _last_sealed(db: Session, chain: str) -> int | None:
    return db.scalar(
        select(func.max(JournalCheckpoint.seq)).where(
            JournalCheckpoint.chain == chain, JournalCheckpoint.kind == "seal"
        )
    )


def _not_wired(db: Session, chain: str, before: datetime) -> int | None:
    raise RuntimeError("what a prune must keep is not wired: open the platform (temoin.platform) first")


# The seq of the first entry of `chain` before `before` naming a recording still kept (vault.retention), or None.
# The vault imports the journal, so the platform sets it; a prune never runs without it.
first_trace_of_kept: Callable[[Session, str, datetime], int | None] = _not_wired


def prune(db: Session, sink: FileSink, keyring: Keyring, chain: str, cutoff: datetime) -> int:
    """Remove the entries of `chain` older than `cutoff` from both sinks. Returns how many.

    Consultations stay traceable until the recording is deleted (L241-2): the pruned prefix stops before the
    first entry naming a recording still in the vault (one kept by a hold, years on)."""
    older = [JournalEntry.chain == chain, JournalEntry.at < cutoff]
    stop = first_trace_of_kept(db, chain, cutoff)
    if stop is not None:
        older.append(JournalEntry.seq < stop)
    last = db.execute(
        select(JournalEntry.seq, JournalEntry.hash).where(*older).order_by(JournalEntry.seq.desc()).limit(1)
    ).first()
    if last is None:
        _finish_interrupted_prune(db, sink, keyring, chain)
        return 0
    first_seq = db.scalar(select(func.min(JournalEntry.seq)).where(JournalEntry.chain == chain))
    # The checkpoint is written (both sinks) before anything is removed: a crash in between leaves
    # entries that verification simply walks past.
    _record(
        db, sink, keyring, chain, "prune", last.seq, last.hash, {"pruned_from": first_seq, "cutoff": cutoff.isoformat()}
    )
    db.commit()
    removed = cast(
        "CursorResult[Any]",
        db.execute(delete(JournalEntry).where(JournalEntry.chain == chain, JournalEntry.seq <= last.seq)),
    ).rowcount
    db.commit()
    _drop_file_lines(sink, chain, last.seq)
    return removed


def _drop_file_lines(sink: FileSink, chain: str, upto: int) -> None:
    def drop(data: bytes) -> list[bytes] | None:
        if data and not data.endswith(b"\n"):
            return None  # left for `temoin journal repair`: rewriting would turn the partial line into an entry
        keep: list[bytes] = []
        dropped = False
        for raw in data.splitlines():
            if not raw.strip():
                continue
            try:
                old = int(orjson.loads(raw.partition(b" ")[2])["seq"]) <= upto
            except (ValueError, KeyError, TypeError):
                old = False  # an unreadable line is kept for verification to name
            if old:
                dropped = True
            else:
                keep.append(raw)
        return keep if dropped else None

    for path in sink.files(chain):
        sink.rewrite(path, drop)  # read and replaced under the appenders' lock: none of their entries is lost


def _finish_interrupted_prune(db: Session, sink: FileSink, keyring: Keyring, chain: str) -> None:
    """A prune killed after the database deletion left its entries in the file: remove them now, behind
    the latest prune checkpoint the platform signed, so they do not outlive their retention."""
    latest = db.scalar(
        select(JournalCheckpoint)
        .where(JournalCheckpoint.chain == chain, JournalCheckpoint.kind == "prune")
        .order_by(JournalCheckpoint.seq.desc())
        .limit(1)
    )
    if latest is None or not keyring.trusted.verify(
        b64d(latest.signature), latest.body.encode(), key_id=orjson.loads(latest.body).get("platform_key_id")
    ):
        return
    if orjson.loads(latest.body).get("seq") != latest.seq:
        return
    _drop_file_lines(sink, chain, latest.seq)
