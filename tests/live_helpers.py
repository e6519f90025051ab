"""Shared by the live transmission tests: a real server in a thread, a dashboard on the events channel, a WHEP
viewer in Python, the journal's live entries."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import httpx
import orjson
import pytest
import uvicorn
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.codecs import h264 as aiortc_h264
from argon2 import PasswordHasher
from playwright.sync_api import expect
from sqlalchemy import select

from temoin.camera.live_publisher import LivePublisher
from temoin.camera.offload import DeviceAuth
from temoin.camera.runner import CameraRuntime
from temoin.evidence.manifest import GpsFix
from temoin.identity import devices, secrets as identity_secrets, service, shifts
from temoin.identity.models import Device, User
from temoin.identity.secrets import current_totp
from temoin.journal.entry import Actor
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.web.app import create_app
from tests.conftest import stop_served
from tests.helpers import PASSWORD, Commune

FIX = GpsFix(t=datetime(2025, 6, 1, 14, 0, tzinfo=UTC), lat=43.5585, lon=4.0845, accuracy_m=6)


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Eight users per commune: argon2id at minimal cost (what is tested does not depend on it)."""
    monkeypatch.setattr(identity_secrets, "_hasher", PasswordHasher(time_cost=1, memory_cost=256, parallelism=1))


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"live_stall_after_s": 0.6})


# --- a real server, real clients ----------------------------------------------------------------------


@contextmanager
def running_server(platform: Platform, port: int = 0) -> Iterator[str]:
    """The platform's app served by uvicorn in a thread, on `port` (0: any free one)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(platform, scheduler=False), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(f"{url}/api/v1/platform", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not answer within 20 s")
        time.sleep(0.05)
    try:
        yield url
    finally:
        stop_served(server, thread, sock)


@pytest.fixture
def server(platform: Platform) -> Iterator[str]:
    with running_server(platform) as url:
        yield url


def on_shift(p: Platform, commune: Commune, camera: int = 0) -> None:
    """The commune's agent takes camera `camera` for the shift: the live session names them."""
    with p.session() as db:
        agent = db.scalar(select(User).where(User.username == commune.users[Role.AGENT]))
        shifts.check_out(p, db, db.get(Device, commune.cameras[camera][0]), agent, Actor.system("test"))


def token_for(p: Platform, username: str) -> str:
    with p.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        return service.issue_api_token(p, db, user, "live test")


def publisher(url: str, commune: Commune, camera: int = 0, **kw) -> LivePublisher:
    device_id, key = commune.cameras[camera]
    return LivePublisher(url, device_id, key, **kw)


def entries(p: Platform, chain: str, prefix: str = "live.") -> list[dict]:
    with p.session() as db:
        rows = db.scalars(
            select(JournalEntry)
            .where(JournalEntry.chain == chain, JournalEntry.event.startswith(prefix))
            .order_by(JournalEntry.seq)
        )
        return [{**parse_body(r.body), "event": r.event} for r in rows]


class Events:
    """A dashboard on the events channel (Server-Sent Events), parsed as they come."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.items: list[tuple[str, dict]] = []
        self._changed = asyncio.Event()
        self._task: asyncio.Task | None = None
        self.connected = asyncio.Event()

    async def __aenter__(self) -> Events:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self.connected.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {self.token}"}
        async with (
            httpx.AsyncClient(base_url=self.url, timeout=None) as http,  # noqa: S113 - an event stream: open until the test closes it
            http.stream("GET", "/api/v1/live/events", headers=headers) as r,
        ):
            assert r.status_code == 200, await r.aread()
            assert r.headers["content-type"].startswith("text/event-stream")
            self.connected.set()
            kind, data = None, None
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = orjson.loads(line[6:])
                elif line == "" and kind is not None:
                    self.items.append((kind, data))
                    self._changed.set()
                    kind, data = None, None

    async def wait_for(self, kind: str, timeout: float = 10, **match: object) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            for k, d in self.items:
                if k == kind and all(d.get(key) == value for key, value in match.items()):
                    return d
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} event matching {match} within {timeout} s; got {self.items}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass


class Viewer:
    """A WHEP viewer in Python: aiortc receives, and decodes, what the platform forwards."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.frames: dict[str, list[tuple[float, object]]] = {"video": [], "audio": []}
        self.location: str | None = None
        self.ended: set[str] = set()
        self.joined_at = 0.0
        self.answered_at = 0.0  # the WHEP answer received
        self.connected_at = 0.0  # ICE and DTLS done: media can flow

        @self.pc.on("connectionstatechange")
        def _state() -> None:
            if self.pc.connectionState == "connected" and not self.connected_at:
                self.connected_at = time.monotonic()

    def timeline(self) -> str:
        """Where a slow first picture spent its time, from the WHEP POST (for a failing assertion's message)."""

        def since(t: float) -> str:
            return f"{t - self.joined_at:.2f} s" if t else "never"

        first = self.frames["video"][0][0] if self.frames["video"] else 0.0
        return f"answer {since(self.answered_at)}, connected {since(self.connected_at)}, first picture {since(first)}"

    async def watch(self, session_id: str, *, auth: dict | None = None) -> httpx.Response:
        return await self.watch_at(f"/api/v1/live/whep/{session_id}", auth=auth)

    async def watch_at(
        self, path: str, *, kinds: tuple[str, ...] = ("video", "audio"), auth: dict | None = None
    ) -> httpx.Response:
        """Ask to watch at the WHEP endpoint `path` (a live session's, a CCTV camera's), receiving `kinds`."""
        for kind in kinds:
            self.pc.addTransceiver(kind, direction="recvonly")

        @self.pc.on("track")
        def _track(track) -> None:
            async def consume() -> None:
                while True:
                    try:
                        frame = await track.recv()
                    except Exception:  # noqa: BLE001 - the track ended
                        self.ended.add(track.kind)
                        return
                    self.frames[track.kind].append((time.monotonic(), frame))

            asyncio.ensure_future(consume())  # noqa: RUF006 - the reader lives as long as the connection

        await self.pc.setLocalDescription(await self.pc.createOffer())
        self.joined_at = time.monotonic()
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            r = await http.post(
                path,
                content=self.pc.localDescription.sdp.encode(),
                headers={"Content-Type": "application/sdp", **(auth or self.auth)},
            )
        self.answered_at = time.monotonic()
        if r.status_code == 201:
            self.location = r.headers["location"]
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        return r

    @property
    def auth(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"}

    async def wait_frames(self, video: int, audio: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while len(self.frames["video"]) < video or len(self.frames["audio"]) < audio:
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"viewer got {len(self.frames['video'])} video and {len(self.frames['audio'])} "
                    f"audio frames in {timeout} s"
                )
            await asyncio.sleep(0.05)

    async def stop(self) -> int:
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            status = (await http.delete(self.location, headers=self.auth)).status_code
        await self.pc.close()
        return status

    async def close(self) -> None:
        await self.pc.close()


def count_h264_work(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts of aiortc's H.264 `encode` (a camera encoding) and `_packetize` (a camera packetizing what it
    encoded, or the relay packetizing what it forwards) while the test runs."""
    calls = {"encode": 0, "_packetize": 0}
    original_encode = aiortc_h264.H264Encoder.encode
    original_packetize = aiortc_h264.H264Encoder._packetize  # a classmethod, bound to the class here

    def encode(self, *a, **kw):
        calls["encode"] += 1
        return original_encode(self, *a, **kw)

    def packetize(cls, *a, **kw):
        calls["_packetize"] += 1
        return original_packetize(*a, **kw)

    monkeypatch.setattr(aiortc_h264.H264Encoder, "encode", encode)
    monkeypatch.setattr(aiortc_h264.H264Encoder, "_packetize", classmethod(packetize))
    return calls


async def until(predicate, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.05)


def press_live_twice(runtime: CameraRuntime) -> str:
    """Two presses of the live button, run by the capture loop between two frames (as the input server
    and the keyboard do)."""
    first = runtime.inputs.submit(runtime.agent.press_live)
    second = runtime.inputs.submit(runtime.agent.press_live)
    assert first.result(10) is None
    rid = second.result(10)
    assert rid, "a double press is a live request"
    return rid


def sign_in_context(p: Platform, context, username: str) -> None:
    """Password then TOTP through the browser context's own requests: the session cookie lands in it."""
    r = context.request.post("/api/v1/session", data={"username": username, "password": PASSWORD})
    assert r.status == 200, r.text()
    with p.session() as db:
        user = db.scalar(select(User).where(User.username == username))
        code = current_totp(service.totp_secret_of(p, user))
        user.totp_last_step = 0
        db.commit()
    r = context.request.post("/api/v1/session/totp", data={"code": code})
    assert r.status == 200, r.text()


def signed(commune: Commune, method: str, path: str, camera: int = 0, body: bytes = b"") -> dict:
    """The camera's signature headers for a request with this body."""
    device_id, key = commune.cameras[camera]
    return devices.signed_headers(device_id, key, method, path, body)


def as_camera(commune: Commune, camera: int = 0) -> DeviceAuth:
    """The camera's signature over each request, body included (as the camera agent signs)."""
    return DeviceAuth(*commune.cameras[camera])


def open_dashboard(platform: Platform, browser, server: str, username: str, init_script: str = ""):
    context = browser.new_context(base_url=server, locale="fr-FR", viewport={"width": 1400, "height": 900})
    context.set_default_timeout(15_000)
    if init_script:
        context.add_init_script(init_script)
    sign_in_context(platform, context, username)
    page = context.new_page()
    page.goto("/live")
    expect(page.locator("#live-connection")).to_have_text("Canal d'événements connecté")
    return context, page
