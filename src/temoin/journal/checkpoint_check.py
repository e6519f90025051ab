"""The platform-signed checkpoints of a chain, checked: their own chain (a removed, altered or inserted one is
named), their signatures, and what the witness received that a sink lacks or holds differently."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.evidence.canonical import b64d
from temoin.evidence.keys import KeySet
from temoin.evidence.signing import verify as verify_signature
from temoin.journal.entry import GENESIS
from temoin.journal.findings import ChainReport, Checkpoint, Problem
from temoin.journal.models import JournalCheckpoint
from temoin.journal.sinks import FileSink
from temoin.journal.witness import WitnessedCheckpoint


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


def signed_checkpoints(
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


def with_witness(
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


@dataclass
class StoredCheckpoints:
    """A chain's checkpoints as each sink holds them, read once for every check: (body, signature, token)."""

    database: list[tuple[bytes, str, str | None]]
    file: list[tuple[bytes, str, str | None]]


def read_checkpoints(db: Session, sink: FileSink, chain: str) -> StoredCheckpoints:
    return StoredCheckpoints(db_checkpoints(db, chain), sink.read_checkpoint_lines(chain))


def db_checkpoints(db: Session, chain: str) -> list[tuple[bytes, str, str | None]]:
    rows = db.scalars(select(JournalCheckpoint).where(JournalCheckpoint.chain == chain).order_by(JournalCheckpoint.id))
    return [(r.body.encode(), r.signature, r.timestamp_token) for r in rows]


def signed_pairs(rows: list[tuple[bytes, str, str | None]]) -> list[tuple[bytes, str]]:
    return [(body, signature) for body, signature, _token in rows]
