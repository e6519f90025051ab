"""The device store's on-disk layout and file formats: file names, signed documents, errors.

What a recording folder holds and how each file is named (`segment_file`, `checkpoint_file`, `KEY_FILE`...),
the signed documents written there (`RecordingHeader`/`SignedHeader`, `Checkpoint`/`SignedCheckpoint`, the
`Notice` they carry) and how they are serialised and signed, and the store's errors and small results. Shared
by the writer, the verifier and the store (`device_store`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Self

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from temoin import errors
from temoin.evidence.canonical import b64d, b64e, canonical_bytes
from temoin.evidence.manifest import HEX64, SAFE_ID, NotInformedReason, SegmentEntry, Trigger
from temoin.evidence.signing import verify

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
