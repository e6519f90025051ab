"""The camera's live transmission: the live button opens a live session and publishes over WHIP.

What the camera agent calls when the agent presses the live button (R241-11: only when the safety of
the agents, or of people or property, is threatened):

    publisher = LivePublisher(base_url, device_id, key)
    await publisher.start(position=fix)                  # live request + WHIP: media flows to the CSU
    state = await publisher.wait_for_state("acknowledged")  # the CSU confirms reception
    await publisher.send_position(fix)                   # while live, every second or so
    await publisher.stop()                               # the session ends

Every request is signed with the camera's Ed25519 key (`DeviceAuth`); media is H.264 + Opus, which the
platform forwards to the CSU without transcoding. Media comes from `video`/`audio` sources: synthetic
ones here (`SyntheticScene`), the real sensor on a device.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urljoin

import av
import httpx
import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin.camera.media import SyntheticScene
from temoin.camera.offload import DeviceAuth
from temoin.evidence.manifest import GpsFix

VIDEO_CLOCK = 90_000
AUDIO_RATE = 48_000
AUDIO_PTIME_S = 0.020
Frames = Callable[[int], np.ndarray]  # frame index -> (height, width, 3) uint8 RGB


class LiveError(RuntimeError):
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

    def __init__(self, scene: SyntheticScene, pace: _Paced) -> None:
        super().__init__()
        self.scene, self.pace = scene, pace
        self.index = 0
        self.samples = int(AUDIO_RATE * AUDIO_PTIME_S)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        i = self.index
        await self.pace.wait(i * AUDIO_PTIME_S)
        self.index += 1
        first = i * self.samples
        pcm = (self.scene.samples(first, self.samples) * 32767).astype(np.int16).reshape(1, -1)
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


class LivePublisher:
    def __init__(self, base_url: str, device_id: str, key: Ed25519PrivateKey, *, clock_skew_s: float = 0.0,
                 ice_servers: tuple[str, ...] = (), scene: SyntheticScene | None = None, fps: int = 15,
                 frames: Frames | None = None, audio: bool = True, timeout: float = 30.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout,
                                      auth=DeviceAuth(device_id, key, clock_skew_s))
        self.ice_servers = ice_servers
        self.scene = scene or SyntheticScene(160, 120, fps)
        self.fps = fps
        self.frames: Frames = frames or self.scene.rgb
        self.audio = audio
        self.pace = _Paced()
        self.pc: RTCPeerConnection | None = None
        self.session_id: str | None = None
        self.state: str | None = None
        self.resource_url: str | None = None

    async def _check(self, response: httpx.Response, *ok: int) -> httpx.Response:
        if response.status_code not in ok:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = response.text[:300]
            raise LiveError(response.status_code, str(detail))
        return response

    async def request(self, *, position: GpsFix | None = None, agent: str | None = None,
                      detail: str | None = None) -> dict:
        """The live request alone (reason: threat, the legal condition); `start` also publishes."""
        body = {"reason": "threat", "detail": detail, "agent": agent,
                "position": position.model_dump(mode="json") if position else None}
        r = await self._check(await self.http.post("/api/v1/live/sessions", json=body), 200, 201)
        out = r.json()
        self.session_id, self.state = out["id"], out["state"]
        return out

    async def start(self, *, position: GpsFix | None = None, agent: str | None = None,
                    detail: str | None = None) -> LiveStart:
        """The live button: ask for a live session, then publish to it (WHIP)."""
        out = await self.request(position=position, agent=agent, detail=detail)
        await self.publish()
        return LiveStart(self.session_id, self.state, out["whip_url"], self.resource_url)

    async def publish(self) -> None:
        """WHIP (RFC 9725): offer in, 201 with the answer and the session resource. Called again after
        a lost link: the platform swaps the new publication in and the CSU's viewers stay attached."""
        if self.session_id is None:
            raise RuntimeError("no live session: call start() or request() first")
        if self.pc is not None:
            await self.pc.close()
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(u) for u in self.ice_servers]))
        pc.addTransceiver(CameraVideoTrack(self.frames, self.fps, self.pace), direction="sendonly")
        if self.audio:
            pc.addTransceiver(CameraAudioTrack(self.scene, self.pace), direction="sendonly")
        prefer(pc, "video", "video/h264")
        prefer(pc, "audio", "audio/opus")
        await pc.setLocalDescription(await pc.createOffer())  # gathers candidates: no trickle needed
        r = await self._check(await self.http.post(f"/api/v1/live/whip/{self.session_id}",
                                                   content=pc.localDescription.sdp.encode(),
                                                   headers={"Content-Type": "application/sdp"}), 201)
        self.resource_url = urljoin(self.base_url + "/", r.headers["location"])
        await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        self.pc = pc
        self.state = "streaming" if self.state == "requested" else self.state

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
        await self.http.aclose()
