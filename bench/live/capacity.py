"""How many live streams `temoin serve` relays at once: N cameras publishing (WHIP), each watched by two
viewers (WHEP), at a small resolution; frames lost on the way, and the server's CPU per stream.

The server is the real one (`temoin serve`, in a subprocess; its CPU is read from /proc). To leave the
machine's cores to it, the clients spend as little as they can: each camera replays H.264 + Opus packets
encoded once beforehand (the synthetic scene, 320x240 at 15 fps, about 300 kbit/s, a keyframe every second),
packetized and sent through the relay's own RTP writer (`ForwardTrack`, as the relay sends to its viewers), and
each viewer counts the frames it receives without decoding them (the relay's own tap on aiortc's receiver). Clients run in worker processes, one per core by default. Everything
is on this machine, over loopback: no network limit, only CPU.

Per step of N streams: all cameras publish, all viewers join; after a warm-up, every viewer's frames are
counted over a window and compared with what the cameras sent in it (15 pictures and 50 Opus packets a
second). Loss = 1 − received / sent, over all viewers (±1 frame per viewer at the window edges: a tiny
negative figure is shown as 0). Then every session ends and the next step starts.

    .venv/bin/python bench/live/capacity.py                   # 1, 4, 8, 16, 24 streams, 15 s windows
    .venv/bin/python bench/live/capacity.py --quick           # 1, 4, 8 streams, 6 s windows
    .venv/bin/python bench/live/capacity.py --steps 1,8,32
    .venv/bin/python bench/live/capacity.py --profile 720p --steps 1,2,4,6,8   # 1280x720, 2 Mbit/s
"""

from __future__ import annotations

import asyncio
import fractions
import multiprocessing as mp
import os
import queue
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402
from common import Results  # noqa: E402

# `--profile 720p` is the issue's stream (1280x720, 2 Mbit/s, constant rate); `small` the light one of earlier runs.
# Read from the environment too: the client workers are spawned processes that import this module afresh.
PROFILES = {"small": (320, 240, 15, 300_000), "720p": (1280, 720, 25, 2_000_000)}
PROFILE_ENV = "TEMOIN_BENCH_LIVE_PROFILE"
WIDTH, HEIGHT, FPS, BITRATE = PROFILES[os.environ.get(PROFILE_ENV, "small")]
VIEWERS_ENV = "TEMOIN_BENCH_LIVE_VIEWERS"
VIEWERS = int(os.environ.get(VIEWERS_ENV, "2"))
CLK = os.sysconf("SC_CLK_TCK")


def proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK  # utime + stime


def machine_busy_s() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]
    return (sum(values) - idle) / CLK, sum(values) / CLK


def encode_media(seconds: float = 4.0) -> tuple[list[tuple[bytes, bool]], list[bytes]]:
    """H.264 access units (Annex B, keyframe flag) and 20 ms Opus packets of the synthetic scene."""
    import av
    import numpy as np

    from temoin.camera.media import SyntheticScene

    scene = SyntheticScene(WIDTH, HEIGHT, FPS, seed=7)
    video = av.CodecContext.create("libx264", "w")
    video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
    video.time_base = fractions.Fraction(1, FPS)
    video.bit_rate = BITRATE
    video.gop_size = FPS
    kbit = str(BITRATE // 1000)
    # Constant rate (filler data): the synthetic scene alone would use far less than the target bitrate.
    video.options = {
        "preset": "veryfast",
        "tune": "zerolatency",
        "profile": "baseline",
        "keyint": str(FPS),
        "min-keyint": str(FPS),
        "scenecut": "0",
        "repeat-headers": "1",
        "x264-params": f"nal-hrd=cbr:filler=1:vbv-maxrate={kbit}:vbv-bufsize={kbit}",
    }
    pictures = []
    for i in range(int(seconds * FPS)):
        frame = av.VideoFrame.from_ndarray(scene.rgb(i), format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        pictures += [(bytes(p), bool(p.is_keyframe)) for p in video.encode(frame)]
    pictures += [(bytes(p), bool(p.is_keyframe)) for p in video.encode(None)]
    audio = av.CodecContext.create("libopus", "w")
    audio.sample_rate, audio.format, audio.layout = 48_000, "s16", "mono"
    audio.bit_rate = 32_000
    sounds = []
    for i in range(int(seconds * 50)):
        pcm = (scene.samples(i * 960, 960) * 32767).astype(np.int16).reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(pcm, format="s16", layout="mono")
        frame.sample_rate, frame.pts = 48_000, i * 960
        sounds += [bytes(p) for p in audio.encode(frame)]
    return pictures, sounds


# A picture's send time rides in an SEI (user data unregistered) put before it: ASCII digits, so no byte
# sequence needs H.264's emulation prevention.
SEI_UUID = b"temoin-bench-sei"


def stamp(picture: bytes, at: bytes) -> bytes:
    """`picture` with its send time `at` (b"%.6f" of time.time()) in an SEI before it."""
    payload = SEI_UUID + at
    return b"\x00\x00\x00\x01\x06\x05" + bytes([len(payload)]) + payload + b"\x80" + picture


def stamped(data: bytes) -> float | None:
    at = data.find(b"\x06\x05" + bytes([len(SEI_UUID) + 17]) + SEI_UUID)
    if at < 0:
        return None
    start = at + 3 + len(SEI_UUID)
    return float(data[start : start + 17])


def rank(values: list[float], percent: int) -> float:
    """Nearest rank of sorted values (never interpolated); NaN when there are none."""
    return values[max(0, -(-len(values) * percent // 100) - 1)] if values else float("nan")


# --- the worker processes --------------------------------------------------------------------------


def worker(
    url: str,
    token: str,
    cameras: list[tuple[str, bytes]],
    media,
    ready,
    measure,
    done,  # noqa: ANN001
    results,
) -> None:
    os.setpgid(0, 0)  # the load generators: a process group of their own, their CPU counted apart from the server's
    asyncio.run(_worker(url, token, cameras, media, ready, measure, done, results))


async def _worker(url, token, cameras, media, ready, measure, done, results) -> None:  # noqa: ANN001
    import httpx
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from temoin.camera.live_publisher import prefer
    from temoin.camera.offload import DeviceAuth
    from temoin.live.forwarding import _REMB_ATTR, ForwardTrack, tap_receiver
    from temoin.live.plane import EncodedFrame

    pictures, sounds = media

    class Replay:
        """A camera replaying pre-encoded media at its pace through the relay's own RTP writer (`ForwardTrack`,
        bound to the publication's sender like a viewer's): as little CPU per packet as Python allows here, so that
        the machine's cores go to the server. A real camera packetizes in its encoder's firmware."""

        def __init__(self, kind: str, items: list, step_s: float, ticks: int) -> None:
            self.kind, self.items, self.step_s, self.ticks = kind, items, step_s, ticks
            self.track = ForwardTrack(kind, lambda: None)  # pre-encoded: a keyframe request cannot be answered
            self.sent = 0
            self.stamps: list[float] = []  # send times of the pictures sent while measuring

        async def run(self) -> None:
            t0, i = time.monotonic(), 0
            while self.track.readyState == "live":
                delay = t0 + i * self.step_s - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                item = self.items[i % len(self.items)]
                # A picture carries its send time (an SEI the relay forwards untouched): the latency per picture.
                if isinstance(item, tuple):
                    at = b"%.6f" % time.time()
                    data, key = stamp(item[0], at), item[1]
                    if measuring["on"]:
                        self.stamps.append(float(at))
                else:
                    data, key = item, False
                self.track.push(EncodedFrame(self.kind, data, i * self.ticks, key, 1, time.time()))
                i += 1
                self.sent += 1

    viewers: list[dict] = []
    pcs: list = []
    running: list[asyncio.Future] = []
    measuring = {"on": False}
    streams = []
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        bearer = {"Authorization": f"Bearer {token}"}
        for device_id, raw in cameras:
            auth = DeviceAuth(device_id, Ed25519PrivateKey.from_private_bytes(raw))
            r = await http.post("/api/v1/live/sessions", json={"reason": "threat"}, auth=auth)
            r.raise_for_status()
            sid = r.json()["id"]
            pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
            tracks = [Replay("video", pictures, 1 / FPS, 90_000 // FPS), Replay("audio", sounds, 0.02, 960)]
            senders = [pc.addTransceiver(track.track, direction="sendonly").sender for track in tracks]
            prefer(pc, "video", "video/h264")
            prefer(pc, "audio", "audio/opus")
            await pc.setLocalDescription(await pc.createOffer())
            for track, sender in zip(tracks, senders, strict=True):
                track.track.bind(sender)
            r = await http.post(
                f"/api/v1/live/whip/{sid}",
                content=pc.localDescription.sdp.encode(),
                headers={"Content-Type": "application/sdp"},
                auth=auth,
            )
            r.raise_for_status()
            await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
            for track in tracks:
                running.append(asyncio.ensure_future(track.run()))
            pcs.append(pc)
            streams.append({"sid": sid, "auth": auth, "resource": r.headers["location"], "tracks": tracks})
        streams_watched: list[dict] = []
        for s in streams:
            streams_watched.append(s)
            for _ in range(VIEWERS):
                pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
                video = pc.addTransceiver("video", direction="recvonly")
                audio = pc.addTransceiver("audio", direction="recvonly")
                await pc.setLocalDescription(await pc.createOffer())
                asked = time.monotonic()
                r = await http.post(
                    f"/api/v1/live/whep/{s['sid']}",
                    content=pc.localDescription.sdp.encode(),
                    headers={"Content-Type": "application/sdp", **bearer},
                )
                r.raise_for_status()
                await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
                counts = {
                    "video": 0,
                    "audio": 0,
                    "keyframes": 0,
                    "asked": asked,
                    "first_key_s": None,
                    "delays": [],  # (keyframe, seconds from the camera's send to this viewer), in the window
                    "measuring": False,
                    "camera": len(streams_watched) - 1,  # its camera's index in `streams`
                    "stamps": set(),  # send times of the pictures received, from the window's start on
                }

                def on_frame(mime: str, data: bytes, ts: int, counts=counts) -> None:  # noqa: ANN001
                    if mime.startswith("video"):
                        counts["video"] += 1
                        key = b"\x00\x00\x01\x65" in data or b"\x00\x00\x01\x25" in data
                        counts["keyframes"] += key
                        sent = stamped(data)
                        if counts["measuring"] and sent is not None:
                            counts["delays"].append((key, time.time() - sent))
                            counts["stamps"].add(sent)
                        if key and counts["first_key_s"] is None:  # WHEP POST -> first keyframe received
                            counts["first_key_s"] = time.monotonic() - counts["asked"]
                    else:
                        counts["audio"] += 1

                for transceiver in (video, audio):
                    tap_receiver(transceiver.receiver, on_frame)
                # A viewer that estimates no bandwidth (as one doing transport-wide congestion control instead):
                # aiortc's receive-side estimator runs on every packet, and this viewer's figure would go nowhere.
                setattr(video.receiver, _REMB_ATTR, None)
                pcs.append(pc)
                viewers.append(counts)
        deadline = time.monotonic() + 30
        while any(v["video"] == 0 for v in viewers) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        ready.put(sum(v["video"] == 0 for v in viewers))
        while not measure.is_set():
            await asyncio.sleep(0.01)
        for v in viewers:
            v["measuring"] = True
        measuring["on"] = True
        start = [dict(v) for v in viewers]
        sent0 = [(t[0].sent, t[1].sent) for t in (s["tracks"] for s in streams)]
        cpu0 = os.times()
        while not done.is_set():
            await asyncio.sleep(0.01)
        end = [dict(v) for v in viewers]
        measuring["on"] = False
        # Every picture sent from the window's start to a second before its end, against those its viewers
        # received by the end (a picture a second late counts as lost): exact, unlike the frame counts' edges.
        sent_pictures = [{t for t in s["tracks"][0].stamps if t <= time.time() - 1.0} for s in streams]
        missing = sum(len(sent_pictures[v["camera"]] - v["stamps"]) for v in viewers)
        sent1 = [(t[0].sent, t[1].sent) for t in (s["tracks"] for s in streams)]
        cpu1 = os.times()
        results.put(
            {
                "video_sent": sum(b[0] - a[0] for a, b in zip(sent0, sent1, strict=True)) * VIEWERS,
                "audio_sent": sum(b[1] - a[1] for a, b in zip(sent0, sent1, strict=True)) * VIEWERS,
                "video_got": sum(e["video"] - s["video"] for s, e in zip(start, end, strict=True)),
                "audio_got": sum(e["audio"] - s["audio"] for s, e in zip(start, end, strict=True)),
                "worst_viewer_video": min((e["video"] - s["video"]) for s, e in zip(start, end, strict=True)),
                "cpu_s": cpu1.user + cpu1.system - cpu0.user - cpu0.system,
                "keyframe_s": [v["first_key_s"] for v in viewers],
                "delays": [d for v in viewers for d in v["delays"]],
                "per_viewer_video": [e["video"] - s["video"] for s, e in zip(start, end, strict=True)],
                "per_camera_sent": [b[0] - a[0] for a, b in zip(sent0, sent1, strict=True)],
                "pictures_sent": sum(len(sent) for sent in sent_pictures) * VIEWERS,
                "pictures_missing": missing,
            }
        )
        for s in streams:
            await http.delete(s["resource"], auth=s["auth"])
    for task in running:
        task.cancel()
    for pc in pcs:
        await pc.close()


def setup(home: Path, cameras: int) -> tuple[str, list[tuple[str, bytes]]]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

    from temoin.demo.commune import territory
    from temoin.evidence.canonical import b64e
    from temoin.evidence.signing import public_key_bytes
    from temoin.identity import devices, service
    from temoin.journal.entry import Actor
    from temoin.law.access import Role

    p = common.open_platform(home)
    out = []
    with p.session() as db:
        tenant = service.create_tenant(
            p,
            db,
            slug="bench-live",
            name="Bench",
            profile="fr-police-municipale",
            authorised_cameras=cameras + 1,
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
        for n in range(cameras):
            key = Ed25519PrivateKey.generate()
            code = devices.create_enrolment_code(p, db, tenant, label=f"cam {n}", by=Actor.system("bench"))
            serial = f"bench-cam-{n}"
            proof = b64e(key.sign(f"temoin-enrol\n{code}\n{serial}".encode()))
            device = devices.enrol(p, db, code=code, serial=serial, public_key=public_key_bytes(key), proof=proof)
            out.append((device.id, key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())))
    p.close()
    return token, out


def step(url: str, token: str, cameras: list, media, workers: int, window_s: float, server_pid: int) -> dict:  # noqa: ANN001
    ctx = mp.get_context("spawn")
    ready, results = ctx.Queue(), ctx.Queue()
    measure, done = ctx.Event(), ctx.Event()
    shares = [cameras[i::workers] for i in range(workers)]
    procs = [
        ctx.Process(target=worker, args=(url, token, share, media, ready, measure, done, results))
        for share in shares
        if share
    ]
    for proc in procs:
        proc.start()
    try:
        silent = sum(ready.get(timeout=60 + 5 * len(cameras)) for _ in procs)
    except queue.Empty:
        for proc in procs:
            proc.terminate()
            proc.join(10)
        return {
            "streams": len(cameras),
            "failed": f"not every stream and viewer was set up within "
            f"{60 + 5 * len(cameras)} s (the machine is saturated)",
        }
    time.sleep(3.0)  # warm-up: jitter buffers, bitrate estimates
    server0, busy0, wall0 = proc_cpu_s(server_pid), machine_busy_s(), time.monotonic()
    measure.set()
    time.sleep(window_s)
    done.set()
    server1, busy1, wall1 = proc_cpu_s(server_pid), machine_busy_s(), time.monotonic()
    parts = [results.get(timeout=60) for _ in procs]
    for proc in procs:
        proc.join(60)
    wall = wall1 - wall0
    total = {
        k: sum(p[k] for p in parts)
        for k in ("video_sent", "audio_sent", "video_got", "audio_got", "cpu_s", "pictures_sent", "pictures_missing")
    }
    keys = sorted(k if k is not None else float("inf") for p in parts for k in p["keyframe_s"])
    delays = [d for p in parts for d in p["delays"]]
    key_delays = sorted(s for key, s in delays if key)
    all_delays = sorted(s for _, s in delays)
    return {
        "streams": len(cameras),
        "viewers_without_picture": silent,
        "window_s": wall,
        "server_cpu": (server1 - server0) / wall,
        "clients_cpu": total["cpu_s"] / wall,
        "machine_busy": (busy1[0] - busy0[0]) / (busy1[1] - busy0[1]) * (os.cpu_count() or 1),
        "video_loss": 1 - total["video_got"] / max(1, total["video_sent"]),
        "audio_loss": 1 - total["audio_got"] / max(1, total["audio_sent"]),
        # Exact, picture by picture (each carries its send time): sent to each viewer, and not received.
        "pictures_sent": total["pictures_sent"],
        "pictures_missing": total["pictures_missing"],
        "worst_viewer_fps": min(p["worst_viewer_video"] for p in parts) / wall,
        # Nearest rank (a viewer without a keyframe counts as infinitely late, never interpolated).
        "join_keyframe_p50_s": rank(keys, 50),
        "join_keyframe_p95_s": rank(keys, 95),
        # A keyframe's latency: the camera hands it to its sender -> a viewer holds it whole (every viewer,
        # every keyframe of the window). The relay's own delay, set-up excluded.
        "keyframe_latency_p50_s": rank(key_delays, 50),
        "keyframe_latency_p95_s": rank(key_delays, 95),
        "keyframe_latency_max_s": key_delays[-1] if key_delays else float("nan"),
        "keyframes_timed": len(key_delays),
        "picture_latency_p50_s": rank(all_delays, 50),
        "picture_latency_p95_s": rank(all_delays, 95),
        # What the viewers received of what a full rate would give: on a machine busy with other work the
        # cameras (and the server) run slower; the server's CPU per stream at the full rate is scaled by it.
        "delivered": total["video_got"] / max(1.0, len(cameras) * VIEWERS * FPS * wall),
        "loadavg": os.getloadavg(),
        "per_viewer_video": [n for p in parts for n in p["per_viewer_video"]],
        "per_camera_sent": [n for p in parts for n in p["per_camera_sent"]],
    }


def main() -> None:
    global WIDTH, HEIGHT, FPS, BITRATE, VIEWERS
    ap = common.parser(__doc__.splitlines()[0])
    ap.add_argument("--steps", default=None, help="stream counts, e.g. 1,4,8,16")
    ap.add_argument("--streams", type=int, default=None, help="one step of this many streams (as --steps N)")
    ap.add_argument("--viewers", type=int, default=VIEWERS, help="viewers per stream (2)")
    ap.add_argument(
        "--server-profile",
        type=Path,
        default=None,
        help="sample every thread of the server (bench/live/sampled_serve.py) and write the profile here (JSON)",
    )
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        default=os.environ.get(PROFILE_ENV, "small"),
        help="720p: 1280x720 at 25 fps, 2 Mbit/s (the issue's figure); small: 320x240, 15 fps, 300 kbit/s",
    )
    args = ap.parse_args()
    os.environ[PROFILE_ENV] = args.profile
    os.environ[VIEWERS_ENV] = str(args.viewers)
    VIEWERS = args.viewers
    if args.streams:
        args.steps = str(args.streams)
    os.umask(0o077)  # `temoin serve` refuses a home whose files others may read
    load_before = os.getloadavg()
    WIDTH, HEIGHT, FPS, BITRATE = PROFILES[args.profile]
    steps = [int(s) for s in (args.steps or ("1,4,8" if args.quick else "1,4,8,16,24")).split(",")]
    window = 6.0 if args.quick else 15.0
    results = Results(
        "live capacity",
        f"{WIDTH}x{HEIGHT} at {FPS} fps (~{BITRATE // 1000} kbit/s) + Opus, "
        f"{VIEWERS} viewers per stream, {window:.0f} s windows, loopback",
    )
    media = encode_media()
    from latency import free_port

    with common.bench_home(args, "live-capacity") as home:
        token, cameras = setup(home, max(steps))
        port = free_port()
        env = {**os.environ, "TEMOIN_HOME": str(home), "TEMOIN_RETENTION_INTERVAL_S": "86400"}
        import subprocess

        import httpx

        server_log = open(home / "server.log", "wb")  # noqa: SIM115
        serve = [sys.executable, "-m", "temoin", "serve", "--port", str(port)]
        if args.server_profile:
            serve = [sys.executable, str(Path(__file__).parent / "sampled_serve.py"), "--out"]
            serve += [str(args.server_profile.resolve()), "--", "--port", str(port)]
        server = subprocess.Popen(
            serve,
            env=env,
            stdout=server_log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        rows = []
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(f"{url}/api/v1/platform", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or server.poll() is not None:
                    raise SystemExit(f"the server did not start: {(home / 'server.log').read_text()[-2000:]}")
                time.sleep(0.1)
            idle0, t0 = proc_cpu_s(server.pid), time.monotonic()
            time.sleep(3)
            idle = (proc_cpu_s(server.pid) - idle0) / (time.monotonic() - t0)
            for n in steps:
                if server.poll() is not None:
                    raise SystemExit(f"the server died: {(home / 'server.log').read_text()[-3000:]}")
                print(f"step: {n} streams", flush=True)
                row = step(url, token, cameras[:n], media, min(args.workers, n), window, server.pid)
                rows.append(row)
                if "failed" in row:
                    common.console.print(f"[red]{n} streams: {row['failed']}: stopping here[/red]")
                    break
                common.console.print(
                    f"[dim]{n} streams: server {row['server_cpu'] * 100:.0f} % of a core, pictures lost "
                    f"{row['pictures_missing']} of {row['pictures_sent']}, frame counts: "
                    f"video {row['video_loss'] * 100:.2f} % audio {row['audio_loss'] * 100:.2f} %, "
                    f"machine {row['machine_busy']:.2f} cores busy[/dim]"
                )
                time.sleep(2)
        finally:
            server.terminate()
            server.wait(15)
    results.add("server CPU at rest (no stream)", f"{idle * 100:.1f} % of a core")
    for row in rows:
        if "failed" in row:
            results.add(f"{row['streams']} streams × {VIEWERS} viewers", row["failed"])
            continue
        per = (row["server_cpu"] - idle) / row["streams"]
        per_full = per / max(1e-9, row["delivered"])
        results.add(
            f"{row['streams']} streams × {VIEWERS} viewers",
            f"server {row['server_cpu'] * 100:.0f} % of a core ({per * 100:.1f} % per stream); "
            f"pictures lost {row['pictures_missing']} of {row['pictures_sent']} sent to viewers; frame counts: video "
            f"{max(0, row['video_loss']) * 100:.2f} %, audio {max(0, row['audio_loss']) * 100:.2f} %; "
            f"worst viewer {row['worst_viewer_fps']:.1f} fps; {row['delivered'] * 100:.0f} % of the full rate "
            f"delivered, so {per_full * 100:.1f} % of a core per stream at the full rate; clients {row['clients_cpu'] * 100:.0f} %; "
            f"machine {row['machine_busy']:.2f} of {os.cpu_count()} cores busy; keyframe latency (sent → held by a "
            f"viewer) p50 {row['keyframe_latency_p50_s'] * 1000:.0f} ms, "
            f"p95 {row['keyframe_latency_p95_s'] * 1000:.0f} ms; joining (WHEP POST → first keyframe) "
            f"p95 {row['join_keyframe_p95_s'] * 1000:.0f} ms; load average {row['loadavg'][0]:.1f}"
            + (
                f"; {row['viewers_without_picture']} viewers without a picture"
                if row["viewers_without_picture"]
                else ""
            ),
            **{
                f"s{row['streams']}_server_cpu": row["server_cpu"],
                f"s{row['streams']}_video_loss": row["video_loss"],
                f"s{row['streams']}_pictures_missing": row["pictures_missing"],
                f"s{row['streams']}_audio_loss": row["audio_loss"],
            },
        )
    results.raw["rows"] = rows
    results.raw["loadavg_before"] = load_before
    results.raw["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    results.print()
    results.write_json(args.json)


if __name__ == "__main__":
    main()
