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

Storage budget: a store may be given `budget_bytes`, the most its recordings and receipts may take, together with
what else the camera keeps in the store's folder (`also_counts`: the pre-event buffer's preallocated ring file).
A segment that would not fit (with room kept for its checkpoint and the recording's manifest) is
refused with `StorageFull` before anything is written: nothing is ever deleted or overwritten to
make room. Headers, checkpoints and manifests are small and are always written, so that what was
recorded can still be finalised; the budget is therefore exceeded by metadata at most. What to do
when room runs low (the pre-event buffer gives way first, the wearer is warned) is the agent's policy.

This module is the store's API (`DeviceStore`); the layout and formats are in `device_formats`, sealing in
`device_sealing`, writing a recording in `device_writer`, verifying what is on disk in `device_verify`. Their
names are re-exported here so that callers import from one place.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError

from temoin.camera.device_formats import (
    CHECKPOINT_RESERVE,
    CHECKPOINT_SCHEMA,
    DELETION_SCHEMA,
    EVENTS_FILE,
    HEADER_FILE,
    HEADER_SCHEMA,
    KEY_FILE,
    MANIFEST_FILE,
    MANIFEST_RESERVE,
    MAX_PRE_EVENT_S,
    QUARANTINE_DIR,
    RESERVE_PER_FIX,
    RESERVE_PER_SEGMENT,
    Checkpoint,
    Notice,
    Quarantined,
    ReceiptRejected,
    RecordingHeader,
    SignedCheckpoint,
    SignedHeader,
    StorageFull,
    StorageUsage,
    StoreError,
    VaultDeletion,
    _dump,
    checkpoint_file,
    segment_file,
)
from temoin.camera.device_sealing import _open as _open  # tests patch and call it from here
from temoin.camera.device_verify import Prefix, check_deletion, damaged_segments, quarantined_in, verify_prefix
from temoin.camera.device_writer import RecordingWriter, _StoredBytes, _StoredSegments
from temoin.camera.files import atomic_write, fsync_dir, private_dir, remove_stale_tmp
from temoin.camera.keys import DeviceKeys
from temoin.camera.offload import ReceiptError, RecordingDeleted
from temoin.camera.platform_keys import PlatformTrust
from temoin.evidence.crypto import IntegrityError, new_data_key, unwrap_key, wrap_key
from temoin.evidence.manifest import SignedManifest, SignedReceipt, is_safe_id
from temoin.evidence.signing import public_key_bytes
from temoin.geo.territory import contains

# The names callers and tests import from here, wherever they now live.
__all__ = [
    "CHECKPOINT_RESERVE",
    "CHECKPOINT_SCHEMA",
    "DELETION_SCHEMA",
    "EVENTS_FILE",
    "HEADER_FILE",
    "HEADER_SCHEMA",
    "KEY_FILE",
    "MANIFEST_FILE",
    "MANIFEST_RESERVE",
    "MAX_PRE_EVENT_S",
    "QUARANTINE_DIR",
    "RESERVE_PER_FIX",
    "RESERVE_PER_SEGMENT",
    "Checkpoint",
    "DeviceStore",
    "Notice",
    "Prefix",
    "Quarantined",
    "ReceiptRejected",
    "RecordingHeader",
    "RecordingWriter",
    "Sender",
    "SignedCheckpoint",
    "SignedHeader",
    "StorageFull",
    "StorageUsage",
    "StoreError",
    "VaultDeletion",
    "check_deletion",
    "checkpoint_file",
    "damaged_segments",
    "quarantined_in",
    "segment_file",
    "verify_prefix",
]


# --- the store ---------------------------------------------------------------------------------

# send(manifest, segments) or send(manifest, segments, lost=[indexes damaged on the camera])
Sender = Callable[..., SignedReceipt]


class DeviceStore:
    def __init__(
        self,
        root: Path,
        keys: DeviceKeys,
        platform_keys: bytes | PlatformTrust | None,
        clock: Callable[[], datetime],
        *,
        budget_bytes: int | None = None,
    ) -> None:
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
        self._elsewhere: Callable[[], int] = lambda: 0  # bytes of the folder that are not recordings or receipts
        self._sweep()
        self._used = self._scan()
        if self.platform_keys is not None and self.platform_keys.on_follow is None:
            self.platform_keys.on_follow = self._followed

    def _followed(self, keys: list, source: str) -> None:
        """A platform key rotation the camera followed: a change of what it trusts, kept in its log."""
        self.log_event(
            "platform_key.followed",
            keys=[k.id for k in keys],
            fingerprints=[k.fingerprint for k in keys],
            endorsed_by=[k.endorsed_by for k in keys],
            source=source,
        )

    # --- room on the device ---------------------------------------------------------------------

    def also_counts(self, size: Callable[[], int]) -> None:
        """Count `size()` bytes against the budget besides the recordings and receipts: what else the camera keeps
        on the same storage (the agent's pre-event ring file, preallocated to its bound). Without it a budget set to
        the card's free space would let the card fill that much before the store said so."""
        self._elsewhere = size

    def usage(self) -> StorageUsage:
        return StorageUsage(self.budget_bytes, self._used + self._elsewhere())

    def reserve(self, size: int, *, what: str = "write") -> None:
        """Raise `StorageFull` unless `size` more bytes fit in the budget (nothing is written here)."""
        used = self._used + self._elsewhere()
        if self.budget_bytes is not None and used + size > self.budget_bytes:
            raise StorageFull(
                f"{what} needs {size} bytes, {max(0, self.budget_bytes - used)} left of the "
                f"{self.budget_bytes}-byte budget: kept what is stored, deleted nothing"
            )

    def write(self, path: Path, data: bytes) -> None:
        """Atomic write of a file of this store, counted against the budget."""
        try:
            old = path.stat().st_size
        except FileNotFoundError:
            old = 0
        atomic_write(path, data)
        self._used += len(data) - old

    def _scan(self) -> int:
        return sum(
            f.stat().st_size
            for base in (self.recordings_dir, self.receipts_dir, self.quarantine_dir)
            for f in base.rglob("*")
            if f.is_file()
        )

    # --- the device's incident log --------------------------------------------------------------

    def log_event(self, event: str, **details: object) -> None:
        """Append one entry to `events.jsonl` (fsynced): what the wearer was warned of, kept for later."""
        line = (
            json.dumps(
                {"at": self.clock().isoformat(), "event": event, **details},
                default=str,
                ensure_ascii=False,
                sort_keys=True,
            )
            + "\n"
        )
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
        return [
            r
            for r in self.recording_ids()
            if r not in self._open and not (self.recordings_dir / r / MANIFEST_FILE).exists()
        ]

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
                raise StoreError(
                    f"recording {recording_id} does not verify and no segment of it can be sent "
                    f"({prefix.problems}): kept for examination"
                )
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
            raise self._rejected(
                recording_id, f"recording {recording_id}: the receipt is not signed by the platform ({checked}): kept"
            )
        if (
            not receipt.matches(signed.manifest)
            or receipt.receipt.camera_id != signed.manifest.camera_id
            or not set(receipt.receipt.lost_segments) <= set(lost)
        ):
            raise self._rejected(
                recording_id, f"recording {recording_id}: the receipt describes another recording: kept"
            )
        if lost:
            self._quarantine(
                recording_id,
                lost,
                "damaged on the camera: its file no longer matches its signed "
                "checkpoint; the vault stores the other segments",
            )
        self.write(self.receipts_dir / f"{recording_id}.json", receipt.model_dump_json().encode())
        self._erase(recording_id)
        return receipt

    def _deleted_by_vault(self, recording_id: str, signed: SignedManifest, certificate: dict) -> VaultDeletion:
        """Delete the local copy on the vault's signed word that the recording is deleted there."""
        assert self.platform_keys is not None
        checked = check_deletion(certificate, self.platform_keys, signed)
        if isinstance(checked, str):
            raise self._rejected(
                recording_id, f"recording {recording_id}: the vault says it deleted it, but {checked}: kept"
            )
        self.write(self.receipts_dir / f"{recording_id}.deleted.json", json.dumps(certificate).encode())
        self.log_event(
            "recording.deleted_by_vault",
            recording=recording_id,
            reason=checked.reason,
            certificate_id=checked.certificate_id,
            deleted_at=checked.deleted_at,
        )
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
        self.write(
            target / "damaged.json",
            json.dumps({"recording_id": recording_id, "segments": damaged, "why": why}).encode(),
        )
        self.log_event(
            "segments.quarantined",
            recording=recording_id,
            segments=damaged,
            files=[segment_file(i) for i in damaged],
            detail=why,
        )

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
