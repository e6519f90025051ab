"""The recording manifest and the vault's receipt: versioned schemas shared by camera and vault.

A camera signs the manifest with its device key; the vault verifies it, receives the segments,
checks each against its hash and the chain, and answers with a receipt signed by the platform
key. The camera keeps the receipt as its proof before deleting its own copy.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from enum import StrEnum
from typing import Final, Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from temoin.evidence.canonical import b64d, b64e, canonical_bytes
from temoin.evidence.chain import chain_links
from temoin.evidence.signing import verify

MANIFEST_SCHEMA: Final = "temoin.manifest/1"
RECEIPT_SCHEMA: Final = "temoin.receipt/1"

# Identifiers end up in paths and logs: keep them to a safe alphabet (no traversal possible).
SAFE_ID = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
HEX64 = r"^[0-9a-f]{64}$"
MAX_SEGMENTS = 10_000
MAX_FIXES = 200_000


class Trigger(StrEnum):
    """What started the recording (L241-2, R511-28)."""

    INCIDENT = "incident"  # incident happening or likely
    PERSON_REQUEST = "person_request"  # asked by the filmed person
    FLAGRANT_OFFENCE = "flagrant_offence"
    AUTOMATIC = "automatic"  # e.g. a Taser-type weapon armed
    LIVE_REQUEST = "live_request"  # the live button implies recording


class NotInformedReason(StrEnum):
    CIRCUMSTANCES = "circumstances"  # circumstances prevented it (L241-2)
    FLAGRANT_OFFENCE = "flagrant_offence"
    OTHER = "other"


class GpsFix(BaseModel):
    model_config = ConfigDict(extra="forbid")

    t: AwareDatetime
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    accuracy_m: float | None = Field(default=None, ge=0)


class SegmentEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0)
    size: int = Field(gt=0)
    sha256: str = Field(pattern=HEX64)
    chain: str = Field(pattern=HEX64)
    started_at: AwareDatetime
    duration_s: float = Field(ge=0)


class RecordingManifest(BaseModel):
    """What the camera asserts about one recording (R241-10: images, sound, times, agent, place)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["temoin.manifest/1"] = Field(default=MANIFEST_SCHEMA, alias="schema")
    recording_id: str = Field(pattern=SAFE_ID)
    camera_id: str = Field(pattern=SAFE_ID)
    agent_id: str = Field(pattern=SAFE_ID, description="identifier of the wearing agent (shift assignment)")
    started_at: AwareDatetime
    ended_at: AwareDatetime
    trigger: Trigger
    trigger_detail: str | None = Field(default=None, max_length=500)
    persons_informed: bool
    not_informed_reason: NotInformedReason | None = None
    not_informed_detail: str | None = Field(default=None, max_length=500)
    pre_event_buffer_s: float = Field(default=0, ge=0, le=120)
    clock_offset_ms: int | None = Field(default=None, description="camera clock minus platform clock")
    outside_territory: bool = False
    gps_track: list[GpsFix] = Field(default_factory=list, max_length=MAX_FIXES)
    segments: list[SegmentEntry] = Field(min_length=1, max_length=MAX_SEGMENTS)
    container: Literal["video/mp4"] = "video/mp4"

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.ended_at < self.started_at:
            raise ValueError("ended_at is before started_at")
        if not self.persons_informed and self.not_informed_reason is None:
            raise ValueError("persons_informed is false: not_informed_reason must say why (L241-2)")
        if [s.index for s in self.segments] != list(range(len(self.segments))):
            raise ValueError("segments must be numbered 0, 1, 2, ... in order")
        links = chain_links(self.recording_id, (bytes.fromhex(s.sha256) for s in self.segments))
        for seg, link in zip(self.segments, links):
            if seg.chain != link.hex():
                raise ValueError(f"segment {seg.index}: chain link does not follow from the previous segments")
        return self

    @property
    def total_bytes(self) -> int:
        return sum(s.size for s in self.segments)

    @property
    def chain_head(self) -> str:
        return self.segments[-1].chain

    def payload(self) -> dict:
        return self.model_dump(mode="json", by_alias=True)

    def signing_bytes(self) -> bytes:
        return canonical_bytes(self.payload())


class SignedManifest(BaseModel):
    """The envelope a camera uploads: the manifest and its device signature."""

    model_config = ConfigDict(extra="forbid")

    manifest: RecordingManifest
    signature: str = Field(description="base64 Ed25519 signature of the canonical manifest")

    @classmethod
    def sign(cls, manifest: RecordingManifest, private_key) -> SignedManifest:
        return cls(manifest=manifest, signature=b64e(private_key.sign(manifest.signing_bytes())))

    def verify(self, public_key: bytes) -> bool:
        try:
            signature = b64d(self.signature)
        except ValueError:
            return False
        return verify(public_key, signature, self.manifest.signing_bytes())

    def digest(self) -> str:
        """SHA-256 of the canonical manifest: the identity of what the camera asserted."""
        return hashlib.sha256(self.manifest.signing_bytes()).hexdigest()


class Receipt(BaseModel):
    """The vault's signed statement that a recording arrived intact and is stored."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["temoin.receipt/1"] = Field(default=RECEIPT_SCHEMA, alias="schema")
    recording_id: str
    camera_id: str
    tenant: str
    manifest_sha256: str = Field(pattern=HEX64)
    chain_head: str = Field(pattern=HEX64)
    segment_count: int
    total_bytes: int
    stored_at: datetime
    retention_until: datetime
    platform_key_id: str
    # Segments damaged on the camera before hand-over: not in the vault (the manifest still proves the rest).
    lost_segments: list[int] = Field(default_factory=list)

    def signing_bytes(self) -> bytes:
        data = self.model_dump(mode="json", by_alias=True)
        if not data["lost_segments"]:  # receipts of whole recordings keep the signed form they always had
            del data["lost_segments"]
        return canonical_bytes(data)


class SignedReceipt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    receipt: Receipt
    signature: str

    def verify(self, platform_public_key: bytes) -> bool:
        try:
            signature = b64d(self.signature)
        except ValueError:
            return False
        return verify(platform_public_key, signature, self.receipt.signing_bytes())

    def matches(self, manifest: RecordingManifest) -> bool:
        r = self.receipt
        return (
            r.recording_id == manifest.recording_id
            and r.chain_head == manifest.chain_head
            and r.segment_count == len(manifest.segments)
            and r.total_bytes == manifest.total_bytes
            and r.manifest_sha256 == hashlib.sha256(manifest.signing_bytes()).hexdigest()
        )


_SAFE = re.compile(SAFE_ID)


def is_safe_id(value: str) -> bool:
    return bool(_SAFE.match(value))
