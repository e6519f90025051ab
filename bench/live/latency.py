"""Glass-to-glass latency of live transmission on loopback, through the real server (`temoin serve`).

The camera side is the platform's WHIP publisher (`temoin.camera.live_publisher.LivePublisher`, aiortc,
H.264 + Opus, device-signed); the viewer is a WHEP client (aiortc) with a CSU operator's API token. Both
run in this process, so they share one clock: each picture carries the time it was made, as a pixel code
(32 black-or-white blocks, then the same bits inverted as a check), and the viewer reads it back from the
decoded picture. Latency = decoded at the viewer − picture made at the camera; it includes encoding,
RTP over loopback, the server's relay (forwarding, no transcoding), jitter buffers and decoding, and not
the display of the picture on a screen.

The same measure is taken on a direct camera → viewer connection (no server) as a baseline: the
difference is what the platform's relay adds.

    .venv/bin/python bench/live/latency.py            # 20 s per measure, 320x240 at 15 fps
    .venv/bin/python bench/live/latency.py --quick    # 6 s
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
import common  # noqa: E402
from common import Results  # noqa: E402

WIDTH, HEIGHT, FPS = 320, 240, 15
BITS = 32
BLOCK = WIDTH // BITS  # 10 px per bit
ROW = 16  # px per row of the code
T0 = time.monotonic()


def stamp_ms() -> int:
    return int((time.monotonic() - T0) * 1000) & 0xFFFFFFFF


def encode(rgb: np.ndarray, value: int) -> np.ndarray:
    for row, word in ((0, value), (1, ~value & 0xFFFFFFFF)):
        for bit in range(BITS):
            on = (word >> (BITS - 1 - bit)) & 1
            rgb[row * ROW : (row + 1) * ROW, bit * BLOCK : (bit + 1) * BLOCK] = 255 if on else 0
    return rgb


def decode(y_plane: np.ndarray) -> int | None:
    words = []
    for row in (0, 1):
        y = row * ROW + ROW // 2
        word = 0
        for bit in range(BITS):
            word = (word << 1) | int(y_plane[y, bit * BLOCK + BLOCK // 2] > 128)
        words.append(word)
    if words[0] != (~words[1] & 0xFFFFFFFF):
        return None  # a damaged or partial picture: not counted
    return words[0]


def camera_frames(scene):  # noqa: ANN001, ANN201
    def frames(index: int) -> np.ndarray:
        return encode(scene.rgb(index), stamp_ms())

    return frames


class Measure:
    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.unreadable = 0

    async def consume(self, track) -> None:  # noqa: ANN001
        while True:
            try:
                frame = await track.recv()
            except Exception:  # noqa: BLE001 - the track ended
                return
            now = stamp_ms()
            made = decode(frame.to_ndarray(format="yuv420p")[:HEIGHT])
            if made is None:
                self.unreadable += 1
            else:
                self.latencies_ms.append((now - made) & 0xFFFFFFFF)


def setup(home: Path) -> tuple[str, object, str]:
    """A tenant, an enrolled camera (device id, key) and a CSU operator's API token."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from temoin.demo.commune import territory
    from temoin.evidence.canonical import b64e
    from temoin.evidence.signing import public_key_bytes
    from temoin.identity import devices, service
    from temoin.journal.entry import Actor
    from temoin.law.access import Role

    p = common.open_platform(home)
    with p.session() as db:
        tenant = service.create_tenant(
            p,
            db,
            slug="bench-live",
            name="Bench",
            profile="fr-police-municipale",
            authorised_cameras=2,
            territory=territory(),  # the French profile requires the authorised territory (R241-8 II)
        )
        operator = service.create_user(
            p,
            db,
            tenant,
            username="bench-csu",
            display_name="CSU",
            role=Role.CSU_OPERATOR,
            password="correct horse battery staple",
        )
        db.commit()
        token = service.issue_api_token(p, db, operator.user, "bench")
        key = Ed25519PrivateKey.generate()
        code = devices.create_enrolment_code(p, db, tenant, label="bench cam", by=Actor.system("bench"))
        proof = b64e(key.sign(f"temoin-enrol\n{code}\nbench-cam".encode()))
        device = devices.enrol(p, db, code=code, serial="bench-cam", public_key=public_key_bytes(key), proof=proof)
        device_id = device.id
    p.close()
    return device_id, key, token


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def through_server(url: str, device_id: str, key, token: str, seconds: float) -> Measure:  # noqa: ANN001
    import httpx
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

    from temoin.camera.live_publisher import LivePublisher
    from temoin.camera.media import SyntheticScene

    scene = SyntheticScene(WIDTH, HEIGHT, FPS)
    camera = LivePublisher(url, device_id, key, scene=scene, fps=FPS, frames=camera_frames(scene))
    start = await camera.start()
    measure = Measure()
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer.addTransceiver("video", direction="recvonly")
    viewer.addTransceiver("audio", direction="recvonly")
    viewer.on("track", lambda track: asyncio.ensure_future(measure.consume(track)) if track.kind == "video" else None)
    await viewer.setLocalDescription(await viewer.createOffer())
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        r = await http.post(
            f"/api/v1/live/whep/{start.session_id}",
            content=viewer.localDescription.sdp.encode(),
            headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {token}"},
        )
        r.raise_for_status()
        await viewer.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        await asyncio.sleep(1.0)  # warm-up: the first keyframe, the jitter buffers settle
        measure.latencies_ms.clear()
        await asyncio.sleep(seconds)
        await http.delete(r.headers["location"], headers={"Authorization": f"Bearer {token}"})
    await viewer.close()
    await camera.stop()
    await camera.aclose()
    return measure


async def direct(seconds: float) -> Measure:
    """Camera → viewer without the server: the baseline."""
    from aiortc import RTCConfiguration, RTCPeerConnection

    from temoin.camera.live_media import CameraAudioTrack, CameraVideoTrack, _Paced
    from temoin.camera.live_whip import prefer
    from temoin.camera.media import SyntheticScene

    scene = SyntheticScene(WIDTH, HEIGHT, FPS)
    pace = _Paced()
    cam = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    cam.addTransceiver(CameraVideoTrack(camera_frames(scene), FPS, pace), direction="sendonly")
    cam.addTransceiver(CameraAudioTrack(scene, pace), direction="sendonly")
    prefer(cam, "video", "video/h264")
    prefer(cam, "audio", "audio/opus")
    measure = Measure()
    viewer = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    viewer.on("track", lambda track: asyncio.ensure_future(measure.consume(track)) if track.kind == "video" else None)
    await cam.setLocalDescription(await cam.createOffer())
    await viewer.setRemoteDescription(cam.localDescription)
    await viewer.setLocalDescription(await viewer.createAnswer())
    await cam.setRemoteDescription(viewer.localDescription)
    await asyncio.sleep(1.0)
    measure.latencies_ms.clear()
    await asyncio.sleep(seconds)
    await viewer.close()
    await cam.close()
    return measure


def summary(results: Results, name: str, m: Measure, seconds: float) -> float:
    values = sorted(m.latencies_ms)
    p50, p95 = common.percentile(values, 0.5), common.percentile(values, 0.95)
    served = name == "via server"  # the issue's loopback targets; the pilot at La Grande-Motte: ~6 s
    results.add(
        f"{name}: p50",
        f"{p50:.0f} ms",
        "≤ 150 ms" if served else "",
        ok=(p50 <= 150) if served else None,
        **{f"{name.replace(' ', '_')}_p50_ms": p50},
    )
    results.add(
        f"{name}: p95",
        f"{p95:.0f} ms",
        "≤ 250 ms" if served else "",
        ok=(p95 <= 250) if served else None,
        **{f"{name.replace(' ', '_')}_p95_ms": p95},
    )
    results.add(f"{name}: max", f"{values[-1] if values else float('nan'):.0f} ms")
    results.add(f"{name}: pictures read", f"{len(values)} of ~{int(seconds * FPS)} ({m.unreadable} unreadable)")
    return p50


def main() -> None:
    ap = common.parser(__doc__.splitlines()[0])
    args = ap.parse_args()
    os.umask(0o077)  # `temoin serve` refuses a home whose files others may read
    seconds = 6.0 if args.quick else 20.0
    results = Results("live latency", f"{WIDTH}x{HEIGHT} at {FPS} fps, H.264 + Opus, {seconds:.0f} s per measure")
    with common.bench_home(args, "live") as home:
        device_id, key, token = setup(home)
        port = free_port()
        env = {**os.environ, "TEMOIN_HOME": str(home), "TEMOIN_RETENTION_INTERVAL_S": "86400"}
        server = subprocess.Popen(
            [sys.executable, "-m", "temoin", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            import httpx

            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/api/v1/platform", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the server did not start: {server.stderr.read().decode()[-2000:]}")
                time.sleep(0.1)
            relayed = asyncio.run(through_server(url, device_id, key, token, seconds))
            baseline = asyncio.run(direct(seconds))
        finally:
            server.terminate()
            server.wait(15)
    via = summary(results, "via server", relayed, seconds)
    base = summary(results, "direct (baseline)", baseline, seconds)
    results.add("added by the server", f"{via - base:.0f} ms (p50)", added_p50_ms=via - base)
    results.print()
    results.write_json(args.json)


if __name__ == "__main__":
    main()
