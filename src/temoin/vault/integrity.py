"""A recording's integrity as a reviewer sees it: the segments lost at the camera, the proofs (the camera's
signature, the vault's receipt), the last full re-read of the stored blobs."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.evidence.manifest import SignedReceipt
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.vault.catalogue import SCAN_BATCH
from temoin.vault.context import VaultContext
from temoin.vault.models import Recording, RecordingState, Segment
from temoin.vault.receipts import declared_lost
from temoin.vault.scrub import check_recording

INTEGRITY_EVENTS = ("vault.corruption", "recording.verified")


@dataclass(frozen=True)
class FullCheck:
    """The last re-read of the stored blobs (a scrub that found problems, or a check asked for)."""

    at: datetime
    ok: bool
    problems: list[str]
    by: str
    lost_segments: list[int] = field(default_factory=list)  # not re-read: never in the vault (not a problem)


@dataclass(frozen=True)
class LostSegment:
    """A segment the camera declared damaged before hand-over (named in the signed receipt): its device-signed
    hash is in the manifest and in the chain, its bytes were never in the vault."""

    index: int
    started_at: datetime
    duration_s: float
    offset_s: float  # seconds from the recording's start

    @property
    def ended_at(self) -> datetime:
        return self.started_at + timedelta(seconds=self.duration_s)

    def as_dict(self) -> dict:
        return {
            "index": self.index,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat(),
            "offset_s": round(self.offset_s, 3),
            "duration_s": self.duration_s,
        }


def lost_segments(rec: Recording) -> list[LostSegment]:
    """The segments of a stored recording that the vault never held (declared lost by the camera)."""
    if rec.state != RecordingState.STORED:
        return []  # while receiving, an incomplete segment is still to come
    return [
        LostSegment(s.index, s.started_at, s.duration_s, (s.started_at - rec.started_at).total_seconds())
        for s in rec.segments
        if not s.complete
    ]


def lost_indexes(db: Session, recording_ids: Sequence[str]) -> dict[str, list[int]]:
    """lost_segments' indexes for many stored recordings at once (a search's results)."""
    out: dict[str, list[int]] = {}
    for i in range(0, len(recording_ids), SCAN_BATCH):
        rows = db.execute(
            select(Segment.recording_id, Segment.index)
            .join(Recording)
            .where(
                Segment.recording_id.in_(recording_ids[i : i + SCAN_BATCH]),
                Segment.complete.is_(False),
                Recording.state == RecordingState.STORED,
            )
            .order_by(Segment.recording_id, Segment.index)
        )
        for rid, index in rows:
            out.setdefault(rid, []).append(index)
    return out


def stored_segments(rec: Recording) -> list[Segment]:
    """The segments whose bytes the vault holds, in order (all of them unless some were lost at the camera)."""
    return [s for s in rec.segments if s.complete]


def lost_phrase(lost: Sequence[LostSegment] | Sequence[int]) -> str:
    indexes = [x.index if isinstance(x, LostSegment) else x for x in lost]
    return (
        f"intact except lost segments {indexes} declared by the camera (damaged there before hand-over, never "
        "in the vault; their device-signed hashes are still in the chain)"
    )


@dataclass(frozen=True)
class Integrity:
    stored_at: datetime | None  # every check passed on receipt: device signature, chain, each segment's hash
    signature_ok: bool  # the stored manifest's device signature, checked again now
    chain_ok: bool  # the catalogued segment hashes chain to the signed head, checked again now
    checked_at: datetime
    last_full_check: FullCheck | None
    lost: list[LostSegment] = field(default_factory=list)
    # Missing from the vault though the signed receipt does not declare them lost (a catalogue altered since).
    undeclared: list[int] = field(default_factory=list)
    # What signature_ok stands for: the camera's signature of its manifest, or (a recording that came through the
    # Axis Body Worn system, whose cameras sign nothing for Témoin) the vault's own record of its hash on arrival.
    proof: str = "device_signature"
    # Declared lost by the receipt, yet not in the camera's own signed declaration kept at ingest (a forged loss).
    not_by_camera: list[int] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        """intact; intact_except_lost (segments declared lost by the camera, the rest verified); damaged."""
        if (
            not (self.signature_ok and self.chain_ok)
            or self.undeclared
            or self.not_by_camera
            or (self.last_full_check and not self.last_full_check.ok)
        ):
            return "damaged"
        return "intact_except_lost" if self.lost else "intact"

    @property
    def summary(self) -> str:
        if self.verdict == "damaged":
            failed = [
                f"{what} failed"
                for what, ok in (
                    (
                        "device signature" if self.proof == "device_signature" else "vault's hash record on arrival",
                        self.signature_ok,
                    ),
                    ("segment chain", self.chain_ok),
                    ("last re-read", not self.last_full_check or self.last_full_check.ok),
                )
                if not ok
            ]
            if self.undeclared:
                failed.append(
                    f"segments {self.undeclared} are not in the vault and the signed receipt does not declare them lost"
                )
            if self.not_by_camera:
                failed.append(
                    f"the signed receipt declares segments {self.not_by_camera} lost, but the camera's signed "
                    "declaration does not"
                )
            return f"NOT intact: {'; '.join(failed)}"
        if self.lost:
            return lost_phrase(self.lost)
        if self.proof == "vault_hash_on_arrival":
            return (
                "intact: hashes taken by the vault on arrival (Axis camera: no device signature), segment chain "
                "and every segment verified"
            )
        return "intact: device signature, segment chain and every segment verified"


AXIS_TRIGGER = "axis"  # Recording.trigger of what came through the Axis system (its TriggerOn is kept as metadata)


def is_axis(rec: Recording) -> bool:
    """Came through the Axis Body Worn system (temoin.axis): no device signature, the vault's hash on arrival."""
    return rec.trigger == AXIS_TRIGGER and rec.manifest.startswith('{"axis"')


def vault_proof(p: VaultContext, rec: Recording) -> tuple[bool, str | None]:
    """For an Axis recording, what stands in for the device signature: the manifest document the vault wrote on
    arrival still hashes to the catalogued SHA-256, and the vault's signed receipt (by a platform key) states it.
    Returns (ok, the chain head the document states)."""
    try:
        doc = orjson.loads(rec.manifest)
        receipt = SignedReceipt.model_validate_json(rec.receipt or "")
    except ValueError:
        return False, None
    key = p.keyring.trusted.get(receipt.receipt.platform_key_id)
    ok = (
        hashlib.sha256(rec.manifest.encode()).hexdigest() == rec.manifest_sha256 == receipt.receipt.manifest_sha256
        and receipt.receipt.recording_id == rec.id
        and key is not None
        and receipt.verify(key.public_key)
    )
    return ok, (doc.get("manifest") or {}).get("chain_head")


def integrity_of(p: VaultContext, db: Session, rec: Recording) -> Integrity:
    """What is known of a recording's integrity, and when it was checked. Cheap: no blob is read."""
    from temoin.evidence.chain import chain_links

    if is_axis(rec):  # no device signature: the proof starts at the vault's hash on arrival (docs/axis.md)
        signature_ok, head = vault_proof(p, rec)
    else:
        signature_ok, head = _device_proof(p, db, rec)
    links = chain_links(rec.id, (bytes.fromhex(s.sha256) for s in rec.segments))
    chain_ok = bool(links) and links[-1].hex() == rec.chain_head == head
    lost = lost_segments(rec)
    declared = set(declared_lost(rec))
    return Integrity(
        rec.stored_at,
        signature_ok,
        chain_ok,
        utcnow(),
        last_full_check(db, rec),
        [x for x in lost if x.index in declared],
        [x.index for x in lost if x.index not in declared],
        "vault_hash_on_arrival" if is_axis(rec) else "device_signature",
        [] if is_axis(rec) or not declared else _not_by_camera(db, rec, sorted(declared)),
    )


_INGEST_ENTRY_SLACK = timedelta(hours=1)  # a server clock stepped by NTP meanwhile


def _not_by_camera(db: Session, rec: Recording, declared: list[int]) -> list[int]:
    """The segments the receipt declares lost that the camera's signed `complete` request, kept in the
    `recording.ingested` entry, does not (all of them when that request is there but not the camera's). None
    when no request was kept (a recording stored before it was): the receipt is then the only record."""
    from temoin.evidence.device_requests import camera_declared_lost
    from temoin.identity.devices import keys_of
    from temoin.journal.models import JournalEntry
    from temoin.journal.service import parse_body

    # The entry was written when the vault stored the recording: the (tenant, time) index narrows the search to
    # that hour before the body is matched (a LIKE over the tenant's whole journal otherwise).
    stored = rec.stored_at or rec.received_at
    entry = db.scalar(
        select(JournalEntry).where(
            JournalEntry.tenant_id == rec.tenant_id,
            JournalEntry.at >= rec.received_at - _INGEST_ENTRY_SLACK,
            JournalEntry.at <= stored + _INGEST_ENTRY_SLACK,
            JournalEntry.event == "recording.ingested",
            JournalEntry.body.contains(f'"{rec.id}"', autoescape=True),
        )
    )
    said = ((parse_body(entry.body).get("details") or {}) if entry else {}).get("lost_declaration")
    if said is None:
        return []
    for key in keys_of(db, rec.device_id):  # the camera's key when it handed over: one of its keys
        lost = camera_declared_lost(said, key.public_key, rec.id)
        if not isinstance(lost, str):
            return [i for i in declared if i not in lost]
    return declared


def _device_proof(p: VaultContext, db: Session, rec: Recording) -> tuple[bool, str | None]:
    from temoin.evidence.manifest import SignedManifest
    from temoin.identity.devices import certificate_of, recording_key

    try:
        envelope = SignedManifest.model_validate_json(rec.manifest)
        key = recording_key(db, envelope.manifest)  # the key valid when the camera signed, not today's
        signature_ok = (
            key is not None
            and envelope.manifest.camera_id == rec.device_id
            and certificate_of(p, db, key) is not None
            and envelope.digest() == rec.manifest_sha256
            and envelope.verify(key.public_key)
        )
        head = envelope.manifest.chain_head
    except ValueError:
        signature_ok, head = False, None
    return signature_ok, head


def last_full_check(db: Session, rec: Recording) -> FullCheck | None:
    from temoin.journal.models import JournalEntry
    from temoin.journal.service import parse_body

    entries = db.scalars(
        select(JournalEntry)
        .where(
            JournalEntry.tenant_id == rec.tenant_id,
            JournalEntry.event.in_(INTEGRITY_EVENTS),
            JournalEntry.body.contains(f'"{rec.id}"', autoescape=True),
        )
        .order_by(JournalEntry.at.desc())
        .limit(1)
    )
    for entry in entries:
        body = parse_body(entry.body)
        details = body.get("details") or {}
        problems = [p for p in details.get("problems", []) if str(p).startswith(f"{rec.id} ")]
        ok = bool(details.get("ok")) if entry.event == "recording.verified" else not problems
        return FullCheck(
            entry.at, ok, problems, (body.get("actor") or {}).get("name", "?"), list(details.get("lost_segments") or [])
        )
    return None


def verify_stored(p: VaultContext, db: Session, user: User, rec: Recording) -> FullCheck:
    """Re-read, decrypt and re-hash every stored segment of one recording now; journaled."""

    tenant = db.get_one(Tenant, rec.tenant_id)
    problems, checked = check_recording(p, rec, tenant.slug)
    messages = [str(c) for c in problems]
    lost = [x.index for x in lost_segments(rec)]
    p.record(
        db,
        EntryDraft(
            action=Action.SECURITY,
            event="recording.verified",
            actor=actor_of(user),
            recordings=[rec.id],
            cameras=[rec.device_id],
            details={
                "ok": not problems,
                "problems": messages[:100],
                "bytes": checked,
                "segments": rec.segment_count,
                **({"lost_segments": lost} if lost else {}),
            },
        ),
        tenant,
    )
    db.commit()
    return FullCheck(utcnow(), not problems, messages, user.display_name, lost)
