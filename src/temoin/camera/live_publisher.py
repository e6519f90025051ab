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

The media are in `live_media`, the HTTP/WHIP client in `live_whip`; this module keeps the agent's side
(`LiveLink` and its re-publish loop, `LiveEvent`) and re-exports the others under their old names.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin.camera.live_media import (
    AUDIO_PTIME_S,
    AUDIO_RATE,
    VIDEO_CLOCK,
    CameraAudioTrack,
    CameraVideoTrack,
    Frames,
    LiveFeed,
    Samples,
)
from temoin.camera.live_whip import (
    CONNECT_TIMEOUT_S,
    LINK_CHECK_S,
    LINK_TIMEOUT_S,
    REPUBLISH_BACKOFF_S,
    REPUBLISH_TIMEOUT,
    LiveError,
    LivePublisher,
    LiveStart,
    first_answer,
    prefer,
)
from temoin.camera.media import SyntheticScene
from temoin.camera.offload import DeviceAuth
from temoin.evidence.manifest import GpsFix

# The names callers and tests import from here, wherever they now live.
__all__ = [
    "AUDIO_PTIME_S",
    "AUDIO_RATE",
    "CONNECT_TIMEOUT_S",
    "LINK_CHECK_S",
    "LINK_TIMEOUT_S",
    "REPUBLISH_BACKOFF_S",
    "REPUBLISH_TIMEOUT",
    "VIDEO_CLOCK",
    "CameraAudioTrack",
    "CameraVideoTrack",
    "Frames",
    "LiveError",
    "LiveEvent",
    "LiveFeed",
    "LiveLink",
    "LivePublisher",
    "LiveStart",
    "Samples",
    "first_answer",
    "prefer",
]


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

    def __init__(
        self,
        base_url: str,
        device_id: str,
        key: Ed25519PrivateKey,
        *,
        width: int,
        height: int,
        fps: int,
        clock_skew_s: float | Callable[[], float] = 0.0,
        ice_servers: tuple[str, ...] = (),
        position_every_s: float = 2.0,
        retry_s: float = 2.0,
        timeout: float = 15.0,
        keep_warm_s: float | None = None,
        request_copies: int = 1,
        name: str = "camera-live",
    ) -> None:
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

    def start(self, *, position: GpsFix | None = None, agent: str | None = None, detail: str | None = None) -> bool:
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
                await asyncio.gather(
                    *(http.get("/api/v1/platform") for _ in range(self.request_copies)), return_exceptions=True
                )
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

    async def _session(
        self, stop: asyncio.Event, position: GpsFix | None, agent: str | None, detail: str | None
    ) -> None:
        self._auth.clock_skew_s = self._skew()
        publisher = self.publisher = LivePublisher(
            self.base_url,
            self.device_id,
            self.key,
            ice_servers=self.ice_servers,
            fps=self.feed.fps,
            frames=self.feed.picture,
            samples=self.feed.samples,
            timeout=self.timeout,
            http=await self._client(),
            scene=SyntheticScene(16, 16, self.feed.fps),  # the scene is not used: the feed is
            request_copies=self.request_copies,
        )
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

    async def _request(
        self,
        publisher: LivePublisher,
        stop: asyncio.Event,
        position: GpsFix | None,
        agent: str | None,
        detail: str | None,
    ) -> dict | None:
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
                            self._emit(
                                "reinforcements_sent",
                                by=out.get("reinforcements_by"),
                                note=out.get("reinforcements_note"),
                                at=out["reinforcements_at"],
                            )
                        if state == "ended":
                            self._emit("ended", reason=out.get("end_reason"), by=out.get("ended_by"))
                            return True
                now = time.monotonic()
                position = self.position
                if (
                    position is not None
                    and position != self._sent_position
                    and now >= next_position
                    and (sending is None or sending.done())
                ):
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
        async with httpx.AsyncClient(
            base_url=self.base_url.rstrip("/"),
            auth=self._auth,
            timeout=REPUBLISH_TIMEOUT,
            limits=httpx.Limits(max_keepalive_connections=0),
        ) as http:
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
