"""Extraction packages: recordings handed to a named recipient for a procedure, in a form anyone can verify
with standard tools (sha256sum, openssl, ffprobe) or `temoin verify`, offline.

The package is a folder `temoin-extraction-<id>/` (layout in docs/extraction.md), delivered as a zip of it.
The zip is written in one pass: each segment is decrypted record by record from the vault, hashed and
written into the zip as it goes, and the zip itself is hashed as it is written (never a whole recording in
memory, never a second read). Only the zip is kept, under TEMOIN_HOME/extractions/<tenant>/, for
PACKAGE_DAYS days: it is plaintext by nature, and the vault keeps the originals.
"""

from __future__ import annotations

import hashlib
import io
import os
import queue
import secrets
import shutil
import struct
import threading
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any, BinaryIO

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.db import utcnow
from temoin.evidence import custody
from temoin.evidence.canonical import b64e
from temoin.evidence.manifest import SignedManifest
from temoin.evidence.models import Extraction
from temoin.evidence.timestamp import Stamp
from temoin.evidence.trim import TrimError, TrimSource, trim
from temoin.identity.devices import recording_key, signing_time
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.law.access import Permission, Role, allows
from temoin.platform import Platform
from temoin.vault import catalogue, crypto, holds
from temoin.vault.limitation import RecordingLimited, ensure_not_limited
from temoin.vault.models import Hold, Recording, RecordingNote, RecordingState
from temoin.vault.storage import blob_key

SCHEMA = "temoin.extraction/1"
PACKAGE_DAYS = 7
MAX_RECORDINGS = 50
SUMS, SIGNATURE, MANIFEST, CUSTODY_PDF, KEY_FILE, KEYS_FILE, README = (
    "SHA256SUMS", "SHA256SUMS.sig", "manifest.json", "chain-of-custody.pdf", "platform-public-key.pem",
    "platform-keys.json", "README.txt")
TIMESTAMP = "SHA256SUMS.tsr"  # RFC 3161 token over SHA256SUMS, when a TSA is configured (docs/timestamping.md)
LOST_REASON = ("damaged on the camera before hand-over, declared lost in the vault's signed receipt: never in the "
               "vault, so not in this package; its device-signed hash is still in the chain")
LOST_NOTE = ("Some segments were lost at the camera (damaged there before hand-over): each recording's lost_segments "
             "lists them with their time ranges, as the vault's signed receipt declares them; they are not in this "
             "package and the others are intact. / Des segments ont été perdus à la caméra (endommagés avant le "
             "transfert) : lost_segments les liste avec leurs plages horaires, comme le déclare le reçu signé du "
             "coffre ; ils ne sont pas dans ce paquet, les autres sont intacts.")
_COPY = 1024 * 1024


class RecipientKind(StrEnum):
    """Who may receive an extraction (R241-12, 2019 list)."""

    JUDICIAL_POLICE = "judicial_police"  # officiers et agents de police judiciaire
    STATE_INSPECTION = "state_inspection"  # services d'inspection de l'État
    DISCIPLINARY_AUTHORITY = "disciplinary_authority"  # autorité disciplinaire
    TRAINER = "trainer"  # formation des agents: anonymised copies only (R241-13)


class ProcedureType(StrEnum):
    JUDICIAL = "judicial"
    ADMINISTRATIVE = "administrative"
    DISCIPLINARY = "disciplinary"
    TRAINING = "training"


# The journal's motive of an extraction: its procedure, with the reference as the words saying what for.
_MOTIVES = {ProcedureType.JUDICIAL: "judicial_procedure", ProcedureType.ADMINISTRATIVE: "administrative_procedure",
            ProcedureType.DISCIPLINARY: "disciplinary_procedure", ProcedureType.TRAINING: "training"}


class MediaKind(StrEnum):
    ORIGINAL = "original"  # the camera's bytes, exactly
    TRIMMED = "trimmed"  # a stream copy of a time range of the original (no re-encoding)
    REDACTED = "redacted"  # anonymised (faces, voices) for training


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
        except Exception:  # InvalidTag, or a truncated record
            raise crypto.IntegrityError(f"record {index}: authentication failed (altered)") from None
        self._cached = (index, plain)
        return plain

    def readinto(self, buffer: Any) -> int:
        if self._pos >= self._size:
            return 0
        index, within = divmod(self._pos, crypto.RECORD_BYTES)
        record = self._record(index)
        n = min(len(buffer), len(record) - within)
        buffer[:n] = record[within:within + n]
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


def prepare(p: Platform, db: Session, user: User, request: ExtractionRequest) -> Plan:
    """Check the right, the recordings and the request; read what the build needs. Nothing is written
    except a SECURITY entry when another tenant's recording is asked for."""
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
        raise ExtractionConflict("a training extraction must be anonymised, faces and voices (R241-13), and this "
                                 "platform has no redaction engine (temoin.rights.redaction): no training package "
                                 "can be made; install it, or extract for a procedure instead")
    tenant = db.get(Tenant, user.tenant_id)
    recordings = []
    for rid in ids:
        rec = db.get(Recording, rid)
        if rec is None or rec.tenant_id != user.tenant_id or not catalogue.in_communes(user, rec):
            try:  # journals the attempt on another tenant's recording (SECURITY), then says 404
                catalogue.get_visible(p, db, user, rid)
            except catalogue.NotFound as exc:
                raise ExtractionNotFound(str(exc)) from None
        if rec.state == RecordingState.DELETED or rec.wrapped_key is None:
            raise ExtractionConflict(f"{rid} was deleted on {rec.deleted_at:%Y-%m-%d} ({rec.state_reason}): "
                                     "only its deletion certificate remains, nothing can be extracted")
        if rec.state == RecordingState.QUARANTINED:
            raise ExtractionConflict(f"{rid} is quarantined ({rec.state_reason}): it failed verification at "
                                     "ingest and is not evidence; it cannot be extracted")
        if rec.state != RecordingState.STORED:
            raise ExtractionConflict(f"{rid} is still being uploaded ({rec.state}); extract it once stored")
        try:  # frozen by a person's limitation request: kept only
            ensure_not_limited(db, [rid], "extracting it")
        except RecordingLimited as exc:
            raise ExtractionConflict(str(exc)) from None
        recordings.append(_plan_recording(p, db, tenant, rec))
    if request.trim:
        rec = next(r for r in recordings if r.row["id"] == request.trim.recording_id)
        length = rec.length_s
        start_s, end_s = request.trim.start_s, request.trim.end_s
        if not 0 <= start_s < end_s:
            raise ExtractionInvalid("the trim must satisfy 0 <= start_s < end_s (seconds from the recording's start)")
        if start_s >= length:
            raise ExtractionInvalid(f"{rec.row['id']} lasts {length:.1f} s: the trim starts after its end")
        if not any(_offset(rec, s) + s.duration_s > start_s and _offset(rec, s) < end_s for s in rec.segments):
            raise ExtractionInvalid(f"{rec.row['id']}: {start_s} s to {end_s} s lies within segment(s) "
                                    f"{rec.lost_within(start_s, end_s)} lost at the camera before hand-over: the "
                                    "vault holds nothing of that range; choose a range covering a stored segment")
    now = utcnow()
    entries = custody.journal_entries(db, tenant.id, ids)
    plan = Plan(extraction_id=new_id(now), tenant_slug=tenant.slug, tenant_name=tenant.name,
                actor=actor_of(user), user_id=user.id, created_at=now, request=request, recordings=recordings,
                entries=entries, cameras=sorted({r.row["camera_id"] for r in recordings}))
    db.rollback()  # end the read transaction: the build may take minutes
    return plan


def _plan_recording(p: Platform, db: Session, tenant: Tenant, rec: Recording) -> _Recording:
    from temoin.axis import vault as axis_vault

    # Through the Axis Body Worn system: no device signature, the proof is the vault's hashes on arrival.
    axis = axis_vault.package_fields(p, db, rec) if axis_vault.is_axis(rec) else None
    envelope = SignedManifest.model_validate_json(rec.manifest) if axis is None else None
    key = recording_key(db, envelope.manifest) if envelope else None  # the camera's key when it signed
    if key is None and axis is None:
        raise ExtractionConflict(f"{rec.id}: no key of camera {rec.device_id} was valid when its manifest was "
                                 f"signed ({signing_time(envelope.manifest).isoformat()}): the platform cannot "
                                 "certify it, so it cannot be extracted")
    held = db.scalar(select(Hold).where(Hold.recording_id == rec.id, Hold.lifted_at.is_(None)).limit(1))
    lost = catalogue.lost_segments(rec)
    undeclared = sorted({x.index for x in lost} - set(catalogue.declared_lost(rec)))
    if undeclared:
        raise ExtractionConflict(f"{rec.id}: segments {undeclared} are not in the vault, yet the signed receipt "
                                 "does not declare them lost at the camera: the catalogue was altered; run "
                                 "`temoin vault scrub` and report it. No package was made.")
    row = {
        "id": rec.id, "camera_id": rec.device_id, "agent": rec.agent_ref,
        "started_at": rec.started_at.isoformat(), "ended_at": rec.ended_at.isoformat(), "trigger": rec.trigger,
        "trigger_detail": envelope.manifest.trigger_detail if envelope else axis["trigger_detail"],
        "persons_informed": rec.persons_informed,
        "not_informed_reason": rec.not_informed_reason, "outside_territory": rec.outside_territory,
        "clock_offset_ms": rec.clock_offset_ms, "clock_drift": rec.clock_drift_flag,
        "pre_event_buffer_s": envelope.manifest.pre_event_buffer_s if envelope else None,
        "categories": list(rec.categories or []),
        "stored_at": rec.stored_at.isoformat() if rec.stored_at else None,
        "retention_until": rec.retention_until.isoformat(),
        "hold": {"procedure": held.procedure_type, "reference": held.reference} if held else None,
        "gps_track": [fix.model_dump(mode="json") for fix in envelope.manifest.gps_track] if envelope
        else axis["gps_track"],
        "device": {"public_key": b64e(key.public_key), "sha256_fingerprint": hashlib.sha256(key.public_key).hexdigest(),
                   # As stored: the recipient's verify, not this builder, judges it.
                   "certificate": orjson.loads(key.certificate) if key.certificate else None} if key else None,
        "device_manifest": {"sha256": rec.manifest_sha256, "envelope": rec.manifest} if envelope else None,
        **({k: axis[k] for k in ("provenance", "integrity", "vault_manifest")} if axis else {}),
        "receipt": orjson.loads(rec.receipt) if rec.receipt else None,
        "segments": [{"index": s.index, "size": s.size, "sha256": s.sha256, "chain": s.chain,
                      "started_at": s.started_at.isoformat(), "duration_s": s.duration_s} for s in rec.segments],
        "chain_head": rec.chain_head,
        # What the vault's checks found, and what the person said is inaccurate (never changes the footage).
        "flags": list(rec.flags or []),
        "declared": {"started_at": rec.declared_started_at.isoformat() if rec.declared_started_at else None,
                     "agent": rec.declared_agent_ref},
        "rectifications": [{"text": n.text, "rights_request": n.request_id, "written_at": n.written_at.isoformat()}
                           for n in db.scalars(select(RecordingNote).where(RecordingNote.recording_id == rec.id)
                                               .order_by(RecordingNote.written_at, RecordingNote.id))],
        # Damaged on the camera before hand-over, named in the vault's signed receipt: not in this package.
        "lost_segments": [{**x.as_dict(), "sha256": rec.segments[x.index].sha256, "reason": LOST_REASON}
                          for x in lost],
    }
    segments = [_Segment(s.index, s.size, s.sha256, s.chain, s.started_at, s.duration_s,
                         blob_key(tenant.slug, rec.id, s.index)) for s in rec.segments]
    last = segments[-1]
    data_key = crypto.unwrap_key(p.keyring.master_key, rec.wrapped_key, rec.id)
    return _Recording(row=row, data_key=data_key, segments=[s for s, r in zip(segments, rec.segments) if r.complete],
                      started_at=rec.started_at,
                      length_s=(last.started_at - rec.started_at).total_seconds() + last.duration_s,
                      lost=[s for s, r in zip(segments, rec.segments) if not r.complete])


# --- writing the package -----------------------------------------------------------------------------

class _Lane:
    """One worker thread doing queued work in order. SHA-256 and file writes release the GIL, so two lanes
    (the files' hashes; the zip's hash and write) run beside the decryption on the caller's thread."""

    def __init__(self, name: str) -> None:
        self._queue: queue.Queue[tuple[Callable[[Any], Any], Any] | None] = queue.Queue(maxsize=8)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            fn, arg = item
            if self.error is None or fn is _release:
                try:
                    fn(arg)
                except BaseException as exc:  # handed to the caller at its next call
                    self.error = exc

    def submit(self, fn: Callable[[Any], Any], arg: Any) -> None:
        if self.error is not None:
            raise self.error
        self._queue.put((fn, arg))

    def drain(self) -> None:
        if not self._thread.is_alive():  # closed (e.g. the sink's flush at garbage collection)
            return
        done = threading.Event()
        self._queue.put((_release, done))
        done.wait()
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()


def _release(event: threading.Event) -> None:
    event.set()


class _HashingSink(io.RawIOBase):
    """The zip's output: hashes every byte on its way to the file (in its lane). Not seekable, so zipfile
    writes each entry once (sizes in data descriptors) and the zip's SHA-256 needs no second read."""

    _WRITEBACK = 32 * 1024 * 1024

    def __init__(self, fh: BinaryIO, lane: _Lane) -> None:
        super().__init__()
        self.fh, self.lane, self.sha256, self.size = fh, lane, hashlib.sha256(), 0
        self._written = self._advised = 0

    def writable(self) -> bool:
        return True

    def _write(self, data: bytes) -> None:
        self.sha256.update(data)
        self.fh.write(data)
        self._written += len(data)
        if self._written - self._advised >= 2 * self._WRITEBACK and hasattr(os, "posix_fadvise"):
            # Start writing back what is behind us, and let its pages go once written: the disk works while
            # we decrypt instead of in one long fsync at the end, and gigabytes of plaintext do not sit in
            # the page cache.
            self.fh.flush()
            end = self._written - self._WRITEBACK
            os.posix_fadvise(self.fh.fileno(), self._advised, end - self._advised, os.POSIX_FADV_DONTNEED)
            self._advised = end

    def write(self, data: Any) -> int:
        data = data if isinstance(data, bytes) else bytes(data)
        self.lane.submit(self._write, data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        raise io.UnsupportedOperation("not seekable")

    def flush(self) -> None:
        self.lane.drain()
        self.fh.flush()


@dataclass
class Built:
    path: Path
    sha256: str
    size: int
    sums_sha256: str
    manifest: dict[str, Any]
    timestamp: Stamp | None = None  # None: no TSA configured


Progress = Callable[[int, int], None]


class _Writer:
    """Entries of the zip. Each file's SHA-256 is computed in the hash lane; `digests()` waits for them."""

    def __init__(self, zf: zipfile.ZipFile, root: str, when: datetime, lane: _Lane) -> None:
        self.zf, self.root, self.lane = zf, root, lane
        self.hashers: dict[str, Any] = {}
        self.date_time = when.timetuple()[:6]

    def _info(self, name: str) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(self.root + name, self.date_time)
        info.compress_type = zipfile.ZIP_STORED  # media are compressed already; a stored zip is a plain copy
        info.external_attr = 0o644 << 16
        return info

    def stream(self, name: str, chunks: Iterator[bytes], tick: Callable[[int], None] | None = None) -> int:
        hasher, size = hashlib.sha256(), 0
        self.hashers[name] = hasher
        with self.zf.open(self._info(name), "w", force_zip64=True) as out:
            for chunk in chunks:
                self.lane.submit(hasher.update, chunk)
                out.write(chunk)
                size += len(chunk)
                if tick:
                    tick(len(chunk))
        return size

    def file(self, name: str, path: Path) -> int:
        def chunks() -> Iterator[bytes]:
            with path.open("rb") as fh:
                while chunk := fh.read(_COPY):
                    yield chunk
        return self.stream(name, chunks())

    def small(self, name: str, data: bytes, *, signed: bool = True) -> None:
        self.zf.writestr(self._info(name), data)
        if signed:
            self.hashers[name] = hashlib.sha256(data)

    def digests(self) -> dict[str, str]:
        self.lane.drain()
        return {name: h.hexdigest() for name, h in self.hashers.items()}


def _records(p: Platform, seg: _Segment, data_key: bytes) -> Iterator[bytes]:
    with p.store.open(seg.key) as fh:
        yield from crypto.open_records(fh, data_key)


def _decrypt_to(p: Platform, seg: _Segment, data_key: bytes, dst: Path) -> None:
    hasher = hashlib.sha256()
    with dst.open("wb") as out:
        for chunk in _records(p, seg, data_key):
            hasher.update(chunk)
            out.write(chunk)
    _check(seg, hasher.hexdigest())


def _check(seg: _Segment, digest: str) -> None:
    if digest != seg.sha256:
        raise ExtractionFault(f"segment {seg.index} read from the vault hashes to {digest}, not the "
                              f"device-signed {seg.sha256}: the vault's copy is damaged; run "
                              "`temoin vault scrub`. No package was made.")


def _jsonable(report: Any) -> Any:
    for attr in ("model_dump", "_asdict"):
        if hasattr(report, attr):
            return orjson.loads(orjson.dumps(getattr(report, attr)(), default=str))
    if hasattr(report, "__dataclass_fields__"):
        import dataclasses

        return orjson.loads(orjson.dumps(dataclasses.asdict(report), default=str))
    return str(report)


def build(p: Platform, plan: Plan, progress: Progress | None = None) -> Built:
    """Write the package's zip under TEMOIN_HOME/extractions/<tenant>/ (atomically: .part, fsync, rename)."""
    folder = p.settings.home / "extractions" / plan.tenant_slug
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    final, part = folder / f"{plan.extraction_id}.zip", folder / f"{plan.extraction_id}.zip.part"
    work = folder / f".build-{plan.extraction_id}"  # trimmed / redacted intermediates, removed below
    total, done = plan.total_bytes, 0

    def tick(n: int) -> None:
        nonlocal done
        done += n
        if progress:
            progress(min(done, total), total)

    hash_lane, sink_lane = _Lane("extraction-hash"), _Lane("extraction-write")
    try:
        with part.open("wb") as raw:
            sink = _HashingSink(raw, sink_lane)
            with zipfile.ZipFile(sink, "w", zipfile.ZIP_STORED, allowZip64=True) as zf:
                writer = _Writer(zf, f"temoin-extraction-{plan.extraction_id}/", plan.created_at, hash_lane)
                sections = [_write_media(p, plan, rec, writer, work, tick) for rec in plan.recordings]
                digests = writer.digests()
                for rec, section in zip(plan.recordings, sections):
                    stored = {s.index: s for s in rec.segments}
                    for media in section["media"]:
                        media["sha256"] = digests[media["file"]]
                        if media["kind"] == MediaKind.ORIGINAL:
                            _check(stored[media["segment"]], media["sha256"])
                manifest = _manifest(p, plan, sections)
                writer.small(MANIFEST, orjson.dumps(manifest, option=orjson.OPT_INDENT_2) + b"\n")
                this = custody.CustodyEntry(
                    seq=0, at=plan.created_at, action=Action.COMMUNICATION.value, event="extraction.created",
                    actor=plan.actor.model_dump(), recordings=[r.row["id"] for r in plan.recordings], motive=None,
                    recipients=[plan.request.recipient_name], details=_details(plan, None), hash=None)
                writer.small(CUSTODY_PDF, custody.render_pdf(extraction=manifest, recordings=manifest["recordings"],
                                                             entries=plan.entries, this_extraction=this))
                writer.small(KEY_FILE, p.keyring.public_key_pem())
                # The platform's key history, vouched for by this package's signature: receipts signed by a
                # key since retired verify with it once the signing key is pinned.
                writer.small(KEYS_FILE, orjson.dumps(p.keyring.trusted.as_json(), option=orjson.OPT_INDENT_2) + b"\n")
                writer.small(README, readme(plan.extraction_id, plan.media_kind,
                                            lost=any(r.lost for r in plan.recordings)).encode())
                sums = "".join(f"{digest}  {name}\n" for name, digest in sorted(writer.digests().items())).encode()
                writer.small(SUMS, sums, signed=False)
                writer.small(SIGNATURE, p.keyring.signing_key.sign(sums), signed=False)
                stamp = _timestamp(p, plan, writer, sums)
            sink_lane.drain()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(part, final)
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        tick(0)
        return Built(final, sink.sha256.hexdigest(), sink.size, hashlib.sha256(sums).hexdigest(), manifest, stamp)
    except BaseException:
        part.unlink(missing_ok=True)
        raise
    finally:
        hash_lane.close()
        sink_lane.close()
        shutil.rmtree(work, ignore_errors=True)


def _timestamp(p: Platform, plan: Plan, writer: _Writer, sums: bytes) -> Stamp | None:
    """SHA256SUMS.tsr beside the signature. A TSA failure leaves the package without it, not unmade: the
    evidence must reach its recipient; the failure is logged and journaled with the extraction."""
    if p.timestamper is None:
        return None
    stamp = p.timestamper.stamp(sums, what=f"extraction {plan.extraction_id}")
    if stamp.token is not None:
        writer.small(TIMESTAMP, stamp.token, signed=False)
    return stamp


def _write_media(p: Platform, plan: Plan, rec: _Recording, writer: _Writer, work: Path,
                 tick: Callable[[int], None]) -> dict[str, Any]:
    rid = rec.row["id"]
    section: dict[str, Any] = {"media": [], "trim": None, "redaction": None}
    trimming = plan.request.trim if plan.request.trim and plan.request.trim.recording_id == rid else None
    redact = _redactor() if plan.request.training else None
    if not trimming and not redact:
        for seg in rec.segments:
            name = f"media/{rid}/{seg.index:05d}.mp4"
            size = writer.stream(name, _records(p, seg, rec.data_key), tick)  # checked once hashed, in build()
            section["media"].append({"file": name, "sha256": None, "size": size, "kind": MediaKind.ORIGINAL.value,
                                     "segment": seg.index})
        return section
    work.mkdir(parents=True, exist_ok=True, mode=0o700)
    sources: list[tuple[Path, list[dict[str, Any]]]] = []
    if trimming:
        trim_sources = [TrimSource(s.index, (s.started_at - rec.started_at).total_seconds(), s.duration_s, s.sha256,
                                   lambda s=s: io.BufferedReader(SealedReader(p.store.open(s.key), rec.data_key,
                                                                              s.size), _COPY))
                        for s in rec.segments]
        out = work / f"{rid}-trimmed.mp4"
        try:
            result = trim(trim_sources, trimming.start_s, trimming.end_s, out)
        except TrimError as exc:
            raise ExtractionInvalid(f"cannot trim {rid}: {exc}") from None
        section["trim"] = result.as_manifest()
        if lost := rec.lost_within(result.kept_start_s, trimming.end_s):
            section["trim"]["lost_segments"] = lost  # a gap in the trimmed file: nothing was there to copy
        tick(sum(s.size for s in rec.segments))
        sources.append((out, [{"index": s.index, "sha256": s.sha256} for s in result.segments]))
    else:
        for seg in rec.segments:
            out = work / f"{rid}-{seg.index:05d}.mp4"
            _decrypt_to(p, seg, rec.data_key, out)
            tick(seg.size)
            sources.append((out, [{"index": seg.index, "sha256": seg.sha256}]))
    reports = []
    for n, (path, derived_from) in enumerate(sources):
        kind = MediaKind.TRIMMED
        if redact:
            redacted = path.with_name(path.stem + "-redacted.mp4")
            try:
                reports.append(_jsonable(redact(path, redacted)))
            except Exception as exc:  # noqa: BLE001 - the engine's own errors say what failed
                raise ExtractionFault(f"anonymising {rid} failed ({type(exc).__name__}: {exc}); no training "
                                      "package was made") from None
            path.unlink()
            path, kind = redacted, MediaKind.REDACTED
        suffix = "trimmed" if trimming else f"{derived_from[0]['index']:05d}"
        name = f"media/{rid}/{suffix}{'-redacted' if redact else ''}.mp4"
        size = writer.file(name, path)
        path.unlink()
        section["media"].append({"file": name, "sha256": None, "size": size, "kind": kind.value,
                                 "derived_from": derived_from})
    if redact:
        section["redaction"] = {"engine": "temoin.rights.redaction.redact_file", "mode": "blur", "voice": True,
                                "reason": "training copy: faces and voices anonymised (R241-13)",
                                "reports": reports}
    return section


def _details(plan: Plan, built: Built | None) -> dict[str, Any]:
    r = plan.request
    details: dict[str, Any] = {
        "extraction_id": plan.extraction_id, "procedure_type": r.procedure_type.value,
        "recipient_kind": r.recipient_kind.value, "reference": r.reference, "trimmed": r.trim is not None,
        "media_kind": plan.media_kind.value}
    if r.trim:
        details["trim"] = {"recording_id": r.trim.recording_id, "start_s": r.trim.start_s, "end_s": r.trim.end_s}
    if built:
        details.update(package_sha256=built.sha256, package_bytes=built.size, sums_sha256=built.sums_sha256)
        if built.timestamp is not None:
            details["timestamp"] = built.timestamp.as_dict()
    return details


def _notes(kind: MediaKind) -> list[str]:
    if kind == MediaKind.ORIGINAL:
        return ["media/ holds the original segments exactly as the camera produced them: their SHA-256 are the "
                "device-signed ones in each recording's manifest. / media/ contient les segments originaux, "
                "octet pour octet, tels que la caméra les a produits."]
    if kind == MediaKind.TRIMMED:
        return ["A recording was trimmed by stream copy (no re-encoding): its original bytes are NOT in this "
                "package; the trimmed file derives from the segments whose device-signed hashes are listed "
                "under trim.source_segments. / Un enregistrement a été découpé par copie de flux, sans "
                "ré-encodage : ses octets originaux ne sont pas dans ce paquet."]
    return ["Training copy: faces and voices anonymised (R241-13). The original bytes are NOT in this package; "
            "each file names the device-signed segments it derives from. / Copie de formation anonymisée "
            "(visages et voix, R241-13) : les originaux ne sont pas dans ce paquet."]


def _manifest(p: Platform, plan: Plan, sections: list[dict[str, Any]]) -> dict[str, Any]:
    r = plan.request
    pem = p.keyring.public_key_pem()
    return {
        "schema": SCHEMA,
        "extraction_id": plan.extraction_id,
        "tenant": {"slug": plan.tenant_slug, "name": plan.tenant_name},
        "created_at": plan.created_at.isoformat(),
        "extracted_by": plan.actor.model_dump(),
        "recipient": {"name": r.recipient_name, "kind": r.recipient_kind.value},
        "procedure": {"type": r.procedure_type.value, "reference": r.reference},
        "platform_key": {"file": KEY_FILE, "id": p.keyring.public_key_id,
                         "sha256_fingerprint": p.keyring.fingerprint,
                         "pem_sha256": hashlib.sha256(pem).hexdigest(), "history_file": KEYS_FILE},
        "media_kind": plan.media_kind.value,
        "notes": _notes(plan.media_kind) + ([LOST_NOTE] if any(rec.lost for rec in plan.recordings) else []),
        "recordings": [{**rec.row, **section} for rec, section in zip(plan.recordings, sections)],
        "custody": {
            "journal_chain": plan.tenant_slug,
            "entries": [e.as_dict() for e in plan.entries],
            "this_extraction": "journaled as event extraction.created with this extraction_id once the package "
                               "was written; its entry carries the zip's SHA-256",
        },
    }


def readme(extraction_id: str, kind: MediaKind, lost: bool = False) -> str:
    original = kind == MediaKind.ORIGINAL
    fr_media = ("media/ contient les segments originaux, octet pour octet." if original else
                "Attention : les octets originaux ne sont PAS dans ce paquet (copie "
                + ("découpée par copie de flux" if kind == MediaKind.TRIMMED else "anonymisée pour la formation")
                + ") ; manifest.json indique de quels segments signés chaque fichier dérive.")
    en_media = ("media/ holds the original segments, byte for byte." if original else
                "Note: the original bytes are NOT in this package (a "
                + ("stream-copy trim" if kind == MediaKind.TRIMMED else "training copy, anonymised")
                + "); manifest.json names the device-signed segments each file derives from.")
    if lost:
        fr_media += (" Des segments ont été perdus à la caméra avant le transfert : manifest.json les liste "
                     "(lost_segments, avec leurs horaires), comme le déclare le reçu signé du coffre.")
        en_media += (" Some segments were lost at the camera before hand-over: manifest.json lists them "
                     "(lost_segments, with their times), as the vault's signed receipt declares them.")
    check = ("  sha256sum -c SHA256SUMS\n"
             "  openssl pkeyutl -verify -pubin -inkey platform-public-key.pem -rawin -in SHA256SUMS "
             "-sigfile SHA256SUMS.sig\n"
             "  temoin verify . --key <clé publique de la plateforme obtenue par ailleurs / platform key obtained "
             "independently>\n"
             "  temoin verify . --fingerprint <empreinte SHA-256 publiée / published SHA-256 fingerprint>\n")
    return f"""Témoin — paquet d'extraction / extraction package {extraction_id}

FRANÇAIS
Ce dossier contient des enregistrements de caméras individuelles remis pour une procédure.
- manifest.json : destinataire, procédure, auteur de l'extraction, métadonnées de chaque enregistrement
  (horaires, agent, caméra, déclenchement, trace GPS), manifeste signé par la caméra et sa clé publique,
  reçu signé du coffre, empreintes et chaîne des segments, découpage éventuel.
- chain-of-custody.pdf : chaîne de possession (collecte, consultations et motifs, gels, extractions).
- SHA256SUMS : empreinte SHA-256 de chaque autre fichier ; SHA256SUMS.sig : signature Ed25519 de
  SHA256SUMS par la clé de la plateforme (platform-public-key.pem).
- SHA256SUMS.tsr (si présent) : horodatage RFC 3161 de SHA256SUMS par une autorité d'horodatage ;
  openssl ts -verify -data SHA256SUMS -in SHA256SUMS.tsr -CAfile <certificats de l'autorité>
{fr_media}
Vérifier, dans ce dossier (sans réseau) :
{check}La clé incluse prouve seulement la cohérence du paquet : temoin verify ne déclare le paquet intact que
si la clé qui l'a signé est épinglée (--key, --fingerprint, ou un magasin de clés de confiance), obtenue
auprès du service lui-même (https://<service>/.well-known/temoin/keys.pem), pas de ce paquet.
Chaque clé de caméra est certifiée par la clé de la plateforme (manifest.json, device.certificate) ;
platform-keys.json donne l'historique des clés de la plateforme, avec leurs périodes de validité.

ENGLISH
This folder holds body-worn camera recordings handed over for a procedure.
- manifest.json: recipient, procedure, who extracted, each recording's metadata (times, agent, camera,
  trigger, GPS track), the device-signed manifest and the device public key, the vault's signed receipt,
  segment hashes and chain, trimming if any.
- chain-of-custody.pdf: the chain of custody (collection, consultations with motives, holds, extractions).
- SHA256SUMS: SHA-256 of every other file; SHA256SUMS.sig: Ed25519 signature of SHA256SUMS by the
  platform key (platform-public-key.pem).
- SHA256SUMS.tsr (if present): RFC 3161 timestamp of SHA256SUMS by a timestamp authority;
  openssl ts -verify -data SHA256SUMS -in SHA256SUMS.tsr -CAfile <the authority's CA certificates>
{en_media}
To check, in this folder (offline):
{check}The included key only proves the package is consistent: temoin verify reports the package intact only
when the key that signed it is pinned (--key, --fingerprint, or a trust store), obtained from the service
itself (https://<service>/.well-known/temoin/keys.pem), not from this package.
Each camera key is certified by the platform key (manifest.json, device.certificate); platform-keys.json
gives the history of the platform's keys with their validity periods.
"""


# --- the operation ---------------------------------------------------------------------------------------

def extract(p: Platform, db: Session, user: User, request: ExtractionRequest,
            progress: Progress | None = None) -> tuple[Extraction, Built]:
    """Check, build the package, then record it and journal it (one transaction) for its recipient."""
    purge_expired(p, db)
    plan = prepare(p, db, user, request)
    built = build(p, plan, progress)
    try:
        row = Extraction(
            id=plan.extraction_id, tenant_id=user.tenant_id, created_by=user.id, created_at=plan.created_at,
            recipient_name=request.recipient_name, recipient_kind=request.recipient_kind.value,
            procedure_type=request.procedure_type.value, reference=request.reference,
            recording_ids=[r.row["id"] for r in plan.recordings],
            trim=next((r.get("trim") for r in built.manifest["recordings"] if r.get("trim")), None),
            media_kind=plan.media_kind.value, package_path=str(built.path.relative_to(p.settings.home)),
            package_sha256=built.sha256, package_bytes=built.size, sums_sha256=built.sums_sha256,
            expires_at=plan.created_at + timedelta(days=PACKAGE_DAYS), downloads=0,
            redacted=plan.media_kind == MediaKind.REDACTED)
        db.add(row)
        db.flush()  # the holds name it
        holds.place_extraction_holds(p, db, user, row)  # a procedure's originals outlive the package
        p.record(db, EntryDraft(action=Action.COMMUNICATION, event="extraction.created", actor=plan.actor,
                                recordings=row.recording_ids, cameras=plan.cameras,
                                recipients=[request.recipient_name], details=_details(plan, built),
                                motive={"code": _MOTIVES[request.procedure_type], "text": request.reference}),
                 db.get(Tenant, user.tenant_id))
        db.commit()
    except BaseException:
        db.rollback()
        built.path.unlink(missing_ok=True)
        raise
    return row, built


def get_own(p: Platform, db: Session, user: User, extraction_id: str) -> Extraction:
    """An extraction of the user's tenant, or ExtractionError(404); asking for another's is journaled."""
    row = db.get(Extraction, extraction_id)
    if row is None or row.tenant_id != user.tenant_id:
        if row is not None:
            p.record(db, EntryDraft(action=Action.SECURITY, event="access.cross_tenant", actor=actor_of(user),
                                    details={"asked_for": extraction_id, "what": "extraction"}),
                     db.get(Tenant, user.tenant_id))
            db.commit()
        raise ExtractionNotFound(f"no extraction {extraction_id} in your service")
    return row


def open_package(p: Platform, db: Session, user: User, extraction_id: str) -> tuple[Extraction, Path]:
    """The zip, for its recipient: journaled as a communication (who fetched it, for whom)."""
    row = get_own(p, db, user, extraction_id)
    if row.package_path is None:
        raise PackageGone(f"the package of {extraction_id} was deleted on "
                          f"{row.package_deleted_at:%Y-%m-%d} (packages are kept {PACKAGE_DAYS} days); "
                          "make a new extraction")
    path = p.settings.home / row.package_path
    if not path.exists():
        raise PackageGone(f"the package file of {extraction_id} is gone from {path.parent}; "
                          "make a new extraction")
    row.downloads += 1
    p.record(db, EntryDraft(action=Action.COMMUNICATION, event="extraction.downloaded", actor=actor_of(user),
                            recordings=list(row.recording_ids), recipients=[row.recipient_name],
                            details={"extraction_id": row.id, "package_sha256": row.package_sha256,
                                     "reference": row.reference, "download": row.downloads}),
             db.get(Tenant, user.tenant_id))
    db.commit()
    return row, path


def purge_expired(p: Platform, db: Session, now: datetime | None = None) -> int:
    """Delete the zips past their time (plaintext copies); the rows and the journal stay. Returns how many.

    Run by each new extraction and meant for the retention pass as well."""
    now = now or utcnow()
    rows = list(db.scalars(select(Extraction).where(Extraction.package_path.is_not(None),
                                                    Extraction.expires_at <= now)))
    actor = Actor.system("retention")
    for row in rows:
        (p.settings.home / row.package_path).unlink(missing_ok=True)
        row.package_path, row.package_deleted_at = None, now
        p.record(db, EntryDraft(action=Action.ERASURE, event="extraction.package_deleted", actor=actor,
                                recordings=list(row.recording_ids), recipients=[row.recipient_name],
                                details={"extraction_id": row.id, "package_sha256": row.package_sha256,
                                         "kept_days": PACKAGE_DAYS}),
                 db.get(Tenant, row.tenant_id))
    db.commit()
    return len(rows)
