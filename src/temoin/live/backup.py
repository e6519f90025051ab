"""Server-side backup recording of a live feed, when the tenant's legal profile allows it
(`live_backup_recording`, off by default: whether municipal police may keep live feeds is unsure, and the
national police may not, R241-4). The camera's own recording remains the evidence.

The encoded H.264 and Opus frames are remuxed as they arrive into MPEG-TS (no decoding), and the bytes
are sealed on the fly with the vault's record format (AES-256-GCM, a data key wrapped by the master key) into
the platform's blob store (vault.artefact_blobs: staged while the stream lasts, promoted when it ends): no
plaintext ever reaches the disk or the store. The plaintext's SHA-256 and size are kept for the journal.

A crash (SIGKILL, power) loses at most the last CHECKPOINT_S seconds: every CHECKPOINT_S the writer seals what it
holds as a record and the store keeps it (the local file is fdatasync'ed; on S3 the chunk being filled is PUT).
What a dead server left staged is cut to its last authenticated record and promoted at the next start-up or
periodic pass (live.backup_recovery), so it plays and expires like any backup.
"""

from __future__ import annotations

import io
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path
from typing import Any

from temoin.evidence.crypto import new_data_key, unwrap_key, wrap_key
from temoin.live.plane import CLOCK, EncodedFrame, FrameSink
from temoin.vault import artefact_blobs
from temoin.vault.storage import BlobStore

log = logging.getLogger("temoin.live")


def backup_name(tenant_slug: str, session_id: str) -> str:
    """The backup's name (vault.artefact_blobs): sealed in the blob store under it (one made before is the file of
    that path under TEMOIN_HOME)."""
    return f"live-backup/{tenant_slug}/{session_id}.ts.sealed"


BACKUP_FILE = "backup.ts.sealed"


class _Behind(io.RawIOBase):
    """The muxer's output, handed to a thread that seals it into the store: the media plane's loop, which muxes,
    never waits on the store (an object store takes a PUT per chunk, a loaded disk may hold an fsync for seconds).

    The muxer writes once per packet (about 75 writes a second for 25 pictures and 50 sound packets), so a bound in
    writes would stall the live stream after a few seconds of a slow store. The bound is in bytes (MAX_PENDING, about
    half a minute at 4 Mbit/s): a store slower than that for longer loses backup bytes, counted in `dropped` and told
    when the backup is stored, but the live stream the CSU watches never waits on it."""

    MAX_PENDING = 16 * 1024 * 1024
    CHECKPOINT_S = 3.0  # what a crash may lose (at 4 Mbit/s: 1.5 MB)

    def __init__(self, out: artefact_blobs.SealedWriter) -> None:
        super().__init__()
        self.out = out
        self._queue: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self.pending = 0  # bytes written by the muxer, not yet by the store
        self.dropped = 0  # bytes the store fell too far behind to take
        self._behind = False  # once behind: drop until the store has caught up to half the bound
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="live-backup", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        last, written = time.monotonic(), False
        while True:
            try:
                data = self._queue.get(timeout=self.CHECKPOINT_S)
            except queue.Empty:
                data = b""  # no media for a while (a publisher reconnecting): what came before is kept all the same
            if data is None:
                return
            try:
                if data and self.error is None:
                    self.out.write(data)
                    written = True
                if written and self.error is None and time.monotonic() - last >= self.CHECKPOINT_S:
                    self.out.checkpoint()
                    last, written = time.monotonic(), False
            except BaseException as exc:  # noqa: BLE001 - told at close, which drops the backup
                self.error = exc
            finally:
                with self._lock:
                    self.pending -= len(data)

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        size = len(data)
        with self._lock:
            if (self._behind and self.pending > self.MAX_PENDING // 2) or self.pending + size > self.MAX_PENDING:
                if not self.dropped:
                    log.warning(
                        "live backup: the store is more than %d MB behind the stream: backup bytes are dropped "
                        "until it catches up (the live stream goes on)",
                        self.MAX_PENDING // 1_000_000,
                    )
                self.dropped += size
                self._behind = True
                return size
            self._behind = False
            self.pending += size
        self._queue.put(bytes(data))  # the muxer reuses its buffer
        return size

    def __del__(self) -> None:
        if not self.closed:  # dropped without close(): the thread ends, nothing half-written is promoted
            self._queue.put(None)

    def close(self) -> None:
        if self.closed:
            return
        self._queue.put(None)
        self._thread.join()
        super().close()
        if self.error is not None:
            self.out.abort()
            raise self.error
        self.out.close()


class BackupRecorder(FrameSink):
    """Remuxes a live stream into sealed MPEG-TS. `on_closed(sha256, size, dropped)` is called once, from the thread
    that closes it; `dropped` counts the bytes a store too slow for the stream could not take (0 when whole)."""

    def __init__(
        self, store: BlobStore, name: str, data_key: bytes, on_closed: Callable[[str, int, int], None] | None = None
    ) -> None:
        self.name = name
        self._sealed = artefact_blobs.SealedWriter(store, artefact_blobs.key(name, BACKUP_FILE), data_key)
        self._file = _Behind(self._sealed)
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
            assert self._sealed.sha256 is not None, "hashed"
            self._on_closed(self._sealed.sha256.hexdigest(), self._sealed.size, self._file.dropped)


def new_key(master_key: bytes, session_id: str) -> tuple[bytes, bytes]:
    """(data key, wrapped data key) for the backup of a live session."""
    key = new_data_key()
    return key, wrap_key(master_key, key, f"live:{session_id}")


def read_backup(
    store: BlobStore, home: Path, name: str, master_key: bytes, wrapped: bytes, session_id: str
) -> Iterator[bytes]:
    """The backup's plaintext, decrypted as it is read: from the blob store, or from TEMOIN_HOME if made before."""
    data_key = unwrap_key(master_key, wrapped, f"live:{session_id}")
    return artefact_blobs.read(store, artefact_blobs.key(name, BACKUP_FILE), data_key, legacy=home / name)


def salvage(store: BlobStore, name: str, data_key: bytes) -> tuple[str, int, float | None] | None:
    """A backup its server left staged (killed mid-stream): cut to its last authenticated record and promoted
    (vault.artefact_blobs.salvage). (SHA-256, bytes, seconds of media it holds, None if unreadable as MPEG-TS), or
    None when the store holds nothing of it."""
    import av  # PyAV loaded only when a backup is recovered

    pipe = _Pipe()
    span: list[float] = []

    def demux() -> None:
        # The media's extent, read while the bytes go by (the backup is decrypted once): first and last time stamp.
        try:
            with av.open(pipe, "r", format="mpegts") as ts:
                for packet in ts.demux():
                    if packet.pts is not None and packet.time_base is not None:
                        t = float(packet.pts * packet.time_base)
                        span[:] = [min(span[0], t), max(span[1], t)] if span else [t, t]
        except av.error.FFmpegError as exc:
            log.warning("live backup %s: its media could not be read whole: %s", name, exc)
        finally:
            pipe.drain()

    reader = threading.Thread(target=demux, name="live-backup-salvage", daemon=True)
    reader.start()
    try:
        found = artefact_blobs.salvage(store, artefact_blobs.key(name, BACKUP_FILE), data_key, pipe.chunks.put)
    finally:
        pipe.chunks.put(None)
        reader.join()
    if found is None:
        return None
    return found[0], found[1], round(span[1] - span[0], 3) if span else None


class _Pipe(io.RawIOBase):
    """The plaintext `salvage` hands over, read by the demuxer; bounded (a few records in memory)."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
        self._rest = memoryview(b"")
        self._ended = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        while not self._rest and not self._ended:
            got = self.chunks.get()
            if got is None:
                self._ended = True
            else:
                self._rest = memoryview(got)
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n

    def drain(self) -> None:
        """The demuxer is done (or stopped early): take what is still handed over, so the writer never waits."""
        while not self._ended:
            self._ended = self.chunks.get() is None
