"""`temoin camera`: enrol a camera, run it, see what it holds (never the content), offload it.

temoin camera enroll --url URL --code CODE --serial SERIAL [--home DIR]
temoin camera run [--url URL] [--home DIR] [--source SPEC] [--docked] [--trigger-port N]
temoin camera status [--home DIR]
temoin camera offload [--url URL] [--home DIR]
"""

from __future__ import annotations

import hashlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.text import Text

from temoin.camera import DEFAULT_HOME, SOURCE_HELP
from temoin.cli.context import console, err

if TYPE_CHECKING:  # the media stack (PyAV, numpy) loads only when a camera command runs
    from temoin.camera.runner import CameraRuntime, OffloadProgress

camera_app = typer.Typer(help="The camera agent: enrol, run, status, offload.", no_args_is_help=True)

HOME_OPTION = typer.Option(DEFAULT_HOME, "--home", help="the camera's folder: keys, recordings, receipts")


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[red]{message}[/red]")
    return typer.Exit(code)


def _fingerprint(key: bytes) -> str:
    return hashlib.sha256(key).hexdigest()[:16]


@camera_app.command("enroll")
def enroll(
    url: str = typer.Option(..., help="the platform, e.g. https://temoin.example.fr"),
    code: str = typer.Option(..., help="one-time enrolment code from an administrator"),
    serial: str = typer.Option(..., help="this camera's serial number"),
    home: Path = HOME_OPTION,
) -> None:
    """Generate (or keep) this camera's keys, enrol it with a one-time code, pin the platform key."""
    import httpx

    from temoin.camera.offload import OffloadError
    from temoin.camera.runner import CameraHome

    camera = CameraHome(home)
    try:
        identity = camera.enrol(url, code, serial, timeout=30)
    except OffloadError as exc:
        raise _fail(str(exc)) from None
    except httpx.HTTPError as exc:
        raise _fail(f"cannot reach the platform at {url}: {exc}") from None
    console.print(f"camera [bold]{serial}[/bold] enrolled as [bold]{identity.device_id}[/bold] in {identity.tenant}")
    console.print(
        f"platform key pinned (fingerprint {_fingerprint(camera.platform_key())}); keys and recordings in {camera.root}"
    )
    link = camera.link(url)
    try:
        settings = link.fetch()
    except (OffloadError, httpx.HTTPError) as exc:
        console.print(f"[yellow]settings not fetched yet ({exc}): `temoin camera run` will retry[/yellow]")
        return
    finally:
        link.close()
    who = (
        f"{settings.assignment.display_name} ({settings.agent_id})"
        if settings.assignment
        else "nobody yet (check it out to an agent)"
    )
    console.print(f"assigned to: {who}; clock offset {settings.clock_offset_ms} ms")


def _gps(spec: str, source: str, clock):
    from temoin.camera.gps import SimulatedWalk
    from temoin.geo.demo_commune import streets

    kind, _, street = spec.partition(":")
    if kind == "none" or (kind == "auto" and not source.startswith("synthetic")):
        return None
    if kind in ("auto", "simulated"):
        street = street or next(iter(streets()))
        if street not in streets():
            raise _fail(f"no street {street!r} in the demo commune: {', '.join(streets())}")
        return SimulatedWalk(clock(), street)
    raise _fail(f"unknown --gps {spec!r}: auto, none or simulated[:STREET]")


@camera_app.command("run")
def run(
    url: str | None = typer.Option(None, help="the platform (default: the one enrolled with)"),
    home: Path = HOME_OPTION,
    source: str = typer.Option("synthetic", help=SOURCE_HELP),
    width: int = typer.Option(320, min=16),
    height: int = typer.Option(240, min=16),
    fps: int = typer.Option(10, min=1, max=60),
    gps: str = typer.Option(
        "auto", help="auto (simulated walk with the synthetic source), none, simulated[:STREET of the demo commune]"
    ),
    docked: bool = typer.Option(
        False, "--docked/--undocked", help="on the dock: offload after every recording and at exit"
    ),
    trigger_port: int = typer.Option(
        8787,
        min=0,
        max=65535,
        help="local port (127.0.0.1 only) for inputs: POST /trigger/taser "
        '{"armed": true}, /button/record, /button/live, /dock; 0: any',
    ),
    duration: float | None = typer.Option(None, min=0, help="stop after this many seconds"),
    segment: float = typer.Option(2.0, min=0.5, max=30, help="segment length in seconds"),
) -> None:
    """Run the camera in real time: pre-event buffer, recording on a button or an input, status line."""
    from temoin.camera.clock import system_clock
    from temoin.camera.runner import CameraHome, CameraRuntime, CameraSetupError
    from temoin.camera.signals import TerminalSignals
    from temoin.camera.sources import SourceError, open_sources, parse_source

    camera = CameraHome(home)
    try:
        spec = parse_source(source)
        video, audio = open_sources(spec, system_clock, width=width, height=height, fps=fps)
        signals = TerminalSignals()
        runtime = CameraRuntime(
            camera,
            video=video,
            audio=audio,
            gps=_gps(gps, source, system_clock),
            signals=signals,
            url=url,
            segment_s=segment,
            docked=docked,
        )
    except (ValueError, SourceError, CameraSetupError) as exc:
        raise _fail(str(exc)) from None
    try:
        server = runtime.serve_inputs(trigger_port)
    except OSError as exc:
        runtime.close()
        raise _fail(f"{exc}: choose another --trigger-port") from None
    for note in runtime.notes:
        console.print(f"[yellow]{note}[/yellow]")
    if runtime.agent.recovered:
        console.print(f"{len(runtime.agent.recovered)} recording(s) cut short by a crash were finalised")
    if gps == "none" or runtime.agent.gps is None:
        signals.warn("no GPS receiver: the place of collection is not recorded (prove it otherwise)")
    console.print(
        f"camera {runtime.identity.device_id} · source {spec.describe()} · inputs on {server.url} "
        f'(POST /trigger/taser {{"armed": true}}, /button/record, /button/live, /dock)'
    )
    console.print(f"ready on {server.url}", highlight=False)  # a line scripts can wait for
    keys = _Keyboard(runtime) if sys.stdin.isatty() else None
    if keys:
        console.print(
            "keys: [bold]r[/bold] record/stop · [bold]l l[/bold] live · [bold]t[/bold] taser armed · "
            "[bold]d[/bold] dock/undock · [bold]q[/bold] quit"
        )

    def stop(*_: object) -> None:
        runtime.stop_requested.set()

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    display = _StatusDisplay(runtime, signals)
    runtime.on_offload_start = display.offload_started
    runtime.on_offload_done = display.offload_done
    try:
        with display:
            runtime.run(duration, on_tick=display.tick)
    except SourceError as exc:  # the sensor went away: what was recorded is finalised, then say so
        display.flush()
        raise _fail(str(exc)) from None
    finally:
        if keys:
            keys.restore()
        server.close()
        display.flush()
        runtime.close()
    pending = len(runtime.agent.store.pending())
    console.print(
        f"stopped; {pending} recording(s) waiting for the vault"
        + ("" if pending == 0 else ": dock the camera (`temoin camera offload`)")
    )


class _StatusDisplay:
    """The terminal status line (red dot and elapsed time while recording), events above it."""

    def __init__(self, runtime: CameraRuntime, signals) -> None:
        from rich.live import Live

        self.runtime, self.signals = runtime, signals
        self._shown = 0
        self._next = 0.0
        self.live = (
            Live(Text(""), console=console, refresh_per_second=4, transient=True) if console.is_terminal else None
        )
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}

    def __enter__(self) -> _StatusDisplay:
        if self.live:
            self.live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.live:
            self.live.stop()

    def line(self) -> Text:
        agent = self.runtime.agent
        now = self.runtime.clock()
        pending = len(agent.store.pending())
        parts = [
            self.signals.status_line(now),
            f"agent {agent.agent_id}",
            f"clock {agent.clock_offset_ms:+d} ms" if agent.clock_offset_ms is not None else "clock unchecked",
            f"{pending} pending",
            "docked" if self.runtime.docked else "worn",
        ]
        return Text(" · ".join(parts))

    def flush(self) -> bool:
        new = self.signals.events[self._shown :]
        for event in new:
            console.print(event, highlight=False)
        self._shown += len(new)
        return bool(new)

    def tick(self) -> None:
        if (self.flush() or time.monotonic() >= self._next) and self.live:
            self._next = time.monotonic() + 0.25
            self.live.update(self.line())

    def offload_started(self, pending: list[tuple[str, int]]) -> OffloadProgress:
        self.flush()
        if self.live:
            self.live.stop()
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        self._progress.start()
        self._tasks = {rid: self._progress.add_task(f"offload {rid}", total=size) for rid, size in pending}

        def advance(rid: str, n: int) -> None:
            if self._progress is not None and rid in self._tasks:
                self._progress.advance(self._tasks[rid], n)

        return advance

    def offload_done(self, outcome) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        _report(outcome)
        if self.live:
            self.live.start()


def _report(outcome) -> None:
    for rid, receipt in outcome.sent.items():
        lost = receipt.receipt.lost_segments
        console.print(
            f"[green]{rid}[/green] stored by the vault (receipt verified, retained until "
            f"{receipt.receipt.retention_until:%Y-%m-%d}"
            + (f"; segments {lost} lost: damaged on the camera" if lost else "")
            + "); local copy deleted"
        )
    for rid, deletion in outcome.deleted.items():
        console.print(
            f"[yellow]{rid}[/yellow] was deleted by the vault ({deletion.reason}, certificate "
            f"{deletion.certificate_id}, {deletion.deleted_at}) before its upload ended: signed statement "
            "checked, local copy deleted"
        )
    for rid, files in outcome.quarantined.items():
        console.print(f"[red]{rid}: damaged segment(s) quarantined on the camera[/red]: {', '.join(files)}")
    for rid, why in outcome.kept.items():
        console.print(f"[red]{rid} kept on the camera[/red]: {why}")


class _Keyboard:
    """Single keys from a terminal (cbreak mode), turned into commands for the capture loop."""

    def __init__(self, runtime: CameraRuntime) -> None:
        import termios
        import tty

        self.runtime = runtime
        self.fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(self.fd)
        tty.setcbreak(self.fd)
        threading.Thread(target=self._read, daemon=True, name="camera-keys").start()

    def _read(self) -> None:
        agent = self.runtime.agent
        actions: dict[str, Callable[[], object]] = {
            "r": agent.press_record,
            "l": agent.press_live,
            "t": lambda: agent.trigger_input("taser", True),
            "d": lambda: self.runtime.set_docked(not self.runtime.docked),
            "q": self.runtime.stop_requested.set,
        }
        while not self.runtime.stop_requested.is_set():
            key = sys.stdin.read(1).lower()
            if not key:
                return
            if key in actions:
                self.runtime.inputs.submit(actions[key])

    def restore(self) -> None:
        import termios

        termios.tcsetattr(self.fd, termios.TCSADRAIN, self._saved)


@camera_app.command("status")
def status(home: Path = HOME_OPTION) -> None:
    """What the camera holds: recordings and their state, pending offloads. No content is shown."""
    from rich.table import Table

    from temoin.camera.clock import system_clock
    from temoin.camera.platform_link import load_cached
    from temoin.camera.runner import CameraHome, CameraSetupError, recording_summaries

    camera = CameraHome(home)
    identity = camera.identity()
    if identity is None:
        raise _fail(f"no enrolled camera in {camera.root}: run `temoin camera enroll` first")
    console.print(
        f"camera [bold]{identity.device_id}[/bold] (serial {identity.serial}, {identity.tenant}) → {identity.url}"
    )
    try:
        console.print(f"platform key pinned: {_fingerprint(camera.platform_key())}")
        trusted = camera.platform_trust().keys()  # type: ignore[union-attr]  # a key is pinned
        if len(trusted) > 1:
            console.print(
                f"platform key rotations followed: {len(trusted) - 1}, now trusting "
                f"{_fingerprint(trusted.keys[-1].public_key)}"
            )
    except CameraSetupError as exc:
        console.print(f"[red]{exc}[/red]")
    cached = load_cached(camera.root, system_clock())
    if cached is not None:
        console.print(
            f"agent: {cached.agent_id} · clock offset {cached.clock_offset_ms} ms"
            f"{' (DRIFT)' if cached.clock_drift else ''} · settings of "
            f"{cached.fetched_at:%Y-%m-%d %H:%M:%S}"
        )
    rows = recording_summaries(camera)
    table = Table(
        "recording",
        "state",
        "started",
        "seconds",
        "segments",
        "bytes",
        "trigger",
        "agent",
        title="Recordings on this camera (content is encrypted and never shown)",
    )
    for r in rows:
        table.add_row(
            r["recording_id"],
            r["state"],
            r["started_at"].strftime("%Y-%m-%d %H:%M:%S") if r["started_at"] else "-",
            str(r["seconds"]),
            str(r["segments"]),
            str(r["bytes"]),
            r["trigger"],
            r["agent"],
        )
    console.print(table)
    pending = sum(1 for r in rows if r["state"] == "pending offload")
    receipts = len(list((camera.root / "receipts").glob("*.json"))) if (camera.root / "receipts").exists() else 0
    console.print(
        f"{len(rows)} recording(s) on the camera, {pending} pending offload; {receipts} vault receipt(s) kept"
    )


@camera_app.command("offload")
def offload(
    url: str | None = typer.Option(None, help="the platform (default: the one enrolled with)"), home: Path = HOME_OPTION
) -> None:
    """One docked offload pass: every recording to the vault; each local copy deleted on a verified receipt."""
    from temoin.camera.device_store import quarantined_in
    from temoin.camera.runner import CameraHome, CameraSetupError, offload_home

    camera = CameraHome(home)
    progress: Progress | None = None

    def started(pending: list[tuple[str, int]]) -> OffloadProgress:
        nonlocal progress
        progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
        )
        progress.start()
        tasks = {rid: progress.add_task(f"offload {rid}", total=size) for rid, size in pending}
        return lambda rid, n: progress.advance(tasks[rid], n) if rid in tasks else None

    try:
        outcome, unfinished = offload_home(camera, url=url, on_start=started)
    except CameraSetupError as exc:
        raise _fail(str(exc)) from None
    finally:
        if progress is not None:
            progress.stop()
    _report(outcome)
    for rid in unfinished:
        console.print(
            f"[yellow]{rid} is damaged or cut short and could not be finalised: kept for examination[/yellow]"
        )
    quarantine = quarantined_in(camera.root)
    for q in quarantine:
        console.print(f"[red]quarantine: {q.folder}[/red]: {', '.join(q.files) or 'no segment file'}")
    if not outcome.sent and not outcome.kept and not outcome.deleted:
        console.print("nothing to offload")
    else:
        console.print(
            f"{len(outcome.sent)} offloaded, {len(outcome.kept)} kept on the camera"
            + (f", {len(outcome.deleted)} deleted by the vault" if outcome.deleted else "")
        )
    if outcome.kept or unfinished or quarantine:
        # Something is left on the camera: a script (or the dock) must not take this pass for done.
        err.print(
            f"left on the camera: {len(outcome.kept)} recording(s) kept, {len(unfinished)} unfinished, "
            f"{len(quarantine)} recording(s) with quarantined segments ({camera.root / 'quarantine'}): "
            "examine them, then remove them by hand"
        )
        raise typer.Exit(1)
