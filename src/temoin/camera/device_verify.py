"""Checking what a camera left on disk: the verifiable prefix, damaged segments, deletion certificates.

`verify_prefix` walks a recording folder's signed header and checkpoints (hash chain, encrypted-file digests,
signatures) and says how far it can be trusted; `damaged_segments` lists what a finalised recording lost;
`check_deletion` verifies the vault's signed certificate when it deleted a recording before its upload ended.
Read-only: nothing here writes or deletes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from temoin.camera.device_formats import (
    DELETION_SCHEMA,
    HEADER_FILE,
    KEY_FILE,
    MANIFEST_FILE,
    QUARANTINE_DIR,
    Checkpoint,
    Notice,
    Quarantined,
    RecordingHeader,
    SignedCheckpoint,
    SignedHeader,
    StoreError,
    VaultDeletion,
    checkpoint_file,
    segment_file,
)
from temoin.camera.device_sealing import _open
from temoin.camera.platform_keys import PlatformTrust
from temoin.evidence.chain import first_link, next_link
from temoin.evidence.crypto import IntegrityError, unwrap_key
from temoin.evidence.manifest import SegmentEntry, SignedManifest


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


def _check_segment(
    folder: Path,
    index: int,
    public_key: bytes,
    header: RecordingHeader,
    header_digest: str,
    previous: bytes | None,
    data_key: bytes | None,
    out: Prefix,
) -> str | None:
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
    later = sorted(
        p.name for p in folder.glob("seg-*") if (index := _index_of(p.name)) is not None and index > verified
    )
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
    return [
        Quarantined(d.name, d, sorted(f.name for f in d.glob("seg-*.enc")))
        for d in sorted(folder.iterdir())
        if d.is_dir()
    ]


def check_deletion(
    certificate: dict, platform_keys: bytes | PlatformTrust, signed: SignedManifest
) -> VaultDeletion | str:
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
    if (
        not isinstance(statement, dict)
        or statement.get("schema") != DELETION_SCHEMA
        or statement.get("recording_id") != m.recording_id
        or statement.get("camera_id") != m.camera_id
        or statement.get("manifest_sha256") != signed.digest()
    ):
        return "the deletion statement describes another recording"
    return VaultDeletion(
        m.recording_id, str(statement.get("reason")), int(certificate.get("id") or 0), str(statement.get("deleted_at"))
    )


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
    if (
        not signed_header.verify(device_public_key)
        or not signed.verify(device_public_key)
        or header.recording_id != folder.name
        or signed.manifest.recording_id != folder.name
        or signed.manifest.camera_id != header.camera_id
    ):
        raise StoreError(f"recording {folder.name}: its header or manifest does not verify: kept for examination")
    out, damaged, previous = Prefix(folder, header), [], None
    for entry in signed.manifest.segments:
        if (folder / checkpoint_file(entry.index)).exists():
            problem = _check_segment(
                folder, entry.index, device_public_key, header, signed_header.digest(), previous, None, out
            )
        else:
            problem = "checkpoint missing"
        if problem or out.checkpoints[-1].segment != entry:
            damaged.append(entry.index)
        previous = bytes.fromhex(entry.chain)
    return signed, damaged
