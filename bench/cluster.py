"""Two `temoin serve` nodes on this machine, sharing one PostgreSQL database, one S3 store (SeaweedFS) and NATS
JetStream, each node with its own data folder and one shared journal folder (tests/cluster_helpers.py, as tests/test_cluster.py runs them).

(a) Alert latency across nodes over HTTP: a camera's live button pressed on node A (`POST /api/v1/live/sessions`,
    signed by the camera) until the alert arrives on the CSU's events channel (SSE `/api/v1/live/events`) opened on
    node B, one press at a time (each session ended from the CSU before the next); p50 / p95 / p99.
(b) Ingest throughput: two cameras uploading at once (the camera's 4 MiB pieces, receipts checked), both through
    node A (one node), then one camera per node (two nodes); the same bytes, to S3. Reported as MB/s and the ratio
    two nodes / one node. On one 2-core machine the two nodes share the cores (and the store, the database and the
    client run there too): the ratio says what a second node adds here, not what a second machine adds.

    .venv/bin/python bench/cluster.py                    # 200 presses; 2 cameras × 4 × 16 MiB per round
    .venv/bin/python bench/cluster.py --quick            # 50 presses; 2 × 2 × 4 MiB
    .venv/bin/python bench/cluster.py --json bench/results/cluster.json   # the README's table

Needs PostgreSQL (TEMOIN_TEST_POSTGRES_URL, default the local server: a database of its own is made and dropped),
NATS with JetStream (--nats) and SeaweedFS (`weed`, installed with the test dependencies).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT))
import common  # noqa: E402
from common import Results, Stopwatch, console, percentile  # noqa: E402

LOST_AFTER_S = 10.0  # an alert not on B by then is counted as lost
STALLED_AFTER = 5  # that many lost in a row: B's channel has stopped, the presses end there (said in the results)
seen: list[str] = []  # the events channel's lines, for the error message when an alert does not come


def _sse(url: str, token: str, arrived: dict[str, float], changed: threading.Condition, stop: threading.Event) -> None:
    """The CSU's events channel on one node: the arrival time of each alert, by session id."""
    import httpx
    import orjson

    headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {token}"}
    with (
        httpx.Client(base_url=url, timeout=None) as http,  # noqa: S113 - a stream: open until the bench ends
        http.stream("GET", "/api/v1/live/events", headers=headers) as r,
    ):
        kind = None
        for line in r.iter_lines():
            if stop.is_set():
                return
            seen.append(line[:200])
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: ") and kind in ("alert", "snapshot"):
                at = time.perf_counter()
                data = orjson.loads(line[6:])
                with changed:
                    arrived[data.get("id", "snapshot") if kind == "alert" else "snapshot"] = at
                    changed.notify_all()
            elif line == "":
                kind = None


def alert_latency(
    a_url: str, b_url: str, camera, token: str, presses: int, lost: list[str], stalled: list[str]
) -> tuple[list[float], list[float]]:
    """(press → alert on B, press → A's answer), seconds, sorted; the alerts that never came are added to `lost`."""
    import httpx
    import orjson

    from temoin.identity.devices import signed_headers

    arrived: dict[str, float] = {}
    changed = threading.Condition()
    stop = threading.Event()
    reader = threading.Thread(target=_sse, args=(b_url, token, arrived, changed, stop), daemon=True)
    reader.start()
    with changed:
        if not changed.wait_for(lambda: "snapshot" in arrived, 30):
            raise RuntimeError(f"node B's events channel did not open ({b_url})")
    path = "/api/v1/live/sessions"
    latencies, answers = [], []
    sids: list[str] = []
    with httpx.Client(base_url=a_url, timeout=30) as cam, httpx.Client(base_url=b_url, timeout=30) as csu:
        for _ in range(presses):
            fix = {"t": datetime.now(UTC).isoformat(), "lat": 43.5585, "lon": 4.0845, "accuracy_m": 6}
            body = orjson.dumps({"reason": "threat", "position": fix})
            headers = {**signed_headers(camera[0], camera[1], "POST", path, body), "Content-Type": "application/json"}
            t0 = time.perf_counter()
            r = cam.post(path, content=body, headers=headers)
            answered = time.perf_counter()
            if r.status_code != 201:
                raise RuntimeError(f"the live button was answered {r.status_code}: {r.text[:300]}")
            sid = r.json()["id"]
            with changed:
                if changed.wait_for(lambda sid=sid: sid in arrived, LOST_AFTER_S):
                    latencies.append(arrived[sid] - t0)
                else:  # counted and reported, not hidden in the percentiles
                    lost.append(sid)
                    console.print(f"[red]alert {sid} not on B within {LOST_AFTER_S:g} s[/red]; last lines {seen[-6:]}")
            if len(lost) >= STALLED_AFTER and all(s in lost for s in sids[-STALLED_AFTER:] + [sid]):
                # B's channel has stopped: is the alert in the stream (B's JSON form reads it back from NATS)?
                back = csu.get("/api/v1/live/events", params={"after": 0}, headers={"Authorization": f"Bearer {token}"})
                kept = [e["data"].get("id") for e in back.json().get("events", []) if e.get("type") == "alert"]
                stalled.append(f"after {len(sids) + 1} presses; the last alert read back on B: {sid in kept}")
                console.print(f"[red]B's events channel stalled {stalled[-1]}[/red]")
                break
            sids.append(sid)
            answers.append(answered - t0)
            ended = csu.post(f"/api/v1/live/sessions/{sid}/end", headers={"Authorization": f"Bearer {token}"})
            if ended.status_code != 200:
                raise RuntimeError(f"ending the session was answered {ended.status_code}: {ended.text[:300]}")
    stop.set()
    return sorted(latencies), sorted(answers)


def ingest_round(urls: list[str], cameras: list, platform_key: bytes, rec, digests: list[bytes]) -> float:
    """Each camera uploads one new recording (the same bytes) through its node, all at once; the wall seconds."""
    import ingest as ingest_bench

    signed = [ingest_bench.build_signed_manifest(rec, digests, cam[0], cam[1], "POR-0001") for cam in cameras]
    t = time.perf_counter()
    with ThreadPoolExecutor(len(cameras)) as pool:
        done = [
            pool.submit(ingest_bench.upload, url, cam, platform_key, rec, s, "camera")
            for url, cam, s in zip(urls, cameras, signed, strict=True)
        ]
        for f in done:
            f.result()
    return time.perf_counter() - t


def run_layout(args, shared: bool, presses: int, rec, digests: list[bytes], sw: Stopwatch, s3) -> dict:
    """One cluster (two nodes, their own data folders or one shared): its alert latencies and ingest walls."""
    import psycopg

    from temoin.identity import service
    from temoin.identity.models import User
    from temoin.platform import Platform
    from temoin.settings import Settings
    from tests.cluster_helpers import Cluster, serve, wait_up

    layout = "one shared data folder" if shared else "a data folder per node, one journal folder"
    name = f"temoin_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(args.postgres, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    root = Path(tempfile.mkdtemp(prefix="temoin-bench-cluster-"))
    cluster = Cluster(
        root=root,
        database_url=f"{args.postgres.rsplit('/', 1)[0]}/{name}",
        blob_store_url=s3.url(),
        events_url=args.nats,
        events_stream=f"BENCHCLUSTER_{uuid.uuid4().hex[:8]}",
        shared_home=shared,
    )
    nodes = []
    try:
        with sw.stage(f"[{layout}] setup: schema, tenant, cameras, CSU account (in-process)"):
            setup = Settings(
                home=cluster.home("a"),
                database_url=cluster.database_url,
                blob_store_url=cluster.blob_store_url,
                secure_cookies=False,
                jobs="postgresql",
            )
            p = Platform.open(setup, init=True)
            common.make_tenant(p, "port-temoin", cameras=4)
            cameras = [common.enrol_camera(p, "port-temoin", f"port-temoin-cam-{n}") for n in range(3)]
            common.make_user(p, "port-temoin", "csu", "csu_operator")
            with p.session() as db:
                user = db.query(User).filter_by(username="csu").one()
                token = service.issue_api_token(p, db, user, "bench")
            platform_key = p.keyring.public_key
            p.close()
            cluster.give_keys("a", "b")
        with sw.stage(f"[{layout}] setup: start two `temoin serve`"):
            nodes = [serve(cluster, "a"), serve(cluster, "b")]
            wait_up(*nodes)
        a, b = nodes
        with sw.stage(f"[{layout}] (a) {presses} live button presses on A, alerts read on B"):
            lost: list[str] = []
            stalled: list[str] = []
            latencies, answers = alert_latency(a.url, b.url, cameras[2], token, presses, lost, stalled)
        walls: dict[str, list[float]] = {"one": [], "two": []}
        for n in range(args.rounds):
            for nodes_used, urls in (("one", [a.url, a.url]), ("two", [a.url, b.url])):
                with sw.stage(f"[{layout}] (b) round {n + 1}: two cameras, {nodes_used} node(s)"):
                    walls[nodes_used].append(ingest_round(urls, cameras[:2], platform_key, rec, digests))
    finally:
        for node in nodes:
            node.stop()
            said = [line for line in node.log.read_text(errors="replace").splitlines() if "NATS" in line]
            if said:
                console.print(f"[dim]{node.name} ({layout}) said:[/dim]\n" + "\n".join(said[-10:]))
        with psycopg.connect(args.postgres, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if args.keep:
            console.print(f"[dim]kept {root}[/dim]")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return {"latencies": latencies, "answers": answers, "walls": walls, "lost": lost, "stalled": stalled}


def main() -> None:
    ap = common.parser(__doc__.splitlines()[0])
    ap.add_argument("--nats", default=os.environ.get("TEMOIN_TEST_NATS_URL", "nats://127.0.0.1:4222"))
    ap.add_argument(
        "--postgres",
        default=os.environ.get("TEMOIN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
    )
    ap.add_argument("--presses", type=int, default=None, help="live button presses (default 200)")
    ap.add_argument("--segments", type=int, default=None, help="segments per recording (default 4)")
    ap.add_argument("--segment-mib", type=int, default=None, help="MiB per segment (default 8)")
    ap.add_argument("--rounds", type=int, default=2, help="ingest rounds per layout, alternated (default 2)")
    args = ap.parse_args()
    os.umask(0o077)  # `temoin serve` refuses a data folder others may read
    presses = args.presses or (50 if args.quick else 200)
    segments = args.segments or (2 if args.quick else 4)
    seg_mib = args.segment_mib or (4 if args.quick else 8)
    common.run_start()

    import ingest as ingest_bench

    from tests.s3_helpers import ACCESS_KEY, SECRET_KEY, start_seaweedfs

    sw = Stopwatch()
    os.environ.update(AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY, AWS_EC2_METADATA_DISABLED="true")
    rec = ingest_bench.Recording(segments, seg_mib)
    digests = []
    for seg in range(segments):
        h = hashlib.sha256()
        for block in rec.blocks(seg):
            h.update(block)
        digests.append(h.digest())
    weed_root = Path(tempfile.mkdtemp(prefix="temoin-bench-seaweedfs-"))
    weed = start_seaweedfs(weed_root)
    try:
        with sw.stage("setup: SeaweedFS"):
            s3 = next(weed)
        runs = {shared: run_layout(args, shared, presses, rec, digests, sw, s3) for shared in (False, True)}
    finally:
        weed.close()
        shutil.rmtree(weed_root, ignore_errors=True)

    results = Results(
        "two nodes",
        f"{presses} presses; ingest 2 cameras × {segments} × {seg_mib} MiB to S3, best of {args.rounds} rounds",
    )
    total = 2 * rec.total
    for shared, run in runs.items():
        layout, key = (
            ("one shared data folder", "shared") if shared else ("a data folder per node, one journal folder", "own")
        )
        p50, p95, p99 = (percentile(run["latencies"], q) * 1000 for q in (0.5, 0.95, 0.99))
        a50, a99 = (percentile(run["answers"], q) * 1000 for q in (0.5, 0.99))
        results.add(
            f"{layout}: alert, press on A → events channel on B, p50 / p95 / p99",
            f"{p50:.1f} / {p95:.1f} / {p99:.1f} ms",
            **{f"{key}_alert_p50_ms": p50, f"{key}_alert_p95_ms": p95, f"{key}_alert_p99_ms": p99},
        )
        results.add(
            f"{layout}: alerts not on B within {LOST_AFTER_S:g} s",
            f"{len(run['lost'])} of {len(run['latencies']) + len(run['lost'])}"
            + (f" (B's channel stalled {run['stalled'][0]})" if run["stalled"] else ""),
            **{f"{key}_alerts_lost": len(run["lost"])},
        )
        results.add(
            f"{layout}: A's answer to the press, p50 / p99",
            f"{a50:.1f} / {a99:.1f} ms",
            **{f"{key}_press_p50_ms": a50, f"{key}_press_p99_ms": a99},
        )
        one = total / min(run["walls"]["one"]) / 1e6
        two = total / min(run["walls"]["two"]) / 1e6
        results.add(
            f"{layout}: ingest, two cameras through one node / one camera per node",
            f"{one:.1f} / {two:.1f} MB/s",
            **{f"{key}_ingest_one_node_mb_s": one, f"{key}_ingest_two_nodes_mb_s": two},
        )
        results.add(
            f"{layout}: ingest ratio two nodes / one node", f"{two / one:.2f}", **{f"{key}_ingest_ratio": two / one}
        )
        results.raw.update({f"{key}_walls_one_s": run["walls"]["one"], f"{key}_walls_two_s": run["walls"]["two"]})
    results.print()
    results.write_json(args.json)


if __name__ == "__main__":
    common.main_guard(main)
