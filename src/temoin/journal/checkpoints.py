"""Signed checkpoints: seals (the platform vouches for a chain's head at a time) and pruning.

Entries older than the profile's journal retention (three years) are removed behind a prune
checkpoint that records the last pruned entry's hash, so the remaining chain still verifies.
"""

from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.evidence.canonical import b64d, b64e, canonical_bytes
from temoin.evidence.timestamp import Timestamper
from temoin.journal.models import JournalCheckpoint, JournalEntry, JournalHead
from temoin.journal.sinks import FileSink, checkpoint_line
from temoin.keyring import Keyring


def _record(db: Session, sink: FileSink, keyring: Keyring, chain: str, kind: str, seq: int, digest: str,
            extra: dict | None = None, timestamper: Timestamper | None = None) -> JournalCheckpoint:
    at = utcnow()
    body = canonical_bytes({"chain": chain, "kind": kind, "seq": seq, "hash": digest, "at": at.isoformat(),
                            "platform_key_id": keyring.public_key_id, **(extra or {})})
    signature = keyring.sign(body)
    # A TSA outage seals without a token (the Timestamper logs why and backs off): sealing never waits on it.
    stamp = timestamper.stamp(body, what=f"journal seal {chain}#{seq}", backoff=True) if timestamper else None
    token = b64e(stamp.token) if stamp and stamp.token else None
    checkpoint = JournalCheckpoint(chain=chain, kind=kind, seq=seq, hash=digest, at=at, body=body.decode(),
                                   signature=signature, timestamp_token=token)
    db.add(checkpoint)
    sink.append_checkpoint(chain, checkpoint_line(signature, body, token))
    return checkpoint


def seal(db: Session, sink: FileSink, keyring: Keyring, timestamper: Timestamper | None = None) -> int:
    """Sign the current head of every chain, with an RFC 3161 token when a TSA is configured. Returns the
    number of chains sealed."""
    sealed = 0
    for head in db.scalars(select(JournalHead)).all():
        last = db.scalar(select(func.max(JournalCheckpoint.seq)).where(JournalCheckpoint.chain == head.chain,
                                                                       JournalCheckpoint.kind == "seal"))
        if last == head.seq:
            continue
        _record(db, sink, keyring, head.chain, "seal", head.seq, head.hash, timestamper=timestamper)
        sealed += 1
    db.commit()
    return sealed


def prune(db: Session, sink: FileSink, keyring: Keyring, chain: str, cutoff: datetime) -> int:
    """Remove the entries of `chain` older than `cutoff` from both sinks. Returns how many.

    Consultations stay traceable until the recording is deleted (L241-2): the pruned prefix stops before the
    first entry naming a recording still in the vault (one kept by a hold, years on)."""
    from temoin.vault.retention import first_trace_of_kept  # the vault imports the journal

    older = [JournalEntry.chain == chain, JournalEntry.at < cutoff]
    stop = first_trace_of_kept(db, chain, cutoff)
    if stop is not None:
        older.append(JournalEntry.seq < stop)
    last = db.execute(select(JournalEntry.seq, JournalEntry.hash).where(*older)
                      .order_by(JournalEntry.seq.desc()).limit(1)).first()
    if last is None:
        _finish_interrupted_prune(db, sink, keyring, chain)
        return 0
    first_seq = db.scalar(select(func.min(JournalEntry.seq)).where(JournalEntry.chain == chain))
    # The checkpoint is written (both sinks) before anything is removed: a crash in between leaves
    # entries that verification simply walks past.
    _record(db, sink, keyring, chain, "prune", last.seq, last.hash,
            {"pruned_from": first_seq, "cutoff": cutoff.isoformat()})
    db.commit()
    removed = db.execute(delete(JournalEntry).where(JournalEntry.chain == chain,
                                                    JournalEntry.seq <= last.seq)).rowcount
    db.commit()
    _drop_file_lines(sink, chain, last.seq)
    return removed


def _drop_file_lines(sink: FileSink, chain: str, upto: int) -> None:
    for path in sink.files(chain):
        keep: list[bytes] = []
        dropped = False
        for raw in path.read_bytes().splitlines():
            if not raw.strip():
                continue
            if int(orjson.loads(raw.partition(b" ")[2])["seq"]) <= upto:
                dropped = True
            else:
                keep.append(raw)
        if dropped:
            sink.rewrite(path, keep)


def _finish_interrupted_prune(db: Session, sink: FileSink, keyring: Keyring, chain: str) -> None:
    """A prune killed after the database deletion left its entries in the file: remove them now, behind
    the latest prune checkpoint the platform signed, so they do not outlive their retention."""
    latest = db.scalar(select(JournalCheckpoint).where(JournalCheckpoint.chain == chain,
                                                       JournalCheckpoint.kind == "prune")
                       .order_by(JournalCheckpoint.seq.desc()).limit(1))
    if latest is None or not keyring.trusted.verify(b64d(latest.signature), latest.body.encode(),
                                                    key_id=orjson.loads(latest.body).get("platform_key_id")):
        return
    if orjson.loads(latest.body).get("seq") != latest.seq:
        return
    _drop_file_lines(sink, chain, latest.seq)
