"""Writing one recording on the device: seal each segment, chain it, checkpoint it, then sign its manifest.

`RecordingWriter` appends segments (sealed, hash-chained to the previous ones, a signed checkpoint after each)
and `finalise`s the recording with its signed manifest; `_StoredSegments` reads the segments back one at a
time for hand-over. The store (`device_store`) opens writers and owns the folder, the budget and the receipts.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, overload

from temoin.camera.device_formats import (
    CHECKPOINT_RESERVE,
    MANIFEST_FILE,
    MANIFEST_RESERVE,
    MAX_PRE_EVENT_S,
    RESERVE_PER_FIX,
    RESERVE_PER_SEGMENT,
    Checkpoint,
    Notice,
    SignedCheckpoint,
    SignedHeader,
    StoreError,
    _dump,
    checkpoint_file,
    segment_file,
)
from temoin.camera.device_sealing import _open, _open_fixes, _seal, _seal_fixes
from temoin.camera.offload import SegmentFile, build_manifest
from temoin.evidence.chain import first_link, next_link
from temoin.evidence.crypto import IntegrityError
from temoin.evidence.manifest import GpsFix, NotInformedReason, SegmentEntry, SignedManifest

if TYPE_CHECKING:  # the writer is the store's; importing it at run time would be a cycle
    from temoin.camera.device_store import DeviceStore


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

    def add_segment(
        self, data: bytes, started_at: datetime, duration_s: float, *, notice: Notice, fixes: Sequence[GpsFix] = ()
    ) -> SegmentEntry:
        """Seal and write the next segment, then its signed checkpoint (both atomic, fsynced)."""
        self._check_open()
        index = len(self._entries)
        stored = _seal(self._data_key, data)
        # Under a budget, the segment must fit with its checkpoint and the (grown) manifest to come.
        self.store.reserve(
            len(stored)
            + CHECKPOINT_RESERVE
            + RESERVE_PER_FIX * len(fixes)
            + MANIFEST_RESERVE
            + RESERVE_PER_SEGMENT * (index + 1)
            + RESERVE_PER_FIX * (len(self._fixes) + len(fixes)),
            what=f"segment {index} of {self.recording_id}",
        )
        self.store.write(self.folder / segment_file(index), stored)
        return self._checkpoint(index, data, stored, started_at, duration_s, notice, fixes)

    def _checkpoint(
        self,
        index: int,
        data: bytes,
        stored: bytes,
        started_at: datetime,
        duration_s: float,
        notice: Notice,
        fixes: Sequence[GpsFix],
    ) -> SegmentEntry:
        digest = hashlib.sha256(data).digest()
        link = (
            first_link(self.recording_id, digest)
            if index == 0
            else next_link(bytes.fromhex(self._entries[-1].chain), digest)
        )
        entry = SegmentEntry(
            index=index,
            size=len(data),
            sha256=digest.hex(),
            chain=link.hex(),
            started_at=started_at,
            duration_s=duration_s,
        )
        ckpt = Checkpoint(
            recording_id=self.recording_id,
            header_sha256=self._header_digest,
            segment=entry,
            stored_sha256=hashlib.sha256(stored).hexdigest(),
            stored_size=len(stored),
            notice=notice,
            gps_sealed=_seal_fixes(self._data_key, fixes),
            written_at=self.store.clock(),
        )
        signed = SignedCheckpoint.sign(ckpt, self.store.signing_key)
        self.store.write(self.folder / checkpoint_file(index), _dump(signed))
        self._entries.append(entry)
        self._fixes.extend(fixes)
        self.notice = notice
        return entry

    @classmethod
    def resume(
        cls, store: DeviceStore, signed_header: SignedHeader, data_key: bytes, checkpoints: Sequence[Checkpoint]
    ) -> RecordingWriter:
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

    def finalise(
        self,
        *,
        notice: Notice | None = None,
        ended_at: datetime | None = None,
        clock_offset_ms: int | None = None,
        outside_territory: bool = False,
    ) -> SignedManifest:
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
            recording_id=self.recording_id,
            camera_id=self.header.camera_id,
            agent_id=self.header.agent_id,
            entries=self._entries,
            trigger=self.header.trigger,
            trigger_detail=self.header.trigger_detail,
            persons_informed=notice.persons_informed,
            not_informed_reason=notice.not_informed_reason,
            not_informed_detail=notice.not_informed_detail,
            gps_track=self._fixes,
            pre_event_buffer_s=_pre_event(self.header.triggered_at, self._entries[0].started_at),
            clock_offset_ms=clock_offset_ms,
            outside_territory=outside_territory,
            ended_at=ended_at,
        )
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
