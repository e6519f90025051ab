"""The camera's live transmission: the live button opens a live session and publishes over WHIP.

What the camera agent calls when the agent presses the live button (R241-11: only when the safety of
the agents, or of people or property, is threatened):

    publisher = LivePublisher(base_url, device_id, key)
    await publisher.start(position=fix)                  # live request + WHIP: media flows to the CSU
    state = await publisher.wait_for_state("acknowledged")  # the CSU confirms reception
    await publisher.send_position(fix)                   # while live, every second or so
    await publisher.stop()                               # the session ends

Every request is signed with the camera's Ed25519 key (`DeviceAuth`); media is H.264 + Opus, which the
platform forwards to the CSU without transcoding. Media comes from `frames`/`samples` callables: the
synthetic scene by default (`SyntheticScene`), or what the camera agent captures (`LiveFeed`).

`LiveLink` is what the camera agent holds: it runs `LivePublisher` in a thread of its own with its own
event loop (aiortc needs one), so that the capture loop never waits on the network. The agent hands it
the pictures and sound it captures (`LiveFeed`, a short FIFO: the live stream shows what the camera
records) and reads back, between two frames, what happened (`LiveLink.events`: the session opened,
the CSU acknowledged, the CSU ended it, a failure).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fractions
import math
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast
from urllib.parse import urljoin

import av
import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin import errors
from temoin.camera.media import SyntheticScene
from temoin.camera.offload import DeviceAuth, error_detail
from temoin.evidence.manifest import GpsFix

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_PTIME_S = 0.020
# A dead link is noticed from the platform's RTCP receiver reports (aiortc's receivers send one every 0.5 to
# 1.5 s per stream): none for this long and the camera publishes again. ICE consent (RFC 7675), the other
# signal, takes aiortc 30 s to fail. The WHIP POSTs that re-publish are short-lived, so that one sent into
# a dead network does not hold back the next one, and are tried again after a short backoff: media flows
# again within a couple of seconds of the network's return.
LINK_TIMEOUT_S = 2.0
CONNECT_TIMEOUT_S = 5.0  # a publication not connected (ICE + DTLS) by then is given up and published again
REPUBLISH_BACKOFF_S = (0.25, 0.5)  # then 0.5 s, for as long as the session lasts: one SYN now and then
REPUBLISH_TIMEOUT = httpx.Timeout(3.0, connect=1.2)  # TCP's first SYN retransmission comes at 1 s
LINK_CHECK_S = 0.25
Frames = Callable[[int], np.ndarray]  # frame index -> (height, width, 3) uint8 RGB
Samples = Callable[[int, int], np.ndarray]  # (first sample, count) -> count mono float32 samples at 48 kHz


class LiveError(errors.UpstreamFault, RuntimeError):
    """The platform refused or failed a request; `status` is its HTTP answer (this is an HTTP client)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class _Paced:
    """Real-time pacing from a monotonic origin; `paused` holds the media back (a lost uplink, in tests)."""

    def __init__(self) -> None:
        self.origin: float | None = None
        self.running = asyncio.Event()
        self.running.set()
        self._paused_at: float | None = None

    def pause(self) -> None:
        if self._paused_at is None:
            self._paused_at = time.monotonic()
            self.running.clear()

    def resume(self) -> None:
        if self._paused_at is not None:
            if self.origin is not None:
                self.origin += time.monotonic() - self._paused_at  # the media skips the pause, no burst
            self._paused_at = None
            self.running.set()

    async def wait(self, offset_s: float) -> None:
        await self.running.wait()
        if self.origin is None:
            self.origin = time.monotonic()
        delay = self.origin + offset_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class CameraVideoTrack(MediaStreamTrack):
    kind = "video"

    def __init__(self, frames: Frames, fps: int, pace: _Paced) -> None:
        super().__init__()
        self.frames, self.fps, self.pace = frames, fps, pace
        self.index = 0
        self.step = VIDEO_CLOCK // fps

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError
        i = self.index
        await self.pace.wait(i / self.fps)
        self.index += 1
        frame = av.VideoFrame.from_ndarray(self.frames(i), format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = i * self.step, fractions.Fraction(1, VIDEO_CLOCK)
        return frame


class CameraAudioTrack(MediaStreamTrack):
    kind = "audio"

    def __init__(self, scene: SyntheticScene | Samples, pace: _Paced) -> None:
        """`scene`: anything with `samples(first, count)` (a `SyntheticScene`), or that callable itself."""
        super().__init__()
        self.samples_of = cast("Samples", getattr(scene, "samples", scene))
        self.pace = pace
        self.index = 0
        self.samples = int(AUDIO_RATE * AUDIO_PTIME_S)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        i = self.index
        await self.pace.wait(i * AUDIO_PTIME_S)
        self.index += 1
        first = i * self.samples
        pcm = (np.clip(self.samples_of(first, self.samples), -1, 1) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate = AUDIO_RATE
        frame.pts, frame.time_base = first, fractions.Fraction(1, AUDIO_RATE)
        return frame


def prefer(pc: RTCPeerConnection, kind: str, mime: str) -> None:
    """Offer only this codec for `kind` (H.264 for video: the platform forwards it, never transcodes)."""
    caps = RTCRtpSender.getCapabilities(kind).codecs
    chosen = [c for c in caps if c.mimeType.lower() == mime] + [c for c in caps if c.mimeType.lower().endswith("/rtx")]
    for transceiver in pc.getTransceivers():
        if transceiver.kind == kind:
            transceiver.setCodecPreferences(chosen)


@dataclass
class LiveStart:
    session_id: str
    state: str
    whip_url: str
    resource_url: str


async def first_answer(http: httpx.AsyncClient, path: str, body: dict, copies: int) -> httpx.Response:
    """POST `body` `copies` times at once (the pool gives each its own connection; each is signed with its own
    nonce) and return the first answer; the others finish in the background. Raises the last error when
    none got an answer."""
    posts = [asyncio.ensure_future(http.post(path, json=body)) for _ in range(copies)]
    for post in posts:
        post.add_done_callback(lambda f: f.cancelled() or f.exception())  # a late failure is not an error
    error: BaseException | None = None
    for answered in asyncio.as_completed(posts):
        try:
            return await answered
        except httpx.HTTPError as exc:
            error = exc
    assert error is not None
    raise error


class LivePublisher:
    def __init__(self, base_url: str, device_id: str, key: Ed25519PrivateKey, *, clock_skew_s: float = 0.0,
                 ice_servers: tuple[str, ...] = (), scene: SyntheticScene | None = None, fps: int = 15,
                 frames: Frames | None = None, audio: bool = True, timeout: float = 30.0,
                 samples: Samples | None = None, http: httpx.AsyncClient | None = None,
                 request_copies: int = 1) -> None:
        """`http`: a client to use (with `DeviceAuth`), kept open by `aclose`: creating one costs tens of
        milliseconds (its TLS context), which a live button should not wait for. `request_copies`: the live
        request is sent this many times at once, each on its own connection, and the first answer is taken: on
        a lossy mobile link a lost packet then does not hold the alert back for a TCP retransmission (≥ 200 ms);
        the platform opens one session whatever the number of copies."""
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                              auth=DeviceAuth(device_id, key, clock_skew_s))
        self.ice_servers = ice_servers
        self.scene = scene or SyntheticScene(160, 120, fps)
        self.fps = fps
        self.frames: Frames = frames or self.scene.rgb
        self.samples: Samples = samples or self.scene.samples
        self.audio = audio
        self.request_copies = max(1, request_copies)
        self.pace = _Paced()
        self.pc: RTCPeerConnection | None = None
        self.session_id: str | None = None
        self.state: str | None = None
        self.resource_url: str | None = None
        self.link_timeout_s, self.connect_timeout_s = LINK_TIMEOUT_S, CONNECT_TIMEOUT_S
        self._published_at = 0.0  # time.monotonic() of the last publication's answer
        self._connected_at: float | None = None  # ... and of its connection (ICE + DTLS)

    async def _check(self, response: httpx.Response, *ok: int) -> httpx.Response:
        if response.status_code not in ok:
            raise LiveError(response.status_code, error_detail(response))
        return response

    async def request(self, *, position: GpsFix | None = None, agent: str | None = None,
                      detail: str | None = None) -> dict:
        """The live request alone (reason: threat, the legal condition); `start` also publishes."""
        body = {"reason": "threat", "detail": detail, "agent": agent,
                "position": position.model_dump(mode="json") if position else None}
        r = await self._check(await first_answer(self.http, "/api/v1/live/sessions", body, self.request_copies),
                              200, 201)
        out = r.json()
        self.session_id, self.state = out["id"], out["state"]
        return out

    async def start(self, *, position: GpsFix | None = None, agent: str | None = None,
                    detail: str | None = None) -> LiveStart:
        """The live button: ask for a live session, then publish to it (WHIP)."""
        out = await self.request(position=position, agent=agent, detail=detail)
        await self.publish()
        # request() set the session and its state, publish() the resource: None is not possible here.
        assert self.session_id is not None and self.state is not None and self.resource_url is not None
        return LiveStart(self.session_id, self.state, out["whip_url"], self.resource_url)

    async def publish(self, timeout: httpx.Timeout | float | None = None,
                      http: httpx.AsyncClient | None = None) -> None:
        """WHIP (RFC 9725): offer in, 201 with the answer and the session resource. Called again after
        a lost link: the platform swaps the new publication in and the CSU's viewers stay attached.
        `timeout`: for the WHIP POST (the client's own by default); `http`: another client to send it with
        (with `DeviceAuth`)."""
        if self.session_id is None:
            raise RuntimeError("no live session: call start() or request() first")
        if self.pc is not None:
            old, self.pc = self.pc, None
            await old.close()
        self.pace.origin = None  # the new tracks count their frames from 0: pace them from now, no burst
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(u) for u in self.ice_servers]))
        pc.addTransceiver(CameraVideoTrack(self.frames, self.fps, self.pace), direction="sendonly")
        if self.audio:
            pc.addTransceiver(CameraAudioTrack(self.samples, self.pace), direction="sendonly")
        prefer(pc, "video", "video/h264")
        prefer(pc, "audio", "audio/opus")
        try:
            await pc.setLocalDescription(await pc.createOffer())  # gathers candidates: no trickle needed
            extra: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
            r = await self._check(await (http or self.http).post(f"/api/v1/live/whip/{self.session_id}",
                                                       content=pc.localDescription.sdp.encode(),
                                                       headers={"Content-Type": "application/sdp"}, **extra), 201)
            self.resource_url = urljoin(self.base_url + "/", r.headers["location"])
            await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        except BaseException:
            await pc.close()  # its tracks and sockets would otherwise live on
            raise
        self._published_at, self._connected_at = time.monotonic(), None

        @pc.on("connectionstatechange")
        def _state() -> None:
            if pc.connectionState == "connected" and self._connected_at is None:
                self._connected_at = time.monotonic()

        self.pc = pc
        self.state = "streaming" if self.state == "requested" else self.state

    async def link_lost(self) -> str | None:
        """Why the publication's link is dead, or None while the platform still hears it: its connection
        failed or was closed (a server that shut down), never connected within `connect_timeout_s`, or the
        platform's RTCP receiver reports stopped for `link_timeout_s` (a network that went silent)."""
        pc = self.pc
        if pc is None:
            return "not published"
        if pc.connectionState in ("failed", "closed"):
            return f"connection {pc.connectionState}"
        now = time.monotonic()
        if self._connected_at is None:
            waited = now - self._published_at
            return f"not connected after {waited:.1f} s" if waited > self.connect_timeout_s else None
        heard = self._connected_at
        wall = time.time()
        for sender in pc.getSenders():
            with contextlib.suppress(Exception):  # a sender being torn down has no stats
                for stats in (await sender.getStats()).values():
                    if stats.type == "remote-inbound-rtp":  # updated at each receiver report
                        heard = max(heard, now - (wall - stats.timestamp.timestamp()))
        silent = now - heard
        return f"no receiver report for {silent:.1f} s" if silent > self.link_timeout_s else None

    async def status(self, known_state: str | None = None, wait_s: float = 0) -> dict:
        """The session as the camera sees it; with `known_state` and `wait_s`, waits for a change (long poll)."""
        params = {}
        if known_state:
            params = {"known_state": known_state, "wait_s": str(wait_s)}
        r = await self._check(await self.http.get(f"/api/v1/live/camera/sessions/{self.session_id}",
                                                  params=params, timeout=wait_s + 30), 200)
        out = r.json()
        self.state = out["state"]
        return out

    async def wait_for_state(self, wanted: str, timeout_s: float = 30) -> dict:
        """Until the session reaches `wanted` (e.g. the CSU's acknowledgement) or a later state."""
        order = ["requested", "streaming", "acknowledged", "reinforcements_sent", "ended"]
        deadline = time.monotonic() + timeout_s
        out = await self.status()
        while order.index(out["state"]) < order.index(wanted):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"live session still {out['state']!r} after {timeout_s} s")
            out = await self.status(out["state"], min(left, 20))
        return out

    async def send_position(self, position: GpsFix) -> None:
        await self._check(await self.http.post(f"/api/v1/live/camera/sessions/{self.session_id}/position",
                                               json=position.model_dump(mode="json")), 204)

    def pause_media(self) -> None:
        """Hold the media back (a lost uplink): the platform notices the silence."""
        self.pace.pause()

    def resume_media(self) -> None:
        self.pace.resume()

    async def stop(self) -> None:
        """End the live session: DELETE the WHIP resource, close the connection."""
        try:
            if self.resource_url is not None:
                await self._check(await self.http.delete(self.resource_url), 200, 204, 404)
        finally:
            self.resource_url = None
            if self.pc is not None:
                await self.pc.close()
                self.pc = None

    async def aclose(self) -> None:
        if self.pc is not None:
            await self.pc.close()
            self.pc = None
        if self._own_http:
            await self.http.aclose()


# --- the camera agent's live link ------------------------------------------------------------------------

@dataclass(frozen=True)
class LiveEvent:
    """What the live thread tells the capture loop. `kind`: requested (the CSU is alerted), streaming (the
    media is accepted), acknowledged, reinforcements_sent, interrupted / resumed (the uplink), ended (by the
    CSU, or by the camera when the wearer stopped), failed (the request or the publication was refused or
    could not reach the platform)."""

    kind: str
    session_id: str | None = None
    data: dict = field(default_factory=dict)
    at: float = field(default_factory=time.time)


class _Gaps:
    """The longest recent interval between two deliveries of the agent: how much delay a FIFO needs."""

    def __init__(self, keep: int = 60) -> None:
        self._last: float | None = None
        self._gaps: deque[float] = deque(maxlen=keep)

    def tick(self) -> None:
        now = time.monotonic()
        if self._last is not None:
            self._gaps.append(now - self._last)
        self._last = now

    @property
    def longest(self) -> float:
        return max(self._gaps, default=0.0)


class LiveFeed:
    """What the camera agent captures, handed to the live tracks through two short FIFOs.

    The capture loop puts pictures (one per captured frame) and sound (what it reads from the microphone
    for the recording); the live tracks take one picture per 1/fps and 20 ms of sound at a time. Each FIFO
    keeps the delay it needs to ride over the gaps between the agent's deliveries (one frame in real time;
    a burst per tick for a simulated camera) and drops what is older: the live stream stays close to the
    recording. When the agent falls behind, the last picture is repeated and the sound is silence; before
    the first picture, a black one. Only while `active` (a live session) does it hold anything.
    """

    MAX_DELAY_S = 1.0
    AUDIO_MARGIN_S = 0.04

    def __init__(self, width: int, height: int, fps: int, sample_rate: int = AUDIO_RATE) -> None:
        self.width, self.height, self.fps, self.sample_rate = width, height, fps, sample_rate
        self._lock = threading.Lock()
        self.active = False
        self._video: deque[np.ndarray] = deque()
        self._last = np.zeros((height, width, 3), np.uint8)
        self._audio = np.zeros(0, np.float32)
        self._resampler: av.AudioResampler | None = None
        self._video_gaps, self._audio_gaps = _Gaps(), _Gaps()
        self._video_started = False
        self._audio_buffering = True
        self.stats = {"pictures_in": 0, "pictures_out": 0, "repeated": 0, "dropped": 0, "audio_underruns": 0}

    def open(self) -> None:
        with self._lock:
            self._reset()
            self.active = True

    def close(self) -> None:
        with self._lock:
            self.active = False
            self._reset()

    def _reset(self) -> None:
        self._video.clear()
        self._audio = np.zeros(0, np.float32)
        self._resampler = None
        self._video_gaps, self._audio_gaps = _Gaps(), _Gaps()
        self._video_started = False
        self._audio_buffering = True

    # --- the capture loop's side ---

    def put_video(self, rgb: np.ndarray) -> None:
        if not self.active:
            return
        if rgb.shape[:2] != (self.height, self.width):
            rgb = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24").reformat(
                width=self.width, height=self.height).to_ndarray()
        else:
            rgb = rgb.copy()  # the recording burns its overlay into the agent's array afterwards
        with self._lock:
            self._video.append(rgb)
            self._video_gaps.tick()
            self.stats["pictures_in"] += 1
            while len(self._video) > self.fps * self.MAX_DELAY_S:
                self._video.popleft()
                self.stats["dropped"] += 1

    def put_audio(self, frame: av.AudioFrame) -> None:
        if not self.active:
            return
        if self._resampler is None:
            self._resampler = av.AudioResampler(format="flt", layout="mono", rate=self.sample_rate)
        copy = av.AudioFrame.from_ndarray(frame.to_ndarray(), format=frame.format.name, layout=frame.layout.name)
        copy.sample_rate = frame.sample_rate  # a copy: the recording's encoder sets the original's pts
        parts = [f.to_ndarray().reshape(-1) for f in self._resampler.resample(copy)]
        if not parts:
            return
        with self._lock:
            self._audio = np.concatenate([self._audio, *parts])
            self._audio_gaps.tick()
            cap = int(self.MAX_DELAY_S * self.sample_rate)
            if len(self._audio) > cap:
                self._audio = self._audio[-cap:]

    # --- the live tracks' side ---

    def picture(self, index: int) -> np.ndarray:
        """The next picture to send (`Frames`)."""
        with self._lock:
            keep = max(1, math.ceil(self._video_gaps.longest * self.fps))
            if not self._video_started and self._video:
                while len(self._video) > 1:  # the first picture sent is the newest: no backlog from the start
                    self._video.popleft()
                    self.stats["dropped"] += 1
                self._video_started = True
            while len(self._video) > keep + 1:
                self._video.popleft()
                self.stats["dropped"] += 1
            if self._video:
                self._last = self._video.popleft()
            else:
                self.stats["repeated"] += 1
            self.stats["pictures_out"] += 1
            return self._last

    def samples(self, first: int, count: int) -> np.ndarray:
        """The next `count` samples to send (`Samples`); silence while buffering."""
        with self._lock:
            target = int((self._audio_gaps.longest + self.AUDIO_MARGIN_S) * self.sample_rate)
            if self._audio_buffering:
                if len(self._audio) < max(target, count):
                    return np.zeros(count, np.float32)
                self._audio_buffering = False
                self._audio = self._audio[-max(target, count):]
            if len(self._audio) < count:
                out = np.concatenate([self._audio, np.zeros(count - len(self._audio), np.float32)])
                self._audio = np.zeros(0, np.float32)
                self._audio_buffering = True
                self.stats["audio_underruns"] += 1
                return out
            out, self._audio = self._audio[:count], self._audio[count:]
            if len(self._audio) > target + self.sample_rate // 5:
                self._audio = self._audio[-target:]
            return out


class LiveLink:
    """The camera agent's live transmission, in a thread with its own event loop.

    `start` (the live button) returns at once: the live request (the CSU's alert), the WHIP publication of
    what `feed` receives, then a long poll on the session follow in the live thread. While live, the agent's
    last GPS fix goes to the CSU's map every `position_every_s`. `stop` (the wearer stopped recording) ends
    the session (DELETE of the WHIP resource). The capture loop reads what happened with `events()`.

    A request that cannot reach the platform is tried again every `retry_s` until it is accepted or the
    wearer stops: the alert must get through. A refusal (the legal profile, a revoked camera) is final.
    A publication whose link dies (no RTCP receiver report from the platform for `LINK_TIMEOUT_S`, or its
    connection failed or closed: a network cut, a server restart) is published again on the same session
    with a short backoff (`REPUBLISH_BACKOFF_S`), so that the CSU sees the camera again within a couple of
    seconds of the network's return; the CSU's viewers stay attached. Recording never waits on any of it.

    `request_copies`: the live request goes this many times at once over as many connections (see
    `LivePublisher`); `keep_warm_s` keeps that many warm.

    `keep_warm_s`: between live sessions, a request to the platform's public endpoint this often, so that
    the live button finds an open HTTP connection (servers close idle ones after about 5 s): on a mobile link
    this saves the TCP handshake, one round trip (~80 ms on 4G), on the way to the CSU's alert, for one
    small request every few seconds (and a radio kept awake). None: no such traffic.
    """

    def __init__(self, base_url: str, device_id: str, key: Ed25519PrivateKey, *, width: int, height: int, fps: int,
                 clock_skew_s: float | Callable[[], float] = 0.0, ice_servers: tuple[str, ...] = (),
                 position_every_s: float = 2.0, retry_s: float = 2.0, timeout: float = 15.0,
                 keep_warm_s: float | None = None, request_copies: int = 1, name: str = "camera-live") -> None:
        self.base_url, self.device_id, self.key = base_url, device_id, key
        self.feed = LiveFeed(width, height, fps)
        self._skew = clock_skew_s if callable(clock_skew_s) else (lambda: clock_skew_s)
        self.ice_servers = ice_servers
        self.position_every_s, self.retry_s, self.timeout = position_every_s, retry_s, timeout
        self.keep_warm_s = keep_warm_s
        self.request_copies = max(1, request_copies)
        self.name = name
        self.session_id: str | None = None
        self.state: str | None = None
        self.position: GpsFix | None = None  # the last fix, set by the capture loop
        self._sent_position: GpsFix | None = None
        self.publisher: LivePublisher | None = None
        self._events: queue.SimpleQueue[LiveEvent] = queue.SimpleQueue()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._task: concurrent.futures.Future | None = None
        self._stop: asyncio.Event | None = None
        self._lock = threading.Lock()
        self._auth = DeviceAuth(device_id, key, self._skew())
        self._http: httpx.AsyncClient | None = None
        with self._lock:
            self._ensure_loop()  # warm: the live button then only schedules work on a running loop

    # --- the capture loop's side ---------------------------------------------------------------------

    @property
    def active(self) -> bool:
        """A live session is being requested, streamed or followed."""
        return self._task is not None and not self._task.done()

    def start(self, *, position: GpsFix | None = None, agent: str | None = None,
              detail: str | None = None) -> bool:
        """The live button: ask for a live session and publish to it, in the live thread. False (and
        nothing done) if this camera is already live."""
        with self._lock:
            if self.active:
                return False
            loop = self._ensure_loop()
            self.session_id, self.state, self.position = None, None, position
            self.feed.open()
            self._stop = stop = asyncio.Event()
            self._task = asyncio.run_coroutine_threadsafe(self._session(stop, position, agent, detail), loop)
            return True

    def stop(self) -> None:
        """The wearer stopped recording: end the live session (in the live thread; returns at once)."""
        with self._lock:
            if self.active and self._loop is not None and self._stop is not None:
                self._loop.call_soon_threadsafe(self._stop.set)

    def events(self) -> list[LiveEvent]:
        out = []
        while True:
            try:
                out.append(self._events.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float | None = None) -> bool:
        """Until the current session's work is over (ended, failed); False on timeout."""
        task = self._task
        if task is None:
            return True
        try:
            task.result(timeout)
        except concurrent.futures.TimeoutError:
            return False
        except Exception:  # noqa: BLE001, S110 - reported as a `failed` event
            pass
        return True

    def close(self, timeout: float = 10.0) -> None:
        """End what is live and stop the thread (the camera is switched off)."""
        self.stop()
        self.wait(timeout)
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is not None and self._http is not None:
            http, self._http = self._http, None
            with contextlib.suppress(Exception):
                asyncio.run_coroutine_threadsafe(http.aclose(), loop).result(timeout)
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout)

    def _ensure_loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=self._run_loop, args=(loop,), daemon=True, name=self.name)
            thread.start()
            self._loop, self._thread = loop, thread
            asyncio.run_coroutine_threadsafe(self._client(), loop)
            if self.keep_warm_s:
                asyncio.run_coroutine_threadsafe(self._keep_warm(self.keep_warm_s), loop)
        return self._loop

    async def _keep_warm(self, every_s: float) -> None:
        while True:
            if not self.active:  # the session's own requests (the long poll) keep the connection open
                http = await self._client()
                # As many connections as the live request has copies, each with a request of its own.
                await asyncio.gather(*(http.get("/api/v1/platform") for _ in range(self.request_copies)),
                                     return_exceptions=True)
            await asyncio.sleep(every_s)

    async def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(base_url=self.base_url.rstrip("/"), timeout=self.timeout, auth=self._auth)
        return self._http

    @staticmethod
    def _run_loop(loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    # --- the live thread -----------------------------------------------------------------------------

    def _emit(self, kind: str, **data: object) -> None:
        self._events.put(LiveEvent(kind, self.session_id, dict(data)))

    async def _stopped(self, stop: asyncio.Event, seconds: float) -> bool:
        """Wait `seconds`, or less if `stop` is set; True if it was."""
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            return False
        return True

    async def _session(self, stop: asyncio.Event, position: GpsFix | None, agent: str | None,
                       detail: str | None) -> None:
        self._auth.clock_skew_s = self._skew()
        publisher = self.publisher = LivePublisher(
            self.base_url, self.device_id, self.key, ice_servers=self.ice_servers, fps=self.feed.fps,
            frames=self.feed.picture, samples=self.feed.samples, timeout=self.timeout, http=await self._client(),
            scene=SyntheticScene(16, 16, self.feed.fps),  # the scene is not used: the feed is
            request_copies=self.request_copies)
        ended = False
        try:
            out = await self._request(publisher, stop, position, agent, detail)
            if out is None:
                return
            self.session_id, self.state = out["id"], out["state"]
            self._emit("requested", state=out["state"], requested_at=out.get("requested_at"))
            if not await self._publish(publisher, stop):
                return
            self.state = publisher.state
            self._emit("streaming")
            ended = await self._follow(publisher, stop)
        except Exception as exc:  # noqa: BLE001 - the capture loop must hear of it, the thread must go on
            self._emit("failed", why=f"{type(exc).__name__}: {exc}")
        finally:
            if not ended and publisher.resource_url is not None:
                try:  # the wearer stopped (or the live failed): end the session, not only the connection
                    await publisher.stop()
                    self.state = "ended"
                    self._emit("ended", reason="camera_ended", by="camera")
                except Exception as exc:  # noqa: BLE001 - reported as a `failed` event
                    self._emit("failed", why=f"ending the live session: {type(exc).__name__}: {exc}")
            await publisher.aclose()
            self.feed.close()

    async def _request(self, publisher: LivePublisher, stop: asyncio.Event, position: GpsFix | None,
                       agent: str | None, detail: str | None) -> dict | None:
        told = False
        while True:
            try:
                return await publisher.request(position=position, agent=agent, detail=detail)
            except LiveError as exc:
                if exc.status < 500:  # refused: the legal profile, a revoked camera, a bad signature
                    self._emit("failed", why=f"live request refused ({exc.status}): {exc.message}", final=True)
                    return None
                why = f"{exc.status}: {exc.message}"
            except httpx.HTTPError as exc:
                why = f"{type(exc).__name__}: {exc}"
            if not told:
                self._emit("failed", why=f"the platform cannot be reached ({why}): trying again", final=False)
                told = True
            if await self._stopped(stop, self.retry_s):
                return None

    async def _publish(self, publisher: LivePublisher, stop: asyncio.Event) -> bool:
        told = False
        while True:
            try:
                await publisher.publish()
                return True
            except LiveError as exc:
                if exc.status in (403, 404, 409):  # the session has ended or is not ours
                    self._emit("failed", why=f"publication refused ({exc.status}): {exc.message}", final=True)
                    return False
                why = f"{exc.status}: {exc.message}"
            except (httpx.HTTPError, OSError, ConnectionError) as exc:
                why = f"{type(exc).__name__}: {exc}"
            if not told:
                self._emit("failed", why=f"publication failed ({why}): trying again", final=False)
                told = True
            if await self._stopped(stop, self.retry_s):
                return False

    async def _follow(self, publisher: LivePublisher, stop: asyncio.Event) -> bool:
        """Follow the session until the wearer stops (False) or the platform ends it (True).

        Nothing here waits on the network inline: the long poll, the position and the re-publication are
        tasks, so that the link is checked every `LINK_CHECK_S` whatever the network does."""
        state = publisher.state or "streaming"
        acknowledged = reinforced = refused = False
        self._sent_position = self.position
        next_position = time.monotonic() + self.position_every_s
        next_poll = 0.0
        poll: asyncio.Task | None = None
        sending: asyncio.Task | None = None
        recovery: asyncio.Task | None = None
        stopping = asyncio.ensure_future(stop.wait())
        try:
            while not stop.is_set():
                if poll is None and time.monotonic() >= next_poll:
                    poll = asyncio.ensure_future(publisher.status(state, wait_s=20))
                waiting = {t for t in (stopping, poll, recovery) if t is not None}
                await asyncio.wait(waiting, timeout=LINK_CHECK_S, return_when=asyncio.FIRST_COMPLETED)
                if stop.is_set():
                    break
                if poll is not None and poll.done():
                    finished, poll = poll, None
                    try:
                        out = finished.result()
                    except (LiveError, httpx.HTTPError) as exc:
                        if isinstance(exc, LiveError) and exc.status == 404:
                            self._emit("ended", reason="unknown to the platform", by="platform")
                            return True
                        next_poll = time.monotonic() + self.retry_s
                        out = None
                    if out is not None:
                        self.state = state = out["state"]
                        if out.get("acknowledged_at") and not acknowledged:
                            acknowledged = True
                            self._emit("acknowledged", by=out.get("acknowledged_by"), at=out["acknowledged_at"])
                        if out.get("reinforcements_at") and not reinforced:
                            reinforced = True
                            self._emit("reinforcements_sent", by=out.get("reinforcements_by"),
                                       note=out.get("reinforcements_note"), at=out["reinforcements_at"])
                        if state == "ended":
                            self._emit("ended", reason=out.get("end_reason"), by=out.get("ended_by"))
                            return True
                now = time.monotonic()
                position = self.position
                if (position is not None and position != self._sent_position and now >= next_position
                        and (sending is None or sending.done())):
                    next_position = now + self.position_every_s
                    sending = asyncio.ensure_future(self._send_position(publisher, position))
                if recovery is not None and recovery.done():
                    finished, recovery = recovery, None
                    if finished.result():
                        self._emit("resumed")
                        for task in (poll, sending):  # they may hang on a connection the outage stalled
                            if task is not None:
                                task.cancel()
                        poll = sending = None
                        next_poll = 0.0
                    else:
                        refused = True
                if recovery is None and not refused:
                    why = await publisher.link_lost()
                    if why is not None:
                        self._emit("interrupted", link=why)
                        recovery = asyncio.ensure_future(self._republish(publisher, stop))
            return False
        finally:
            for task in (stopping, poll, sending, recovery):
                if task is not None:
                    task.cancel()

    async def _send_position(self, publisher: LivePublisher, position: GpsFix) -> None:
        try:
            await publisher.send_position(position)
            self._sent_position = position
        except (LiveError, httpx.HTTPError):
            pass  # the next one will do

    async def _republish(self, publisher: LivePublisher, stop: asyncio.Event) -> bool:
        """Publish again until the platform takes it (True), refuses it for good, or the wearer stops (False).
        Each try is a new WHIP POST on the same live session: the platform swaps the publication."""
        backoff = iter(REPUBLISH_BACKOFF_S)
        # A new connection for each try: a kept-alive one may be stuck behind TCP's retransmission backoff
        # (up to seconds) long after the network is back.
        async with httpx.AsyncClient(base_url=self.base_url.rstrip("/"), auth=self._auth, timeout=REPUBLISH_TIMEOUT,
                                     limits=httpx.Limits(max_keepalive_connections=0)) as http:
            while not stop.is_set():
                try:
                    await publisher.publish(http=http)
                    return True
                except LiveError as exc:
                    if exc.status in (403, 404, 409):  # ended, or not ours: the long poll says which
                        self._emit("failed", why=f"publication refused ({exc.status}): {exc.message}", final=True)
                        return False
                except (httpx.HTTPError, OSError, ConnectionError):
                    pass  # the network or the platform is still away
                if await self._stopped(stop, next(backoff, REPUBLISH_BACKOFF_S[-1])):
                    return False
        return False
