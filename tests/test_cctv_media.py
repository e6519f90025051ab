"""CCTV media (issue 5): simulated CCTV cameras over RTSP, and the platform pulling them into the live
media plane, watched over WHEP by a real aiortc viewer.

Pictures are small (320x180, 10 fps) to keep the file within a few tens of seconds.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import orjson
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from sqlalchemy import select

from temoin.demo.cctv.rtsp_server import CctvRtspServer, rtp_payloads
from temoin.demo.cctv.scene import FixedScene, PtzScene
from temoin.demo.cctv.state import PtzPose
from temoin.identity.models import User
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.law.access import Role
from temoin.live.hub import LiveHub
from temoin.live.plane import BadOffer
from temoin.live.relay import AiortcMediaPlane
from temoin.live.rtsp_pull import (
    AccessUnits,
    CameraUnreachable,
    CctvSourceError,
    RtspPuller,
    UnsupportedCodec,
    cctv_stream,
    split_annexb,
)
from temoin.platform import Platform
from temoin.settings import Settings
from tests.helpers import make_commune
from tests.live_helpers import count_h264_work

W, H, FPS = 320, 180, 10
AT = datetime(2025, 6, 1, 14, 0, tzinfo=UTC)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"live_stall_after_s": 0.6})  # a dropped camera is shown lost sooner


@pytest.fixture
def cameras() -> Iterator[tuple[CctvRtspServer, PtzPose, PtzScene]]:
    pose = PtzPose()
    ptz = PtzScene("PTZ Port", pose, width=W, height=H, fps=FPS, seed=3)
    server = CctvRtspServer()
    server.add("rue-mairie", FixedScene("Rue de la Mairie", width=W, height=H, fps=FPS, seed=1))
    server.add("port/ptz-1", ptz)
    server.start()
    try:
        yield server, pose, ptz
    finally:
        server.stop()


async def until(predicate, timeout: float = 10, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        await asyncio.sleep(0.05)


def distance(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --- the pictures ----------------------------------------------------------------------------------


def test_ptz_picture_shows_where_it_looks():
    pose = PtzPose()
    scene = PtzScene("PTZ", pose, width=W, height=H, fps=FPS)
    north = scene.render(AT)
    pose.set(180.0, -10.0, 2.0)
    south = scene.render(AT)
    assert distance(north, south) > 20  # another bearing, another picture
    # Pan wraps round the compass; zoom narrows the window on the same centre (nearest-neighbour).
    assert np.array_equal(scene.view(10.0, 0.0, 1.0), scene.view(370.0 % 360, 0.0, 1.0))
    wide, narrow = scene.view(90.0, 0.0, 1.0), scene.view(90.0, 0.0, 2.0)
    assert distance(narrow[::2, ::2], wide[H // 4 : 3 * H // 4, W // 4 : 3 * W // 4]) < 4
    assert distance(narrow, wide) > 10
    # Tilting down moves the picture up: what was at the bottom comes towards the centre.
    level, down = scene.view(90.0, 0.0, 1.0), scene.view(90.0, -10.0, 1.0)
    shift = round(10 * W / 60)
    assert distance(down[: H - shift], level[shift:]) < 4


def test_fixed_scene_moves_and_burns_in_the_local_time():
    scene = FixedScene("Rue", width=W, height=H, fps=FPS)
    a, b = scene.render(AT), scene.render(AT + timedelta(seconds=1))
    assert a.shape == (H, W, 3) and a.dtype == np.uint8
    assert distance(a[H // 2 :], b[H // 2 :]) > 0.5  # cars and pedestrians moved
    assert not np.array_equal(a[:30, :120], b[:30, :120])  # the clock ticked


# --- the RTSP server -------------------------------------------------------------------------------


def test_payloads_follow_rfc_6184():
    small, big = b"\x41" + bytes(range(1, 101)), b"\x65" + bytes(range(256)) * 20
    payloads = rtp_payloads([small, big], max_payload=1400)
    assert payloads[0] == small  # single NAL unit packet
    fragments = payloads[1:]
    assert len(fragments) == 4 and all(len(p) <= 1400 for p in fragments)
    assert [p[0] & 0x1F for p in fragments] == [28] * 4 and fragments[0][0] & 0x60 == big[0] & 0x60
    assert fragments[0][1] == 0x80 | 5 and fragments[-1][1] == 0x40 | 5 and fragments[1][1] == 5
    assert b"".join(p[2:] for p in fragments) == big[1:]
    assert split_annexb(b"\x00\x00\x00\x01" + small + b"\x00\x00\x01" + big) == [small, big]


def rtsp_play_raw(url: str) -> socket.socket:
    """A bare RTSP client over TCP that plays and then just reads (or dies)."""
    host, port = url.split("/")[2].split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)

    def ask(lines: list[str]) -> str:
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = next(
            (int(h.split(b":")[1]) for h in head.split(b"\r\n") if h.lower().startswith(b"content-length")), 0
        )
        while len(rest) < length:
            rest += sock.recv(4096)
        return head.decode()

    assert " 200 " in ask([f"DESCRIBE {url} RTSP/1.0", "CSeq: 1", "Accept: application/sdp"])
    reply = ask([f"SETUP {url}/track1 RTSP/1.0", "CSeq: 2", "Transport: RTP/AVP/TCP;unicast;interleaved=0-1"])
    session = next(
        line.split(":", 1)[1].split(";")[0].strip()
        for line in reply.split("\r\n")
        if line.lower().startswith("session:")
    )
    assert " 200 " in ask([f"PLAY {url} RTSP/1.0", "CSeq: 3", f"Session: {session}"])
    return sock


def test_rtsp_server_is_read_by_ffprobe_and_pyav(cameras):
    server, _, _ = cameras
    assert not server.encoding("rue-mairie")  # nobody watches: nothing is encoded
    # ffprobe asks for UDP first (refused: 461), goes on over TCP, and decodes five frames.
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-select_streams",
            "v",
            "-show_streams",
            "-show_entries",
            "frame=pict_type,width,height",
            "-read_intervals",
            "%+#5",
            "-of",
            "json",
            server.url("port/ptz-1"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert probe.returncode == 0, probe.stderr
    found = orjson.loads(probe.stdout)
    stream = found["streams"][0]
    assert (stream["codec_name"], stream["profile"], stream["width"], stream["height"]) == (
        "h264",
        "Constrained Baseline",
        W,
        H,
    )
    assert [f["pict_type"] for f in found["frames"]] == ["I", "P", "P", "P", "P"]

    # A client that vanishes mid-stream must not disturb the others.
    doomed = rtsp_play_raw(server.url("rue-mairie"))
    doomed.recv(65536)
    with av.open(server.url("rue-mairie"), options={"rtsp_transport": "tcp"}, timeout=(5, 5)) as container:
        assert server.players("rue-mairie") == 2
        keyframes, frames = 0, []
        deadline = time.monotonic() + 15
        for n, packet in enumerate(container.demux(video=0)):
            keyframes += packet.is_keyframe
            frames += packet.decode()
            if n == 3:
                doomed.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                doomed.close()  # a reset, not a goodbye
            # Read on until the server has seen the reset: this client's pictures keep coming meanwhile.
            if n >= 24 and (server.players("rue-mairie") == 1 or time.monotonic() > deadline):
                break
        assert len(frames) >= 20 and (frames[-1].width, frames[-1].height) == (W, H)
        assert keyframes >= 2  # a keyframe every second (10 frames)
        assert server.players("rue-mairie") == 1
    deadline = time.monotonic() + 5
    while server.encoding("rue-mairie") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.players("rue-mairie") == 0 and not server.encoding("rue-mairie")  # the last one left


# --- the platform's side: H.264 as it comes, never transcoded --------------------------------------


def encoded_file(path: Path, codec: str, container: str, frames: int = 12) -> Path:
    scene = FixedScene("Test", width=W, height=H, fps=FPS)
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=FPS)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        for i in range(frames):
            frame = av.VideoFrame.from_ndarray(scene.render(AT + timedelta(seconds=i / FPS)), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path


def test_avcc_access_units_become_decodable_annex_b(tmp_path: Path):
    """MP4 (like RTMP) carries H.264 as AVCC: the puller hands the plane Annex B with SPS/PPS up front."""
    mp4 = encoded_file(tmp_path / "avcc.mp4", "libx264", "mp4")
    decoder = av.CodecContext.create("h264", "r")
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.extradata[0] == 1  # an avcC record
        units = AccessUnits(bytes(stream.codec_context.extradata))
        decoded = 0
        for n, packet in enumerate(container.demux(stream)):
            if packet.size == 0:
                continue
            data, keyframe = units.convert(bytes(packet), packet.is_keyframe)
            assert data.startswith(b"\x00\x00\x00\x01")
            if n == 0:
                assert keyframe and [u[0] & 0x1F for u in split_annexb(data)][:2] == [7, 8]
            decoded += len(decoder.decode(av.Packet(data)))
        decoded += len(decoder.decode(None))
    assert decoded == 12


def test_a_camera_that_does_not_send_h264_is_refused_clearly(tmp_path: Path):
    mpeg4 = encoded_file(tmp_path / "camera.mkv", "mpeg4", "matroska", frames=3)

    async def story() -> None:
        plane = AiortcMediaPlane()
        puller = RtspPuller(str(mpeg4), await plane.attach("cctv:1:old"), asyncio.get_running_loop())
        puller.start()
        with pytest.raises(UnsupportedCodec, match=r"MPEG4 video.*H.264 and never transcoded"):
            await puller.wait_ready(10)
        dead = RtspPuller(
            "rtsp://127.0.0.1:9/nothing",
            await plane.attach("cctv:1:dead"),
            asyncio.get_running_loop(),
            backoff_s=(5.0, 5.0),
        )
        dead.start()
        with pytest.raises(CameraUnreachable, match="cannot be read"):
            await dead.wait_ready(10)
        dead.stop()
        await plane.close()

    asyncio.run(story())


class Viewer:
    """A WHEP viewer (aiortc): offers audio and video as a browser does, decodes what it receives."""

    def __init__(self, audio: bool = True) -> None:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.audio = audio
        self.frames: list[av.VideoFrame] = []
        self.resource: str | None = None

    async def offer(self) -> str:
        self.pc.addTransceiver("video", direction="recvonly")
        if self.audio:
            self.pc.addTransceiver("audio", direction="recvonly")

        @self.pc.on("track")
        def _track(track) -> None:
            async def consume() -> None:
                while True:
                    try:
                        frame = await track.recv()
                    except Exception:  # noqa: BLE001 - the track ended
                        return
                    if track.kind == "video":
                        self.frames.append(frame)

            asyncio.ensure_future(consume())  # noqa: RUF006 - the reader lives as long as the connection

        await self.pc.setLocalDescription(await self.pc.createOffer())
        return self.pc.localDescription.sdp

    async def watch(
        self, hub: LiveHub, user_id: int, tenant_id: int, camera_id: str, url: str, session_id: str | None = None
    ) -> None:
        answer = await hub.watch_cctv(user_id, tenant_id, camera_id, url, await self.offer(), session_id)
        self.resource = answer.resource_id
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=answer.sdp, type="answer"))

    async def frames_after(self, count: int, timeout: float = 10) -> None:
        target = len(self.frames) + count
        await until(lambda: len(self.frames) >= target, timeout, f"{count} more decoded frames")

    def latest(self) -> np.ndarray:
        return self.frames[-1].to_ndarray(format="rgb24")


def journal(p: Platform, chain: str) -> list[dict]:
    with p.session() as db:
        rows = db.scalars(
            select(JournalEntry)
            .where(JournalEntry.chain == chain, JournalEntry.event.startswith("cctv."))
            .order_by(JournalEntry.seq)
        )
        return [{**parse_body(r.body), "event": r.event} for r in rows]


@pytest.mark.slow
def test_cctv_watched_through_the_hub(platform: Platform, cameras, monkeypatch: pytest.MonkeyPatch):
    server, pose, ptz = cameras
    commune = make_commune(platform, cameras=0)
    with platform.session() as db:
        operator = db.scalar(select(User).where(User.username == commune.users[Role.CSU_OPERATOR]))
        uid, tid = operator.id, operator.tenant_id
    # The platform must only packetize the camera's H.264 (live.forwarding.packetize), never encode.
    calls = count_h264_work(monkeypatch)
    ptz_url = server.url("port/ptz-1")
    stream = cctv_stream(tid, "ptz-1")

    async def story() -> None:
        hub = LiveHub(platform)
        hub.cctv.linger_s = 0.5
        await hub.start()
        try:
            with pytest.raises(BadOffer):
                await hub.watch_cctv(uid, tid, "ptz-1", ptz_url, "not sdp")
            # Two operators' tiles on one camera: one puller, one RTSP client.
            first, second = Viewer(), Viewer()
            await first.watch(hub, uid, tid, "ptz-1", ptz_url)
            await second.watch(hub, uid, tid, "ptz-1", ptz_url)
            await first.frames_after(5)
            await second.frames_after(5)
            assert (first.frames[-1].width, first.frames[-1].height) == (W, H)
            assert server.players("port/ptz-1") == 1
            puller = hub.cctv.puller(stream)
            status = hub.plane.status(stream)
            assert status.viewers == 2 and status.publishing and status.audio_frames == 0
            assert hub.cctv_status(tid, "ptz-1")["link"] == "live"
            assert calls["encode"] == 0 and calls["_packetize"] > 0
            assert status.video_frames <= puller.stats.packets  # every frame came from the camera, as is

            # The PTZ camera turns: the picture the viewer decodes follows.
            pose.set(180.0, -10.0, 2.0)
            south, north = ptz.view(180.0, -10.0, 2.0), ptz.view(0.0, 0.0, 1.0)
            await until(
                lambda: distance(first.latest(), south) < distance(first.latest(), north) / 3,
                30,
                "the viewer's picture shows the new aim",
            )

            # The camera drops, then comes back: the puller reconnects and pictures flow again.
            server.stop()
            await until(lambda: hub.cctv_status(tid, "ptz-1")["link"] == "lost", 10, "the link shown lost")
            server.start()
            await until(lambda: puller.stats.connections == 2, 15, "the puller reconnected")
            await first.frames_after(5)
            await second.frames_after(5)
            assert hub.cctv.puller(stream) is puller and server.players("port/ptz-1") == 1

            # Viewers leave: the puller stays for the linger (a switch back is instant), then stops.
            await hub.stop_cctv(uid, tid, "ptz-1", first.resource)
            assert hub.cctv.puller(stream) is puller and hub.plane.status(stream).viewers == 1
            await hub.stop_cctv(uid, tid, "ptz-1", second.resource)
            assert hub.cctv.puller(stream) is puller
            await until(lambda: hub.cctv.puller(stream) is None, 5, "the puller stopped after the linger")
            await until(lambda: server.players("port/ptz-1") == 0 and not puller.running, 10, "the RTSP client gone")
            assert stream not in hub.plane.streams()

            # A camera that does not answer, or an address that is no network stream: a clear refusal,
            # nothing left open, nothing journaled.
            with pytest.raises(CameraUnreachable, match="cannot be read"):
                await hub.watch_cctv(uid, tid, "dead", "rtsp://127.0.0.1:9/cam", await Viewer().offer())
            assert cctv_stream(tid, "dead") not in hub.plane.streams()
            assert hub.cctv.puller(cctv_stream(tid, "dead")) is None
            with pytest.raises(CctvSourceError, match="correct it in the CCTV registry"):
                await hub.watch_cctv(uid, tid, "odd", "file:///etc/passwd", await Viewer().offer())

            # Server shutdown stops every puller (a viewer still watching the fixed camera). This one asks for
            # video only, as a plain WHEP client may: it is answered with video only.
            third = Viewer(audio=False)
            await third.watch(hub, uid, tid, "rue-mairie", server.url("rue-mairie"), None)
            await third.frames_after(3)
            assert [t.kind for t in third.pc.getTransceivers()] == ["video"]
            fixed = hub.cctv.puller(cctv_stream(tid, "rue-mairie"))
        finally:
            await hub.stop()
        assert not fixed.running
        events = [e.data for e in hub.bus.recent(tid, limit=500) if e.type == "cctv"]
        assert [e["viewers"] for e in events if e["camera_id"] == "ptz-1"] == [1, 2, 1, 0]
        for viewer in (first, second, third):
            await viewer.pc.close()

    asyncio.run(story())
    log = journal(platform, commune.slug)
    assert [e["event"] for e in log] == ["cctv.viewing_started"] * 2 + ["cctv.viewing_ended"] * 2 + [
        "cctv.viewing_started",
        "cctv.viewing_ended",
    ]
    for entry in log:
        assert entry["action"] == "consultation" and entry["actor"]["id"] == commune.users[Role.CSU_OPERATOR]
        assert {"camera_id", "live_session", "resource"} <= entry["details"].keys()
    assert log[2]["details"]["reason"] == "deleted" and log[-1]["details"]["reason"] == "shutdown"
    assert {e["details"]["resource"] for e in log[:2]} == {e["details"]["resource"] for e in log[2:4]}


@pytest.mark.slow
def test_a_withdrawn_camera_stops_being_pulled_and_its_viewings_end(platform: Platform, cameras):
    server, _, _ = cameras
    commune = make_commune(platform, cameras=0)
    with platform.session() as db:
        operator = db.scalar(select(User).where(User.username == commune.users[Role.CSU_OPERATOR]))
        uid, tid = operator.id, operator.tenant_id
    stream = cctv_stream(tid, "rue-mairie")

    async def story() -> None:
        hub = LiveHub(platform)
        await hub.start()
        viewer = Viewer(audio=False)
        try:
            await viewer.watch(hub, uid, tid, "rue-mairie", server.url("rue-mairie"), None)
            await viewer.frames_after(3)
            puller = hub.cctv.puller(stream)
            await hub.withdraw_cctv(tid, "rue-mairie")  # what DELETE /api/v1/cctv/cameras/{id} does after the registry
            assert hub.cctv.puller(stream) is None and stream not in hub.plane.streams()
            await until(lambda: server.players("rue-mairie") == 0 and not puller.running, 10, "the RTSP client gone")
            await hub.withdraw_cctv(tid, "rue-mairie")  # nothing left to stop: no error
        finally:
            await hub.stop()
            await viewer.pc.close()

    asyncio.run(story())
    log = journal(platform, commune.slug)
    assert [(e["event"], e["details"].get("reason")) for e in log] == [
        ("cctv.viewing_started", None),
        ("cctv.viewing_ended", "withdrawn"),
    ]
