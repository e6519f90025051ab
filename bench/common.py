"""Shared pieces of the benchmarks: a throw-away TEMOIN_HOME, bulk loaders, timing and Rich tables.

Every benchmark runs on its own temporary data folder (SQLite, the embedded default) unless --home
is given, and removes it afterwards unless --keep is given. Setup (bulk loading) is done straight
through sqlite3 with the same value formats SQLAlchemy writes, and is not part of what is measured;
what is measured always goes through the platform's own engine and code (WAL, synchronous=FULL).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform as py_platform
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=None if sys.stdout.isatty() else 110)


def now_utc() -> str:
    """The moment of a run, recorded with its figures (never a date written by hand)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


# --- command line ---------------------------------------------------------------------------------


def parser(description: str) -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--quick", action="store_true", help="a much smaller size, for a smoke run")
    ap.add_argument("--home", type=Path, default=None, help="data folder to use (default: a fresh temporary folder)")
    ap.add_argument("--keep", action="store_true", help="keep the data folder afterwards")
    ap.add_argument("--json", type=Path, default=None, help="also write the figures to this JSON file")
    ap.add_argument("--seed", type=int, default=20261123)
    return ap


@contextlib.contextmanager
def bench_home(args: argparse.Namespace, name: str) -> Iterator[Path]:
    if args.home:
        home = args.home.resolve()
        home.mkdir(parents=True, exist_ok=True)
        cleanup = False
    else:
        home = Path(tempfile.mkdtemp(prefix=f"temoin-bench-{name}-"))
        cleanup = not args.keep
    run_start()
    os.environ["TEMOIN_HOME"] = str(home)
    os.environ.pop("TEMOIN_DATABASE_URL", None)
    console.print(f"[dim]TEMOIN_HOME={home}[/dim]")
    try:
        yield home
    finally:
        if cleanup:
            shutil.rmtree(home, ignore_errors=True)
        else:
            console.print(f"[dim]kept {home}[/dim]")


def settings_for(home: Path):  # noqa: ANN201
    from temoin.settings import Settings

    return Settings(home=home, database_url=f"sqlite:///{home / 'temoin.db'}", secure_cookies=False)


def open_platform(home: Path, init: bool = True):  # noqa: ANN201
    from temoin.platform import Platform

    return Platform.open(settings_for(home), init=init)


# --- machine and results --------------------------------------------------------------------------


def machine() -> dict:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem_gib = 0.0
    with contextlib.suppress(OSError, ValueError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = int(line.split()[1]) / 1024 / 1024
    return {
        "cpus": os.cpu_count(),
        "cpu": model,
        "memory_gib": round(mem_gib, 1),
        "python": py_platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
    }


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


# When this run began (bench_home, or the first Results made): (date, load average) — recorded with the figures.
_RUN_START: list[tuple[str, list[float]]] = []


def run_start() -> tuple[str, list[float]]:
    if not _RUN_START:
        _RUN_START.append((now_utc(), loadavg()))
    return _RUN_START[0]


@dataclass
class Results:
    """A bench's figures. The run's start (date, load average) is taken when its data folder is made (bench_home),
    or else when this is made; the load at the end when the figures are printed or written."""

    bench: str
    size: str
    rows: list[tuple[str, str, str, bool | None]] = field(default_factory=list)  # figure, value, target, met
    raw: dict = field(default_factory=dict)
    started: str = field(default_factory=lambda: run_start()[0])
    load_start: list[float] = field(default_factory=lambda: run_start()[1])

    def add(self, figure: str, value: str, target: str = "", ok: bool | None = None, **raw: float) -> None:
        self.rows.append((figure, value, target, ok))
        self.raw.update(raw)

    @staticmethod
    def verdict(ok: bool | None) -> str:
        return "" if ok is None else ("[green]met[/green]" if ok else "[red]NOT met[/red]")

    def print(self) -> None:
        m = machine()
        table = Table(title=f"{self.bench} — {self.size}", title_justify="left")
        for col in ("figure", "value", "target", ""):
            table.add_column(col, justify="right" if col == "value" else "left")
        for figure, value, target, ok in self.rows:
            table.add_row(figure, value, target, self.verdict(ok))
        console.print(table)
        start = " / ".join(f"{x:.1f}" for x in self.load_start)
        end = " / ".join(f"{x:.1f}" for x in os.getloadavg())
        console.print(
            f"[dim]{self.started} · {m['cpus']} cores {m['cpu']} · {m['memory_gib']} GiB · "
            f"Python {m['python']} · SQLite {m['sqlite']} · load average (1/5/15 min) at start {start}, at end {end} "
            f"(other work on the machine skews wall times)[/dim]"
        )

    def write_json(self, path: Path | None) -> None:
        if path is None:
            return
        path.write_text(
            json.dumps(
                {
                    "bench": self.bench,
                    "size": self.size,
                    "date": self.started,
                    "finished": now_utc(),
                    "machine": machine(),
                    "loadavg_start": self.load_start,
                    "loadavg": loadavg(),
                    "figures": self.raw,
                    "rows": [list(r) for r in self.rows],
                },
                indent=2,
                ensure_ascii=False,
            )
        )


def stage_table(title: str, stages: list[tuple[str, float]]) -> None:
    table = Table(title=title, title_justify="left")
    table.add_column("stage")
    table.add_column("seconds", justify="right")
    for name, secs in stages:
        table.add_row(name, f"{secs:.2f}")
    console.print(table)


class Stopwatch:
    def __init__(self) -> None:
        self.stages: list[tuple[str, float]] = []

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        with console.status(f"{name}…"):
            yield
        self.stages.append((name, time.perf_counter() - t0))
        console.print(f"[dim]{name}: {self.stages[-1][1]:.2f} s[/dim]")


def peak_rss_mib(pid: int | str = "self") -> tuple[float, float]:
    """(VmHWM, VmRSS) of a process in MiB, from /proc."""
    hwm = rss = 0.0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            hwm = int(line.split()[1]) / 1024
        elif line.startswith("VmRSS:"):
            rss = int(line.split()[1]) / 1024
    return hwm, rss


def reset_peak_rss(pid: int | str = "self") -> bool:
    """Reset a process's VmHWM to its current RSS (Linux ≥ 4.0: write 5 to /proc/PID/clear_refs)."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
        return True
    except OSError:
        return False


# Started from a small Python rather than from the bench: a forked child's peak RSS counts the pages it shared
# with its parent before exec (a bench that built a journal holds hundreds of MiB), so the command is started by
# this launcher, which reports its child's peak (the command's, or one of its workers' if larger) in a file.
_LAUNCHER = (
    "import resource, subprocess, sys; rc = subprocess.call(sys.argv[2:]); "
    "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)); sys.exit(rc)"
)


def run_measured(cmd: list[str], **popen: object) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command in a fresh process: (its result, wall seconds, its peak RSS in MiB). The peak is the
    command's own (or its largest worker's), not inflated by what this process built before."""
    with tempfile.NamedTemporaryFile("r", suffix=".maxrss") as report:
        t = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, report.name, *cmd],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
            **popen,  # type: ignore[call-overload]  # the caller's env, cwd
        )
        wall = time.perf_counter() - t
        peak_kib = int(report.read() or 0)
    return done, wall, peak_kib / 1024


def timed(fn, *a, **k):  # noqa: ANN001, ANN201
    """(result, wall seconds, CPU seconds of this process)."""
    c, t = time.process_time(), time.perf_counter()
    out = fn(*a, **k)
    return out, time.perf_counter() - t, time.process_time() - c


def secs(wall: float, cpu: float | None = None) -> str:
    """A duration, with this process's CPU time beside it: on a shared machine the CPU time is steadier."""
    return f"{wall:.2f} s" + (f" (CPU {cpu:.2f} s)" if cpu is not None else "")


def percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    k = (len(sorted_values) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (k - lo)


# --- setup: tenants, cameras, users ---------------------------------------------------------------


def make_tenant(p, slug: str, profile: str = "fr-police-municipale", cameras: int = 50):  # noqa: ANN001, ANN201
    from temoin.demo.commune import territory
    from temoin.identity import service

    with p.session() as db:  # the French profile requires the authorised territory (R241-8 II)
        tenant = service.create_tenant(
            p, db, slug=slug, name=slug.title(), profile=profile, authorised_cameras=cameras, territory=territory()
        )
        db.commit()
        return tenant


def enrol_camera(p, slug: str, serial: str):  # noqa: ANN001, ANN201
    """The same path as tests/helpers.py: one-time code, proof of key, enrolment."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from temoin.evidence.canonical import b64e
    from temoin.evidence.signing import public_key_bytes
    from temoin.identity import devices
    from temoin.journal.entry import Actor

    key = Ed25519PrivateKey.generate()
    with p.session() as db:
        code = devices.create_enrolment_code(p, db, p.tenant(db, slug), label=serial, by=Actor.system("bench"))
        proof = b64e(key.sign(f"temoin-enrol\n{code}\n{serial}".encode()))
        device = devices.enrol(p, db, code=code, serial=serial, public_key=public_key_bytes(key), proof=proof)
        return device.id, key


def make_user(p, slug: str, username: str, role: str, agent_number: str | None = None):  # noqa: ANN001, ANN201
    from temoin.identity import service
    from temoin.law.access import Role

    with p.session() as db:
        created = service.create_user(
            p,
            db,
            p.tenant(db, slug),
            username=username,
            display_name=username,
            role=Role(role),
            password="bench password 1234",
            agent_number=agent_number,
        )
        db.commit()
        user = created.user if hasattr(created, "user") else created
        return user.id


# --- bulk catalogue -------------------------------------------------------------------------------


def sql_dt(dt: datetime) -> str:
    """A UTC datetime as SQLAlchemy stores it in SQLite (temoin.db.UTCDateTime drops the zone)."""
    return dt.astimezone(timezone.utc).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def raw_sqlite(home: Path) -> sqlite3.Connection:
    """A loading connection: same file, durability relaxed (setup only, never measured)."""
    conn = sqlite3.connect(home / "temoin.db", isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-524288")  # 512 MiB
    conn.execute("PRAGMA temp_store=MEMORY")
    return conn


@dataclass
class Fleet:
    """Tenants, their cameras and agents, as loaded for the catalogue benchmarks."""

    tenants: list[tuple[int, str]]  # (id, slug)
    devices: dict[int, list[str]]  # tenant id -> device ids
    agents: dict[int, list[str]]  # tenant id -> agent refs


def make_fleet(p, tenants: int, cameras: int, agents: int) -> Fleet:  # noqa: ANN001
    """Tenants through the platform (journaled); cameras inserted directly (enrolment is not measured)."""
    out = Fleet([], {}, {})
    for t in range(tenants):
        slug = f"commune-{t:02d}"
        tenant = make_tenant(p, slug, cameras=cameras)
        out.tenants.append((tenant.id, slug))
        out.agents[tenant.id] = [f"{slug[:3].upper()}{t:02d}-{a:04d}" for a in range(agents)]
    conn = raw_sqlite(p.settings.home)
    now = sql_dt(datetime.now(timezone.utc))
    rows = []
    for tenant_id, slug in out.tenants:
        ids = [f"cam-{uuid.uuid4().hex[:12]}" for _ in range(cameras)]
        out.devices[tenant_id] = ids
        rows += [
            (d, tenant_id, f"{slug}-cam-{n}", f"{slug} camera {n}", os.urandom(32), "active", now)
            for n, d in enumerate(ids)
        ]
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO devices (id, tenant_id, serial, label, public_key, status, enrolled_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    conn.execute("COMMIT")
    conn.close()
    return out


RECORDING_COLUMNS = (
    "id",
    "tenant_id",
    "device_id",
    "agent_ref",
    "agent_user_id",
    "started_at",
    "ended_at",
    "trigger",
    "persons_informed",
    "not_informed_reason",
    "outside_territory",
    "clock_offset_ms",
    "clock_drift_flag",
    "categories",
    "state",
    "state_reason",
    "manifest",
    "manifest_sha256",
    "chain_head",
    "segment_count",
    "size_bytes",
    "wrapped_key",
    "master_key_id",
    "received_at",
    "stored_at",
    "retention_until",
    "deleted_at",
    "receipt",
)

TRIGGERS = ("incident", "person_request", "flagrant_offence", "automatic", "live_request")


def recording_rows(
    fleet: Fleet,
    n: int,
    rng: random.Random,
    *,
    started: tuple[datetime, datetime],
    retention: tuple[datetime, datetime] | None,
    master_key_id: str,
    manifest_bytes: int = 160,
    id_prefix: str = "rec",
) -> Iterator[tuple]:
    """n stored recordings spread evenly over the fleet's tenants, cameras and agents.

    started_at is uniform in `started`; retention_until is uniform in `retention` when given (to control
    how many are due), else started_at + 31 days. Ids are random, like the cameras' (`rec-<16 hex>`).
    """

    def naive(dt: datetime) -> datetime:
        return dt.astimezone(timezone.utc).replace(tzinfo=None)

    def fmt(dt: datetime) -> str:  # what sql_dt gives, faster
        return dt.isoformat(" ", "microseconds")

    t0, span = naive(started[0]), (started[1] - started[0]).total_seconds()
    r0 = naive(retention[0]) if retention else None
    rspan = (retention[1] - retention[0]).total_seconds() if retention else 0.0
    pad = "x" * max(0, manifest_bytes - 40)
    wrapped = os.urandom(60)  # the shape of a wrapped data key; never unwrapped by these benchmarks
    tenants = fleet.tenants
    month = timedelta(days=31)
    rand, bits = rng.random, rng.getrandbits
    for i in range(n):
        tenant_id, _ = tenants[i % len(tenants)]
        start = t0 + timedelta(seconds=int(rand() * span), microseconds=int(rand() * 1e6))
        end = start + timedelta(seconds=30 + int(rand() * 1200))
        until = (r0 + timedelta(seconds=rand() * rspan)) if retention else start + month
        rid = f"{id_prefix}-{bits(64):016x}"
        sha = f"{bits(256):064x}"
        s_end = fmt(end)
        yield (
            rid,
            tenant_id,
            rng.choice(fleet.devices[tenant_id]),
            rng.choice(fleet.agents[tenant_id]),
            None,
            fmt(start),
            s_end,
            TRIGGERS[i % len(TRIGGERS)],
            1,
            None,
            0,
            0,
            0,
            "[]",
            "stored",
            None,
            '{"manifest":{"recording_id":"' + rid + '"},"p":"' + pad + '"}',
            sha,
            sha,
            4,
            64 * 1024 * 1024,
            wrapped,
            master_key_id,
            s_end,
            s_end,
            fmt(until),
            None,
            None,
        )


def bulk_insert_recordings(home: Path, rows: Iterator[tuple], batch: int = 50_000) -> int:
    """Insert rows into `recordings`; its secondary indexes are dropped first and rebuilt after (faster by far
    than maintaining them row by row), exactly as the migration defines them."""
    conn = raw_sqlite(home)
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'recordings' AND sql IS NOT NULL"
    ).fetchall()
    sql = f"INSERT INTO recordings ({', '.join(RECORDING_COLUMNS)}) VALUES ({', '.join('?' * len(RECORDING_COLUMNS))})"
    count = 0
    chunk: list[tuple] = []
    conn.execute("BEGIN")
    for name, _ in indexes:
        conn.execute(f'DROP INDEX "{name}"')
    for row in rows:
        chunk.append(row)
        if len(chunk) >= batch:
            conn.executemany(sql, chunk)
            count += len(chunk)
            chunk.clear()
    if chunk:
        conn.executemany(sql, chunk)
        count += len(chunk)
    for _, create in indexes:
        conn.execute(create)
    conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return count


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"


def main_guard(fn) -> None:  # noqa: ANN001
    try:
        sys.exit(fn() or 0)
    except KeyboardInterrupt:
        console.print("[red]interrupted[/red]")
        sys.exit(130)
