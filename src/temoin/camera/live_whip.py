"""The live transmission's HTTP client: the live request and the WHIP publication (RFC 9725).

`LivePublisher` signs every request with the camera's key (`DeviceAuth`), asks for a live session, publishes
the media tracks (`live_media`) over WHIP, follows the session's state and tells whether its link is dead.
`LiveError` is the platform's refusal, with the HTTP status it answered. Kept apart from `LiveLink`
(`live_publisher`), which decides when to call it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin

import httpx
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin import errors
from temoin.camera.live_media import CameraAudioTrack, CameraVideoTrack, Frames, Samples, _Paced
from temoin.camera.media import SyntheticScene
from temoin.camera.offload import DeviceAuth, error_detail
from temoin.evidence.manifest import GpsFix

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


class LiveError(errors.UpstreamFault, RuntimeError):
    """The platform refused or failed a request; `status` is its HTTP answer (this is an HTTP client)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


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
    def __init__(
        self,
        base_url: str,
        device_id: str,
        key: Ed25519PrivateKey,
        *,
        clock_skew_s: float = 0.0,
        ice_servers: tuple[str, ...] = (),
        scene: SyntheticScene | None = None,
        fps: int = 15,
        frames: Frames | None = None,
        audio: bool = True,
        timeout: float = 30.0,
        samples: Samples | None = None,
        http: httpx.AsyncClient | None = None,
        request_copies: int = 1,
    ) -> None:
        """`http`: a client to use (with `DeviceAuth`), kept open by `aclose`: creating one costs tens of
        milliseconds (its TLS context), which a live button should not wait for. `request_copies`: the live
        request is sent this many times at once, each on its own connection, and the first answer is taken: on
        a lossy mobile link a lost packet then does not hold the alert back for a TCP retransmission (≥ 200 ms);
        the platform opens one session whatever the number of copies."""
        self.base_url = base_url.rstrip("/")
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(
            base_url=self.base_url, timeout=timeout, auth=DeviceAuth(device_id, key, clock_skew_s)
        )
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

    async def request(
        self, *, position: GpsFix | None = None, agent: str | None = None, detail: str | None = None
    ) -> dict:
        """The live request alone (reason: threat, the legal condition); `start` also publishes."""
        body = {
            "reason": "threat",
            "detail": detail,
            "agent": agent,
            "position": position.model_dump(mode="json") if position else None,
        }
        r = await self._check(
            await first_answer(self.http, "/api/v1/live/sessions", body, self.request_copies), 200, 201
        )
        out = r.json()
        self.session_id, self.state = out["id"], out["state"]
        return out

    async def start(
        self, *, position: GpsFix | None = None, agent: str | None = None, detail: str | None = None
    ) -> LiveStart:
        """The live button: ask for a live session, then publish to it (WHIP)."""
        out = await self.request(position=position, agent=agent, detail=detail)
        await self.publish()
        # request() set the session and its state, publish() the resource: None is not possible here.
        assert self.session_id is not None and self.state is not None and self.resource_url is not None
        return LiveStart(self.session_id, self.state, out["whip_url"], self.resource_url)

    async def publish(
        self, timeout: httpx.Timeout | float | None = None, http: httpx.AsyncClient | None = None
    ) -> None:
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
            r = await self._check(
                await (http or self.http).post(
                    f"/api/v1/live/whip/{self.session_id}",
                    content=pc.localDescription.sdp.encode(),
                    headers={"Content-Type": "application/sdp"},
                    **extra,
                ),
                201,
            )
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
        r = await self._check(
            await self.http.get(f"/api/v1/live/camera/sessions/{self.session_id}", params=params, timeout=wait_s + 30),
            200,
        )
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
        await self._check(
            await self.http.post(
                f"/api/v1/live/camera/sessions/{self.session_id}/position", json=position.model_dump(mode="json")
            ),
            204,
        )

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
