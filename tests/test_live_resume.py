"""Live stream resilience (issue 4, item 6): the camera's live stream resumes by itself within 3 s of the
network's return, and after a server restart; the CSU sees "link lost" meanwhile; the camera records throughout.

A real camera agent (`CameraRuntime`: capture loop, live link in its own thread) publishes to a real server
(uvicorn); a real WHEP viewer (aiortc) decodes what the platform forwards. The camera lives in a network
namespace of its own, joined to the server's by two TUN interfaces and a thread of this process that moves the
IP packets between them (`CutLink`): cutting the link drops every packet, both ways, without any error to
either side, as a lost radio link does. This machine's kernel has no netem; namespaces and TUN need root:
without them these tests fail and say so (they never skip).

The 3 s bound is the issue's acceptance criterion (measured from the restore to the viewer's first decoded
picture), not a speed benchmark: bench/live/resume.py prints the figures over many cuts.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import dataclasses
import os
import select
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

import httpx
import pytest
import uvicorn
from sqlalchemy import select as sql_select

from temoin.camera.agent_config import AgentState
from temoin.camera.clock import system_clock
from temoin.camera.gps import SimulatedWalk
from temoin.camera.media import SyntheticScene
from temoin.camera.runner import CameraHome, CameraRuntime
from temoin.camera.signals import TerminalSignals
from temoin.camera.sources import SyntheticAudio, SyntheticVideo
from temoin.db import utcnow
from temoin.identity import devices, shifts
from temoin.identity.models import Device, User
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.web.app import create_app
from tests.conftest import stop_served
from tests.helpers import make_commune
from tests.live_helpers import Events, Viewer, entries, token_for, until

pytestmark = pytest.mark.slow
T = TypeVar("T")
WIDTH, HEIGHT, FPS = 160, 120, 10
RESUME_WITHIN_S = 3.0  # issue 4, item 6
CUT_S = 5.0
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"live_stall_after_s": 1.0})


# --- a link that can be cut ----------------------------------------------------------------------------


class CutLink:
    """The camera's network: a namespace `ns` (the camera at `cam_ip`) joined to this one (the server at
    `host_ip`) through a user-space forwarder that `cut()` turns into a black hole and `restore()` back."""

    def __init__(self) -> None:
        pid = os.getpid()
        self.ns = f"tmn-resume-{pid}"
        self.dev_host, self.dev_cam = f"trh{pid % 10**7}", f"trc{pid % 10**7}"
        net = pid % 200 + 20
        self.host_ip, self.cam_ip = f"10.79.{net}.1", f"10.79.{net}.2"
        self._cut = threading.Event()
        self._stop = threading.Event()
        self._fds: list[int] = []
        self._thread: threading.Thread | None = None
        self.dropped = 0

    @staticmethod
    def _ip(*args: str) -> None:
        done = subprocess.run(["ip", *args], capture_output=True, text=True)
        if done.returncode != 0:
            pytest.fail(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}", pytrace=False)

    def __enter__(self) -> CutLink:
        if os.geteuid() != 0 or shutil.which("ip") is None or not os.path.exists("/dev/net/tun"):
            pytest.fail(
                "these tests cut the camera's network: they need root, iproute2 (`ip`) and /dev/net/tun "
                "(network namespaces and TUN interfaces); run them as root (CI does)",
                pytrace=False,
            )
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)
        self._ip("netns", "add", self.ns)
        try:
            import fcntl
            import struct

            for name in (self.dev_host, self.dev_cam):
                fd = os.open("/dev/net/tun", os.O_RDWR)
                fcntl.ioctl(fd, 0x400454CA, struct.pack("16sH", name.encode(), 0x0001 | 0x1000))  # TUNSETIFF, TUN
                os.set_blocking(fd, False)
                self._fds.append(fd)
            self._ip("link", "set", self.dev_cam, "netns", self.ns)
            self._ip("-n", self.ns, "link", "set", "lo", "up")
            self._ip("-n", self.ns, "link", "set", self.dev_cam, "up")
            self._ip(
                "-n", self.ns, "addr", "add", f"{self.cam_ip}/32", "peer", f"{self.host_ip}/32", "dev", self.dev_cam
            )
            self._ip("-n", self.ns, "route", "add", "default", "dev", self.dev_cam)
            self._ip("link", "set", self.dev_host, "up")
            self._ip("addr", "add", f"{self.host_ip}/32", "peer", f"{self.cam_ip}/32", "dev", self.dev_host)
        except BaseException:
            self.__exit__()
            raise
        self._thread = threading.Thread(target=self._forward, daemon=True, name="cut-link")
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for fd in self._fds:
            os.close(fd)  # the TUN interfaces go with their descriptors
        self._fds = []
        subprocess.run(["ip", "netns", "del", self.ns], capture_output=True)

    def cut(self) -> None:
        self._cut.set()

    def restore(self) -> None:
        self._cut.clear()

    def _forward(self) -> None:
        host, cam = self._fds
        other = {host: cam, cam: host}
        while not self._stop.is_set():
            readable, _, _ = select.select([host, cam], [], [], 0.1)
            for fd in readable:
                while True:
                    try:
                        packet = os.read(fd, 65536)
                    except BlockingIOError:
                        break
                    if self._cut.is_set():
                        self.dropped += 1
                        continue
                    with contextlib.suppress(OSError):
                        os.write(other[fd], packet)

    def inside(self, fn: Callable[[], T]) -> T:
        """Run `fn` in a thread of the camera's namespace: every thread it starts, and every socket they
        open, belong to the camera's side of the link."""
        result: Future = Future()

        def run() -> None:
            try:
                fd = os.open(f"/var/run/netns/{self.ns}", os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        raise OSError(ctypes.get_errno(), f"setns into {self.ns}")
                finally:
                    os.close(fd)
                result.set_result(fn())
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                result.set_exception(exc)

        threading.Thread(target=run, daemon=True, name="camera-namespace").start()
        return result.result(60)


# --- a server that can be restarted --------------------------------------------------------------------


@contextmanager
def serving(p: Platform, host: str, port: int = 0) -> Iterator[str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(p, scheduler=False),
            host=host,
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    url = f"http://{host}:{port}"
    deadline = time.monotonic() + 20
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/api/v1/platform", timeout=1).status_code == 200:
                break
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not answer within 20 s", pytrace=False)
        time.sleep(0.02)
    try:
        yield url
    finally:
        stop_served(server, thread, sock)


# --- the camera ----------------------------------------------------------------------------------------


@dataclasses.dataclass
class TimedSignals(TerminalSignals):
    """The wearer's signals, each with its time.monotonic(): a failure can then say when the camera lost and
    regained its link."""

    timed: list[tuple[float, str]] = dataclasses.field(default_factory=list)

    def _emit(self, text: str) -> None:
        self.timed.append((time.monotonic(), text))
        super()._emit(text)

    def since(self, t0: float) -> str:
        return "; ".join(f"{t - t0:+.2f} s {text}" for t, text in self.timed if t > t0 - 10 and "warning" in text)


@dataclasses.dataclass
class Camera:
    runtime: CameraRuntime
    signals: TimedSignals
    loop_thread: threading.Thread

    def close(self) -> None:
        self.runtime.stop_requested.set()
        self.loop_thread.join(20)
        self.runtime.close()


def camera_behind(link: CutLink, platform: Platform, url: str, slug: str, root: Path) -> Camera:
    """A camera enrolled over the link, checked out to the commune's agent, capturing in real time: all of
    its threads and sockets are on the camera's side of the link (the database work stays on this side)."""
    with platform.session() as db:
        code = devices.create_enrolment_code(
            platform, db, platform.tenant(db, slug), label="live cam", by=Actor.system("test")
        )
    home = CameraHome(root)
    identity = link.inside(lambda: home.enrol(url, code, "live-cam-1"))
    with platform.session() as db:
        agent = db.scalar(sql_select(User).where(User.username == f"{slug}-agent"))
        shifts.check_out(platform, db, db.get(Device, identity.device_id), agent, Actor.system("test"))

    def start() -> Camera:
        scene = SyntheticScene(WIDTH, HEIGHT, fps=FPS, seed=5)
        signals = TimedSignals()
        begin = utcnow()
        runtime = CameraRuntime(
            home,
            video=SyntheticVideo(scene, system_clock, begin),
            audio=SyntheticAudio(scene, begin),
            gps=SimulatedWalk(begin, "Rue du Port"),
            signals=signals,
            segment_s=2.0,
        )
        loop_thread = threading.Thread(target=runtime.run, daemon=True, name="capture-loop")
        loop_thread.start()
        return Camera(runtime, signals, loop_thread)

    return link.inside(start)


def press_live_twice(runtime: CameraRuntime) -> str:
    first = runtime.inputs.submit(runtime.agent.press_live)
    second = runtime.inputs.submit(runtime.agent.press_live)
    assert first.result(10) is None
    rid = second.result(10)
    assert rid, "a double press is a live request"
    return rid


async def go_live(camera: Camera, events: Events, viewer: Viewer) -> str:
    """The live button; the CSU is alerted and the viewer decodes the camera's pictures."""
    await asyncio.to_thread(press_live_twice, camera.runtime)
    device_id = camera.runtime.identity.device_id
    sid = (await events.wait_for("alert", device_id=device_id, timeout=10))["id"]
    await events.wait_for("session", id=sid, state="streaming", timeout=10)
    r = await viewer.watch(sid)
    assert r.status_code == 201, r.text
    await viewer.wait_frames(video=10, audio=0, timeout=15)
    return sid


async def first_picture_after(viewer: Viewer, since: float, timeout: float, what: str) -> float:
    """Seconds from `since` (time.monotonic()) to the viewer's first decoded picture after it."""
    await until(lambda: any(t > since for t, _ in viewer.frames["video"]), timeout, what)
    return next(t for t, _ in viewer.frames["video"] if t > since) - since


async def stop_recording(camera: Camera) -> object:
    agent = camera.runtime.agent
    return await asyncio.to_thread(lambda: camera.runtime.inputs.submit(agent.press_record).result(20))


def assert_recorded_throughout(result: object, outage: tuple[datetime, datetime]) -> None:
    """The camera's recording spans the outage and has no hole: its segments cover the whole time it recorded."""
    manifest = result.manifest
    assert manifest.started_at <= outage[0] and manifest.ended_at >= outage[1], (
        f"the recording ({manifest.started_at} to {manifest.ended_at}) does not span the outage {outage}"
    )
    covered = sum(s.duration_s for s in manifest.segments)
    span = (manifest.ended_at - manifest.started_at).total_seconds()
    assert covered >= span - 0.5, (
        f"the recording has a hole: its segments cover {covered:.1f} s of {span:.1f} s "
        "(the camera must record whatever the network does)"
    )


# --- the tests -----------------------------------------------------------------------------------------


def test_live_stream_resumes_after_a_network_cut(platform: Platform, tmp_path: Path):
    commune = make_commune(platform, cameras=0)
    token = token_for(platform, commune.users[Role.CSU_OPERATOR])
    with CutLink() as link, serving(platform, link.host_ip) as url:
        camera = camera_behind(link, platform, url, commune.slug, tmp_path / "camera")
        try:
            resume_s, cut_noticed_s, recorded, outage = asyncio.run(_cut_story(link, camera, url, token))
        finally:
            camera.close()
    assert resume_s <= RESUME_WITHIN_S, (
        f"the live stream resumed {resume_s:.2f} s after the network came back: the issue requires "
        f"{RESUME_WITHIN_S} s at most"
    )
    print(
        f"\nnetwork cut {CUT_S:.0f} s: the camera noticed after {cut_noticed_s:.2f} s; "
        f"restore -> first decoded picture {resume_s:.2f} s; {link.dropped} packets dropped"
    )

    log = entries(platform, commune.slug)
    names = [e["event"] for e in log]
    assert "live.stream_interrupted" in names and "live.stream_resumed" in names, (
        f"the journal must prove the gap (live.stream_interrupted, then live.stream_resumed): {names}"
    )
    interrupted = next(e for e in log if e["event"] == "live.stream_interrupted")
    assert names.index("live.stream_interrupted") < names.index("live.stream_resumed") < names.index("live.ended")
    assert interrupted["details"]["reason"] == "link_lost"
    assert CUT_S - 1 <= interrupted["details"]["silent_s"] <= CUT_S + RESUME_WITHIN_S, interrupted["details"]
    assert_recorded_throughout(recorded, outage)


async def _cut_story(
    link: CutLink, camera: Camera, url: str, token: str
) -> tuple[float, float, object, tuple[datetime, datetime]]:
    agent = camera.runtime.agent
    async with Events(url, token) as events:
        viewer = Viewer(url, token)
        sid = await go_live(camera, events, viewer)
        await events.wait_for("stream", id=sid, link="live", timeout=5)

        link.cut()
        cut_at, cut_wall = time.monotonic(), utcnow()
        seen = len(events.items)
        # The CSU is told, never shown a frozen picture as live.
        lost = await events.wait_for("stream", id=sid, link="lost", timeout=5)
        assert lost["silent_s"] >= 1.0, lost
        # The camera notices on its own (no receiver report from the platform) and tries to publish again.
        await until(
            lambda: any("live link lost" in w for w in camera.signals.warnings),
            5,
            "the camera noticing the lost link (a warning to the wearer)",
        )
        noticed_s = time.monotonic() - cut_at
        assert agent.state is AgentState.RECORDING, "the camera must go on recording while the link is down"
        await asyncio.sleep(max(0.0, CUT_S - (time.monotonic() - cut_at)))
        assert not any(t > cut_at + 0.5 for t, _ in viewer.frames["video"]), "pictures crossed a cut link"

        link.restore()
        restored_at, restored_wall = time.monotonic(), utcnow()
        resume_s = await first_picture_after(viewer, restored_at, 10, "a decoded picture after the network's return")
        await until(
            lambda: any(
                k == "stream" and d.get("id") == sid and d.get("link") == "live" for k, d in events.items[seen:]
            ),
            5,
            "the CSU told that the link is live again",
        )
        await viewer.wait_frames(video=len(viewer.frames["video"]) + 10, audio=0, timeout=5)
        assert agent.state is AgentState.RECORDING

        recorded = await stop_recording(camera)
        await events.wait_for("session", id=sid, state="ended", timeout=10)
        await viewer.close()
    return resume_s, noticed_s, recorded, (cut_wall, restored_wall)


def test_live_stream_resumes_after_a_server_restart(platform: Platform, settings: Settings, tmp_path: Path):
    commune = make_commune(platform, cameras=0)
    token = token_for(platform, commune.users[Role.CSU_OPERATOR])
    with CutLink() as link:
        with serving(platform, link.host_ip) as url:
            port = int(url.rsplit(":", 1)[1])
            camera = camera_behind(link, platform, url, commune.slug, tmp_path / "camera")
            try:
                sid = asyncio.run(_before_restart(camera, url, token))
            except BaseException:
                camera.close()
                raise
        # The server is down; the camera records and keeps trying. A new server on the same data and port:
        down_wall = utcnow()
        time.sleep(1.0)
        restarted = Platform.open(settings)
        try:
            with serving(restarted, link.host_ip, port):
                back_at, back_wall = time.monotonic(), utcnow()
                try:
                    resume_s, watched_s, recorded = asyncio.run(_after_restart(camera, url, token, sid, back_at))
                finally:
                    camera.close()
        finally:
            restarted.close()
    journal = [
        f"{(datetime.fromisoformat(e['at']) - back_wall).total_seconds():+.2f} s {e['event']}"
        for e in entries(platform, commune.slug)
        if datetime.fromisoformat(e["at"]) >= down_wall
    ]
    assert resume_s <= RESUME_WITHIN_S, (
        f"a new viewer decoded the camera's pictures {resume_s:.2f} s after the server came back: the issue "
        f"requires {RESUME_WITHIN_S} s at most. Since the server came back: viewer's WHEP answer {watched_s:+.2f} s; "
        f"camera: {camera.signals.since(back_at)}; journal: {'; '.join(journal)}"
    )
    print(f"\nserver restart: server back -> a new viewer's first decoded picture {resume_s:.2f} s")
    names = [e["event"] for e in entries(platform, commune.slug)]
    assert names.count("live.stream_resumed") >= 1 and names.index("live.streaming") < names.index(
        "live.stream_resumed"
    ) < names.index("live.ended"), (
        f"the camera's publication after the restart must be journaled (live.stream_resumed): {names}"
    )
    assert_recorded_throughout(recorded, (down_wall, back_wall))


async def _before_restart(camera: Camera, url: str, token: str) -> str:
    async with Events(url, token) as events:
        viewer = Viewer(url, token)
        sid = await go_live(camera, events, viewer)
        await viewer.close()
    return sid


async def _after_restart(camera: Camera, url: str, token: str, sid: str, back_at: float) -> tuple[float, float, object]:
    agent = camera.runtime.agent
    assert agent.state is AgentState.RECORDING, "the camera must go on recording while the server is away"
    async with Events(url, token) as events:
        viewer = Viewer(url, token)
        r = await viewer.watch(sid)
        watched_s = time.monotonic() - back_at
        assert r.status_code == 201, f"the live session must still be watchable after a restart: {r.text}"
        resume_s = await first_picture_after(viewer, back_at, 10, "a decoded picture after the server's restart")
        await events.wait_for("stream", id=sid, link="live", timeout=5)
        recorded = await stop_recording(camera)
        await events.wait_for("session", id=sid, state="ended", timeout=10)
        await viewer.close()
    return resume_s, watched_s, recorded
