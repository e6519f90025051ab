"""Pulling a CCTV camera's RTSP stream into the live media plane, without transcoding.

FFmpeg's RTSP client (through PyAV, RTP over TCP: it crosses NATs and firewalls, and loses nothing) runs
in a thread; H.264 packets are demuxed, never decoded, turned into Annex B access units (the RTSP demuxer
already gives Annex B; a source that gives AVCC, length-prefixed NAL units, is converted), given the SPS/PPS
in front of every keyframe that lacks them, stamped on the 90 kHz RTP clock from 0, and handed to a
`LocalFeed` of the media plane in the event loop: the viewers get them exactly as a camera's WHIP
publication (`live.relay`), and nothing is re-encoded.

Only H.264 is carried: a camera sending H.265, MJPEG or MPEG-4 gets a clear `UnsupportedCodec` error
(transcoding is out of scope: set the camera's stream, usually its sub-stream, to H.264). No audio is
pulled (CCTV rarely has any); a viewer offering audio and video still gets a working answer.

When the camera drops, the puller reconnects with an exponential backoff (0.5 s up to 10 s); viewers see
the link as lost (`StreamStatus.last_packet_at` stops moving) and resume at the next keyframe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from temoin import errors
from temoin.live.plane import NAL_IDR, NAL_PPS, NAL_SPS, LocalFeed, MediaPlane, MediaPlaneError

log = logging.getLogger("temoin.live.cctv")

CLOCK = 90_000
START_CODE = b"\x00\x00\x00\x01"
# Codec parameters come from the SDP (sprop-parameter-sets): do not spend seconds probing the stream.
OPEN_OPTIONS = {"rtsp_transport": "tcp", "analyzeduration": "100000", "probesize": "32"}
OPEN_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 5.0
BACKOFF_S = (0.5, 10.0)
STREAM_SCHEMES = ("rtsp", "rtsps", "http", "https")  # what the CCTV registry accepts


class CctvSourceError(errors.UpstreamFault, MediaPlaneError):
    """The CCTV camera's stream cannot be carried."""


class UnsupportedCodec(CctvSourceError):
    pass


class CameraUnreachable(errors.UpstreamTimeout, CctvSourceError):
    pass


def check_stream_url(url: str | None) -> str:
    """Only network streams are pulled: FFmpeg would as readily open a local file or a device."""
    scheme = urlsplit(url or "").scheme.lower()
    if url is None or scheme not in STREAM_SCHEMES:
        raise CctvSourceError(
            f"the CCTV camera's stream address {redact(url or '')!r} is not an "
            f"{'/'.join(STREAM_SCHEMES)} URL: correct it in the CCTV registry"
        )
    return url


def redact(url: str) -> str:
    """The URL without its credentials (rtsp://user:password@host/...), for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


# --- H.264 bitstream ---------------------------------------------------------------------------------


def split_annexb(data: bytes) -> list[bytes]:
    """The NAL units of an Annex B access unit, without start codes."""
    units, starts, i = [], [], 0
    while (i := data.find(b"\x00\x00\x01", i)) >= 0:
        starts.append(i + 3)
        i += 3
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        while n + 1 < len(starts) and end > start and data[end - 1] == 0:
            end -= 1
        if end > start:
            units.append(data[start:end])
    return units


def split_avcc(data: bytes, length_size: int) -> list[bytes]:
    """The NAL units of an AVCC access unit (each prefixed by its big-endian length)."""
    units, i = [], 0
    while i + length_size <= len(data):
        size = int.from_bytes(data[i : i + length_size], "big")
        i += length_size
        if size == 0 or i + size > len(data):
            raise ValueError("a malformed AVCC access unit (NAL unit length out of bounds)")
        units.append(data[i : i + size])
        i += size
    return units


def parse_avcc_config(extradata: bytes) -> tuple[int, list[bytes]]:
    """(NAL length size, SPS and PPS units) of an AVCDecoderConfigurationRecord (ISO 14496-15)."""
    if len(extradata) < 7 or extradata[0] != 1:
        raise ValueError("not an AVCDecoderConfigurationRecord")
    length_size = (extradata[4] & 0x03) + 1
    units, i = [], 6
    count = extradata[5] & 0x1F
    for table in range(2):
        if table == 1:
            count, i = extradata[i], i + 1
        for _ in range(count):
            size = int.from_bytes(extradata[i : i + 2], "big")
            units.append(extradata[i + 2 : i + 2 + size])
            i += 2 + size
    return length_size, units


class AccessUnits:
    """Turns demuxed H.264 packets into Annex B access units that a decoder can start from at any keyframe."""

    def __init__(self, extradata: bytes | None) -> None:
        self.length_size: int | None = None  # set when the source speaks AVCC
        self.sps: bytes | None = None
        self.pps: bytes | None = None
        if extradata:
            if extradata[0] == 1:
                self.length_size, units = parse_avcc_config(extradata)
            else:
                units = split_annexb(extradata)
            self._remember(units)

    def _remember(self, units: list[bytes]) -> None:
        for unit in units:
            if unit and unit[0] & 0x1F == NAL_SPS:
                self.sps = unit
            elif unit and unit[0] & 0x1F == NAL_PPS:
                self.pps = unit

    def convert(self, data: bytes, keyframe: bool = False) -> tuple[bytes, bool]:
        """(Annex B access unit, is a keyframe)."""
        if self.length_size is None and not (data.startswith(b"\x00\x00\x01") or data.startswith(START_CODE)):
            self.length_size = 4  # no configuration record and no start code: length-prefixed
        units = split_avcc(data, self.length_size) if self.length_size else split_annexb(data)
        self._remember(units)
        types = {u[0] & 0x1F for u in units if u}
        keyframe = keyframe or NAL_IDR in types
        if keyframe and NAL_SPS not in types and self.sps and self.pps:
            units = [self.sps, self.pps, *units]
        return b"".join(START_CODE + u for u in units), keyframe


class Clock:
    """Packet times rebased to the 90 kHz RTP clock, from 0 at the connection's first packet; a packet
    without a timestamp (FFmpeg gives none to the very first one) is placed by the wall clock."""

    def __init__(self) -> None:
        self._wall0: float | None = None
        self._base: int | None = None
        self._last = -1

    def map(self, pts: int | None, time_base, now: float) -> int:
        if self._wall0 is None:
            self._wall0 = now
        wall = round((now - self._wall0) * CLOCK)
        if pts is None or time_base is None:
            ts = max(wall, self._last + 1)
        else:
            ticks = round(pts * time_base * CLOCK)
            if self._base is None:
                self._base = ticks - wall
            ts = ticks - self._base
        ts = max(ts, self._last + 1 if self._last >= 0 else 0)  # never backwards
        self._last = ts
        return ts


# --- the puller ------------------------------------------------------------------------------------


@dataclass
class PullStats:
    connections: int = 0  # successful opens (more than one: it reconnected)
    packets: int = 0
    keyframes: int = 0
    last_error: str | None = None


class RtspPuller:
    """One camera's RTSP stream going into one `LocalFeed`, in a thread, until `stop()`."""

    def __init__(
        self,
        url: str,
        feed: LocalFeed,
        loop: asyncio.AbstractEventLoop,
        *,
        name: str = "",
        open_timeout_s: float = OPEN_TIMEOUT_S,
        read_timeout_s: float = READ_TIMEOUT_S,
        backoff_s: tuple[float, float] = BACKOFF_S,
    ) -> None:
        self.url, self.feed, self.loop = url, feed, loop
        self.name = name or redact(url)
        self.open_timeout_s, self.read_timeout_s, self.backoff_s = open_timeout_s, read_timeout_s, backoff_s
        self.stats = PullStats()
        self.error: CctvSourceError | None = None  # set when it gave up for good
        self._ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cctv-pull-{self.name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    async def wait_ready(self, timeout_s: float | None = None) -> None:
        """Wait for the first connection: returns once the stream is open and H.264, raises the
        `CctvSourceError` of its first failure otherwise."""
        try:
            await asyncio.wait_for(asyncio.wrap_future(self._ready), timeout_s or self.open_timeout_s + 2)
        except TimeoutError:
            raise CameraUnreachable(
                f"the CCTV camera at {redact(self.url)} did not answer within "
                f"{timeout_s or self.open_timeout_s + 2:.0f} s: check that it is on and "
                "reachable from the server"
            ) from None

    def stop(self) -> None:
        """Ask the thread to end (it does within a frame, or a read timeout at worst); does not block."""
        self._stop.set()

    def join(self, timeout_s: float | None = None) -> None:
        self._thread.join(timeout_s)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def _settle(self, error: BaseException | None) -> None:
        if not self._ready.done():
            if error is None:
                self._ready.set_result(None)
            else:
                self._ready.set_exception(error)

    def _call(self, fn, *args) -> bool:
        try:
            self.loop.call_soon_threadsafe(fn, *args)
            return True
        except RuntimeError:  # the event loop is closed: the server is going down
            self._stop.set()
            return False

    def _run(self) -> None:
        delay = self.backoff_s[0]
        while not self._stop.is_set():
            try:
                flowed = self._session()
            except UnsupportedCodec as exc:
                self.error = exc
                self.stats.last_error = str(exc)
                log.error("cctv %s: %s", self.name, exc)
                self._settle(exc)
                return
            except Exception as exc:  # noqa: BLE001 - any network or demuxer failure: retry
                message = f"{type(exc).__name__}: {exc}"
                # Said once; the same failure again (a camera off for an hour) only at debug level.
                level = logging.DEBUG if message == self.stats.last_error else logging.WARNING
                self.stats.last_error = message
                log.log(level, "cctv %s: %s; retrying in %.1f s", self.name, message, delay)
                self._settle(
                    CameraUnreachable(
                        f"the CCTV camera at {redact(self.url)} cannot be read ({message}): "
                        "check that it is on, reachable from the server, and that its RTSP "
                        "address in the registry is right"
                    )
                )
                flowed = False
            if flowed:
                delay = self.backoff_s[0]
            if self._stop.wait(delay):
                return
            if not flowed:
                delay = min(delay * 2, self.backoff_s[1])

    def _session(self) -> bool:
        """One connection, until the stream ends or fails; True if media flowed."""
        flowed = False
        import av  # PyAV loaded by the first stream that needs it, not at server start

        container = av.open(self.url, options=OPEN_OPTIONS, timeout=(self.open_timeout_s, self.read_timeout_s))
        try:
            if not container.streams.video:
                raise UnsupportedCodec(f"the CCTV camera at {redact(self.url)} sends no video")
            stream = container.streams.video[0]
            codec = stream.codec_context.name
            if codec != "h264":
                raise UnsupportedCodec(
                    f"the CCTV camera at {redact(self.url)} sends {codec.upper()} video; live media is forwarded as "
                    "H.264 and never transcoded: set the camera's stream (or its sub-stream) to H.264"
                )
            units = AccessUnits(bytes(stream.codec_context.extradata or b""))
            clock = Clock()
            self.stats.connections += 1
            self.stats.last_error = None  # connected: the next failure is news again
            if self.stats.connections > 1 and not self._call(self.feed.restart):  # a new generation
                return False
            self._settle(None)
            for packet in container.demux(stream):
                if self._stop.is_set():
                    break
                if packet.size == 0:
                    continue
                data, keyframe = units.convert(bytes(packet), packet.is_keyframe)
                ts = clock.map(packet.pts, packet.time_base, time.monotonic())
                if not self._call(self.feed.push, "video", data, ts):
                    break
                flowed = True
                self.stats.packets += 1
                self.stats.keyframes += keyframe
        finally:
            container.close()
        return flowed


# --- the platform's CCTV sources ---------------------------------------------------------------------

CCTV_LINGER_S = 30.0
CONNECT_WAIT_S = OPEN_TIMEOUT_S + 2


def cctv_stream(tenant_id: int, camera_id: str) -> str:
    """The media plane's name for a CCTV camera's stream."""
    return f"cctv:{tenant_id}:{camera_id}"


@dataclass(eq=False)
class _Source:
    url: str
    puller: RtspPuller
    feed: LocalFeed
    linger: asyncio.Task | None = None


class CctvSources:
    """The CCTV streams the platform pulls: one puller per camera whatever the number of its viewers, kept
    `linger_s` after the last viewer leaves (switching the video wall back and forth is then instant), then
    stopped. Lives in the event loop; `lock(stream)` serialises opening, playing and closing one stream."""

    def __init__(
        self, plane: MediaPlane, *, linger_s: float = CCTV_LINGER_S, on_closed: Callable[[str], None] | None = None
    ) -> None:
        self.plane = plane
        self.linger_s = linger_s
        self.on_closed = on_closed
        self._sources: dict[str, _Source] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def lock(self, stream: str) -> asyncio.Lock:
        return self._locks.setdefault(stream, asyncio.Lock())

    def puller(self, stream: str) -> RtspPuller | None:
        source = self._sources.get(stream)
        return source.puller if source else None

    def streams(self) -> list[str]:
        return list(self._sources)

    async def open(self, stream: str, url: str) -> RtspPuller:
        """Make sure `stream` is being pulled from `url` (hold `lock(stream)`); waits for the first connection
        of a new puller and raises its `CctvSourceError` if it fails."""
        source = self._sources.get(stream)
        if source is not None:
            if source.linger is not None:
                source.linger.cancel()
                source.linger = None
            if source.url == url and source.puller.error is None:
                return source.puller
            # The registry's address changed, or the puller gave up: a new one takes over, viewers stay.
            source.puller.stop()
            del self._sources[stream]
        feed = await self.plane.attach(stream)  # replaces the previous feed, if any
        # Frames go straight to the loop the feed lives in (the media plane's own, when isolated).
        puller = RtspPuller(url, feed, getattr(feed, "loop", None) or asyncio.get_running_loop(), name=stream)
        self._sources[stream] = _Source(url, puller, feed)
        puller.start()
        try:
            await puller.wait_ready(CONNECT_WAIT_S)
        except BaseException:
            await self._close(stream, "source_failed")
            raise
        return puller

    def idle(self, stream: str) -> None:
        """A viewer left (or never came): with none left, stop pulling after the linger."""
        source = self._sources.get(stream)
        status = self.plane.status(stream)
        if source is None or (status is not None and status.viewers) or source.linger is not None:
            return
        source.linger = asyncio.ensure_future(self._linger(stream))

    async def _linger(self, stream: str) -> None:
        await asyncio.sleep(self.linger_s)
        async with self.lock(stream):
            source = self._sources.get(stream)
            if source is None or source.linger is not asyncio.current_task():
                return
            source.linger = None
            status = self.plane.status(stream)
            if status is not None and status.viewers:
                return
            await self._close(stream, "no_viewer")

    async def close(self, stream: str, reason: str) -> None:
        """Stop pulling `stream` now, whoever watches it (the camera left the registry): its viewers are ended."""
        async with self.lock(stream):
            await self._close(stream, reason)

    async def _close(self, stream: str, reason: str) -> None:
        source = self._sources.pop(stream, None)
        if source is None:
            return
        source.puller.stop()
        if source.linger is not None and source.linger is not asyncio.current_task():
            source.linger.cancel()
        await self.plane.end_stream(stream, reason)
        if self.on_closed is not None:
            self.on_closed(stream)
        await asyncio.get_running_loop().run_in_executor(None, source.puller.join, READ_TIMEOUT_S + 1)

    async def close_all(self) -> None:
        """Stop every puller (server shutdown); their streams end with the media plane."""
        sources = list(self._sources.values())
        self._sources.clear()
        for source in sources:
            source.puller.stop()
            if source.linger is not None:
                source.linger.cancel()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*(loop.run_in_executor(None, s.puller.join, READ_TIMEOUT_S + 1) for s in sources))
