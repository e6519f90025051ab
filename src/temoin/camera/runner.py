"""A camera as a program: its home folder, enrolment, and the real-time capture loop.

The home folder (`./var/camera` by default) holds everything the camera keeps:

    keys/device.pem, keys/storage.key, keys/platform.pub   the keys (`keys.py`), 0600
    keys/platform-keys.json  platform keys trusted since, by following rotations (`platform_keys.py`)
    device.json              the enrolment: device id, platform URL, serial, tenant
    platform-config.json     the last settings from the platform (`platform_link.py`)
    recordings/, receipts/   the device store (`device_store.py`)

`CameraRuntime` puts the pieces together for `temoin camera run`: sources, device store, agent,
platform link (settings fetched at start and refreshed in the background), the live link (the live
button streams what the camera captures to the CSU, in a thread of its own), the local input server,
and the docked offload.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from temoin import errors
from temoin.camera.agent import CameraAgent
from temoin.camera.agent_config import AgentConfig, AgentState
from temoin.camera.clock import Clock, system_clock
from temoin.camera.device_store import DeviceStore, StoreError
from temoin.camera.docking import OffloadOutcome
from temoin.camera.files import atomic_write, private_dir
from temoin.camera.gps import GpsSource
from temoin.camera.inputs import InputQueue, InputServer, Routes, UnknownInput, flag
from temoin.camera.keys import DeviceKeys, pin_platform_key, pinned_platform_key
from temoin.camera.offload import OffloadError, VaultClient, enrol
from temoin.camera.platform_keys import PlatformTrust, fetch_published
from temoin.camera.platform_link import CameraSettings, PlatformLink
from temoin.camera.signals import Signals, TerminalSignals
from temoin.camera.sources import AudioSource, VideoSource
from temoin.evidence.canonical import b64d

DEVICE_FILE = "device.json"
LOCK_FILE = ".lock"
REFRESH_S = 60.0


class CameraSetupError(errors.InvalidInput, RuntimeError):
    """The camera cannot run as asked (not enrolled, no platform key, ...): the message says what to do."""


@dataclass(frozen=True)
class DeviceIdentity:
    device_id: str
    url: str
    serial: str
    tenant: str
    enrolled_at: str


class CameraHome:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def keys_dir(self) -> Path:
        return self.root / "keys"

    def keys(self) -> DeviceKeys:
        return DeviceKeys.load_or_create(self.keys_dir)

    def identity(self) -> DeviceIdentity | None:
        try:
            return DeviceIdentity(**json.loads((self.root / DEVICE_FILE).read_text("utf-8")))
        except FileNotFoundError:
            return None

    def require_identity(self) -> DeviceIdentity:
        identity = self.identity()
        if identity is None:
            raise CameraSetupError(
                f"this camera ({self.root}) is not enrolled: run `temoin camera enroll "
                "--url URL --code CODE --serial SERIAL` first"
            )
        return identity

    def platform_key(self) -> bytes:
        key = pinned_platform_key(self.keys_dir)
        if key is None:
            raise CameraSetupError(f"no platform key pinned in {self.keys_dir}: enrol the camera first")
        return key

    @contextmanager
    def lock(self) -> Iterator[None]:
        """One process at a time writes to a camera's home: `run` and `offload` would otherwise
        both believe they own the recording being written (one would finalise it under the other)."""
        private_dir(self.root)
        fd = os.open(self.root / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CameraSetupError(
                    f"another `temoin camera` process is using {self.root}: "
                    "stop it first (a running camera offloads by itself with --docked)"
                ) from None
            yield
        finally:
            os.close(fd)

    def platform_trust(self, url: str | None = None) -> PlatformTrust | None:
        """The platform keys this camera trusts; an unknown key is looked up at `url` (default: the enrolment's)."""
        pinned = pinned_platform_key(self.keys_dir)
        if pinned is None:
            return None
        identity = self.identity()
        base = url or (identity.url if identity else None)
        return PlatformTrust(pinned, self.keys_dir, (lambda: fetch_published(base)) if base else None)

    def store(self, clock: Clock = system_clock, url: str | None = None) -> DeviceStore:
        return DeviceStore(self.root, self.keys(), self.platform_trust(url), clock)

    def enrol(self, url: str, code: str, serial: str, clock: Clock = system_clock, **client_kw) -> DeviceIdentity:
        """Enrol with a one-time code: keys generated (or kept) here, platform key pinned."""
        private_dir(self.root)
        keys = self.keys()
        answer = enrol(url.rstrip("/"), code, serial, keys.signing_key, **client_kw)
        pin_platform_key(self.keys_dir, b64d(answer["platform_public_key"]))
        identity = DeviceIdentity(
            device_id=answer["device_id"],
            url=url.rstrip("/"),
            serial=serial,
            tenant=answer["tenant"],
            enrolled_at=clock().isoformat(timespec="seconds"),
        )
        atomic_write(self.root / DEVICE_FILE, json.dumps(asdict(identity), indent=2).encode())
        return identity

    def vault(
        self, url: str | None = None, timeout: float = 60.0, platform_keys: PlatformTrust | None = None
    ) -> VaultClient:
        """`platform_keys`: the store's, so that a rotation followed while offloading is logged by the store."""
        identity = self.require_identity()
        self.platform_key()  # refuse without a pinned key
        trust = platform_keys or self.platform_trust(url)
        assert trust is not None  # a key is pinned
        return VaultClient(url or identity.url, identity.device_id, self.keys().signing_key, trust, timeout=timeout)

    def link(self, url: str | None = None, clock: Clock = system_clock, timeout: float = 10.0) -> PlatformLink:
        identity = self.require_identity()
        return PlatformLink(
            url or identity.url,
            identity.device_id,
            self.keys().signing_key,
            clock=clock,
            cache_dir=self.root,
            timeout=timeout,
        )


OffloadProgress = Callable[[str, int], None]
INPUT_POLL_S = 0.005
PREFETCH_S = 0.5  # frames read ahead of the capture loop, at most (memory: fps / 2 raw pictures)
LIVE_KEEP_WARM_S = 4.0  # an open connection for the live button (see LiveLink): servers close idle ones at 5 s
LIVE_REQUEST_COPIES = 2  # the live request sent twice at once: a lost packet does not delay the alert


class PrefetchedVideo:
    """The sensor read in a thread of its own, ahead of the capture loop, so that the loop can run the inputs'
    commands while it waits for the next frame: a button is acted on within milliseconds, not at the next
    frame (the live button's alert must not wait up to 1/fps). Up to `PREFETCH_S` of frames wait for the
    loop: a loop busy for a moment (a segment being sealed and written) catches up instead of losing them.
    Each frame keeps its capture instant on the monotonic clock (`captured_monotonic`), so that a busy loop
    is not taken for a clock jump. The agent still runs in one thread: only the source is touched here.
    Started by the first `poll` or `read`."""

    def __init__(self, source: VideoSource) -> None:
        self.source = source
        self.width, self.height, self.fps = source.width, source.height, source.fps
        self._frames: queue.Queue = queue.Queue(maxsize=max(1, math.ceil(source.fps * PREFETCH_S)))
        self._held: tuple | BaseException | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.captured_monotonic: float | None = None

    def _reader(self) -> None:
        while not self._stop.is_set():
            try:
                frame, at = self.source.read()
                mono = getattr(self.source, "captured_monotonic", None)
                item: tuple | BaseException = (frame, at, time.monotonic() if mono is None else mono)
            except BaseException as exc:  # noqa: BLE001 - handed to the capture loop
                item = exc
            while not self._stop.is_set():
                try:
                    self._frames.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._reader, daemon=True, name="camera-sensor")
            self._thread.start()

    def poll(self, timeout: float) -> bool:
        """True once a frame is ready for `read` (waits up to `timeout`)."""
        self._start()
        if self._held is None:
            try:
                self._held = self._frames.get(timeout=timeout)
            except queue.Empty:
                return False
        return True

    def read(self):  # (frame, capture time), as the source's
        self._start()
        item, self._held = self._held, None
        if item is None:
            item = self._frames.get()
        if isinstance(item, BaseException):
            raise item
        frame, at, self.captured_monotonic = item
        return frame, at

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


class CameraRuntime:
    """One camera running in real time: capture, inputs, settings refresh, docked offload."""

    def __init__(
        self,
        home: CameraHome,
        *,
        video: VideoSource,
        audio: AudioSource | None = None,
        gps: GpsSource | None = None,
        signals: Signals | None = None,
        url: str | None = None,
        clock: Clock = system_clock,
        segment_s: float = 2.0,
        docked: bool = False,
        refresh_s: float = REFRESH_S,
        live: bool = True,
        dispatch: bool = True,
    ) -> None:
        self.home = home
        self.identity = home.require_identity()
        self.url = url or self.identity.url
        home.platform_key()  # refuse to run without a pinned key: nothing could ever be offloaded
        self._held = ExitStack()
        self._held.enter_context(home.lock())  # released by `close`
        self.clock = clock
        self.signals = signals or TerminalSignals()
        self.link = home.link(self.url, clock=clock, timeout=5.0)
        self.notes: list[str] = []
        settings, why = self.link.current()
        if why:
            self.notes.append(why)
        if settings is None:
            self.notes.append("no settings from the platform yet: recording as UNASSIGNED with a 30 s buffer")
        self.sensor: PrefetchedVideo | None
        if clock is system_clock:  # real time: read ahead, so that inputs need not wait for a frame
            video = self.sensor = PrefetchedVideo(video)
        else:
            self.sensor = None
        self.live = None
        if live:
            from temoin.camera.live_publisher import LiveLink  # aiortc: loaded by cameras that go live only

            self.live = LiveLink(
                self.url,
                self.identity.device_id,
                home.keys().signing_key,
                width=video.width,
                height=video.height,
                fps=video.fps,
                clock_skew_s=lambda: self.link.auth.clock_skew_s,
                keep_warm_s=LIVE_KEEP_WARM_S,
                request_copies=LIVE_REQUEST_COPIES,
                name=f"camera-live-{self.identity.serial}",
            )
        self.dispatch = None
        config = AgentConfig(camera_id=self.identity.device_id, segment_s=segment_s)
        if dispatch:  # the wearer on the CSU's map, and reinforcement orders (threads of their own)
            from temoin.camera.dispatch import POSITION_EVERY_S, DispatchLink

            self.dispatch = DispatchLink(
                self.url,
                self.identity.device_id,
                home.keys().signing_key,
                clock_skew_s=lambda: self.link.auth.clock_skew_s,
                name=f"camera-dispatch-{self.identity.serial}",
            )
            config = dataclasses.replace(config, gps_standby_interval_s=POSITION_EVERY_S)
        self.agent = CameraAgent(
            config,
            store=home.store(clock, self.url),
            video=video,
            audio=audio,
            gps=gps,
            signals=self.signals,
            clock=clock,
            settings=settings,
            live=self.live,
            dispatch=self.dispatch,
        )
        self.link.pending = lambda: len(self.agent.store.pending())  # the platform warns at check-in
        if settings is None:
            self.signals.warn("no agent assigned to this camera: it records as UNASSIGNED")
        self.docked = docked
        self.offload_due = docked
        self.refresh_s = refresh_s
        self.inputs = InputQueue()
        self._refreshing = False
        self._next_refresh = clock() + timedelta(seconds=refresh_s)
        self.stop_requested = threading.Event()
        self.last_offload: OffloadOutcome | None = None
        self.on_offload_start: Callable[[list[tuple[str, int]]], OffloadProgress | None] | None = None
        self.on_offload_done: Callable[[OffloadOutcome], None] | None = None

    # --- what the input server can ask ---------------------------------------------------------

    def routes(self) -> Routes:
        return {
            ("POST", "/trigger/"): lambda name, body: self._trigger(name, flag(body, "armed", "active")),
            ("POST", "/button/record"): lambda _, __: self._record_button(),
            ("POST", "/button/live"): lambda _, __: {"live_request": self.agent.press_live(), **self.status()},
            ("POST", "/dock"): lambda _, body: self.set_docked(flag(body, "docked")),
            ("GET", "/status"): lambda _, __: self.status(),
        }

    def _trigger(self, name: str, active: bool) -> dict:
        if name not in self.agent.config.automatic_inputs:
            raise UnknownInput(f"unknown input {name!r}: known are {sorted(self.agent.config.automatic_inputs)}")
        self.agent.trigger_input(name, active)
        return self.status()

    def _record_button(self) -> dict:
        result = self.agent.press_record()
        if not isinstance(result, str):
            self.offload_due = self.docked
        return self.status()

    def set_docked(self, docked: bool) -> dict:
        self.docked = docked
        self.offload_due = docked
        return self.status()

    def status(self) -> dict:
        """State, wearer and counts only: never any content."""
        live = None
        if self.live is not None and (self.live.active or self.agent.live_session_id):
            live = {
                "session": self.agent.live_session_id,
                "state": self.live.state,
                "active": self.live.active,
                "acknowledged": self.agent.live_acknowledged_at is not None,
            }
        return {
            "state": self.agent.state.value,
            "recording_id": self.agent.recording_id,
            "agent": self.agent.agent_id,
            "camera": self.identity.device_id,
            "docked": self.docked,
            "pending_offload": len(self.agent.store.pending()),
            "clock_offset_ms": self.agent.clock_offset_ms,
            "live": live,
        }

    # --- the loop ----------------------------------------------------------------------------

    def serve_inputs(self, port: int) -> InputServer:
        return InputServer(self.inputs, self.routes(), port).start()

    def run(self, seconds: float | None = None, on_tick: Callable[[], None] | None = None) -> None:
        """Capture until `seconds` have passed or `stop_requested`; a recording running then is
        stopped and finalised (the camera is switched off), and offloaded if docked."""
        deadline = self.clock() + timedelta(seconds=seconds) if seconds is not None else None
        try:
            while not self.stop_requested.is_set() and (deadline is None or self.clock() < deadline):
                if self.sensor is not None and not self.sensor.poll(INPUT_POLL_S):
                    self.inputs.run_pending()  # between two frames: a button is acted on at once
                    continue
                self.agent.step()
                self.inputs.run_pending()
                self._maybe_refresh()
                if self.offload_due and self.agent.state is AgentState.STANDBY:
                    self.offload()
                if on_tick is not None:
                    on_tick()
        finally:
            self.inputs.run_pending()
            if self.agent.state is AgentState.RECORDING:
                self.agent.stop_recording()
            if self.docked:
                self.offload()

    def close(self) -> None:
        if self.sensor is not None:
            self.sensor.close()
        if self.live is not None:
            self.live.close()  # a live session still open is ended (DELETE), then the live thread stops
        if self.dispatch is not None:
            self.dispatch.close()
        self.link.close()
        self._held.close()
        self.agent.buffer.close()  # the ring file goes (its key never left the process)

    def _maybe_refresh(self) -> None:
        if self._refreshing or self.clock() < self._next_refresh:
            return
        self._refreshing = True
        self._next_refresh = self.clock() + timedelta(seconds=self.refresh_s)

        def fetch() -> None:
            try:
                settings = self.link.fetch()
            except (OffloadError, httpx.HTTPError, ValueError, KeyError):
                settings = None  # offline: keep what the camera has
            self.inputs.submit(lambda: self._refreshed(settings))

        threading.Thread(target=fetch, daemon=True, name="camera-config").start()

    def _refreshed(self, settings: CameraSettings | None) -> None:
        self._refreshing = False
        if settings is not None:
            self.agent.apply(settings)

    def offload(self) -> OffloadOutcome:
        """One docked pass: every finalised recording to the vault; local copies go on valid receipts only."""
        self.offload_due = False
        pending = [
            (rid, m.manifest.total_bytes)
            for rid in self.agent.store.pending()
            if (m := self.agent.store.manifest(rid)) is not None
        ]
        if not pending:
            return OffloadOutcome()
        progress = self.on_offload_start(pending) if self.on_offload_start and pending else None
        vault = self.home.vault(self.url, platform_keys=self.agent.store.platform_keys)
        try:
            outcome = self.agent.offload(vault, progress=progress)
        finally:
            vault.close()
        self.last_offload = outcome
        if self.on_offload_done is not None:
            self.on_offload_done(outcome)
        return outcome


def offload_home(
    home: CameraHome,
    *,
    url: str | None = None,
    clock: Clock = system_clock,
    on_start: Callable[[list[tuple[str, int]]], OffloadProgress | None] | None = None,
) -> tuple[OffloadOutcome, list[str]]:
    """One docked offload pass without capturing (`temoin camera offload`).

    Also finalises recordings a crash cut short. Returns the outcome and the ids of the recordings
    left unfinished (a broken chain: kept for examination, never deleted).
    """
    home.require_identity()
    with home.lock():
        return _offload_home(home, url, clock, on_start)


def _offload_home(
    home: CameraHome,
    url: str | None,
    clock: Clock,
    on_start: Callable[[list[tuple[str, int]]], OffloadProgress | None] | None,
) -> tuple[OffloadOutcome, list[str]]:
    store = home.store(clock, url)
    cached = home.link(url, clock=clock).cached()
    store.recover(
        territory=cached.territory if cached else None, clock_offset_ms=cached.clock_offset_ms if cached else None
    )
    pending = [(rid, m.manifest.total_bytes) for rid in store.pending() if (m := store.manifest(rid)) is not None]
    progress = on_start(pending) if on_start and pending else None
    outcome = OffloadOutcome()
    vault = home.vault(url, platform_keys=store.platform_keys)
    try:
        for rid, _ in pending:
            send = (
                vault.offload
                if progress is None
                else (
                    lambda signed, segments, rid=rid, **kw: vault.offload(
                        signed, segments, progress=lambda n: progress(rid, n), **kw
                    )
                )
            )
            try:
                outcome.record(rid, store.hand_over(rid, send), store)
            except (OffloadError, StoreError, httpx.HTTPError) as exc:
                outcome.kept[rid] = f"{type(exc).__name__}: {exc}"
    finally:
        vault.close()
    return outcome, store.unfinished()


def recording_summaries(home: CameraHome) -> list[dict]:
    """What `temoin camera status` shows: per recording, its state and size, never its content."""
    keys = home.keys()
    store = DeviceStore(home.root, keys, pinned_platform_key(home.keys_dir), system_clock)
    out = []
    for rid in store.recording_ids():
        signed = store.manifest(rid)
        if signed is not None:
            m = signed.manifest
            out.append(
                {
                    "recording_id": rid,
                    "state": "pending offload",
                    "started_at": m.started_at,
                    "seconds": round((m.ended_at - m.started_at).total_seconds(), 1),
                    "segments": len(m.segments),
                    "bytes": m.total_bytes,
                    "trigger": m.trigger.value,
                    "agent": m.agent_id,
                }
            )
            continue
        prefix = store.verify(rid)
        started: datetime | None = prefix.segments[0].started_at if prefix.segments else None
        out.append(
            {
                "recording_id": rid,
                "state": "unfinished (cut short)" if prefix.ok else "damaged",
                "started_at": started,
                "seconds": round(prefix.seconds, 1),
                "segments": len(prefix.segments),
                "bytes": sum(s.size for s in prefix.segments),
                "trigger": prefix.header.trigger.value if prefix.header else "?",
                "agent": prefix.header.agent_id if prefix.header else "?",
            }
        )
    return out
