"""A witness outside the platform's two sinks: every checkpoint (seals, prunes) is also sent to a
write-only destination the platform's operators need not control, so removing seals, or the entries
they vouch for, from both sinks is still seen.

Destination: remote syslog over TCP (`syslog+tcp://host:port`), RFC 5424 messages framed by octet
counting (RFC 6587). A checkpoint not yet delivered stays in the outbox (`journal_witness_progress`
says how far each chain got) and is sent by the next pass: a witness that is down never stops the
platform. Delivered means the collector read the whole stream: we close our side and wait for its close.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.db import utcnow
from temoin.evidence.canonical import b64d
from temoin.evidence.signing import verify as verify_signature
from temoin.journal.models import JournalCheckpoint, JournalWitnessProgress

log = logging.getLogger("temoin.journal.witness")

MARKER = b"temoin-checkpoint v1 "
# RFC 5424: facility 13 (log audit), severity 5 (notice).
_PRI = 13 * 8 + 5
_BATCH = 500


class WitnessConfigError(errors.InvalidInput, ValueError):
    pass


class WitnessUnreachable(errors.UpstreamFault):
    pass


@dataclass(frozen=True)
class SyslogWitness:
    host: str
    port: int
    timeout_s: float = 5.0

    @property
    def destination(self) -> str:
        return f"syslog+tcp://{self.host}:{self.port}"

    def message(self, line: bytes, at: datetime | None = None) -> bytes:
        """One RFC 5424 message carrying one checkpoint line (`<signature> <body>`), octet-count framed."""
        stamp = (at or utcnow()).isoformat(timespec="microseconds").replace("+00:00", "Z")
        host = (socket.gethostname() or "-")[:255]
        msg = f"<{_PRI}>1 {stamp} {host} temoin {os.getpid()} checkpoint - ".encode() + MARKER + line
        return str(len(msg)).encode() + b" " + msg

    def send(self, lines: list[bytes]) -> None:
        """Deliver `lines` in one connection; returns once the collector has read them all."""
        data = b"".join(self.message(line) for line in lines)
        try:
            with socket.create_connection((self.host, self.port), timeout=self.timeout_s) as sock:
                sock.sendall(data)
                sock.shutdown(socket.SHUT_WR)
                while sock.recv(4096):  # the collector closes once it has read our end of stream
                    pass
        except OSError as exc:
            raise WitnessUnreachable(f"journal witness {self.destination} unreachable: {exc}") from exc


def witness_from_url(url: str | None) -> SyslogWitness | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme != "syslog+tcp" or not parts.hostname or parts.port is None or parts.path not in ("", "/"):
        raise WitnessConfigError(
            f"TEMOIN_JOURNAL_WITNESS={url!r} is not understood: give a remote syslog "
            "collector as syslog+tcp://HOST:PORT (RFC 5424 over TCP, octet counting)"
        )
    return SyslogWitness(parts.hostname, parts.port)


def flush(db: Session, witness: SyslogWitness) -> int:
    """Send every checkpoint the witness has not had yet; returns how many were delivered.

    Raises WitnessUnreachable (nothing is marked sent then; the next pass sends them again)."""
    progress = {
        row.chain: row
        for row in db.scalars(
            select(JournalWitnessProgress).where(JournalWitnessProgress.destination == witness.destination)
        )
    }
    chains = db.scalars(select(JournalCheckpoint.chain).distinct()).all()
    delivered = 0
    for chain in sorted(chains):
        while True:
            row = progress.get(chain)
            batch = db.execute(
                select(JournalCheckpoint.id, JournalCheckpoint.signature, JournalCheckpoint.body)
                .where(JournalCheckpoint.chain == chain, JournalCheckpoint.id > (row.sent_id if row else 0))
                .order_by(JournalCheckpoint.id)
                .limit(_BATCH)
            ).all()
            if not batch:
                break
            witness.send([cp.signature.encode() + b" " + cp.body.encode() for cp in batch])
            if row is None:
                row = progress[chain] = JournalWitnessProgress(
                    destination=witness.destination, chain=chain, sent_id=0, sent_at=utcnow()
                )
                db.add(row)
            row.sent_id, row.sent_at = batch[-1].id, utcnow()
            db.commit()
            delivered += len(batch)
    return delivered


def pending(db: Session, witness: SyslogWitness) -> int:
    """Checkpoints not yet delivered to the witness."""
    progress = {
        row.chain: row.sent_id
        for row in db.scalars(
            select(JournalWitnessProgress).where(JournalWitnessProgress.destination == witness.destination)
        )
    }
    count = 0
    for chain, cp_id in db.execute(select(JournalCheckpoint.chain, JournalCheckpoint.id)).all():
        count += cp_id > progress.get(chain, 0)
    return count


# --- reading what the witness received ----------------------------------------------------------


@dataclass(frozen=True)
class WitnessedCheckpoint:
    body: bytes
    signature: str
    lineno: int

    @property
    def fields(self) -> dict:
        return orjson.loads(self.body)


@dataclass
class WitnessLog:
    path: Path
    # chain -> n -> the checkpoint as the witness received it (chained checkpoints only)
    chains: dict[str, dict[int, WitnessedCheckpoint]] = field(default_factory=dict)
    not_ours: int = 0  # lines with our marker but no valid platform signature (ignored)
    conflicts: list[str] = field(default_factory=list)  # two different checkpoints with the same number

    def of(self, chain: str) -> dict[int, WitnessedCheckpoint]:
        return self.chains.get(chain, {})


def _marked_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            at = raw.find(MARKER)
            if at >= 0:
                yield lineno, raw[at + len(MARKER) :].rstrip(b"\r\n")


def read_witness_log(path: Path, public_keys: list[bytes]) -> WitnessLog:
    """The checkpoints found in a syslog file written by the witness (any line layout: the message
    is found by its marker). Lines not signed by this platform are counted and ignored: anyone may
    send to a syslog collector."""
    result = WitnessLog(path)
    for lineno, line in _marked_lines(path):
        signature, _, body = line.partition(b" ")
        try:
            sig = b64d(signature.decode("ascii"))
            ok = any(verify_signature(key, sig, body) for key in public_keys)
            fields = orjson.loads(body) if ok else None
        except (ValueError, UnicodeDecodeError):
            ok, fields = False, None
        if not ok or not isinstance(fields, dict):
            result.not_ours += 1
            continue
        if "n" not in fields:
            continue  # a checkpoint from before they were chained: nothing to compare it by
        seen = result.chains.setdefault(str(fields["chain"]), {})
        n = int(fields["n"])
        earlier = seen.get(n)
        if earlier is not None and earlier.body != body:
            result.conflicts.append(
                f"the witness received two different checkpoints {n} for chain "
                f"{fields['chain']!r} (lines {earlier.lineno} and {lineno}): the chain was "
                "rewritten and sealed again"
            )
            continue
        if earlier is None:
            seen[n] = WitnessedCheckpoint(body, signature.decode("ascii"), lineno)
    return result
