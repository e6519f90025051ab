"""Camera agent offload: throughput of `CameraAgent.offload` to `temoin serve`, as a ratio to a plain HTTP upload
of the same bytes to the same server (target ≥ 0.8).

Setup (not measured): a tenant and an enrolled camera in-process, `temoin serve` (uvicorn) in a subprocess
on 127.0.0.1 over the same SQLite home, and on the camera's device store a finalised recording of N
segments of S MB (the agent's 2 s segments at 4 Mbit/s are 1 MB), written through `RecordingWriter` exactly
as the agent writes them (sealed, chained, checkpointed, fsynced); their content is random bytes (H.264
does not compress further, nor does anything on the way).

Measured, in alternation (the same bytes each time, each a new recording for the vault):
  * offload: `CameraAgent.offload(VaultClient)` = manifest, then for every segment read + decrypt + check
    from the device store and a resumable `Content-Range` PUT, `complete`, the receipt verified twice
    (client and store), the receipt kept and the local copy erased (fsyncs);
  * plain: the same protocol with the bytes already in memory: the manifest, one plain streamed PUT per
    segment (httpx, signed as the vault requires), `complete`. Nothing read, decrypted or checked.
The server does the same work for both (hash, seal, fsync, catalogue), so the ratio is the camera's cost.

    .venv/bin/python bench/camera/offload.py            # 2 × 150 segments of 1 MB per mode
    .venv/bin/python bench/camera/offload.py --quick    # 1 × 30 segments
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import _shared
from _shared import common
from common import Results, console


def make_recording(store, camera_id: str, segments: int, size: int, seed: bytes):  # noqa: ANN001, ANN201
    """A finalised recording on the device store, written as the agent writes one; returns (id, plaintexts)."""
    from temoin.camera.device_store import Notice, RecordingHeader
    from temoin.evidence.manifest import Trigger

    start = datetime.now(UTC) - timedelta(hours=1)
    header = RecordingHeader(
        recording_id=f"rec-{uuid.uuid4().hex[:16]}",
        camera_id=camera_id,
        agent_id="POR-0001",
        trigger=Trigger.INCIDENT,
        triggered_at=start,
        pre_event_buffer_s=0,
    )
    writer = store.begin(header)
    base = os.urandom(size)
    datas = []
    for i in range(segments):
        data = i.to_bytes(8, "big") + seed + base[8 + len(seed) :]
        datas.append(data)
        writer.add_segment(data, start + timedelta(seconds=2 * i), 2.0, notice=Notice.told())
    signed = writer.finalise()
    store.release(writer)
    return signed, datas


def plain_upload(base_url: str, camera, platform_key: bytes, signed, datas: list[bytes]) -> None:  # noqa: ANN001
    """The same bytes, in memory, one plain signed PUT per segment; the receipt checked once."""
    import httpx

    from temoin.camera.offload import DeviceAuth
    from temoin.evidence.manifest import SignedReceipt

    rid = signed.manifest.recording_id
    with httpx.Client(base_url=base_url, timeout=120, auth=DeviceAuth(camera[0], camera[1])) as http:
        r = http.post(
            "/api/v1/ingest/recordings",
            content=signed.model_dump_json(by_alias=True).encode(),
            headers={"Content-Type": "application/json"},
        )
        r.raise_for_status()
        for i, data in enumerate(datas):
            r = http.put(
                f"/api/v1/ingest/recordings/{rid}/segments/{i}",
                content=data,
                headers={"Content-Type": "application/octet-stream"},
            )
            r.raise_for_status()
        r = http.post(f"/api/v1/ingest/recordings/{rid}/complete")
        r.raise_for_status()
        receipt = SignedReceipt.model_validate(r.json())
    if not (receipt.verify(platform_key) and receipt.matches(signed.manifest)):
        raise RuntimeError("the plain upload's receipt does not check out")


def main() -> int:
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--segments", type=int, default=None, help="segments per recording (default 150)")
    ap.add_argument("--segment-mb", type=float, default=1.0, help="MB per segment (default 1: 2 s at 4 Mbit/s)")
    ap.add_argument("--rounds", type=int, default=None, help="measurements per mode (default 2)")
    args = ap.parse_args()
    segments = args.segments or (30 if args.quick else 150)
    rounds = args.rounds or (1 if args.quick else 2)
    size = int(args.segment_mb * 1e6)
    total = segments * size
    sw = common.Stopwatch()

    from temoin.camera.agent import CameraAgent
    from temoin.camera.agent_config import AgentConfig
    from temoin.camera.clock import SimulatedClock
    from temoin.camera.device_store import DeviceStore
    from temoin.camera.keys import DeviceKeys
    from temoin.camera.media import SyntheticScene
    from temoin.camera.offload import VaultClient, platform_key
    from temoin.camera.sources import SyntheticVideo
    from temoin.evidence.crypto import new_data_key

    results: dict[str, list[tuple[float, float]]] = {"offload": [], "plain": []}
    with common.bench_home(args, "camera-offload") as home:
        with sw.stage("setup: tenant and camera (in-process)"):
            p = common.open_platform(home)
            common.make_tenant(p, "port-temoin", cameras=4)
            camera = common.enrol_camera(p, "port-temoin", "port-temoin-cam-0")
            p.close()
        port = _free_port()
        base_url = f"http://127.0.0.1:{port}"
        with contextlib.ExitStack() as running:
            with sw.stage("setup: start `temoin serve`"):
                server = running.enter_context(_shared.temoin_serve(home, port))
            key = platform_key(base_url)
            clock = SimulatedClock(datetime.now(UTC))
            store = DeviceStore(
                home / "camera", DeviceKeys(signing_key=camera[1], storage_key=new_data_key()), key, clock
            )
            agent = CameraAgent(
                AgentConfig(camera_id=camera[0], agent_id="POR-0001", pre_event_s=0),
                store=store,
                video=SyntheticVideo(SyntheticScene(64, 48, fps=1), clock),
                clock=clock,
            )
            for r in range(rounds):
                for mode in ("plain", "offload"):
                    with console.status(f"setup: {segments} × {args.segment_mb:g} MB on the device store…"):
                        signed, datas = make_recording(store, camera[0], segments, size, f"{mode}{r}".encode())
                    s_cpu = _cpu(server.pid)
                    c, t = time.process_time(), time.perf_counter()
                    with console.status(f"{mode}: {common.human_bytes(total)}…"):
                        if mode == "plain":
                            plain_upload(base_url, camera, key, signed, datas)
                        else:
                            vault = VaultClient(base_url, camera[0], camera[1], key, timeout=120)
                            try:
                                outcome = agent.offload(vault)
                            finally:
                                vault.close()
                    wall, cpu = time.perf_counter() - t, time.process_time() - c
                    server_cpu = _cpu(server.pid) - s_cpu
                    if mode == "plain":
                        del datas
                        _discard(store, signed.manifest.recording_id)  # not part of the plain upload
                    else:
                        if set(outcome.sent) != {signed.manifest.recording_id} or outcome.kept:
                            raise RuntimeError(f"offload failed: {outcome.kept}")
                    results[mode].append((wall, cpu, server_cpu))
                    console.print(
                        f"[dim]{mode} #{r + 1}: {wall:.2f} s, {total / wall / 1e6:.0f} MB/s "
                        f"(camera CPU {cpu:.2f} s, server CPU {server_cpu:.2f} s)[/dim]"
                    )
    common.stage_table("setup (not measured)", sw.stages)

    def median(mode: str, i: int) -> float:
        return statistics.median(x[i] for x in results[mode])

    plain, offload = total / median("plain", 0), total / median("offload", 0)
    res = Results(
        "camera agent: offload throughput",
        f"{segments} segments × {args.segment_mb:g} MB = {common.human_bytes(total)}, {rounds} round(s) "
        f"per mode (median), `temoin serve` on 127.0.0.1, SQLite",
    )
    res.add(
        "plain HTTP upload of the same bytes (in memory, one PUT per segment)",
        f"{plain / 1e6:.1f} MB/s ({common.secs(median('plain', 0), median('plain', 1))} on the client)",
        plain_mb_s=plain / 1e6,
    )
    res.add(
        "CameraAgent.offload (device store → vault, receipt, erase)",
        f"{offload / 1e6:.1f} MB/s ({common.secs(median('offload', 0), median('offload', 1))} on the camera)",
        offload_mb_s=offload / 1e6,
    )
    res.add("ratio offload / plain", f"{offload / plain:.2f}", "≥ 0.8", offload / plain >= 0.8, ratio=offload / plain)
    res.add(
        "server CPU per mode (plain / offload)",
        f"{median('plain', 2):.2f} s / {median('offload', 2):.2f} s",
        server_cpu_plain_s=median("plain", 2),
        server_cpu_offload_s=median("offload", 2),
    )
    res.add(
        "all runs (wall s)",
        " / ".join(f"{m}: " + ", ".join(f"{w:.2f}" for w, _, _ in results[m]) for m in ("plain", "offload")),
    )
    res.print()
    res.write_json(args.json)
    return 0


def _discard(store, recording_id: str) -> None:  # noqa: ANN001
    """Remove the plain run's source recording from the device store (setup, not measured)."""
    import shutil

    shutil.rmtree(store.folder(recording_id))
    store._used = store._scan()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    common.main_guard(main)
