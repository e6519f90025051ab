"""Live over an emulated 4G uplink, through the userspace UDP impairment proxy (`tests/impairment_helpers.py`):
40 ms each way, 1 % then 5 % loss each way, 3 Mbit/s up (20 Mbit/s down), a few ms of jitter. No root, no netem.

- the server: the real `temoin serve` (subprocess);
- the camera (a process of its own): the platform's WHIP publisher (`LivePublisher`, aiortc, H.264 + Opus,
  device-signed), its media through the UDP proxy and its HTTP through a TCP forwarder delaying 40 ms each way
  (delay only: a TCP loss is not emulated in user space, see `TcpDelay`); every picture carries its capture
  time (wall clock, pixel-coded);
- the CSU (this process): the dashboard's events channel (SSE) and, on each alert, a WHEP viewer (aiortc,
  decoding) on the wired side, unimpaired.

Per session: press → alert on the dashboard (alert latency), glass-to-glass latency of every picture
(capture → decoded), the longest gap between two decoded pictures (a freeze), the time from joining to the
first picture. Within each session, after a few seconds, the proxy loses the whole uplink for 0.5 s (a loss
burst): the time from its end to the first picture captured after it decoded by the viewer, and to the next
keyframe decoded (PLI recovery; none when retransmissions repaired every frame and no keyframe was asked for).

    .venv/bin/python bench/live/impaired.py --json bench/live/impaired.json         # 2 × 6 sessions of 12 s
    .venv/bin/python bench/live/impaired.py --quick                                 # 2 × 2 sessions of 8 s
    .venv/bin/python bench/live/report.py   # bench/README.md's table from bench/live/*.json
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
import common  # noqa: E402

from tests.impairment_helpers import now_ms, read_stamp, stamp  # noqa: E402 - after the path set-up

BURST_AT_S, BURST_S = 5.0, 0.5


# --- the camera (its own process) ----------------------------------------------------------------------


def camera_role(args: argparse.Namespace) -> None:
    asyncio.run(_camera(args))


async def _camera(args: argparse.Namespace) -> None:
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from temoin.camera.live_publisher import LivePublisher
    from temoin.camera.media import SyntheticScene
    from temoin.camera.offload import DeviceAuth
    from tests.impairment_helpers import Shape, TcpDelay, UdpImpairment

    key = load_pem_private_key(Path(args.key).read_bytes(), None)
    rng = np.random.default_rng(args.seed)

    def noisy(rgb: np.ndarray) -> np.ndarray:
        """Sensor-like noise: what makes a real camera's stream costly (the synthetic scene alone compresses to
        a few hundred kbit/s, far from the uplink's limit)."""
        if not args.noise:
            return rgb
        grain = rng.integers(-args.noise, args.noise + 1, size=rgb.shape, dtype=np.int16)
        return np.clip(rgb.astype(np.int16) + grain, 0, 255).astype(np.uint8)

    scene = SyntheticScene(args.width, args.height, args.fps, seed=1)
    up = Shape(delay_ms=40, jitter_ms=args.jitter_ms, loss=args.loss, kbit=3000)
    down = Shape(delay_ms=40, jitter_ms=args.jitter_ms, loss=args.loss, kbit=20000)
    out = open(args.out, "a", buffering=1)  # noqa: SIM115
    host, port = args.url.removeprefix("http://").split(":")
    with UdpImpairment(up, down, seed=args.seed) as link, TcpDelay(host, int(port), 40) as tcp:
        http = link.client(tcp.url, DeviceAuth(args.device, key), timeout=30)
        camera = LivePublisher(
            tcp.url,
            args.device,
            key,  # type: ignore[arg-type]
            scene=scene,
            fps=args.fps,
            frames=lambda i: stamp(noisy(scene.rgb(i)), now_ms()),
            http=http,
        )
        for n in range(args.sessions):
            before = dict(link.stats)
            press = time.time()
            start = await camera.start()
            await asyncio.sleep(BURST_AT_S)
            link.burst(BURST_S)
            burst_end = time.time() + BURST_S
            await asyncio.sleep(args.seconds - BURST_AT_S)
            await camera.stop()
            stats = {k: {m: v[m] - before.get(k, {}).get(m, 0) for m in v} for k, v in link.stats.items()}
            out.write(json.dumps({"n": n, "session": start.session_id, "press": press, "burst_end": burst_end,
                                  "link": stats}) + "\n")  # fmt: skip
            await asyncio.sleep(args.pause)
        await camera.aclose()


# --- the CSU's dashboard and viewer (this process) -----------------------------------------------------


class Dashboard:
    def __init__(self, url: str, token: str, width: int, height: int) -> None:
        self.url, self.token, self.width, self.height = url, token, width, height
        self.sessions: dict[str, dict] = {}
        self.tasks: list[asyncio.Task] = []

    async def listen(self) -> None:
        import httpx
        import orjson

        headers = {"Authorization": f"Bearer {self.token}", "Accept": "text/event-stream"}
        async with (
            httpx.AsyncClient(base_url=self.url, timeout=None) as http,
            http.stream("GET", "/api/v1/live/events", headers=headers) as r,
        ):
            kind = None
            async for line in r.aiter_lines():
                if line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: ") and kind == "alert":
                    data = orjson.loads(line[6:])
                    self.tasks.append(asyncio.ensure_future(self.watch(data["id"], time.time())))

    async def watch(self, sid: str, alert: float) -> None:
        import httpx
        from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription

        record: dict = {"alert": alert, "frames": [], "g2g_ms": [], "keyframes": [], "unreadable": 0, "made": []}
        self.sessions[sid] = record
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        finished = asyncio.Event()

        @pc.on("track")
        def on_track(track) -> None:
            if track.kind != "video":
                return

            async def consume() -> None:
                while True:
                    try:
                        frame = await track.recv()
                    except Exception:  # noqa: BLE001 - the session ended
                        finished.set()
                        return
                    at = time.time()
                    record["frames"].append(at)
                    if frame.key_frame:
                        record["keyframes"].append(at)
                    made = read_stamp(frame.to_ndarray(format="yuv420p"), self.width, self.height)
                    if made is None:
                        record["unreadable"] += 1
                    else:
                        record["g2g_ms"].append(((int(at * 1000) & 0xFFFFFFFF) - made) & 0xFFFFFFFF)
                        record["made"].append((at, at - record["g2g_ms"][-1] / 1000))  # (shown, captured)

            asyncio.ensure_future(consume())  # noqa: RUF006 - lives as long as the connection

        await pc.setLocalDescription(await pc.createOffer())
        record["joined"] = time.time()
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as http:
            r = await http.post(
                f"/api/v1/live/whep/{sid}",
                content=pc.localDescription.sdp.encode(),
                headers={"Content-Type": "application/sdp", "Authorization": f"Bearer {self.token}"},
            )
        if r.status_code == 201:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
            try:
                await asyncio.wait_for(finished.wait(), 60)
            except TimeoutError:
                pass
        else:
            record["whep"] = f"{r.status_code} {r.text[:200]}"
        await pc.close()


# --- the orchestrator --------------------------------------------------------------------------------


def setup(home: Path, key_path: Path) -> tuple[str, str]:
    from cryptography.hazmat.primitives import serialization
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
            slug="bench-4g",
            name="Bench",
            profile="fr-police-municipale",
            authorised_cameras=2,
            territory=territory(),
        )
        operator = service.create_user(
            p, db, tenant, username="bench-csu", display_name="CSU", role=Role.CSU_OPERATOR, password="x" * 20
        )
        db.commit()
        token = service.issue_api_token(p, db, operator.user, "bench")
        key = Ed25519PrivateKey.generate()
        code = devices.create_enrolment_code(p, db, tenant, label="4g cam", by=Actor.system("bench"))
        proof = b64e(key.sign(f"temoin-enrol\n{code}\nbench-4g".encode()))
        device = devices.enrol(p, db, code=code, serial="bench-4g", public_key=public_key_bytes(key), proof=proof)
        device_id = device.id
    p.close()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    key_path.write_bytes(pem)
    return device_id, token


def pct(values: list[float], q: float) -> float:
    return common.percentile(sorted(values), q)


def scenario(args: argparse.Namespace, url: str, device: str, token: str, key: Path, loss: float) -> dict:
    out = Path(args.work) / f"camera-{loss}.jsonl"
    out.unlink(missing_ok=True)
    dashboard = Dashboard(url, token, args.width, args.height)

    async def run() -> None:
        listener = asyncio.ensure_future(dashboard.listen())
        await asyncio.sleep(1.0)
        camera = await asyncio.create_subprocess_exec(
            sys.executable, __file__, "--role", "camera", "--url", url, "--device", device, "--key", str(key),
            "--out", str(out), "--loss", str(loss), "--sessions", str(args.sessions), "--seconds", str(args.seconds),
            "--width", str(args.width), "--height", str(args.height), "--fps", str(args.fps),
            "--jitter-ms", str(args.jitter_ms), "--seed", str(args.seed), "--pause", str(args.pause),
            "--noise", str(args.noise),
            env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}:{ROOT}"},
        )  # fmt: skip
        await camera.wait()
        await asyncio.sleep(2.0)
        await asyncio.gather(*dashboard.tasks, return_exceptions=True)
        listener.cancel()

    asyncio.run(run())
    presses = [json.loads(line) for line in out.read_text().splitlines()]
    alerts, g2g, freezes, first, heal, fresh, link, detail = [], [], [], [], [], [], [], []
    for press in presses:
        seen = dashboard.sessions.get(press["session"])
        if seen is None:
            detail.append({"session": press["session"], "seen": False})
            continue
        alerts.append((seen["alert"] - press["press"]) * 1000)
        g2g += seen["g2g_ms"]
        frames = seen["frames"]
        if frames:
            first.append((frames[0] - seen["joined"]) * 1000)
            # The longest gap, the burst's excepted (it is there on purpose; measured as the recovery instead).
            gaps = [(b - a, a) for a, b in zip(frames, frames[1:], strict=False)]
            outside = [g for g, a in gaps if not (press["burst_end"] - BURST_S - 0.1 <= a <= press["burst_end"] + 1.5)]
            freezes.append(max(outside, default=float("nan")) * 1000)
        keys = [k for k in seen["keyframes"] if k > press["burst_end"]]
        # No keyframe after the burst: none was needed (retransmissions repaired every frame: no PLI sent).
        heal.append(((keys[0] - press["burst_end"]) * 1000) if keys else float("nan"))
        fresh_at = [at for at, made in seen["made"] if made >= press["burst_end"]]
        fresh.append(((fresh_at[0] - press["burst_end"]) * 1000) if fresh_at else float("inf"))
        link.append(press["link"])
        detail.append(
            {
                "alert_ms": alerts[-1],
                "first_picture_ms": first[-1] if frames else None,
                "pictures": len(frames),
                "pictures_after_burst": len([t for t in frames if t > press["burst_end"]]),
                "keyframes": len(seen["keyframes"]),
                "longest_freeze_ms": freezes[-1] if frames else None,
                "burst_recovery_ms": heal[-1],
                "burst_fresh_picture_ms": fresh[-1],
                "whep": seen.get("whep"),
            }
        )
    up = "publisher→server"
    return {
        "loss": loss,
        "sessions": len(presses),
        "sessions_seen": len(alerts),
        "alert_ms": {"p50": pct(alerts, 0.5), "p99": pct(alerts, 0.99), "max": max(alerts, default=float("nan"))},
        "g2g_ms": {"p50": pct(g2g, 0.5), "p95": pct(g2g, 0.95), "max": max(g2g, default=float("nan"))},
        "pictures": len(g2g),
        "pictures_expected": int(len(presses) * args.seconds * args.fps),
        "longest_freeze_ms": max(freezes, default=float("nan")),
        "first_picture_ms": {"p50": pct(first, 0.5), "max": max(first, default=float("nan"))},
        "burst_recovery_ms": {
            "p50": pct([h for h in heal if h == h], 0.5),
            "max": max((h for h in heal if h == h), default=float("nan")),
            "none_needed": len([h for h in heal if h != h]),
        },
        "burst_fresh_picture_ms": {"p50": pct(fresh, 0.5), "max": max(fresh, default=float("nan"))},
        "uplink": {m: sum(s[up][m] for s in link) for m in ("packets", "bytes", "lost", "burst_lost", "queue_drops")},
        "per_session": detail,
        "uplink_kbit": sum(s[up]["bytes"] for s in link) * 8 / 1000 / max(1e-9, len(link) * args.seconds),
    }


def main() -> None:
    ap = common.parser(__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=None, help="live sessions per loss rate")
    ap.add_argument("--seconds", type=float, default=None, help="length of each session")
    ap.add_argument("--losses", default="0.01,0.05")
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument("--fps", type=int, default=15)
    ap.add_argument("--jitter-ms", type=float, default=5.0)
    ap.add_argument("--pause", type=float, default=1.5)
    ap.add_argument("--noise", type=int, default=0, help="per-pixel noise amplitude (0-255), for a costly stream")
    ap.add_argument("--role", choices=["camera"], default=None, help=argparse.SUPPRESS)
    for hidden in ("--url", "--device", "--key", "--out", "--work"):
        ap.add_argument(hidden, help=argparse.SUPPRESS)
    ap.add_argument("--loss", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.role == "camera":
        return camera_role(args)
    args.sessions = args.sessions or (2 if args.quick else 6)
    args.seconds = args.seconds or (8.0 if args.quick else 12.0)
    load_before = os.getloadavg()
    os.umask(0o077)  # `temoin serve` refuses a home whose files others may read
    with common.bench_home(args, "live-4g") as home:
        args.work = str(home)
        key = home / "camera.pem"
        device, token = setup(home, key)
        port = common_free_port()
        env = {**os.environ, "TEMOIN_HOME": str(home), "TEMOIN_RETENTION_INTERVAL_S": "86400"}
        server = subprocess.Popen(
            [sys.executable, "-m", "temoin", "serve", "--port", str(port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            wait_for(url, server)
            runs = [scenario(args, url, device, token, key, float(loss)) for loss in args.losses.split(",")]
        finally:
            server.terminate()
            server.wait(15)
    report = {
        "bench": "live over an emulated 4G uplink (UDP impairment proxy)",
        "measured_at": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": common.machine(),
        "loadavg_before": load_before,
        "loadavg_after": os.getloadavg(),
        "link": "40 ms each way (+0-5 ms jitter), loss each way as given, 3 Mbit/s up (200 ms queue), 20 Mbit/s down",
        "stream": f"{args.width}x{args.height} at {args.fps} fps, H.264 (aiortc, libx264) + Opus"
        + (f", per-pixel noise ±{args.noise}" if args.noise else ""),
        "sessions_of_s": args.seconds,
        "burst": f"whole uplink lost for {BURST_S} s, {BURST_AT_S} s into each session",
        "runs": runs,
        "targets": {
            "g2g_p95_ms": 800,
            "longest_freeze_ms": 1000,
            "alert_p99_ms": 200,
            "burst_recovery_ms": 1000,
            "burst_fresh_picture_ms": 1000,
        },
    }
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n")


def common_free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(url: str, server: subprocess.Popen) -> None:
    import httpx

    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"{url}/api/v1/platform", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit(f"the server did not start: {server.stderr.read().decode()[-2000:]}")  # type: ignore[union-attr]
        time.sleep(0.1)


if __name__ == "__main__":
    main()
