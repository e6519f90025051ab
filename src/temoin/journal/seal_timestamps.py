"""The RFC 3161 timestamps of the journal's seals: each token's imprint is the signed seal body, its TSA time agrees
with the seal's, both sinks hold the same token, and with a CA bundle its signature and chain verify."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.evidence.canonical import b64d
from temoin.evidence.keys import KeySet
from temoin.evidence.timestamp import TimestampError, TimestampInfo, inspect_token, verify_token
from temoin.journal.checkpoint_check import StoredCheckpoints, read_checkpoints, signed_by_platform
from temoin.journal.findings import Problem
from temoin.journal.models import JournalHead
from temoin.journal.sinks import FileSink

SEAL_STAMP_SKEW_S = 600  # a seal is stamped as it is signed: a TSA time further from its `at` was made later


@dataclass
class SealStamps:
    """The timestamps of one chain's seals: the last seal and the time a TSA anchored it, if any."""

    chain: str
    seals: int = 0
    stamped: int = 0
    checked: bool = False  # tokens verified against a CA bundle (else imprint only)
    last_seq: int | None = None
    last_at: str | None = None
    anchored: TimestampInfo | None = None  # the last seal's token
    last_invalid: bool = False  # the last seal has a token that does not verify (a problem says why)
    latest_stamped: tuple[int, TimestampInfo] | None = None  # the last seal that has a token
    problems: list[Problem] = field(default_factory=list)

    def summary(self) -> str:
        if self.last_seq is None:
            return f"[{self.chain}] no seal yet: not timestamped"
        last = f"[{self.chain}] last seal (entry {self.last_seq}, {self.last_at})"
        how = "verified against the CA bundle" if self.checked else "timestamp present but not checked: give --tsa-ca"
        if self.anchored is not None:
            return f"{last}: anchored {self.anchored.describe()} ({how})"
        if self.last_invalid:
            return f"{last}: its timestamp does not verify (see the problems below)"
        if self.latest_stamped is not None:
            seq, info = self.latest_stamped
            return (
                f"{last}: not timestamped; the latest timestamped seal, entry {seq}, is anchored "
                f"{info.describe()} ({how})"
            )
        return f"{last}: not timestamped"


def _seal_tokens(rows: Iterable[tuple[bytes, str, str | None]], public_key: bytes | KeySet) -> dict[bytes, str | None]:
    """Signed seal bodies and their token (None: none). Forged checkpoints are left to the signature check."""
    found: dict[bytes, str | None] = {}
    for body, signature, token in rows:
        try:
            if not signed_by_platform(public_key, signature, body):
                continue
            if orjson.loads(body).get("kind") != "seal":
                continue
        except (ValueError, orjson.JSONDecodeError):
            continue
        found[body] = token
    return found


def verify_seal_timestamps(
    db: Session,
    sink: FileSink,
    chain: str,
    public_key: bytes | KeySet,
    ca_bundle_pem: bytes | None = None,
    stored: StoredCheckpoints | None = None,
) -> SealStamps:
    """Check every seal's token: its imprint is the SHA-256 of the signed seal body, its TSA time agrees with
    the seal's, both sinks hold the same token, and with `ca_bundle_pem` its signature and chain."""
    report = SealStamps(chain=chain, checked=ca_bundle_pem is not None)
    stored = stored or read_checkpoints(db, sink, chain)
    in_db = _seal_tokens(stored.database, public_key)
    in_file = _seal_tokens(stored.file, public_key)
    seals = sorted({*in_db, *in_file}, key=lambda body: int(orjson.loads(body)["seq"]))
    report.seals = len(seals)

    def problem(sink_name: str, seq: int, message: str) -> None:
        report.problems.append(Problem(sink_name, chain, seq, "timestamp", message))

    for body in seals:
        seal = orjson.loads(body)
        seq, at = int(seal["seq"]), str(seal["at"])
        report.last_seq, report.last_at, report.anchored, report.last_invalid = seq, at, None, False
        tokens = {name: held[body] for name, held in (("database", in_db), ("file", in_file)) if body in held}
        if len(tokens) == 2 and tokens["database"] != tokens["file"]:
            problem(
                "both",
                seq,
                f"the seal of entry {seq} ({at}) has "
                + (
                    "different timestamp tokens in the two sinks"
                    if all(tokens.values())
                    else "a timestamp token in one sink only: it was removed from the other"
                ),
            )
        token = next((t for t in tokens.values() if t), None)
        if token is None:
            continue
        report.stamped += 1
        try:
            der = b64d(token)
            info = verify_token(der, body, ca_bundle_pem) if ca_bundle_pem else inspect_token(der, body)
        except (TimestampError, ValueError) as exc:
            problem(
                "both",
                seq,
                f"the timestamp of the seal of entry {seq} ({at}) is invalid: {getattr(exc, 'message', 'not base64')}",
            )
            report.last_invalid = True
            continue
        skew = abs((info.time - datetime.fromisoformat(at.replace("Z", "+00:00"))).total_seconds())
        if skew > SEAL_STAMP_SKEW_S:
            problem(
                "both",
                seq,
                f"the seal of entry {seq} says {at} but its timestamp is {info.describe()}: "
                "the seal was made or re-made at another time than it says (or the platform's "
                "clock was wrong)",
            )
        report.anchored, report.latest_stamped = info, (seq, info)
    return report


def verify_all_seal_timestamps(
    db: Session,
    sink: FileSink,
    public_key: bytes | KeySet,
    ca_bundle_pem: bytes | None = None,
    chains: list[str] | None = None,
    checkpoints: dict[str, StoredCheckpoints] | None = None,
) -> list[SealStamps]:
    """`checkpoints`: what verify_all already read (VerifyResult.checkpoints); a chain it lacks is read here."""
    if chains is None:
        chains = sorted(set(db.scalars(select(JournalHead.chain))) | set(sink.chains()))
    read = checkpoints or {}
    return [verify_seal_timestamps(db, sink, chain, public_key, ca_bundle_pem, read.get(chain)) for chain in chains]
