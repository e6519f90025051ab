"""A large clip through the Axis Swift PUT (target: ≥ 0.5 × the in-memory SHA-256 + AES-256-GCM rate; server peak
RSS reported).

Sets up a tenant, an Axis connection, a user and a camera in-process (same SQLite database), starts the real server
(`temoin serve`, TEMOIN_HOME the temporary folder) in a subprocess, then does what the Body Worn system does: auth,
recording container, one clip PUT streamed from a generator with Content-Length (the client never holds more than
1 MiB), Status Complete. In the same run, the in-memory rate of what the vault does to every byte (SHA-256 + AES-256-GCM
records of 1 MiB), single thread, over the same bytes; and the same plus MD5 (the Swift ETag the vault also computes).

    .venv/bin/python bench/axis.py            # a 1 GiB clip
    .venv/bin/python bench/axis.py --quick    # 128 MiB
"""

from __future__ import annotations

import hashlib
import os
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import common
from common import Results

MiB = 1024 * 1024


def blocks(total_mib: int, base: bytes):
    for j in range(total_mib):
        yield struct.pack(">Q", j) + base[8:]


def in_memory(total_mib: int, base: bytes, md5: bool) -> float:
    from temoin.evidence import crypto

    sealer = crypto.Sealer(crypto.new_data_key(), crypto.new_header())
    hasher, etag = hashlib.sha256(), hashlib.md5(usedforsecurity=False)
    t = time.perf_counter()
    for block in blocks(total_mib, base):
        hasher.update(block)
        if md5:
            etag.update(block)
        sealer.seal_record(block)
    return total_mib * MiB / (time.perf_counter() - t)


def md5_rate(total_mib: int, base: bytes) -> float:
    """MD5 alone, one thread: the Swift ETag is one sequential MD5 over the body, so no pipeline can take a body
    faster than this, whatever the cores (bytes/s)."""
    etag = hashlib.md5(usedforsecurity=False)
    t = time.perf_counter()
    for block in blocks(total_mib, base):
        etag.update(block)
    return total_mib * MiB / (time.perf_counter() - t)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads (/proc/PID/stat): less skewed by a shared machine than
    wall time."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def disk_rate(home: Path, total_mib: int, base: bytes) -> float:
    """Writing the same number of bytes to a file in TEMOIN_HOME with one fsync, as the vault does per object: the
    disk's floor (bytes/s)."""
    path = home / "disk-floor.bin"
    t = time.perf_counter()
    with path.open("wb", buffering=0) as fh:
        for block in blocks(total_mib, base):
            fh.write(block)
        os.fsync(fh.fileno())
    wall = time.perf_counter() - t
    path.unlink()
    return total_mib * MiB / wall


def main() -> int:
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--mib", type=int, default=None, help="clip size in MiB (default 1024, --quick 128)")
    args = ap.parse_args()
    total_mib = args.mib or (128 if args.quick else 1024)
    os.umask(0o077)  # `temoin serve` refuses a home whose files others may read (its private-files check)
    base = os.urandom(MiB)
    load_before = os.getloadavg()
    results = Results("Axis Swift PUT of one clip", f"{total_mib} MiB")
    with common.bench_home(args, "axis") as home:
        import httpx

        from temoin.axis import connection
        from temoin.axis.simulator import BodyWornSystem
        from temoin.journal.entry import Actor

        p = common.open_platform(home)
        from temoin.demo.commune import territory
        from temoin.identity import service

        with p.session() as db:
            service.create_tenant(
                p,
                db,
                slug="bench",
                name="Bench",
                profile="fr-police-municipale",
                authorised_cameras=4,
                territory=territory(),
            )
            db.commit()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()
        url = f"http://127.0.0.1:{port}"
        with p.session() as db:
            cf = connection.issue(
                p, db, p.tenant(db, "bench"), urls=[url], by=Actor.system("bench"), want_encryption=False
            ).connection_file
        p.close()
        env = {**os.environ, "TEMOIN_HOME": str(home), "TEMOIN_INSECURE_COOKIES": "1"}
        log = (home / "server.log").open("wb")
        server = subprocess.Popen(
            [str(Path(sys.executable).with_name("temoin")), "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx.get(f"{url}/api/v1/platform", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: see {home / 'server.log'}")
                time.sleep(0.2)
            bws = BodyWornSystem(cf, http=httpx.Client(timeout=600))
            bws.authenticate()
            user = str(uuid.uuid4())
            bws.register_user(user, "Bench")
            bws.register_device("BENCH1", "bench")
            start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)
            container = f"{user}_BENCH1_{start:%Y%m%dT%H%M%SZ}"
            bws.request("PUT", container, expect=(201,))
            common.reset_peak_rss(server.pid)
            idle_hwm, _ = common.peak_rss_mib(server.pid)
            server_cpu = cpu_seconds(server.pid)
            t = time.perf_counter()
            meta = {
                "X-Object-Meta-Starttime": str(int(start.timestamp())),
                "X-Object-Meta-Stoptime": str(int(start.timestamp()) + 600),
            }
            r = bws.http.put(
                bws._url(container, "clip.mp4"),
                content=blocks(total_mib, base),
                headers={"X-Auth-Token": bws.token, "Content-Length": str(total_mib * MiB), **meta},
            )
            assert r.status_code == 201, r.text
            bws.complete(container)
            wall = time.perf_counter() - t
            server_cpu = cpu_seconds(server.pid) - server_cpu
            hwm, _ = common.peak_rss_mib(server.pid)
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
        hashing = in_memory(min(total_mib, 512), base, md5=False)
        hashing_md5 = in_memory(min(total_mib, 512), base, md5=True)
        md5_alone = md5_rate(min(total_mib, 512), base)
        disk = disk_rate(home, total_mib, base)
        limit = min(hashing, disk)
        rate = total_mib * MiB / wall
        results.add("PUT + Complete", f"{rate / 1e6:.0f} MB/s ({wall:.1f} s for {total_mib} MiB)", rate_mb_s=rate / 1e6)
        results.add("in-memory SHA-256 + AES-GCM (one thread)", f"{hashing / 1e6:.0f} MB/s", hash_mb_s=hashing / 1e6)
        results.add("disk: write + one fsync, same bytes", f"{disk / 1e6:.0f} MB/s", disk_mb_s=disk / 1e6)
        results.add(
            "ratio to min(hash + encrypt, disk)",
            f"{rate / limit:.2f}",
            "≥ 0.5",
            rate / limit >= 0.5,
            ratio=rate / limit,
        )
        results.add(
            "ratio to SHA-256 + MD5 + AES-GCM (one thread)", f"{rate / hashing_md5:.2f}", ratio_md5=rate / hashing_md5
        )
        results.add(
            "MD5 alone (one thread): the ETag's ceiling / as a ratio to min(hash + encrypt, disk)",
            f"{md5_alone / 1e6:.0f} MB/s / {md5_alone / limit:.2f}",
            md5_mb_s=md5_alone / 1e6,
            md5_ceiling_ratio=md5_alone / limit,
        )
        gib = total_mib / 1024
        results.add(
            "server CPU time (all threads) per GiB",
            f"{server_cpu / gib:.2f} s (wall {wall / gib:.2f} s)",
            server_cpu_s_per_gib=server_cpu / gib,
        )
        results.add("server peak RSS during the PUT", f"{hwm:.0f} MiB (idle {idle_hwm:.0f} MiB)", peak_mib=hwm)
        results.raw["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")  # a date among the figures
        results.raw["loadavg_before"] = load_before  # the machine is shared
        results.print()
        results.write_json(args.json)
    return 0


if __name__ == "__main__":
    common.main_guard(main)
