"""Planning an extraction: the request, the checks (who, which recordings, what may be handed over), and
everything the build needs read from the vault and the journal before the long build starts."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, BinaryIO

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.axis import vault as axis_vault
from temoin.db import utcnow
from temoin.errors import Conflict
from temoin.evidence import crypto
from temoin.evidence.canonical import b64e
from temoin.evidence.manifest import SignedManifest
from temoin.extraction import custody
from temoin.extraction.models import MediaKind, ProcedureType, RecipientKind
from temoin.identity.devices import camera_names, recording_key, signing_time
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Actor
from temoin.law.access import Permission, Role, allows
from temoin.vault import catalogue, integrity
from temoin.vault.context import VaultContext
from temoin.vault.limitation import RecordingLimited, ensure_not_limited
from temoin.vault.models import Hold, Recording, RecordingNote, RecordingState
from temoin.vault.receipts import declared_lost
from temoin.vault.storage import blob_key

MAX_RECORDINGS = 50
LOST_REASON = (
    "damaged on the camera before hand-over, declared lost in the vault's signed receipt: never in the "
    "vault, so not in this package; its device-signed hash is still in the chain"
)


class ExtractionError(errors.TemoinError):
    """Refused or failed; the subclass's kind says which (temoin.errors), the message says what to do."""


class ExtractionNotFound(errors.NotFound, ExtractionError):
    pass


class ExtractionForbidden(errors.Forbidden, ExtractionError):
    pass


class ExtractionConflict(errors.Conflict, ExtractionError):
    pass


class ExtractionInvalid(errors.InvalidInput, ExtractionError):
    pass


class PackageGone(errors.Gone, ExtractionError):
    """The package was deleted (kept PACKAGE_DAYS days): make a new extraction."""


class ExtractionFault(errors.Fault, ExtractionError):
    pass


@dataclass(frozen=True)
class TrimRequest:
    recording_id: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class ExtractionRequest:
    recording_ids: list[str]
    recipient_name: str
    recipient_kind: RecipientKind
    procedure_type: ProcedureType
    reference: str
    trim: TrimRequest | None = None

    @property
    def training(self) -> bool:
        return self.recipient_kind == RecipientKind.TRAINER or self.procedure_type == ProcedureType.TRAINING


# --- reading the vault ------------------------------------------------------------------------------


class SealedReader(io.RawIOBase):
    """A seekable, read-only view of a sealed blob's plaintext, decrypting one record at a time.

    Records are RECORD_BYTES of plaintext each (the last one shorter), so any offset maps to one record:
    PyAV can demux a segment (trimming) without its plaintext ever being written or held whole."""

    _STRIDE = 4 + crypto.RECORD_BYTES + crypto.TAG_BYTES

    def __init__(self, fh: BinaryIO, data_key: bytes, size: int) -> None:
        super().__init__()
        self._fh, self._size, self._pos = fh, size, 0
        header = fh.read(crypto.HEADER_BYTES)
        if len(header) != crypto.HEADER_BYTES or not header.startswith(crypto.MAGIC):
            raise crypto.IntegrityError("not a Témoin blob (bad header)")
        self._header, self._aead = header, crypto._blob_cipher(data_key, header)
        self._cached: tuple[int, bytes] | None = None

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def _record(self, index: int) -> bytes:
        if self._cached and self._cached[0] == index:
            return self._cached[1]
        self._fh.seek(crypto.HEADER_BYTES + index * self._STRIDE)
        (length,) = struct.unpack(">I", self._fh.read(4))
        sealed = self._fh.read(length)
        try:
            plain = self._aead.decrypt(crypto._nonce(index), sealed, self._header)
        except Exception:  # noqa: BLE001 - InvalidTag, or a truncated record
            raise crypto.IntegrityError(f"record {index}: authentication failed (altered)") from None
        self._cached = (index, plain)
        return plain

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        index, within = divmod(self._pos, crypto.RECORD_BYTES)
        record = self._record(index)
        n = min(len(buffer), len(record) - within)
        buffer[:n] = record[within : within + n]
        self._pos += n
        return n

    def close(self) -> None:
        self._fh.close()
        super().close()


@dataclass
class _Segment:
    index: int
    size: int
    sha256: str
    chain: str
    started_at: datetime
    duration_s: float
    key: str


@dataclass
class _Recording:
    row: dict[str, Any]  # the manifest's recording section, less media/trim/redaction
    data_key: bytes
    segments: list[_Segment]  # the ones the vault holds
    started_at: datetime
    length_s: float = 0.0  # from the start to the end of the last segment, lost or not
    lost: list[_Segment] = field(default_factory=list)  # lost at the camera: in the signed chain, never in the vault

    def lost_within(self, start_s: float, end_s: float) -> list[int]:
        return [s.index for s in self.lost if _offset(self, s) + s.duration_s > start_s and _offset(self, s) < end_s]


def _offset(rec: _Recording, seg: _Segment) -> float:
    return (seg.started_at - rec.started_at).total_seconds()


@dataclass
class Plan:
    """Everything the build needs, read from the database before the (long) build starts."""

    extraction_id: str
    tenant_slug: str
    tenant_name: str
    actor: Actor
    user_id: int
    created_at: datetime
    request: ExtractionRequest
    recordings: list[_Recording]
    entries: list[custody.CustodyEntry]
    cameras: list[str] = field(default_factory=list)

    @property
    def media_kind(self) -> MediaKind:
        if self.request.training:
            return MediaKind.REDACTED
        return MediaKind.TRIMMED if self.request.trim else MediaKind.ORIGINAL

    @property
    def total_bytes(self) -> int:
        return sum(s.size for r in self.recordings for s in r.segments)


def _redactor() -> Callable[..., Any] | None:
    """The redaction engine (temoin.rights.redaction), when this platform has it."""
    try:
        from temoin.rights.redaction import redact_file
    except (ImportError, AttributeError):
        return None
    return redact_file


def new_id(now: datetime) -> str:
    return f"ext-{now:%Y%m%d}-{secrets.token_hex(6)}"


def prepare(
    p: VaultContext, db: Session, user: User, request: ExtractionRequest, extraction_id: str | None = None
) -> Plan:
    """Check the right, the recordings and the request; read what the build needs. Nothing is written
    except a SECURITY entry when another tenant's recording is asked for. `extraction_id`: the id a queued
    extraction was given when asked for (each attempt of the job builds the same package)."""
    if not allows(Role(user.role), Permission.RECORDINGS_EXTRACT):
        raise ExtractionForbidden(f"your role ({user.role}) does not allow extractions")
    ids = list(dict.fromkeys(request.recording_ids))
    if not ids:
        raise ExtractionInvalid("name at least one recording to extract")
    if len(ids) > MAX_RECORDINGS:
        raise ExtractionInvalid(f"at most {MAX_RECORDINGS} recordings per package; make several extractions")
    if len(request.recipient_name.strip()) < 2 or len(request.reference.strip()) < 3:
        raise ExtractionInvalid("name the recipient and give the procedure's reference")
    if request.trim and request.trim.recording_id not in ids:
        raise ExtractionInvalid(f"the trim names {request.trim.recording_id}, which is not in the extraction")
    if request.training and _redactor() is None:
        raise ExtractionConflict(
            "a training extraction must be anonymised, faces and voices (R241-13), and this "
            "platform has no redaction engine (temoin.rights.redaction): no training package "
            "can be made; install it, or extract for a procedure instead"
        )
    tenant = db.get_one(Tenant, user.tenant_id)
    recordings = []
    for rid in ids:
        rec = db.get(Recording, rid)
        if rec is None or rec.tenant_id != user.tenant_id or not catalogue.in_communes(user, rec):
            try:  # journals the attempt on another tenant's recording (SECURITY), then says 404
                catalogue.get_visible(p, db, user, rid)
            except catalogue.NotFound as exc:
                raise ExtractionNotFound(str(exc)) from None
        assert rec is not None, "get_visible refuses a recording that does not exist"
        if rec.state == RecordingState.DELETED or rec.wrapped_key is None:
            raise ExtractionConflict(
                f"{rid} was deleted on {rec.deleted_at:%Y-%m-%d} ({rec.state_reason}): "
                "only its deletion certificate remains, nothing can be extracted"
            )
        if rec.state == RecordingState.QUARANTINED:
            raise ExtractionConflict(
                f"{rid} is quarantined ({rec.state_reason}): it failed verification at "
                "ingest and is not evidence; it cannot be extracted"
            )
        if rec.state != RecordingState.STORED:
            raise ExtractionConflict(f"{rid} is still being uploaded ({rec.state}); extract it once stored")
        try:  # frozen by a person's limitation request: kept only
            ensure_not_limited(db, [rid], "extracting it")
        except RecordingLimited as exc:
            raise ExtractionConflict(str(exc)) from None
        recordings.append(_plan_recording(p, db, tenant, rec))
    if request.trim:
        trimmed = next(r for r in recordings if r.row["id"] == request.trim.recording_id)
        length = trimmed.length_s
        start_s, end_s = request.trim.start_s, request.trim.end_s
        if not 0 <= start_s < end_s:
            raise ExtractionInvalid("the trim must satisfy 0 <= start_s < end_s (seconds from the recording's start)")
        if start_s >= length:
            raise ExtractionInvalid(f"{trimmed.row['id']} lasts {length:.1f} s: the trim starts after its end")
        if not any(
            _offset(trimmed, s) + s.duration_s > start_s and _offset(trimmed, s) < end_s for s in trimmed.segments
        ):
            raise ExtractionInvalid(
                f"{trimmed.row['id']}: {start_s} s to {end_s} s lies within segment(s) "
                f"{trimmed.lost_within(start_s, end_s)} lost at the camera before hand-over: the "
                "vault holds nothing of that range; choose a range covering a stored segment"
            )
    now = utcnow()
    entries = custody.journal_entries(db, tenant.id, ids)
    for planned in recordings:  # the camera's signed declaration of its lost segments, kept at ingest
        if planned.lost:
            said = next(
                (
                    e.details.get("lost_declaration")
                    for e in entries
                    if e.event == "recording.ingested" and planned.row["id"] in e.recordings
                ),
                None,
            )
            if said:
                planned.row["lost_declaration"] = said
    plan = Plan(
        extraction_id=extraction_id or new_id(now),
        tenant_slug=tenant.slug,
        tenant_name=tenant.name,
        actor=actor_of(user),
        user_id=user.id,
        created_at=now,
        request=request,
        recordings=recordings,
        entries=entries,
        cameras=sorted({r.row["camera_id"] for r in recordings}),
    )
    db.rollback()  # end the read transaction: the build may take minutes
    return plan


def _plan_recording(p: VaultContext, db: Session, tenant: Tenant, rec: Recording) -> _Recording:
    # Through the Axis Body Worn system: no device signature, the proof is the vault's hashes on arrival.
    try:
        axis = axis_vault.package_fields(p, db, rec) if axis_vault.is_axis(rec) else None
    except Conflict as exc:  # clips the camera encrypted: refused, said as the Axis side says it
        raise ExtractionConflict(exc.message) from None
    envelope = SignedManifest.model_validate_json(rec.manifest) if axis is None else None
    key = recording_key(db, envelope.manifest) if envelope else None  # the camera's key when it signed
    if key is None and axis is None:
        assert envelope is not None, "the camera's manifest is read whenever the recording did not come via Axis"
        raise ExtractionConflict(
            f"{rec.id}: no key of camera {rec.device_id} was valid when its manifest was "
            f"signed ({signing_time(envelope.manifest).isoformat()}): the platform cannot "
            "certify it, so it cannot be extracted"
        )
    held = db.scalar(select(Hold).where(Hold.recording_id == rec.id, Hold.lifted_at.is_(None)).limit(1))
    lost = integrity.lost_segments(rec)
    undeclared = sorted({x.index for x in lost} - set(declared_lost(rec)))
    if undeclared:
        raise ExtractionConflict(
            f"{rec.id}: segments {undeclared} are not in the vault, yet the signed receipt "
            "does not declare them lost at the camera: the catalogue was altered; run "
            "`temoin vault scrub` and report it. No package was made."
        )
    # Exactly one source describes it: the camera's signed manifest (envelope) or the Axis vault's fields.
    via_axis: dict[str, Any] = axis if axis is not None else {}
    row = {
        "id": rec.id,
        "camera_id": rec.device_id,
        "camera_name": camera_names(db, [rec.device_id])[rec.device_id],
        "agent": rec.agent_ref,
        "started_at": rec.started_at.isoformat(),
        "ended_at": rec.ended_at.isoformat(),
        "trigger": rec.trigger,
        "trigger_detail": envelope.manifest.trigger_detail if envelope else via_axis["trigger_detail"],
        "persons_informed": rec.persons_informed,
        "not_informed_reason": rec.not_informed_reason,
        "outside_territory": rec.outside_territory,
        "clock_offset_ms": rec.clock_offset_ms,
        "clock_drift": rec.clock_drift_flag,
        "pre_event_buffer_s": envelope.manifest.pre_event_buffer_s if envelope else None,
        "categories": list(rec.categories or []),
        "stored_at": rec.stored_at.isoformat() if rec.stored_at else None,
        "retention_until": rec.retention_until.isoformat(),
        "hold": {"procedure": held.procedure_type, "reference": held.reference} if held else None,
        "gps_track": [fix.model_dump(mode="json") for fix in envelope.manifest.gps_track]
        if envelope
        else via_axis["gps_track"],
        "device": {
            "public_key": b64e(key.public_key),
            "sha256_fingerprint": hashlib.sha256(key.public_key).hexdigest(),
            # As stored: the recipient's verify, not this builder, judges it.
            "certificate": orjson.loads(key.certificate) if key.certificate else None,
        }
        if key
        else None,
        "device_manifest": {"sha256": rec.manifest_sha256, "envelope": rec.manifest} if envelope else None,
        **({k: axis[k] for k in ("provenance", "integrity", "vault_manifest")} if axis else {}),
        "receipt": orjson.loads(rec.receipt) if rec.receipt else None,
        "segments": [
            {
                "index": s.index,
                "size": s.size,
                "sha256": s.sha256,
                "chain": s.chain,
                "started_at": s.started_at.isoformat(),
                "duration_s": s.duration_s,
            }
            for s in rec.segments
        ],
        "chain_head": rec.chain_head,
        # What the vault's checks found, and what the person said is inaccurate (never changes the footage).
        "flags": list(rec.flags or []),
        "declared": {
            "started_at": rec.declared_started_at.isoformat() if rec.declared_started_at else None,
            "agent": rec.declared_agent_ref,
        },
        "rectifications": [
            {"text": n.text, "rights_request": n.request_id, "written_at": n.written_at.isoformat()}
            for n in db.scalars(
                select(RecordingNote)
                .where(RecordingNote.recording_id == rec.id)
                .order_by(RecordingNote.written_at, RecordingNote.id)
            )
        ],
        # Damaged on the camera before hand-over, named in the vault's signed receipt: not in this package.
        "lost_segments": [{**x.as_dict(), "sha256": rec.segments[x.index].sha256, "reason": LOST_REASON} for x in lost],
    }
    segments = [
        _Segment(s.index, s.size, s.sha256, s.chain, s.started_at, s.duration_s, blob_key(tenant.slug, rec.id, s.index))
        for s in rec.segments
    ]
    last = segments[-1]
    assert rec.wrapped_key is not None, "plan() refuses a recording without its data key (deleted)"
    data_key = crypto.unwrap_key(p.keyring.master_key, rec.wrapped_key, rec.id)
    return _Recording(
        row=row,
        data_key=data_key,
        segments=[s for s, r in zip(segments, rec.segments) if r.complete],
        started_at=rec.started_at,
        length_s=(last.started_at - rec.started_at).total_seconds() + last.duration_s,
        lost=[s for s, r in zip(segments, rec.segments) if not r.complete],
    )
