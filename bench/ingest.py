"""Ingest of a large recording over loopback (targets: ≥ 0.8 × the physical limit, min(in-memory SHA-256 +
AES-256-GCM rate, disk write + fsync rate), both measured in the same run; a server peak RSS ≤ 150 MB).

Sets up a tenant and an enrolled camera in-process (same SQLite database), then starts the real server,
`temoin serve` (uvicorn, with TEMOIN_HOME pointing at the temporary folder), in a subprocess. The camera side
signs every request with its Ed25519 key (`temoin.camera.offload.DeviceAuth`, as `VaultClient` does) and
streams its bytes from a generator, so the client never holds more than one piece in memory: the recording is
S segments of M MiB of random bytes (one random MiB, each copy stamped with its segment and block number so
that every MiB, and every segment's hash, differs).

Two upload modes, each a new recording with the same bytes, each measured end to end (manifest, segments,
complete + receipt checked):
  * camera:  what `VaultClient.upload_segment` does, PUTs of PIECE_BYTES (4 MiB) with Content-Range;
  * whole:   one streamed PUT per segment.

In the same run, the in-memory rate of what the vault does to every byte: SHA-256 update + AES-256-GCM
encryption of 1 MiB records (the vault's Sealer key and nonce scheme), single thread, over the same bytes.

    .venv/bin/python bench/ingest.py            # 16 × 128 MiB = 2 GiB per mode
    .venv/bin/python bench/ingest.py --quick    # 4 × 32 MiB = 128 MiB per mode
"""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import common
from common import Results, Stopwatch, console

MiB = 1024 * 1024


class Recording:
    """The bytes of a recording, regenerated on demand (never all held in memory)."""

    def __init__(self, segments: int, segment_mib: int) -> None:
        self.segments, self.segment_mib = segments, segment_mib
        self.base = os.urandom(MiB)
        self.size = segment_mib * MiB

    def block(self, seg: int, j: int) -> bytes:
        return struct.pack(">QQ", seg, j) + self.base[16:]

    def blocks(self, seg: int, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """The segment's bytes from `start` to `end`, in pieces of at most 1 MiB (start/end MiB-aligned)."""
        end = self.size if end is None else end
        for j in range(start // MiB, (end + MiB - 1) // MiB):
            yield self.block(seg, j)

    @property
    def total(self) -> int:
        return self.segments * self.size


def cpu_seconds(pid: int) -> tuple[float, float, int]:
    """(user, system) CPU seconds and minor page faults of a process."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick, int(fields[7])


def disk_rate(home: Path, rec: Recording) -> dict[str, float]:
    """Writing the same number of bytes to files in TEMOIN_HOME with an fsync per segment: the disk's floor."""
    folder = home / "disk-floor"
    folder.mkdir()
    wall = 0.0
    for seg in range(rec.segments):
        blocks = list(rec.blocks(seg))
        t = time.perf_counter()
        with (folder / f"{seg:05d}.bin").open("wb") as fh:
            for block in blocks:
                fh.write(block)
            fh.flush()
            os.fsync(fh.fileno())
        wall += time.perf_counter() - t
        del blocks
    return {"wall": wall, "rate": rec.total / wall}


def prototype(home: Path, rec: Recording, chunk: int) -> dict[str, float]:
    """Not Témoin's code: the same work (SHA-256, AES-256-GCM records of 1 MiB with the vault's key derivation,
    nonces and AAD, length-prefixed records appended to a file, fsync per segment) with one preallocated record
    buffer and no extra copies. Shows what the vault's ingest loop could reach on this machine."""
    from temoin.evidence import crypto

    data_key = crypto.new_data_key()
    folder = home / "prototype"
    folder.mkdir()
    record = bytearray(crypto.RECORD_BYTES)
    view = memoryview(record)
    wall = cpu = 0.0
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for seg in range(rec.segments):
        pieces = [block[start : start + chunk] for block in rec.blocks(seg) for start in range(0, MiB, chunk)]
        t, c = time.perf_counter(), time.process_time()
        header = crypto.new_header()
        aead = crypto._blob_cipher(data_key, header)
        hasher = hashlib.sha256()
        filled = index = 0
        with (folder / f"{seg:05d}.seg").open("wb") as fh:
            fh.write(header)

            def seal(n: int) -> None:
                nonlocal index
                hasher.update(view[:n])
                sealed = aead.encrypt(crypto._nonce(index), view[:n], header)
                fh.write(crypto._LEN.pack(len(sealed)))
                fh.write(sealed)
                index += 1

            for piece in pieces:
                at = 0
                while at < len(piece):
                    n = min(len(piece) - at, crypto.RECORD_BYTES - filled)
                    view[filled : filled + n] = piece[at : at + n]
                    filled, at = filled + n, at + n
                    if filled == crypto.RECORD_BYTES:
                        seal(filled)
                        filled = 0
            if filled:
                seal(filled)
            fh.flush()
            os.fsync(fh.fileno())
        hasher.hexdigest()
        wall, cpu = wall + time.perf_counter() - t, cpu + time.process_time() - c
        del pieces
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return {"wall": wall, "cpu": cpu, "rate": rec.total / wall, "faults": faults}


def in_process(home: Path, rec: Recording, digests: list[bytes], camera, chunk: int) -> dict[str, float]:  # noqa: ANN001
    """The vault's own ingest code (vault.ingest: open_upload, SegmentUpload.feed/finish, complete) called
    directly, no HTTP: bytes fed in `chunk`-sized pieces, as the server's request stream hands them over."""
    from temoin.identity.models import Device
    from temoin.vault import ingest

    p = common.open_platform(home, init=False)
    signed = build_signed_manifest(rec, digests, camera[0], camera[1], "POR-0001")
    raw = signed.model_dump_json(by_alias=True).encode()
    rid = signed.manifest.recording_id
    wall = cpu = 0.0

    def clock() -> tuple[float, float]:
        return time.perf_counter(), time.process_time()

    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with p.session() as db:
        device = db.get(Device, camera[0])
        t, c = clock()
        ingest.open_upload(p, db, device, raw)
        for seg in range(rec.segments):
            # The segment's pieces are made before the clock runs: only the vault's work is timed.
            w, k = clock()
            wall, cpu = wall + w - t, cpu + k - c
            pieces = [block[start : start + chunk] for block in rec.blocks(seg) for start in range(0, MiB, chunk)]
            t, c = clock()
            upload = ingest.SegmentUpload(p, db, device, rid, seg, 0, rec.size)
            for piece in pieces:
                upload.feed(piece)
            status = upload.finish()
            assert status.complete
            del pieces
        ingest.complete(p, db, device, rid)
        w, k = clock()
        wall, cpu = wall + w - t, cpu + k - c
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults  # includes making the pieces
    p.close()
    return {"wall": wall, "cpu": cpu, "rate": rec.total / wall, "faults": faults}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def in_memory_rates(rec: Recording) -> dict[str, float]:
    """SHA-256 + AES-256-GCM (1 MiB records, the vault's key derivation, nonces and AAD) over the same bytes."""
    from temoin.evidence import crypto

    data_key = crypto.new_data_key()
    rates: dict[str, float] = {}
    for what in ("sha256+aesgcm", "sha256", "aesgcm"):
        header = crypto.new_header()
        aead = crypto._blob_cipher(data_key, header)  # what Sealer uses
        spent = cpu = 0.0
        for seg in range(rec.segments):
            hasher = hashlib.sha256()
            for index, block in enumerate(rec.blocks(seg)):
                c, t = time.process_time(), time.perf_counter()
                if what != "aesgcm":
                    hasher.update(block)
                if what != "sha256":
                    aead.encrypt(crypto._nonce(index), block, header)
                spent += time.perf_counter() - t
                cpu += time.process_time() - c
            if what == "sha256":
                hasher.hexdigest()
        rates[what] = rec.total / spent
        rates[what + "_cpu"] = rec.total / cpu if cpu else float("nan")
    return rates


def build_signed_manifest(rec: Recording, digests: list[bytes], camera_id: str, key, agent: str):  # noqa: ANN001, ANN201
    from temoin.evidence.chain import chain_links
    from temoin.evidence.manifest import RecordingManifest, SegmentEntry, SignedManifest, Trigger

    recording_id = f"rec-{uuid.uuid4().hex[:16]}"
    started = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)
    seg_s = 120.0
    links = chain_links(recording_id, digests)
    entries = [
        SegmentEntry(
            index=i,
            size=rec.size,
            sha256=d.hex(),
            chain=link.hex(),
            started_at=started + timedelta(seconds=seg_s * i),
            duration_s=seg_s,
        )
        for i, (d, link) in enumerate(zip(digests, links))
    ]
    manifest = RecordingManifest(
        recording_id=recording_id,
        camera_id=camera_id,
        agent_id=agent,
        started_at=started,
        ended_at=started + timedelta(seconds=seg_s * rec.segments),
        trigger=Trigger.INCIDENT,
        persons_informed=True,
        clock_offset_ms=0,
        segments=entries,
    )
    return SignedManifest.sign(manifest, key)


def upload(
    base_url: str,
    camera: tuple[str, object],
    platform_key: bytes,
    rec: Recording,
    signed,  # noqa: ANN001
    mode: str,
) -> None:
    from temoin.camera.offload import PIECE_BYTES, VaultClient

    client = VaultClient(base_url, camera[0], camera[1], platform_key, timeout=300)
    try:
        status = client.send_manifest(signed)
        rid = signed.manifest.recording_id
        for seg in status["segments"]:
            index, start = seg["index"], seg["received"]
            url = f"/api/v1/ingest/recordings/{rid}/segments/{index}"
            step = PIECE_BYTES if mode == "camera" else rec.size
            while start < rec.size:
                end = min(start + step, rec.size)
                response = client.http.put(
                    url,
                    content=rec.blocks(index, start, end),
                    headers={
                        "Content-Length": str(end - start),
                        "Content-Range": f"bytes {start}-{end - 1}/{rec.size}",
                        "Content-Type": "application/octet-stream",
                    },
                )
                client._check(response, 200)
                start = int(response.headers["Upload-Offset"])
        receipt = client.complete(rid)
        if not (receipt.verify(platform_key) and receipt.matches(signed.manifest)):
            raise RuntimeError("the receipt does not check out")
    finally:
        client.close()


def main() -> int:
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--segments", type=int, default=None, help="segments (default 16)")
    ap.add_argument("--segment-mib", type=int, default=None, help="MiB per segment (default 128)")
    ap.add_argument("--mode", choices=("both", "camera", "whole"), default="both")
    ap.add_argument(
        "--chunk-kib",
        type=int,
        default=256,
        help="piece size fed to SegmentUpload in the in-process measurement (default 256 KiB, about "
        "what uvicorn hands over per read on loopback)",
    )
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server (e.g. MALLOC_TRIM_THRESHOLD_=67108864); repeatable",
    )
    ap.add_argument(
        "--server-profile",
        type=Path,
        default=None,
        help="run the server under cProfile and write its (event-loop thread) profile here",
    )
    args = ap.parse_args()
    os.umask(0o077)  # `temoin serve` refuses a home that group or others may read
    segments = args.segments or (4 if args.quick else 16)
    seg_mib = args.segment_mib or (32 if args.quick else 128)
    rec = Recording(segments, seg_mib)
    modes = ("camera", "whole") if args.mode == "both" else (args.mode,)
    sw = Stopwatch()

    import httpx

    from temoin.evidence.canonical import b64d

    with common.bench_home(args, "ingest") as home:
        with sw.stage("setup: tenant and camera (in-process)"):
            p = common.open_platform(home)
            common.make_tenant(p, "port-temoin", cameras=4)
            camera = common.enrol_camera(p, "port-temoin", "port-temoin-cam-0")
            p.close()
        with sw.stage(f"setup: hash the {common.human_bytes(rec.total)} for the manifest (camera side)"):
            digests = []
            for seg in range(segments):
                h = hashlib.sha256()
                for block in rec.blocks(seg):
                    h.update(block)
                digests.append(h.digest())
        port = free_port()
        base_url = f"http://127.0.0.1:{port}"
        env = dict(os.environ, TEMOIN_HOME=str(home), TEMOIN_INSECURE_COOKIES="1")
        env.pop("TEMOIN_DATABASE_URL", None)
        env.update(item.split("=", 1) for item in args.server_env)
        log = (home / "server.log").open("wb")
        with sw.stage("setup: start `temoin serve`"):
            command = [
                str(Path(sys.executable).with_name("temoin")),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
            ]
            if args.server_profile:
                command = [sys.executable, "-m", "cProfile", "-o", str(args.server_profile.resolve())] + command
            server = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
            deadline = time.monotonic() + 60
            while True:
                try:
                    info = httpx.get(f"{base_url}/api/v1/platform", timeout=2).json()
                    break
                except httpx.HTTPError:
                    if server.poll() is not None or time.monotonic() > deadline:
                        server.kill()
                        raise RuntimeError(f"the server did not start: see {home / 'server.log'}") from None
                    time.sleep(0.2)
        common.stage_table("setup (not measured)", sw.stages)
        platform_key = b64d(info["public_key"])
        started_hwm, started_rss = common.peak_rss_mib(server.pid)

        try:
            figures: dict[str, dict[str, float]] = {}
            for mode in modes:
                signed = build_signed_manifest(rec, digests, camera[0], camera[1], "POR-0001")
                reset = common.reset_peak_rss(server.pid)
                (s_user, s_sys, s_flt), c_cpu = cpu_seconds(server.pid), time.process_time()
                t = time.perf_counter()
                with console.status(f"uploading {common.human_bytes(rec.total)} ({mode})…"):
                    upload(base_url, camera, platform_key, rec, signed, mode)
                wall = time.perf_counter() - t
                hwm, rss = common.peak_rss_mib(server.pid)
                user, system, flt = cpu_seconds(server.pid)
                figures[mode] = {
                    "wall": wall,
                    "rate": rec.total / wall,
                    "server_user": user - s_user,
                    "server_sys": system - s_sys,
                    "client_cpu": time.process_time() - c_cpu,
                    "faults": flt - s_flt,
                    "reset": reset,
                    "hwm": hwm,
                    "rss": rss,
                }
                console.print(
                    f"[dim]{mode}: {wall:.1f} s, {rec.total / wall / 1e6:.0f} MB/s, server VmHWM {hwm:.0f} MiB[/dim]"
                )
        finally:
            server.send_signal(signal.SIGINT)
            try:
                server.wait(30)
            except subprocess.TimeoutExpired:
                server.kill()
            log.close()
        with console.status("in-memory SHA-256 + AES-256-GCM over the same bytes…"):
            rates = in_memory_rates(rec)
        with console.status("the vault's ingest code in-process, no HTTP…"):
            direct = in_process(home, rec, digests, camera, args.chunk_kib * 1024)
        with console.status("disk: write + fsync of the same bytes…"):
            disk = disk_rate(home, rec)
        with console.status("prototype of a copy-free seal loop…"):
            proto = prototype(home, rec, args.chunk_kib * 1024)
        stored = sum(f.stat().st_size for f in (home / "vault" / "blobs").rglob("*.seg"))

        # The physical limit of this machine for this work: hashing + sealing in memory, or the disk, the slower.
        base = min(rates["sha256+aesgcm"], disk["rate"])
        limit_by = "in-memory" if base == rates["sha256+aesgcm"] else "disk"
        res = Results(
            "ingest over loopback",
            f"{segments} × {seg_mib} MiB = {common.human_bytes(rec.total)} per "
            f"mode, `temoin serve` (uvicorn) on 127.0.0.1, SQLite",
        )
        res.add(
            "in-memory SHA-256 + AES-256-GCM (1 MiB records)",
            f"{rates['sha256+aesgcm'] / 1e6:,.0f} MB/s",
            in_memory_mb_s=rates["sha256+aesgcm"] / 1e6,
            in_memory_cpu_mb_s=rates["sha256+aesgcm_cpu"] / 1e6,
        )
        res.add(
            "  SHA-256 alone / AES-256-GCM alone",
            f"{rates['sha256'] / 1e6:,.0f} / {rates['aesgcm'] / 1e6:,.0f} MB/s",
            sha256_mb_s=rates["sha256"] / 1e6,
            aesgcm_mb_s=rates["aesgcm"] / 1e6,
        )
        res.add(
            "disk: write + fsync per segment, same bytes",
            f"{disk['rate'] / 1e6:,.0f} MB/s",
            disk_mb_s=disk["rate"] / 1e6,
        )
        res.add(
            "limit = min(in-memory, disk)",
            f"{base / 1e6:,.0f} MB/s ({limit_by})",
            limit_mb_s=base / 1e6,
        )
        for mode, f in figures.items():
            label = "camera (4 MiB PUTs, as VaultClient)" if mode == "camera" else "whole segment per PUT"
            res.add(
                f"{label}: throughput",
                f"{f['rate'] / 1e6:,.0f} MB/s ({f['wall']:.1f} s)",
                **{f"{mode}_mb_s": f["rate"] / 1e6, f"{mode}_s": f["wall"]},
            )
            res.add(
                "  ratio to the limit",
                f"{f['rate'] / base:.2f}",
                "≥ 0.8",
                f["rate"] / base >= 0.8,
                **{f"{mode}_ratio": f["rate"] / base},
            )
            server_cpu = f["server_user"] + f["server_sys"]
            res.add(
                "  server CPU (user + system) / client CPU",
                f"{f['server_user']:.1f} + {f['server_sys']:.1f} s / {f['client_cpu']:.1f} s "
                f"({server_cpu / (rec.total / 1e9):.1f} s per GB on the server)",
                **{
                    f"{mode}_server_user_s": f["server_user"],
                    f"{mode}_server_sys_s": f["server_sys"],
                    f"{mode}_client_cpu_s": f["client_cpu"],
                },
            )
            res.add(
                "  server minor page faults per MiB received",
                f"{f['faults'] / (rec.total / MiB):,.0f}",
                **{f"{mode}_server_faults_per_mib": f["faults"] / (rec.total / MiB)},
            )
            what = "server peak RSS during this upload" if f["reset"] else "server VmHWM after this upload"
            res.add(
                f"  {what} (RSS after)",
                f"{f['hwm']:.0f} MiB = {f['hwm'] * MiB / 1e6:.0f} MB ({f['rss']:.0f} MiB)",
                "≤ 150 MB",
                f["hwm"] * MiB / 1e6 <= 150,
                **{f"{mode}_server_hwm_mib": f["hwm"], f"{mode}_server_rss_after_mib": f["rss"]},
            )
        res.add(
            f"vault.ingest in-process, no HTTP ({args.chunk_kib} KiB pieces)",
            f"{direct['rate'] / 1e6:,.0f} MB/s ({common.secs(direct['wall'], direct['cpu'])})",
            direct_mb_s=direct["rate"] / 1e6,
            direct_s=direct["wall"],
            direct_cpu_s=direct["cpu"],
        )
        res.add("  ratio to the limit", f"{direct['rate'] / base:.2f}", direct_ratio=direct["rate"] / base)
        res.add(
            "  minor page faults per MiB (pieces included)",
            f"{direct['faults'] / (rec.total / MiB):,.0f}",
            direct_faults_per_mib=direct["faults"] / (rec.total / MiB),
        )
        res.add(
            "prototype copy-free seal loop, same work (bench only)",
            f"{proto['rate'] / 1e6:,.0f} MB/s ({common.secs(proto['wall'], proto['cpu'])})",
            proto_mb_s=proto["rate"] / 1e6,
            proto_cpu_s=proto["cpu"],
        )
        res.add(
            "  ratio to the limit / page faults per MiB",
            f"{proto['rate'] / base:.2f} / {proto['faults'] / (rec.total / MiB):,.0f}",
            proto_ratio=proto["rate"] / base,
            proto_faults_per_mib=proto["faults"] / (rec.total / MiB),
        )
        res.add(
            "server RSS / VmHWM once started (before any upload)",
            f"{started_rss:.0f} / {started_hwm:.0f} MiB = {started_hwm * MiB / 1e6:.0f} MB",
            "≤ 150 MB",
            started_hwm * MiB / 1e6 <= 150,
            server_start_rss_mib=started_rss,
            server_start_hwm_mib=started_hwm,
        )
        res.add("client peak RSS (this process)", f"{common.peak_rss_mib()[0]:.0f} MiB")
        res.add("stored (sealed blobs)", common.human_bytes(stored), stored_bytes=stored)
        res.raw.update(bytes_per_mode=rec.total, segments=segments, segment_mib=seg_mib)
        res.print()
        res.write_json(args.json)
    return 0


if __name__ == "__main__":
    common.main_guard(main)
