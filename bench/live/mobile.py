"""The live button over an emulated 4G uplink: 40 ms each way, 1 % loss each way, 3 Mbit/s from the camera
(20 Mbit/s towards it), between two network namespaces of this machine (`netlink.MobileLink`: this kernel
has no `tc netem`, so the link is emulated in user space on TUN interfaces). Must run as root.

- namespace `tmn-srv`: `temoin serve`, and the CSU's dashboard (SSE) with its WHEP viewer (aiortc, decoding),
  on the platform's side of the link, as a CSU on the wired network;
- namespace `tmn-cam`: the camera, `CameraRuntime` (the real agent, 320x240 at 10 fps, its live link),
  enrolled over the link with a one-time code.

The camera presses the live button, streams about 5 s, stops recording (the session ends), waits, and
presses again. Every picture it captures carries its capture time (wall clock, shared by both namespaces)
as a pixel code that the viewer reads back: glass-to-glass latency over the link, encoder to decoder, with
the live FIFO, the relay and the jitter buffers, not the display.

    sudo .venv/bin/python bench/live/mobile.py              # 25 presses
    sudo .venv/bin/python bench/live/mobile.py --quick      # 6 presses
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

WIDTH, HEIGHT, FPS = 320, 240, 10
PORT = 8443
LIVE_S = 5.0
PAUSE_S = 1.5


def stamp() -> int:
    return int(time.time() * 1000) & 0xFFFFFFFF


# --- the camera (namespace tmn-cam) ------------------------------------------------------------------


def camera_role(args: argparse.Namespace) -> None:
    import threading

    from latency import encode

    from temoin.camera.clock import system_clock
    from temoin.camera.gps import SimulatedWalk
    from temoin.camera.media import SyntheticScene
    from temoin.camera.runner import CameraHome, CameraRuntime
    from temoin.camera.signals import TerminalSignals
    from temoin.camera.sources import SyntheticAudio, SyntheticVideo
    from temoin.db import utcnow

    class StampedScene(SyntheticScene):
        def rgb(self, index: int):  # noqa: ANN201
            return encode(super().rgb(index), stamp())

    if args.no_keep_warm:
        import temoin.camera.runner

        temoin.camera.runner.LIVE_KEEP_WARM_S = None
    if args.copies is not None:
        import temoin.camera.runner

        temoin.camera.runner.LIVE_REQUEST_COPIES = args.copies
    home = CameraHome(Path(args.camera_home))
    home.enrol(args.url, args.code, "bench-4g-cam", timeout=30)
    scene = StampedScene(WIDTH, HEIGHT, fps=FPS, seed=1)
    start = utcnow()
    runtime = CameraRuntime(
        home,
        video=SyntheticVideo(scene, system_clock, start),
        audio=SyntheticAudio(scene, start),
        gps=SimulatedWalk(start, "Rue du Port"),
        signals=TerminalSignals(),
        segment_s=2.0,
    )
    loop = threading.Thread(target=runtime.run, daemon=True)
    loop.start()
    agent = runtime.agent
    out = open(args.out, "a", buffering=1)  # noqa: SIM115
    time.sleep(2.0)
    try:
        for n in range(args.presses):
            before = agent.live_session_id
            t = time.time()
            runtime.inputs.submit(agent.press_live)
            assert runtime.inputs.submit(agent.press_live).result(10), "not a live request"
            deadline = time.monotonic() + 15
            while agent.live_session_id in (None, before) and time.monotonic() < deadline:
                time.sleep(0.01)
            time.sleep(LIVE_S)
            runtime.inputs.submit(agent.press_record).result(30)
            runtime.live.wait(15)
            out.write(
                json.dumps(
                    {
                        "n": n,
                        "session": agent.live_session_id if agent.live_session_id != before else None,
                        "press": t,
                        "feed": dict(runtime.live.feed.stats),
                    }
                )
                + "\n"
            )
            time.sleep(args.pause)
    finally:
        runtime.stop_requested.set()
        loop.join(30)
        runtime.close()


# --- the CSU's dashboard and viewer (namespace tmn-srv) ------------------------------------------------


def dashboard_role(args: argparse.Namespace) -> None:
    asyncio.run(_dashboard(args))


async def _dashboard(args: argparse.Namespace) -> None:
    import httpx
    import orjson
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from latency import decode

    out = open(args.out, "a", buffering=1)  # noqa: SIM115
    headers = {"Authorization": f"Bearer {args.token}"}

    async def watch(sid: str, alert: float) -> None:
        record = {"session": sid, "alert": alert, "first_picture": None, "g2g_ms": [], "pictures": 0, "unreadable": 0}
        pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        pc.addTransceiver("video", direction="recvonly")
        pc.addTransceiver("audio", direction="recvonly")
        finished = asyncio.Event()

        @pc.on("track")
        def on_track(track) -> None:  # noqa: ANN001
            if track.kind != "video":
                return

            async def consume() -> None:
                while True:
                    try:
                        frame = await track.recv()
                    except Exception:  # noqa: BLE001 - the session ended
                        finished.set()
                        return
                    now = time.time()
                    record["first_picture"] = record["first_picture"] or now
                    record["pictures"] += 1
                    made = decode(frame.to_ndarray(format="yuv420p")[:HEIGHT])
                    if made is None:
                        record["unreadable"] += 1
                    else:
                        record["g2g_ms"].append(((int(now * 1000) & 0xFFFFFFFF) - made) & 0xFFFFFFFF)

            asyncio.ensure_future(consume())

        await pc.setLocalDescription(await pc.createOffer())
        async with httpx.AsyncClient(base_url=args.url, timeout=30) as http:
            r = await http.post(
                f"/api/v1/live/whep/{sid}",
                content=pc.localDescription.sdp.encode(),
                headers={"Content-Type": "application/sdp", **headers},
            )
        if r.status_code == 201:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
            try:
                await asyncio.wait_for(finished.wait(), 30)
            except TimeoutError:
                pass
        else:
            record["whep"] = f"{r.status_code} {r.text[:200]}"
        record["last_picture"] = time.time()
        await pc.close()
        out.write(json.dumps(record) + "\n")

    async with httpx.AsyncClient(base_url=args.url, timeout=None) as http:
        while True:
            async with http.stream(
                "GET", "/api/v1/live/events", headers={**headers, "Accept": "text/event-stream"}
            ) as r:
                kind = None
                async for line in r.aiter_lines():
                    if line.startswith("event: "):
                        kind = line[7:]
                    elif line.startswith("data: ") and kind == "alert":
                        data = orjson.loads(line[6:])
                        asyncio.ensure_future(watch(data["id"], time.time()))


# --- the orchestrator (root namespace) ---------------------------------------------------------------


def setup(home: Path) -> tuple[str, str]:
    import common

    from temoin.demo.commune import territory
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
        code = devices.create_enrolment_code(p, db, tenant, label="4g cam", by=Actor.system("bench"))
    p.close()
    return token, code


def main() -> None:  # noqa: PLR0915
    import common
    from common import Results
    from netlink import CAM_NS, SRV_IP, SRV_NS, MobileLink

    ap = common.parser(__doc__.splitlines()[0])
    ap.add_argument("--presses", type=int, default=None)
    ap.add_argument(
        "--pause",
        type=float,
        default=PAUSE_S,
        help="seconds between the end of a live session and the next press (over 5 s, the camera's "
        "HTTP connection has been closed as idle: the press pays a TCP handshake)",
    )
    ap.add_argument(
        "--no-keep-warm",
        action="store_true",
        help="no keep-alive requests between live sessions (CameraRuntime sends one every 4 s)",
    )
    ap.add_argument(
        "--copies",
        type=int,
        default=None,
        help="copies of the live request sent at once (CameraRuntime sends 2; 1 to compare)",
    )
    ap.add_argument("--role", choices=["camera", "dashboard"], default=None, help=argparse.SUPPRESS)
    ap.add_argument("--url", help=argparse.SUPPRESS)
    ap.add_argument("--code", help=argparse.SUPPRESS)
    ap.add_argument("--token", help=argparse.SUPPRESS)
    ap.add_argument("--camera-home", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    os.umask(0o077)  # `temoin serve` refuses a home whose files others may read
    if args.role == "camera":
        return camera_role(args)
    if args.role == "dashboard":
        return dashboard_role(args)
    if os.geteuid() != 0:
        raise SystemExit("run as root: the benchmark creates network namespaces and TUN interfaces")
    args.presses = args.presses or (6 if args.quick else 25)
    results = Results(
        "live over an emulated 4G link",
        f"{args.presses} presses {args.pause:g} s apart"
        f"{', no keep-alive' if args.no_keep_warm else ''}"
        f"{f', {args.copies} request copies' if args.copies else ''}; uplink 3 Mbit/s, downlink "
        "20 Mbit/s, 40 ms and 1 % loss each way; camera agent 320x240 at 10 fps",
    )
    py = sys.executable
    url = f"http://{SRV_IP}:{PORT}"
    with common.bench_home(args, "live-4g") as home:
        token, code = setup(home)
        cam_out, dash_out = home / "camera.jsonl", home / "dashboard.jsonl"
        env = {**os.environ, "TEMOIN_HOME": str(home), "TEMOIN_RETENTION_INTERVAL_S": "86400"}
        with MobileLink(delay_ms=40, loss=0.01, up_kbit=3000, down_kbit=20000) as link:
            server = subprocess.Popen(
                ["ip", "netns", "exec", SRV_NS, py, "-m", "temoin", "serve", "--host", SRV_IP, "--port", str(PORT)],
                env=env,
                stdout=open(home / "server.log", "wb"),  # noqa: SIM115 - not a pipe
                stderr=subprocess.STDOUT,
            )
            dashboard = camera = None
            try:
                ok = subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        SRV_NS,
                        py,
                        "-c",
                        f"""
import time, httpx
for _ in range(300):
    try:
        if httpx.get('{url}/api/v1/platform', timeout=1).status_code == 200: raise SystemExit(0)
    except httpx.HTTPError: time.sleep(0.1)
raise SystemExit(1)""",
                    ],
                    env=env,
                )
                if ok.returncode != 0:
                    raise SystemExit(f"the server did not start: {(home / 'server.log').read_text()[-2000:]}")
                dashboard = subprocess.Popen(
                    [
                        "ip",
                        "netns",
                        "exec",
                        SRV_NS,
                        py,
                        __file__,
                        "--role",
                        "dashboard",
                        "--url",
                        url,
                        "--token",
                        token,
                        "--out",
                        str(dash_out),
                    ],
                    env=env,
                )
                time.sleep(2.0)
                stats0, t0 = link.stats, time.monotonic()
                camera = subprocess.run(
                    [
                        "ip",
                        "netns",
                        "exec",
                        CAM_NS,
                        py,
                        __file__,
                        "--role",
                        "camera",
                        "--url",
                        url,
                        "--code",
                        code,
                        "--camera-home",
                        str(home / "camera"),
                        "--out",
                        str(cam_out),
                        "--presses",
                        str(args.presses),
                        "--pause",
                        str(args.pause),
                    ]
                    + (["--no-keep-warm"] if args.no_keep_warm else [])
                    + (["--copies", str(args.copies)] if args.copies else []),
                    env=env,
                    timeout=args.presses * (40 + args.pause) + 120,
                )
                elapsed = time.monotonic() - t0
                stats1 = link.stats
                time.sleep(3.0)  # the last viewer writes its record
            finally:
                if dashboard is not None:
                    dashboard.terminate()
                    dashboard.wait(15)
                server.terminate()
                server.wait(15)
        presses = [json.loads(line) for line in cam_out.read_text().splitlines()] if cam_out.exists() else []
        views = (
            {r["session"]: r for r in (json.loads(line) for line in dash_out.read_text().splitlines())}
            if dash_out.exists()
            else {}
        )
    if camera.returncode != 0:
        print(f"the camera process failed ({camera.returncode})", file=sys.stderr)
    rows = []
    for p in presses:
        v = views.get(p["session"])
        if v is None:
            rows.append({"n": p["n"], "failed": "no alert seen"})
            continue
        row = {
            "n": p["n"],
            "alert_ms": (v["alert"] - p["press"]) * 1000,
            "pictures": v["pictures"],
            "g2g_ms": v["g2g_ms"],
            "unreadable": v["unreadable"],
        }
        if v["first_picture"]:
            row["picture_ms"] = (v["first_picture"] - p["press"]) * 1000
            row["fps"] = v["pictures"] / max(0.1, v["last_picture"] - v["first_picture"])
        rows.append(row)
    good = [r for r in rows[1:] if "picture_ms" in r]
    pct = common.percentile

    def series(key: str) -> list[float]:
        return sorted(r[key] for r in good)

    results.add("presses measured (first one apart)", f"{len(good)} of {len(rows) - 1}")
    alert = series("alert_ms")
    results.add("press → alert on the events channel: p50 / p95", f"{pct(alert, 0.5):.0f} / {pct(alert, 0.95):.0f} ms")
    results.add(
        "press → alert: p99",
        f"{pct(alert, 0.99):.0f} ms",
        "≤ 100 ms",
        ok=pct(alert, 0.99) <= 100,
        alert_p99_ms=pct(alert, 0.99),
        alert_p50_ms=pct(alert, 0.5),
    )
    pic = series("picture_ms")
    results.add("press → first decoded picture: p50 / p95", f"{pct(pic, 0.5):.0f} / {pct(pic, 0.95):.0f} ms")
    results.add(
        "press → first decoded picture: p99",
        f"{pct(pic, 0.99):.0f} ms",
        "≤ 1500 ms",
        ok=pct(pic, 0.99) <= 1500,
        picture_p99_ms=pct(pic, 0.99),
        picture_p50_ms=pct(pic, 0.5),
    )
    g2g = sorted(x for r in good for x in r["g2g_ms"][5:])  # from the sixth picture of each session
    results.add(
        "glass-to-glass (capture → decoded), p50 / p95 / max",
        f"{pct(g2g, 0.5):.0f} / {pct(g2g, 0.95):.0f} / {g2g[-1] if g2g else float('nan'):.0f} ms ({len(g2g)} pictures)",
        g2g_p50_ms=pct(g2g, 0.5),
        g2g_p95_ms=pct(g2g, 0.95),
    )
    fps = series("fps")
    results.add(
        "pictures per second at the viewer (p50 / worst session)",
        f"{pct(fps, 0.5):.1f} / {fps[0] if fps else float('nan'):.1f} (camera: {FPS})",
    )
    up = {k: stats1["camera→server"][k] - stats0["camera→server"][k] for k in stats0["camera→server"]}
    results.add(
        "uplink during the run",
        f"{up['bytes'] * 8 / elapsed / 1000:.0f} kbit/s on average (live ~"
        f"{LIVE_S / (LIVE_S + args.pause + 1) * 100:.0f} % of the time); {up['lost']} packets lost, "
        f"{up['queue_drops']} dropped by the full queue, of {up['packets'] + up['lost'] + up['queue_drops']}",
    )
    results.add(
        "first press of the run (cold)",
        f"alert {rows[0].get('alert_ms', float('nan')):.0f} ms, picture "
        f"{rows[0].get('picture_ms', float('nan')):.0f} ms"
        if rows
        else "none",
    )
    results.raw["rows"] = rows
    results.raw["link"] = {"before": stats0, "after": stats1, "elapsed_s": elapsed}
    results.print()
    results.write_json(args.json)


if __name__ == "__main__":
    main()
