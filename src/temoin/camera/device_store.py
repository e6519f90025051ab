"""Recordings on the camera: encrypted, hash-chained, checkpointed after every segment.

Layout, one folder per recording under `<root>/recordings/<recording id>/`:

    key.wrapped           the recording's AES-256-GCM data key, wrapped by the device storage key
    recording.json        the signed header: camera, agent, trigger, when (temoin.device-recording/1)
    seg-000000.enc        segment 0, sealed record by record (temoin.evidence.crypto blob format)
    seg-000000.ckpt.json  checkpoint 0, signed by the device key (temoin.checkpoint/1)
    ...
    manifest.json         the signed manifest (temoin.manifest/1), once the recording is finalised

and `<root>/receipts/<recording id>.json`, the vault's signed receipt, kept after hand-over, and
`<root>/events.jsonl`, the device's log of incidents (receipt rejected, storage low or full, clock
jump), one JSON object a line, appended and fsynced.

Each checkpoint carries its segment's manifest entry (size, SHA-256 of the plaintext, chain link
to the previous segments), the SHA-256 of the encrypted file, whether people were told, and the
GPS fixes of that span (sealed). A camera destroyed mid-incident therefore leaves a prefix that
anyone holding the device's public key can verify (`verify_prefix`), and that the device itself,
holding the storage key, can still finalise and hand over (`DeviceStore.recover`).

The store has no method that returns a recording's plaintext or deletes a recording: the only
way out is `hand_over`, which gives the segments to a sender (the vault client) and deletes the
local copy only once the vault's receipt verifies under the pinned platform key and matches the
manifest.

Storage budget: a store may be given `budget_bytes`, the most its recordings and receipts may take.
A segment that would not fit (with room kept for its checkpoint and the recording's manifest) is
refused with `StorageFull` before anything is written: nothing is ever deleted or overwritten to
make room. Headers, checkpoints and manifests are small and are always written, so that what was
recorded can still be finalised; the budget is therefore exceeded by metadata at most. What to do
when room runs low (the pre-event buffer gives way first, the wearer is warned) is the agent's policy.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Final, Literal, Self, overload

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError, model_validator

from temoin import errors
from temoin.camera.files import atomic_write, fsync_dir, private_dir, remove_stale_tmp
from temoin.camera.keys import DeviceKeys
from temoin.camera.offload import ReceiptError, RecordingDeleted, SegmentFile, build_manifest
from temoin.camera.platform_keys import PlatformTrust
from temoin.evidence.canonical import b64d, b64e, canonical_bytes
from temoin.evidence.chain import first_link, next_link
from temoin.evidence.crypto import IntegrityError, Sealer, new_data_key, new_header, open_records, unwrap_key, wrap_key
from temoin.evidence.manifest import (
    HEX64,
    SAFE_ID,
    GpsFix,
    NotInformedReason,
    SegmentEntry,
    SignedManifest,
    SignedReceipt,
    Trigger,
    is_safe_id,
)
from temoin.evidence.signing import public_key_bytes, verify
from temoin.geo.territory import contains

HEADER_SCHEMA: Final = "temoin.device-recording/1"
CHECKPOINT_SCHEMA: Final = "temoin.checkpoint/1"
KEY_FILE = "key.wrapped"
HEADER_FILE = "recording.json"
MANIFEST_FILE = "manifest.json"
EVENTS_FILE = "events.jsonl"
QUARANTINE_DIR = "quarantine"  # damaged segments, kept for examination once the intact ones are in the vault
DELETION_SCHEMA = "temoin.deletion-certificate/1"
MAX_PRE_EVENT_S = 120.0
# Room kept, when a segment is written under a budget, for what must follow it (upper estimates).
CHECKPOINT_RESERVE = 4096  # a signed checkpoint is about 1 KiB, plus its sealed fixes
MANIFEST_RESERVE = 8192  # the signed manifest's fixed part, plus per segment and per fix below
RESERVE_PER_SEGMENT = 512
RESERVE_PER_FIX = 256


class StoreError(errors.Fault, RuntimeError):
    """The device store cannot do what was asked (nothing was deleted)."""


class ReceiptRejected(errors.InvalidInput, StoreError):
    """The vault's receipt does not prove the recording arrived: the local copy is kept."""


class StorageFull(errors.StorageFull, StoreError):
    """The store's byte budget cannot take this segment: nothing was written, nothing was deleted."""


@dataclass(frozen=True)
class StorageUsage:
    budget_bytes: int | None  # None: no budget (the disk is the only limit)
    used_bytes: int  # recordings and receipts on the device

    @property
    def free_bytes(self) -> int | None:
        return None if self.budget_bytes is None else max(0, self.budget_bytes - self.used_bytes)


@dataclass(frozen=True)
class VaultDeletion:
    """The vault deleted the recording before its upload ended; its signed certificate was checked."""

    recording_id: str
    reason: str
    certificate_id: int
    deleted_at: str


@dataclass(frozen=True)
class Quarantined:
    """Segments of a handed-over recording that were damaged on the camera and kept apart."""

    recording_id: str
    folder: Path
    files: list[str]  # the damaged segment files, by name


def segment_file(index: int) -> str:
    return f"seg-{index:06d}.enc"


def checkpoint_file(index: int) -> str:
    return f"seg-{index:06d}.ckpt.json"


# --- signed documents --------------------------------------------------------------------------


class Notice(BaseModel):
    """Whether the filmed people were told that recording started, and why not (L241-2)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    persons_informed: bool
    not_informed_reason: NotInformedReason | None = None
    not_informed_detail: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _why_not(self) -> Self:
        if not self.persons_informed and self.not_informed_reason is None:
            raise ValueError("people were not told: say why (L241-2)")
        return self

    @classmethod
    def told(cls) -> Notice:
        return cls(persons_informed=True)

    @classmethod
    def not_told(cls, reason: NotInformedReason, detail: str | None = None) -> Notice:
        return cls(persons_informed=False, not_informed_reason=reason, not_informed_detail=detail)


class RecordingHeader(BaseModel):
    """Written and signed when a recording starts, before any segment."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["temoin.device-recording/1"] = Field(default=HEADER_SCHEMA, alias="schema")
    recording_id: str = Field(pattern=SAFE_ID)
    camera_id: str = Field(pattern=SAFE_ID)
    agent_id: str = Field(pattern=SAFE_ID)
    trigger: Trigger
    trigger_detail: str | None = Field(default=None, max_length=500)
    triggered_at: AwareDatetime  # the button press or the input (Taser armed)
    pre_event_buffer_s: float = Field(ge=0, le=MAX_PRE_EVENT_S, description="as configured")


class Checkpoint(BaseModel):
    """Written and signed after every segment: the recording's verifiable state so far."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["temoin.checkpoint/1"] = Field(default=CHECKPOINT_SCHEMA, alias="schema")
    recording_id: str = Field(pattern=SAFE_ID)
    header_sha256: str = Field(pattern=HEX64)
    segment: SegmentEntry
    stored_sha256: str = Field(pattern=HEX64, description="SHA-256 of the encrypted file on the device")
    stored_size: int = Field(gt=0)
    notice: Notice
    gps_sealed: str | None = Field(default=None, description="base64 of the fixes of this span, sealed")
    written_at: AwareDatetime


def _signing_bytes(model: BaseModel) -> bytes:
    # Each document carries its own schema name, so a signature over one can never pass for another.
    return canonical_bytes(model.model_dump(mode="json", by_alias=True))


class SignedHeader(BaseModel):
    model_config = ConfigDict(extra="forbid")

    header: RecordingHeader
    signature: str

    @classmethod
    def sign(cls, header: RecordingHeader, key: Ed25519PrivateKey) -> SignedHeader:
        return cls(header=header, signature=b64e(key.sign(_signing_bytes(header))))

    def verify(self, public_key: bytes) -> bool:
        return _verify(public_key, self.signature, _signing_bytes(self.header))

    def digest(self) -> str:
        return hashlib.sha256(_signing_bytes(self.header)).hexdigest()


class SignedCheckpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")

    checkpoint: Checkpoint
    signature: str

    @classmethod
    def sign(cls, checkpoint: Checkpoint, key: Ed25519PrivateKey) -> SignedCheckpoint:
        return cls(checkpoint=checkpoint, signature=b64e(key.sign(_signing_bytes(checkpoint))))

    def verify(self, public_key: bytes) -> bool:
        return _verify(public_key, self.signature, _signing_bytes(self.checkpoint))


def _verify(public_key: bytes, signature: str, message: bytes) -> bool:
    try:
        raw = b64d(signature)
    except ValueError:
        return False
    return verify(public_key, raw, message)


def _dump(model: BaseModel) -> bytes:
    return model.model_dump_json(by_alias=True).encode()


# --- sealing -----------------------------------------------------------------------------------


def _seal(data_key: bytes, plaintext: bytes) -> bytes:
    header = new_header()
    return header + Sealer(data_key, header).seal(plaintext)


def _open(data_key: bytes, blob: bytes) -> bytes:
    return b"".join(open_records(io.BytesIO(blob), data_key))


def _seal_fixes(data_key: bytes, fixes: Sequence[GpsFix]) -> str | None:
    if not fixes:
        return None
    return b64e(_seal(data_key, canonical_bytes([f.model_dump(mode="json") for f in fixes])))


def _open_fixes(data_key: bytes, sealed: str | None) -> list[GpsFix]:
    if sealed is None:
        return []
    return [GpsFix.model_validate(f) for f in json.loads(_open(data_key, b64d(sealed)))]


# --- the verifiable prefix ---------------------------------------------------------------------


@dataclass
class Prefix:
    """What of a recording folder verifies: the header, then segments 0..n-1 in an unbroken chain."""

    folder: Path
    header: RecordingHeader | None = None
    checkpoints: list[Checkpoint] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # tampering or damage: what broke the chain
    interrupted: list[str] = field(default_factory=list)  # a write cut by a crash (expected, not tampering)
    manifest: SignedManifest | None = None  # the finalised manifest, when present and consistent

    @property
    def ok(self) -> bool:
        return self.header is not None and not self.problems

    @property
    def segments(self) -> list[SegmentEntry]:
        return [c.segment for c in self.checkpoints]

    @property
    def finalised(self) -> bool:
        return self.manifest is not None

    @property
    def chain_head(self) -> str | None:
        return self.checkpoints[-1].segment.chain if self.checkpoints else None

    @property
    def seconds(self) -> float:
        return sum(s.duration_s for s in self.segments)

    @property
    def notice(self) -> Notice | None:
        return self.checkpoints[-1].notice if self.checkpoints else None


def verify_prefix(folder: Path, device_public_key: bytes, storage_key: bytes | None = None) -> Prefix:
    """Check what a (possibly destroyed) camera left of a recording.

    With the device's public key alone: the signed header, then each checkpoint's signature, its
    place in the segment chain, and the encrypted file it names (SHA-256 and size). With the
    storage key too, each segment is decrypted and its plaintext checked against the chain.
    The prefix stops at the first segment that does not verify; `problems` says why.
    """
    folder = Path(folder)
    out = Prefix(folder)
    try:
        signed_header = SignedHeader.model_validate_json((folder / HEADER_FILE).read_bytes())
    except FileNotFoundError:
        out.problems.append(f"{HEADER_FILE} is missing: nothing of this recording can be verified")
        return out
    except ValidationError as exc:
        out.problems.append(f"{HEADER_FILE} is malformed: {exc.errors()[0]['msg']}")
        return out
    if not signed_header.verify(device_public_key):
        out.problems.append(f"{HEADER_FILE}: the device signature is invalid")
        return out
    header = signed_header.header
    if header.recording_id != folder.name:
        out.problems.append(f"{HEADER_FILE} names recording {header.recording_id}, not {folder.name}")
        return out
    out.header = header
    data_key = _unwrap(folder, storage_key, header.recording_id, out) if storage_key is not None else None
    header_digest = signed_header.digest()
    previous: bytes | None = None
    index = 0
    while (folder / checkpoint_file(index)).exists():
        problem = _check_segment(folder, index, device_public_key, header, header_digest, previous, data_key, out)
        if problem:
            out.problems.append(f"segment {index}: {problem}")
            break
        previous = bytes.fromhex(out.checkpoints[-1].segment.chain)
        index += 1
    _check_leftovers(folder, index, out)
    _check_manifest(folder, device_public_key, out)
    return out


def _unwrap(folder: Path, storage_key: bytes, recording_id: str, out: Prefix) -> bytes | None:
    try:
        return unwrap_key(storage_key, (folder / KEY_FILE).read_bytes(), recording_id)
    except (FileNotFoundError, IntegrityError) as exc:
        out.problems.append(f"{KEY_FILE}: {exc}")
        return None


def _check_segment(folder: Path, index: int, public_key: bytes, header: RecordingHeader, header_digest: str,
                   previous: bytes | None, data_key: bytes | None, out: Prefix) -> str | None:
    try:
        signed = SignedCheckpoint.model_validate_json((folder / checkpoint_file(index)).read_bytes())
    except ValidationError as exc:
        return f"checkpoint malformed ({exc.errors()[0]['msg']})"
    if not signed.verify(public_key):
        return "checkpoint signature invalid"
    ckpt = signed.checkpoint
    if ckpt.recording_id != header.recording_id or ckpt.header_sha256 != header_digest:
        return "checkpoint belongs to another recording"
    seg = ckpt.segment
    if seg.index != index:
        return f"checkpoint is numbered {seg.index}"
    digest = bytes.fromhex(seg.sha256)
    expected = first_link(header.recording_id, digest) if previous is None else next_link(previous, digest)
    if seg.chain != expected.hex():
        return "chain link does not follow from the previous segments"
    try:
        blob = (folder / segment_file(index)).read_bytes()
    except FileNotFoundError:
        return f"{segment_file(index)} is missing"
    if len(blob) != ckpt.stored_size or hashlib.sha256(blob).hexdigest() != ckpt.stored_sha256:
        return f"{segment_file(index)} is not the file that was checkpointed (altered or replaced)"
    if data_key is not None:
        try:
            plain = _open(data_key, blob)
        except IntegrityError as exc:
            return f"does not decrypt: {exc}"
        if len(plain) != seg.size or hashlib.sha256(plain).hexdigest() != seg.sha256:
            return "decrypted content does not match its hash"
    out.checkpoints.append(ckpt)
    return None


def _check_leftovers(folder: Path, verified: int, out: Prefix) -> None:
    later = sorted(p.name for p in folder.glob("seg-*")
                   if (index := _index_of(p.name)) is not None and index > verified)
    if later:
        # Segments after a gap: one in the middle was removed or damaged.
        out.problems.append(f"files after the verified prefix (segment {verified} breaks it): {later[:5]}")
    orphan = folder / segment_file(verified)
    if orphan.exists() and not (folder / checkpoint_file(verified)).exists():
        out.interrupted.append(f"{orphan.name} was written but not checkpointed (interrupted)")


def _index_of(name: str) -> int | None:
    try:
        return int(name[4:10])
    except ValueError:
        return None


def _check_manifest(folder: Path, public_key: bytes, out: Prefix) -> None:
    path = folder / MANIFEST_FILE
    if not path.exists():
        return
    try:
        signed = SignedManifest.model_validate_json(path.read_bytes())
    except ValidationError as exc:
        out.problems.append(f"{MANIFEST_FILE} is malformed: {exc.errors()[0]['msg']}")
        return
    if not signed.verify(public_key):
        out.problems.append(f"{MANIFEST_FILE}: the device signature is invalid")
    elif signed.manifest.segments != out.segments or signed.manifest.recording_id != folder.name:
        out.problems.append(f"{MANIFEST_FILE} does not describe the checkpointed segments")
    else:
        out.manifest = signed


def quarantined_in(root: Path) -> list[Quarantined]:
    """What sits in a camera's quarantine folder: damaged segments kept for examination."""
    folder = Path(root) / QUARANTINE_DIR
    if not folder.exists():
        return []
    return [Quarantined(d.name, d, sorted(f.name for f in d.glob("seg-*.enc")))
            for d in sorted(folder.iterdir()) if d.is_dir()]


def check_deletion(certificate: dict, platform_keys: bytes | PlatformTrust,
                   signed: SignedManifest) -> VaultDeletion | str:
    """The vault's deletion certificate for this recording, verified with a platform key trusted and valid when
    it says the recording was deleted; or why it proves nothing."""
    trust = PlatformTrust.of(platform_keys)
    assert trust is not None
    try:
        body = str(certificate["body"]).encode()
        statement = json.loads(body)
        at = datetime.fromisoformat(str(statement["deleted_at"]))
        checked = trust.check(str(certificate["signature"]), body, key_id=statement.get("platform_key_id"), at=at)
    except (KeyError, TypeError, ValueError, AttributeError):
        return "the deletion statement is malformed"
    if isinstance(checked, str):
        return f"the deletion statement is not signed by the pinned platform key or one it endorsed ({checked})"
    m = signed.manifest
    if (not isinstance(statement, dict) or statement.get("schema") != DELETION_SCHEMA
            or statement.get("recording_id") != m.recording_id or statement.get("camera_id") != m.camera_id
            or statement.get("manifest_sha256") != signed.digest()):
        return "the deletion statement describes another recording"
    return VaultDeletion(m.recording_id, str(statement.get("reason")), int(certificate.get("id") or 0),
                         str(statement.get("deleted_at")))


def damaged_segments(folder: Path, device_public_key: bytes) -> tuple[SignedManifest, list[int]]:
    """A finalised recording checked segment by segment: its signed manifest and the segments whose
    file (or checkpoint) on the camera no longer matches what was signed. The manifest's hashes and
    chain still prove every other segment, so one damaged segment does not hold the rest back.

    Raises StoreError when the header or the manifest itself does not verify (nothing can be sent)."""
    try:
        signed_header = SignedHeader.model_validate_json((folder / HEADER_FILE).read_bytes())
        signed = SignedManifest.model_validate_json((folder / MANIFEST_FILE).read_bytes())
    except (FileNotFoundError, ValidationError) as exc:
        raise StoreError(f"recording {folder.name}: header or manifest missing or malformed ({exc}): kept") from None
    header = signed_header.header
    if (not signed_header.verify(device_public_key) or not signed.verify(device_public_key)
            or header.recording_id != folder.name or signed.manifest.recording_id != folder.name
            or signed.manifest.camera_id != header.camera_id):
        raise StoreError(f"recording {folder.name}: its header or manifest does not verify: kept for examination")
    out, damaged, previous = Prefix(folder, header), [], None
    for entry in signed.manifest.segments:
        if (folder / checkpoint_file(entry.index)).exists():
            problem = _check_segment(folder, entry.index, device_public_key, header, signed_header.digest(),
                                     previous, None, out)
        else:
            problem = "checkpoint missing"
        if problem or out.checkpoints[-1].segment != entry:
            damaged.append(entry.index)
        previous = bytes.fromhex(entry.chain)
    return signed, damaged


# --- writing -----------------------------------------------------------------------------------


class RecordingWriter:
    """Appends segments to one recording on the device; `finalise` signs its manifest."""

    def __init__(self, store: DeviceStore, signed_header: SignedHeader, data_key: bytes) -> None:
        self.store = store
        self.header = signed_header.header
        self.folder = store.folder(self.header.recording_id)
        self._header_digest = signed_header.digest()
        self._data_key = data_key
        self._entries: list[SegmentEntry] = []
        self._fixes: list[GpsFix] = []
        self.notice: Notice | None = None
        self.closed = False

    @property
    def recording_id(self) -> str:
        return self.header.recording_id

    @property
    def segments(self) -> list[SegmentEntry]:
        return list(self._entries)

    def add_segment(self, data: bytes, started_at: datetime, duration_s: float, *, notice: Notice,
                    fixes: Sequence[GpsFix] = ()) -> SegmentEntry:
        """Seal and write the next segment, then its signed checkpoint (both atomic, fsynced)."""
        self._check_open()
        index = len(self._entries)
        stored = _seal(self._data_key, data)
        # Under a budget, the segment must fit with its checkpoint and the (grown) manifest to come.
        self.store.reserve(len(stored) + CHECKPOINT_RESERVE + RESERVE_PER_FIX * len(fixes) + MANIFEST_RESERVE
                           + RESERVE_PER_SEGMENT * (index + 1) + RESERVE_PER_FIX * (len(self._fixes) + len(fixes)),
                           what=f"segment {index} of {self.recording_id}")
        self.store.write(self.folder / segment_file(index), stored)
        return self._checkpoint(index, data, stored, started_at, duration_s, notice, fixes)

    def _checkpoint(self, index: int, data: bytes, stored: bytes, started_at: datetime, duration_s: float,
                    notice: Notice, fixes: Sequence[GpsFix]) -> SegmentEntry:
        digest = hashlib.sha256(data).digest()
        link = first_link(self.recording_id, digest) if index == 0 else next_link(
            bytes.fromhex(self._entries[-1].chain), digest)
        entry = SegmentEntry(index=index, size=len(data), sha256=digest.hex(), chain=link.hex(),
                             started_at=started_at, duration_s=duration_s)
        ckpt = Checkpoint(recording_id=self.recording_id, header_sha256=self._header_digest, segment=entry,
                          stored_sha256=hashlib.sha256(stored).hexdigest(), stored_size=len(stored), notice=notice,
                          gps_sealed=_seal_fixes(self._data_key, fixes), written_at=self.store.clock())
        signed = SignedCheckpoint.sign(ckpt, self.store.signing_key)
        self.store.write(self.folder / checkpoint_file(index), _dump(signed))
        self._entries.append(entry)
        self._fixes.extend(fixes)
        self.notice = notice
        return entry

    @classmethod
    def resume(cls, store: DeviceStore, signed_header: SignedHeader, data_key: bytes,
               checkpoints: Sequence[Checkpoint]) -> RecordingWriter:
        """Continue a recording from its verified checkpoints (after a crash)."""
        writer = cls(store, signed_header, data_key)
        for ckpt in checkpoints:
            writer._entries.append(ckpt.segment)
            writer._fixes.extend(_open_fixes(data_key, ckpt.gps_sealed))
            writer.notice = ckpt.notice
        return writer

    def adopt_orphan(self) -> bool:
        """Checkpoint the segment written just before a crash cut its checkpoint, if it decrypts."""
        self._check_open()
        index = len(self._entries)
        try:
            stored = (self.folder / segment_file(index)).read_bytes()
            data = _open(self._data_key, stored)
        except (FileNotFoundError, IntegrityError):
            return False  # absent, torn or altered: not part of the recording
        if self._entries:
            last = self._entries[-1]
            started = last.started_at + timedelta(seconds=last.duration_s)
        else:
            started = self.header.triggered_at
        notice = self.notice or Notice.not_told(NotInformedReason.OTHER, "unknown: the camera stopped abruptly")
        self._checkpoint(index, data, stored, started, _probe_duration(data), notice, ())
        return True

    def finalise(self, *, notice: Notice | None = None, ended_at: datetime | None = None,
                 clock_offset_ms: int | None = None, outside_territory: bool = False) -> SignedManifest:
        """Build the manifest from the checkpointed entries (`build_manifest`), sign it, write it.

        The entries were computed from the plaintext as each segment was written (or, after a
        crash, re-verified by decrypting it): nothing is decrypted again here.
        """
        self._check_open()
        if not self._entries:
            raise StoreError(f"recording {self.recording_id} has no segment: nothing to finalise")
        notice = notice or self.notice
        assert notice is not None
        manifest = build_manifest(
            recording_id=self.recording_id, camera_id=self.header.camera_id, agent_id=self.header.agent_id,
            entries=self._entries, trigger=self.header.trigger, trigger_detail=self.header.trigger_detail,
            persons_informed=notice.persons_informed, not_informed_reason=notice.not_informed_reason,
            not_informed_detail=notice.not_informed_detail, gps_track=self._fixes,
            pre_event_buffer_s=_pre_event(self.header.triggered_at, self._entries[0].started_at),
            clock_offset_ms=clock_offset_ms, outside_territory=outside_territory, ended_at=ended_at)
        signed = SignedManifest.sign(manifest, self.store.signing_key)
        self.store.write(self.folder / MANIFEST_FILE, _dump(signed))
        self.closed = True
        self._data_key = b""
        return signed

    @property
    def fixes(self) -> list[GpsFix]:
        return list(self._fixes)

    def _check_open(self) -> None:
        if self.closed:
            raise StoreError(f"recording {self.recording_id} is finalised")


def _pre_event(triggered_at: datetime, first_start: datetime) -> float:
    return round(min(MAX_PRE_EVENT_S, max(0.0, (triggered_at - first_start).total_seconds())), 3)


class _StoredSegments(Sequence[SegmentFile]):
    """The segments of a recording as stored, decrypted one at a time on access (bounded memory)."""

    def __init__(self, folder: Path, data_key: bytes, entries: Sequence[SegmentEntry]) -> None:
        self.folder, self._key, self._entries = folder, data_key, list(entries)

    def __len__(self) -> int:
        return len(self._entries)

    @overload
    def __getitem__(self, i: int) -> SegmentFile: ...
    @overload
    def __getitem__(self, i: slice) -> list[SegmentFile]: ...

    def __getitem__(self, i: int | slice) -> SegmentFile | list[SegmentFile]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        entry = self._entries[i]
        try:
            data = _open(self._key, (self.folder / segment_file(entry.index)).read_bytes())
        except (FileNotFoundError, IntegrityError) as exc:
            raise StoreError(f"{self.folder.name} segment {entry.index}: cannot be read back ({exc}): kept") from exc
        if hashlib.sha256(data).hexdigest() != entry.sha256:
            raise StoreError(f"{self.folder.name} segment {entry.index}: stored content does not match its hash")
        return SegmentFile(data, entry.started_at, entry.duration_s)


class _StoredBytes(Sequence[bytes]):
    def __init__(self, segments: _StoredSegments) -> None:
        self._segments = segments

    def __len__(self) -> int:
        return len(self._segments)

    def __getitem__(self, i):  # int or slice, like any Sequence
        got = self._segments[i]
        return [s.data for s in got] if isinstance(got, list) else got.data


# --- the store ---------------------------------------------------------------------------------

# send(manifest, segments) or send(manifest, segments, lost=[indexes damaged on the camera])
Sender = Callable[..., SignedReceipt]


class DeviceStore:
    def __init__(self, root: Path, keys: DeviceKeys, platform_keys: bytes | PlatformTrust | None,
                 clock: Callable[[], datetime], *, budget_bytes: int | None = None) -> None:
        """`platform_keys`: the camera's trusted platform keys (following rotations), one pinned key (raw), or
        None (not enrolled: nothing can be handed over)."""
        if budget_bytes is not None and budget_bytes <= 0:
            raise ValueError("budget_bytes must be positive (or None: no budget)")
        self.root = Path(root)
        self.budget_bytes = budget_bytes
        self.signing_key = keys.signing_key
        self._storage_key = keys.storage_key
        self.public_key = public_key_bytes(keys.signing_key)
        self.platform_keys = PlatformTrust.of(platform_keys)
        self.clock = clock
        self.recordings_dir = private_dir(self.root / "recordings")
        self.receipts_dir = private_dir(self.root / "receipts")
        self._open: set[str] = set()
        self._used = 0
        self._sweep()
        self._used = self._scan()
        if self.platform_keys is not None and self.platform_keys.on_follow is None:
            self.platform_keys.on_follow = self._followed

    def _followed(self, keys: list, source: str) -> None:
        """A platform key rotation the camera followed: a change of what it trusts, kept in its log."""
        self.log_event("platform_key.followed", keys=[k.id for k in keys], fingerprints=[k.fingerprint for k in keys],
                       endorsed_by=[k.endorsed_by for k in keys], source=source)

    # --- room on the device ---------------------------------------------------------------------

    def usage(self) -> StorageUsage:
        return StorageUsage(self.budget_bytes, self._used)

    def reserve(self, size: int, *, what: str = "write") -> None:
        """Raise `StorageFull` unless `size` more bytes fit in the budget (nothing is written here)."""
        if self.budget_bytes is not None and self._used + size > self.budget_bytes:
            raise StorageFull(f"{what} needs {size} bytes, {max(0, self.budget_bytes - self._used)} left of the "
                              f"{self.budget_bytes}-byte budget: kept what is stored, deleted nothing")

    def write(self, path: Path, data: bytes) -> None:
        """Atomic write of a file of this store, counted against the budget."""
        try:
            old = path.stat().st_size
        except FileNotFoundError:
            old = 0
        atomic_write(path, data)
        self._used += len(data) - old

    def _scan(self) -> int:
        return sum(f.stat().st_size for base in (self.recordings_dir, self.receipts_dir, self.quarantine_dir)
                   for f in base.rglob("*") if f.is_file())

    # --- the device's incident log --------------------------------------------------------------

    def log_event(self, event: str, **details: object) -> None:
        """Append one entry to `events.jsonl` (fsynced): what the wearer was warned of, kept for later."""
        line = json.dumps({"at": self.clock().isoformat(), "event": event, **details}, default=str,
                          ensure_ascii=False, sort_keys=True) + "\n"
        fd = os.open(self.root / EVENTS_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def events(self) -> list[dict]:
        try:
            lines = (self.root / EVENTS_FILE).read_text("utf-8").splitlines()
        except FileNotFoundError:
            return []
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except ValueError:
                continue  # a line torn by a power cut
        return out

    def folder(self, recording_id: str) -> Path:
        if not is_safe_id(recording_id):
            raise StoreError(f"not a recording id: {recording_id!r}")
        return self.recordings_dir / recording_id

    def begin(self, header: RecordingHeader) -> RecordingWriter:
        folder = self.folder(header.recording_id)
        folder.mkdir(mode=0o700)  # a new recording never reuses a folder
        fsync_dir(self.recordings_dir)
        data_key = new_data_key()
        self.write(folder / KEY_FILE, wrap_key(self._storage_key, data_key, header.recording_id))
        signed = SignedHeader.sign(header, self.signing_key)
        self.write(folder / HEADER_FILE, _dump(signed))
        self._open.add(header.recording_id)
        return RecordingWriter(self, signed, data_key)

    def release(self, writer: RecordingWriter) -> None:
        self._open.discard(writer.recording_id)

    def recording_ids(self) -> list[str]:
        return sorted(p.name for p in self.recordings_dir.iterdir() if p.is_dir() and not p.name.startswith("."))

    def pending(self) -> list[str]:
        """Finalised recordings waiting for the vault."""
        return [r for r in self.recording_ids() if (self.recordings_dir / r / MANIFEST_FILE).exists()]

    def unfinished(self) -> list[str]:
        """Recordings cut by a crash (not the one being written now)."""
        return [r for r in self.recording_ids()
                if r not in self._open and not (self.recordings_dir / r / MANIFEST_FILE).exists()]

    def verify(self, recording_id: str) -> Prefix:
        return verify_prefix(self.folder(recording_id), self.public_key, self._storage_key)

    def recover(self, *, territory: dict | None = None, clock_offset_ms: int | None = None) -> list[SignedManifest]:
        """Finalise the recordings a crash cut short, from their verified prefix.

        A segment written but not yet checkpointed when the power went is checkpointed now if it
        decrypts (AES-GCM authenticates it). What follows a broken chain is left in place, not
        deleted: the folder stays for examination and is reported by `unfinished()`.
        """
        out = []
        for rid in self.unfinished():
            folder = self.folder(rid)
            prefix = self.verify(rid)
            if prefix.header is None or prefix.problems:
                continue
            signed_header = SignedHeader.model_validate_json((folder / HEADER_FILE).read_bytes())
            data_key = unwrap_key(self._storage_key, (folder / KEY_FILE).read_bytes(), rid)
            writer = RecordingWriter.resume(self, signed_header, data_key, prefix.checkpoints)
            if prefix.interrupted:
                writer.adopt_orphan()
            if not writer.segments:
                continue  # nothing was recorded before the crash: the header alone stays as a trace
            outside = any(not contains(territory, f.lat, f.lon) for f in writer.fixes) if territory else False
            out.append(writer.finalise(clock_offset_ms=clock_offset_ms, outside_territory=outside))
        return out

    def manifest(self, recording_id: str) -> SignedManifest | None:
        """The finalised manifest as written (for display and progress; `hand_over` verifies it)."""
        path = self.folder(recording_id) / MANIFEST_FILE
        try:
            return SignedManifest.model_validate_json(path.read_bytes())
        except (FileNotFoundError, ValidationError):
            return None

    def hand_over(self, recording_id: str, send: Sender) -> SignedReceipt | VaultDeletion:
        """Give a finalised recording to `send` (the vault client); delete it only on a valid receipt.

        Segments damaged on the camera (their file no longer matches its signed checkpoint) are declared
        lost to the vault (`send(..., lost=[...])`), which stores the intact ones; once the receipt names
        exactly those as lost, the damaged files go to `<root>/quarantine/<recording id>/` and the rest
        is deleted. A recording the vault already deleted (retention, erasure) comes back as its signed
        deletion certificate: checked with the trusted platform keys, then the local copy is deleted.

        A receipt or certificate signed by a platform key the camera does not know yet has the camera follow
        the platform's key rotations (`platform_keys.py`): a new key only through endorsements from a trusted one.
        """
        if self.platform_keys is None:
            raise StoreError("no platform key is pinned: enrol the camera first")
        folder = self.folder(recording_id)
        # Signatures, chain and the encrypted files' hashes; each segment is then decrypted and its
        # plaintext checked against the manifest as it is handed over (`_StoredSegments`): once, not twice.
        prefix = verify_prefix(folder, self.public_key)
        lost: list[int] = []
        if prefix.ok and prefix.manifest is not None:
            signed = prefix.manifest
        elif (folder / MANIFEST_FILE).exists():
            signed, lost = damaged_segments(folder, self.public_key)
            if not lost or len(lost) == len(signed.manifest.segments):
                raise StoreError(f"recording {recording_id} does not verify and no segment of it can be sent "
                                 f"({prefix.problems}): kept for examination")
        else:
            raise StoreError(f"recording {recording_id} is not finalised or does not verify: {prefix.problems}")
        try:
            data_key = unwrap_key(self._storage_key, (folder / KEY_FILE).read_bytes(), recording_id)
        except (FileNotFoundError, IntegrityError) as exc:
            raise StoreError(f"recording {recording_id}: its data key cannot be unwrapped ({exc}): kept") from exc
        segments = _StoredBytes(_StoredSegments(folder, data_key, signed.manifest.segments))
        try:
            receipt = send(signed, segments, lost=lost) if lost else send(signed, segments)
        except RecordingDeleted as exc:
            return self._deleted_by_vault(recording_id, signed, exc.certificate)
        except ReceiptError as exc:  # the sender checked the receipt itself and refused it
            raise self._rejected(recording_id, f"recording {recording_id}: {exc}") from exc
        checked = self.platform_keys.check_receipt(receipt)
        if isinstance(checked, str):
            raise self._rejected(recording_id, f"recording {recording_id}: the receipt is not signed by the platform "
                                               f"({checked}): kept")
        if (not receipt.matches(signed.manifest) or receipt.receipt.camera_id != signed.manifest.camera_id
                or not set(receipt.receipt.lost_segments) <= set(lost)):
            raise self._rejected(recording_id, f"recording {recording_id}: the receipt describes another recording: "
                                               "kept")
        if lost:
            self._quarantine(recording_id, lost, "damaged on the camera: its file no longer matches its signed "
                                                 "checkpoint; the vault stores the other segments")
        self.write(self.receipts_dir / f"{recording_id}.json", receipt.model_dump_json().encode())
        self._erase(recording_id)
        return receipt

    def _deleted_by_vault(self, recording_id: str, signed: SignedManifest, certificate: dict) -> VaultDeletion:
        """Delete the local copy on the vault's signed word that the recording is deleted there."""
        assert self.platform_keys is not None
        checked = check_deletion(certificate, self.platform_keys, signed)
        if isinstance(checked, str):
            raise self._rejected(recording_id, f"recording {recording_id}: the vault says it deleted it, but {checked}: "
                                               "kept")
        self.write(self.receipts_dir / f"{recording_id}.deleted.json", json.dumps(certificate).encode())
        self.log_event("recording.deleted_by_vault", recording=recording_id, reason=checked.reason,
                       certificate_id=checked.certificate_id, deleted_at=checked.deleted_at)
        self._erase(recording_id)
        return checked

    @property
    def quarantine_dir(self) -> Path:
        return self.root / QUARANTINE_DIR

    def quarantined(self) -> list[Quarantined]:
        return quarantined_in(self.root)

    def _quarantine(self, recording_id: str, damaged: list[int], why: str) -> None:
        """Copy the damaged segments (with what is needed to examine them) to the quarantine folder."""
        source = self.folder(recording_id)
        target = private_dir(private_dir(self.quarantine_dir) / recording_id)
        names = [KEY_FILE, HEADER_FILE, MANIFEST_FILE]
        for index in damaged:
            names += [segment_file(index), checkpoint_file(index)]
        for name in names:
            if (source / name).exists():
                self.write(target / name, (source / name).read_bytes())
        self.write(target / "damaged.json", json.dumps({"recording_id": recording_id, "segments": damaged,
                                                        "why": why}).encode())
        self.log_event("segments.quarantined", recording=recording_id, segments=damaged,
                       files=[segment_file(i) for i in damaged], detail=why)

    def _rejected(self, recording_id: str, why: str) -> ReceiptRejected:
        """A receipt that proves nothing is an incident (a forged vault, a replay, a vault bug): logged."""
        self.log_event("receipt.rejected", recording=recording_id, detail=why)
        return ReceiptRejected(why)

    def receipt(self, recording_id: str) -> SignedReceipt | None:
        path = self.receipts_dir / f"{recording_id}.json"
        return SignedReceipt.model_validate_json(path.read_bytes()) if path.exists() else None

    def _erase(self, recording_id: str) -> None:
        folder = self.folder(recording_id)
        size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
        # The wrapped data key goes first: from then on the segments are unreadable noise.
        (folder / KEY_FILE).unlink(missing_ok=True)
        fsync_dir(folder)
        shutil.rmtree(folder)
        fsync_dir(self.recordings_dir)
        self._used = max(0, self._used - size)

    def _sweep(self) -> None:
        """Finish what a crash interrupted: erasures whose receipt was already kept, temporary files."""
        for rid in self.recording_ids():
            if (self.receipts_dir / f"{rid}.json").exists() or (self.receipts_dir / f"{rid}.deleted.json").exists():
                self._erase(rid)
            else:
                remove_stale_tmp(self.recordings_dir / rid)


def _probe_duration(data: bytes) -> float:
    """Duration of an fMP4 segment from its video frames (for a segment adopted after a crash)."""
    import av

    with av.open(io.BytesIO(data), "r") as container:
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.pts is not None]
        if not pts:
            return 0.0
        assert stream.time_base is not None  # a demuxed stream has one
        rate = float(stream.average_rate or stream.guessed_rate or 15)
        return float((max(pts) - min(pts)) * stream.time_base) + 1 / rate
