"""Server-side backup recording of a live feed, when the tenant's legal profile allows it
(`live_backup_recording`, off by default: whether municipal police may keep live feeds is unsure, and the
national police may not, R241-4). The camera's own recording remains the evidence.

The encoded H.264 and Opus frames are remuxed as they arrive into MPEG-TS (no decoding), and the bytes
are sealed on the fly with the vault's record format (AES-256-GCM, a data key wrapped by the master key):
no plaintext ever reaches the disk. The plaintext's SHA-256 and size are kept for the journal.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

from temoin.evidence.crypto import Sealer, new_data_key, new_header, open_records, unwrap_key, wrap_key
from temoin.live.plane import CLOCK, EncodedFrame, FrameSink

log = logging.getLogger("temoin.live")
FLUSH_BYTES = 256 * 1024


class SealedFile(io.RawIOBase):
    """A write-only file that seals what it is given in records and hashes the plaintext."""

    def __init__(self, path: Path, data_key: bytes) -> None:
        super().__init__()
        path.parent.mkdir(parents=True, exist_ok=True)
        header = new_header()
        self._fh = open(path, "xb")  # noqa: SIM115 - closed in close()
        self._fh.write(header)
        self._sealer = Sealer(data_key, header)
        self._pending = bytearray()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        data = bytes(data)
        self._pending += data
        self.sha256.update(data)
        self.size += len(data)
        if len(self._pending) >= FLUSH_BYTES:
            self._flush_records()
        return len(data)

    def _flush_records(self) -> None:
        if self._pending:
            self._fh.write(self._sealer.seal(bytes(self._pending)))
            self._pending.clear()

    def close(self) -> None:
        if not self.closed:
            self._flush_records()
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        super().close()


class BackupRecorder(FrameSink):
    """Remuxes a live stream into sealed MPEG-TS. `on_closed(sha256, size)` is called once, from the thread
    that closes it."""

    def __init__(self, path: Path, data_key: bytes, on_closed: Callable[[str, int], None] | None = None) -> None:
        self.path = path
        self._file = SealedFile(path, data_key)
        import av  # PyAV loaded by the first stream that needs it, not at server start

        self._out = av.open(self._file, "w", format="mpegts")
        video = self._out.add_stream("h264", rate=30)
        video.width, video.height = 16, 16  # the muxer reads the real size
        self._streams = {"video": video, "audio": self._out.add_stream("libopus", rate=48_000)}
        for kind, stream in self._streams.items():
            stream.time_base = Fraction(1, CLOCK[kind])
        self._t0: float | None = None
        self._offset: dict[str, tuple[int, int]] = {}  # kind -> (generation, offset)
        self._last: dict[str, int] = {}
        self._started = False  # video starts at a keyframe
        self._on_closed = on_closed
        self._closed = False
        self.frames = 0

    def write(self, frame: EncodedFrame) -> None:
        if self._closed:
            return
        if frame.kind == "video" and not self._started:
            if not frame.keyframe:
                return
            self._started = True
        if not self._started:
            return  # audio before the first picture is dropped: the file starts with an image
        if self._t0 is None:
            self._t0 = frame.received_at
        clock = CLOCK[frame.kind]
        generation, offset = self._offset.get(frame.kind, (None, 0))
        if generation != frame.generation:
            # A (new) publication: place its first frame at its arrival time, then follow its own clock,
            # so that audio and video stay in step and a reconnection leaves a gap, not an overlap.
            offset = round((frame.received_at - self._t0) * clock) - frame.timestamp
            self._offset[frame.kind] = (frame.generation, offset)
        pts = frame.timestamp + offset
        last = self._last.get(frame.kind)
        if last is not None and pts <= last:
            pts = last + 1
        self._last[frame.kind] = pts
        import av  # PyAV loaded by the first stream that needs it, not at server start

        packet = av.Packet(frame.data)
        packet.pts = packet.dts = pts
        packet.time_base = Fraction(1, clock)
        packet.stream = self._streams[frame.kind]
        if frame.keyframe:
            packet.is_keyframe = True
        self._out.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._out.close()
        finally:
            self._file.close()
        if self._on_closed is not None:
            self._on_closed(self._file.sha256.hexdigest(), self._file.size)


def new_key(master_key: bytes, session_id: str) -> tuple[bytes, bytes]:
    """(data key, wrapped data key) for the backup of a live session."""
    key = new_data_key()
    return key, wrap_key(master_key, key, f"live:{session_id}")


def read_backup(path: Path, master_key: bytes, wrapped: bytes, session_id: str) -> Iterator[bytes]:
    data_key = unwrap_key(master_key, wrapped, f"live:{session_id}")
    with open(path, "rb") as fh:
        yield from open_records(fh, data_key)
