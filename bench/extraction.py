"""Packaging an extraction: throughput of `temoin.extraction.package.extract` (decrypt from the vault, hash,
write the zip, hash the zip, custody PDF, signature) as a ratio to min(in-memory SHA-256 + AES-256-GCM
decrypt rate, disk write + fsync rate), both measured in the same run over the same bytes. Target: ratio >= 0.8
(issue #20, for 4 GiB). `--json bench/results/extraction-<name>.json`, then bench/extraction_table.py.

    .venv/bin/python bench/extraction.py               # 512 MiB
    .venv/bin/python bench/extraction.py --size 4G     # the issue's figure
    .venv/bin/python bench/extraction.py --quick       # 128 MiB
"""

from __future__ import annotations

import hashlib
import os
import struct
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import common  # noqa: E402
from common import Results, Stopwatch  # noqa: E402

MiB = 1024 * 1024


def parse_size(text: str) -> int:
    units = {"K": 1024, "M": MiB, "G": 1024 * MiB}
    text = text.strip().upper().rstrip("B").rstrip("I")
    if text and text[-1] in units:
        return int(float(text[:-1]) * units[text[-1]])
    return int(text)


class Media:
    """A recording's bytes, regenerated on demand: one random MiB stamped with its segment and block."""

    def __init__(self, segments: int, segment_mib: int) -> None:
        self.segments, self.segment_mib = segments, segment_mib
        self.base = os.urandom(MiB)
        self.size = segment_mib * MiB

    def blocks(self, seg: int):  # noqa: ANN201
        for j in range(self.segment_mib):
            yield struct.pack(">QQ", seg, j) + self.base[16:]

    @property
    def total(self) -> int:
        return self.segments * self.size


def signed_manifest(media: Media, digests: list[bytes], camera_id: str, key):  # noqa: ANN001, ANN201
    from temoin.evidence.chain import chain_links
    from temoin.evidence.manifest import GpsFix, RecordingManifest, SegmentEntry, SignedManifest, Trigger

    rid = f"rec-{uuid.uuid4().hex[:16]}"
    started = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=3)
    seg_s = 30.0
    links = chain_links(rid, digests)
    entries = [
        SegmentEntry(
            index=i,
            size=media.size,
            sha256=d.hex(),
            chain=link.hex(),
            started_at=started + timedelta(seconds=seg_s * i),
            duration_s=seg_s,
        )
        for i, (d, link) in enumerate(zip(digests, links))
    ]
    end = started + timedelta(seconds=seg_s * media.segments)
    track = [
        GpsFix(t=started + timedelta(seconds=10 * i), lat=43.55 + i * 1e-5, lon=4.08, accuracy_m=5)
        for i in range(int(seg_s * media.segments / 10))
    ]
    manifest = RecordingManifest(
        recording_id=rid,
        camera_id=camera_id,
        agent_id="POR-0001",
        started_at=started,
        ended_at=end,
        trigger=Trigger.INCIDENT,
        persons_informed=True,
        clock_offset_ms=0,
        segments=entries,
        gps_track=track[:20_000],
    )
    return SignedManifest.sign(manifest, key)


def ingest(p, media: Media, camera) -> str:  # noqa: ANN001
    """The vault's own ingest path, in-process (setup, not measured)."""
    from temoin.identity.models import Device
    from temoin.vault import ingest as vault_ingest

    digests = []
    for seg in range(media.segments):
        h = hashlib.sha256()
        for block in media.blocks(seg):
            h.update(block)
        digests.append(h.digest())
    signed = signed_manifest(media, digests, camera[0], camera[1])
    rid = signed.manifest.recording_id
    with p.session() as db:
        device = db.get(Device, camera[0])
        vault_ingest.open_upload(p, db, device, signed.model_dump_json(by_alias=True).encode())
        for seg in range(media.segments):
            upload = vault_ingest.SegmentUpload(p, db, device, rid, seg, 0, media.size)
            for block in media.blocks(seg):
                upload.feed(block)
            assert upload.finish().complete
        vault_ingest.complete(p, db, device, rid)
    return rid


def in_memory_rate(media: Media, limit: int, package_work: bool = False) -> tuple[float, float]:
    """SHA-256 + AES-256-GCM decryption of 1 MiB records (the vault's key derivation, nonces and AAD) over
    the same bytes, from memory: (bytes per second wall, per CPU second). Sealing is not timed.

    `package_work`: what a package needs per byte instead, one thread: decryption, the file's SHA-256, the zip's
    SHA-256 (the same bytes inside the zip: the format needs both) and the zip entry's CRC-32."""
    import zlib

    from temoin.evidence import crypto

    key, header = crypto.new_data_key(), crypto.new_header()
    sealer = crypto.Sealer(key, header)
    aead = crypto._blob_cipher(key, header)
    wall = cpu = 0.0
    done = 0
    zip_hasher, crc = hashlib.sha256(), 0
    for seg in range(media.segments):
        hasher = hashlib.sha256()
        for block in media.blocks(seg):
            index = sealer.index
            _, sealed = sealer.seal_record(block)
            c, t = time.process_time(), time.perf_counter()
            plain = aead.decrypt(crypto._nonce(index), sealed, header)
            hasher.update(plain)
            if package_work:
                zip_hasher.update(plain)
                crc = zlib.crc32(plain, crc)
            wall += time.perf_counter() - t
            cpu += time.process_time() - c
            done += len(block)
        hasher.hexdigest()
        if done >= limit:
            break
    return done / wall, done / cpu


def disk_rate(home: Path, media: Media) -> float:
    """Writing the same number of bytes to a file in the same folder, then fsync: what the disk allows."""
    path = home / "disk-rate.tmp"
    block = media.base
    t = time.perf_counter()
    with path.open("wb") as fh:
        for _ in range(media.total // MiB):
            fh.write(block)
        fh.flush()
        os.fsync(fh.fileno())
    rate = media.total / (time.perf_counter() - t)
    path.unlink()
    return rate


def main() -> int:
    ap = common.parser(__doc__.split("\n\n")[0])
    ap.add_argument("--size", default=None, help="size of the extraction, e.g. 512M, 4G (default 512M)")
    ap.add_argument("--segment-mib", type=int, default=16, help="MiB per segment (default 16)")
    ap.add_argument("--no-verify", action="store_true", help="skip timing `temoin verify` on the zip")
    args = ap.parse_args()
    size = parse_size(args.size or ("128M" if args.quick else "512M"))
    segments = max(1, size // (args.segment_mib * MiB))
    media = Media(segments, args.segment_mib)
    sw = Stopwatch()
    measured_at = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    load_before = os.getloadavg()
    res = Results("extraction", f"{common.human_bytes(media.total)} in {segments} × {args.segment_mib} MiB")

    with common.bench_home(args, "extraction") as home:
        with sw.stage("setup: tenant, camera, chief"):
            p = common.open_platform(home)
            common.make_tenant(p, "port-temoin", cameras=4)
            camera = common.enrol_camera(p, "port-temoin", "port-temoin-cam-0")
            user_id = common.make_user(p, "port-temoin", "chief", "chief")
        with sw.stage(f"setup: ingest {common.human_bytes(media.total)} through vault.ingest (in-process)"):
            rid = ingest(p, media, camera)
        with sw.stage("in-memory SHA-256 + AES-256-GCM decrypt (same bytes)"):
            base, base_cpu = in_memory_rate(media, media.total)
        with sw.stage("in-memory, the package's work: decrypt, two SHA-256, CRC-32 (same bytes)"):
            work, work_cpu = in_memory_rate(media, media.total, package_work=True)

        with sw.stage("disk: write + fsync of the same number of bytes"):
            disk = disk_rate(home, media)

        from temoin.extraction import package as pkg
        from temoin.extraction.package_verify import verify_package
        from temoin.identity.models import User

        request = pkg.ExtractionRequest(
            recording_ids=[rid],
            recipient_name="OPJ Bench",
            recipient_kind=pkg.RecipientKind.JUDICIAL_POLICE,
            procedure_type=pkg.ProcedureType.JUDICIAL,
            reference="PV 2026/0001",
        )
        with p.session() as db:
            user = db.get(User, user_id)
            c, t = time.process_time(), time.perf_counter()
            with sw.stage("extract: package (zip, hashes, PDF, signature, journal)"):
                row, built = pkg.extract(p, db, user, request)
            wall, cpu = time.perf_counter() - t, time.process_time() - c
        rate = media.total / wall
        res.add(
            "in-memory SHA-256 + AES-256-GCM decrypt",
            f"{base / 1e6:,.0f} MB/s (CPU {base_cpu / 1e6:,.0f})",
            in_memory_mb_s=base / 1e6,
            in_memory_cpu_mb_s=base_cpu / 1e6,
        )
        res.add(
            "packaging",
            f"{rate / 1e6:,.0f} MB/s ({common.secs(wall, cpu)})",
            packaging_mb_s=rate / 1e6,
            packaging_wall_s=wall,
            packaging_cpu_s=cpu,
        )
        res.add("ratio packaging / in-memory", f"{rate / base:.2f}", ratio=rate / base)
        res.add("disk: write + fsync, same size", f"{disk / 1e6:,.0f} MB/s", disk_mb_s=disk / 1e6)
        bound = min(base, disk)
        res.add(
            "packaging / min(in-memory, disk)",
            f"{rate / bound:.2f}",
            ">= 0.8",
            rate / bound >= 0.8,
            ratio_to_bound=rate / bound,
        )
        # The package's own work, one thread, and what two cores could make of it at best: on this 2-core machine
        # the goal's denominator (one SHA-256 + decrypt) is out of reach when the CPU, not the disk, is the limit.
        cores = os.cpu_count() or 1
        ceiling = min(cores * work_cpu, disk) / bound
        res.add(
            "in-memory, the package's work (decrypt + 2 × SHA-256 + CRC-32, 1 thread)",
            f"{work / 1e6:,.0f} MB/s (CPU {work_cpu / 1e6:,.0f})",
            package_work_mb_s=work / 1e6,
            package_work_cpu_mb_s=work_cpu / 1e6,
        )
        res.add(
            f"  best ratio {cores} cores allow: min({cores} × its CPU rate, disk) / min(in-memory, disk)",
            f"{ceiling:.2f}",
            ceiling_ratio=ceiling,
        )
        mib = media.total / MiB
        res.add(
            "CPU per MiB: packaging (all threads) / in-memory",
            f"{cpu / mib * 1e3:.2f} ms / {1e3 * MiB / base_cpu:.2f} ms",
            packaging_cpu_ms_per_mib=cpu / mib * 1e3,
            in_memory_cpu_ms_per_mib=1e3 * MiB / base_cpu,
        )
        res.raw.update(measured_at=measured_at, loadavg_before=load_before)  # the date and load of this run
        res.add("zip", f"{common.human_bytes(built.size)}, SHA-256 {built.sha256[:16]}…", zip_bytes=built.size)
        if not args.no_verify:
            zip_path = p.settings.home / f"{row.id}.zip"
            pkg.copy_package(p, row, zip_path)  # sealed in the blob store: the recipient's plaintext copy
            with sw.stage("temoin verify on the zip"):
                t = time.perf_counter()
                report = verify_package(zip_path, p.keyring.public_key_pem())
                vwall = time.perf_counter() - t
            assert report.ok, report.problems
            res.add(
                "verify (zip, offline)",
                f"{built.size / vwall / 1e6:,.0f} MB/s ({vwall:.2f} s)",
                verify_mb_s=built.size / vwall / 1e6,
            )
        p.close()
    common.stage_table("stages", sw.stages)
    res.print()
    res.write_json(args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
