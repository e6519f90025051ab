"""The camera agent: standby (buffering) -> recording -> standby, and offload when docked.

One frame at a time (`step`): the agent reads the sensor, asks for a GPS fix when one is due
(every second while recording, every 15 s otherwise), keeps the recording light and beep going,
and encodes into short keyframe-aligned segments:

- in standby, video only by default, into the in-memory pre-event buffer (nothing touches the
  disk; with a 0 s buffer nothing is encoded at all);
- while recording, with sound, into the device store: each segment sealed, chained and
  checkpointed as soon as it closes.

Recording starts on the record button or on an input (a Taser-type weapon armed must be
recorded from that moment, R511-28): the buffered segments become the first segments of the
recording, the trigger and whether the people filmed were told (and why not) go into the signed
header, checkpoints and manifest. Stopping finalises the manifest (`build_manifest`, signed).
Docked, `offload` hands every finalised recording to the vault and deletes the local copy only
once the vault's receipt verifies and matches.

Online, the agent takes its settings from the platform (`apply`, see `platform_link`): the
wearer from the shift assignment (`UNASSIGNED` when there is none: it records anyway and says
so), the tenant's pre-event buffer, the territory (a recording with a fix outside it is marked
`outside_territory`, never refused) and the measured clock offset, written into each manifest.

The wearer's API is what this class exposes: start, stop, say whether people were told, the live
button, dock. There is no way through it to play back or delete a recording.
"""

from __future__ import annotations

import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import httpx

from temoin.camera.buffer import DEFAULT_BITRATE_BPS, DEFAULT_PRE_EVENT_S, PreEventBuffer
from temoin.camera.clock import Clock, system_clock
from temoin.camera.device_store import DeviceStore, Notice, RecordingHeader, RecordingWriter, StoreError
from temoin.camera.gps import RECORDING_INTERVAL_S, STANDBY_INTERVAL_S, GpsSchedule, GpsSource
from temoin.camera.inputs import LiveButton
from temoin.camera.media import EncodedSegment, SegmentWriter
from temoin.camera.offload import OffloadError, VaultClient
from temoin.camera.platform_link import UNASSIGNED, CameraSettings
from temoin.camera.signals import DEFAULT_BEEP_INTERVAL_S, Led, RecordingIndicator, Signals, TerminalSignals, Vibration
from temoin.camera.sources import AudioSource, VideoSource
from temoin.evidence.manifest import GpsFix, NotInformedReason, SignedManifest, SignedReceipt, Trigger
from temoin.geo.territory import contains

# Inputs that start a recording by themselves, and what the recording says about them.
AUTOMATIC_INPUTS = {"taser": "Taser-type weapon armed (R511-28)"}
ROLL_SLACK_S = 1e-6


class AgentState(StrEnum):
    STANDBY = "standby"
    RECORDING = "recording"


@dataclass(frozen=True)
class AgentConfig:
    camera_id: str
    agent_id: str = UNASSIGNED  # the wearer, from the shift assignment (`apply` updates it)
    pre_event_s: float = DEFAULT_PRE_EVENT_S
    pre_event_audio: bool = False  # video only by default (common practice, privacy)
    record_audio: bool = True
    segment_s: float = 2.0
    buffer_bitrate_bps: int = DEFAULT_BITRATE_BPS  # the pre-event buffer's memory bound: bitrate x duration
    beep_interval_s: float = DEFAULT_BEEP_INTERVAL_S
    gps_recording_interval_s: float = RECORDING_INTERVAL_S
    gps_standby_interval_s: float = STANDBY_INTERVAL_S
    # What the record button asserts unless the wearer says otherwise: agents are trained to
    # announce the recording (L241-2). Automatic starts assert the opposite until corrected.
    button_notice: Notice = field(default_factory=Notice.told)
    automatic_inputs: dict[str, str] = field(default_factory=lambda: dict(AUTOMATIC_INPUTS))

    def __post_init__(self) -> None:
        if self.segment_s <= 0:
            raise ValueError("segment_s must be positive")


@dataclass
class OffloadOutcome:
    sent: dict[str, SignedReceipt] = field(default_factory=dict)
    kept: dict[str, str] = field(default_factory=dict)  # recording id -> why it stays on the camera


class CameraAgent:
    def __init__(self, config: AgentConfig, *, store: DeviceStore, video: VideoSource,
                 audio: AudioSource | None = None, gps: GpsSource | None = None, signals: Signals | None = None,
                 clock: Clock = system_clock, recover: bool = True, settings: CameraSettings | None = None) -> None:
        self.config = config
        self.agent_id = config.agent_id  # the wearer now; a recording keeps the one it started with
        self.territory: dict | None = None  # the tenant's authorised territory (R241-8 II), once known
        self.settings: CameraSettings | None = None
        self.live_requested_at: datetime | None = None
        self.store = store
        self.video = video
        self.audio = audio
        self.gps = gps
        self.signals: Signals = signals or TerminalSignals()
        self.clock = clock
        self.buffer = PreEventBuffer(config.pre_event_s, bitrate_bps=config.buffer_bitrate_bps)
        self.state = AgentState.STANDBY
        self.clock_offset_ms: int | None = None  # set by a clock check against the platform
        self.last_fix: GpsFix | None = None
        self.errors: list[str] = []
        self._indicator = RecordingIndicator(self.signals, config.beep_interval_s)
        self._gps_schedule = GpsSchedule(config.gps_recording_interval_s, config.gps_standby_interval_s)
        self._standby_fixes: deque[GpsFix] = deque()
        self._pending_fixes: list[GpsFix] = []
        self._writer: SegmentWriter | None = None
        self._writer_audio = False
        self._recording: RecordingWriter | None = None
        self._notice: Notice | None = None
        self._outside = False  # a fix of the current recording fell outside the territory
        self._deferred: CameraSettings | None = None  # settings that wait for the recording to stop
        self._live_button = LiveButton()
        self.signals.led(Led.STANDBY)
        if settings is not None:
            self.apply(settings)
        # A camera that died mid-recording finalises what it kept, so that it can be offloaded.
        self.recovered: list[SignedManifest] = store.recover(
            territory=self.territory, clock_offset_ms=self.clock_offset_ms) if recover else []

    # --- settings from the platform ---------------------------------------------------------

    def apply(self, settings: CameraSettings) -> None:
        """Take the platform's settings: clock offset and territory at once; the wearer and the
        pre-event buffer at once in standby, after the current recording otherwise (a recording
        keeps one wearer from start to end)."""
        previous, self.settings = self.settings, settings
        self.clock_offset_ms = settings.clock_offset_ms
        self.territory = settings.territory
        if settings.clock_drift and (previous is None or not previous.clock_drift):
            self.signals.warn(f"camera clock off by {settings.clock_offset_ms / 1000:+.1f} s from the platform: "
                              "recordings are flagged; have the clock set")
        if self.state is AgentState.RECORDING:
            self._deferred = settings
            return
        self._apply_standby(settings, first=previous is None)

    def _apply_standby(self, settings: CameraSettings, first: bool = False) -> None:
        self._deferred = None
        changed = settings.agent_id != self.agent_id
        resize = settings.pre_event_buffer_s != self.buffer.seconds
        if changed or resize:
            # What is buffered was burned in with the previous wearer (or sized for the old
            # buffer): drop it rather than hand it over under another name.
            if self._writer is not None:
                self._writer.abort()
                self._writer = None
            self.buffer.clear()
        if resize:
            self.buffer = PreEventBuffer(settings.pre_event_buffer_s, bitrate_bps=self.config.buffer_bitrate_bps)
        self.agent_id = settings.agent_id
        if changed and settings.assignment is not None:
            self.signals.warn(f"camera assigned to {settings.assignment.display_name} ({settings.agent_id})")
        if self.agent_id == UNASSIGNED and (changed or first):
            self.signals.warn("no agent assigned to this camera: it records as UNASSIGNED "
                              "(have it checked out to you)")

    # --- the capture loop -------------------------------------------------------------------

    @property
    def recording_id(self) -> str | None:
        return self._recording.recording_id if self._recording else None

    def step(self) -> None:
        """Capture one frame and do whatever is due at its time."""
        frame, at = self.video.read()
        self._poll_gps(at)
        self._indicator.tick(at)
        recording = self.state is AgentState.RECORDING
        if not recording and not self.buffer.enabled:
            return  # no pre-event buffer: nothing is encoded in standby
        if self._writer is not None:
            self._feed_audio(at)
            if (at - self._writer.started_at).total_seconds() >= self.config.segment_s - ROLL_SLACK_S:
                self._route(self._close_writer(), at)
        if self._writer is None:
            self._writer = self._open_writer(at, audio=self.config.record_audio if recording
                                             else self.config.pre_event_audio)
        self._writer.add_video(frame, at)

    def run_for(self, seconds: float) -> None:
        """Capture for `seconds` of the agent's clock (real time, or faster with a simulated clock)."""
        end = self.clock() + timedelta(seconds=seconds)
        while self.clock() < end:
            self.step()

    def _open_writer(self, at: datetime, *, audio: bool) -> SegmentWriter:
        audio = audio and self.audio is not None
        if self.audio is not None:
            # The microphone is aligned on the segment start, or off (standby, video only).
            if audio:
                self.audio.start(at)
            else:
                self.audio.stop()
        self._writer_audio = audio
        agent_id = self._recording.header.agent_id if self._recording is not None else self.agent_id
        return SegmentWriter(0, at, width=self.video.width, height=self.video.height, fps=self.video.fps,
                             agent_id=agent_id, camera_id=self.config.camera_id, audio=audio,
                             sample_rate=self.audio.sample_rate if self.audio is not None else 48_000)

    def _feed_audio(self, until: datetime) -> None:
        if self._writer is None or self.audio is None or not self._writer_audio:
            return
        chunk = self.audio.read(until)
        if chunk is not None:
            self._writer.add_audio(chunk)

    def _close_writer(self) -> EncodedSegment:
        assert self._writer is not None
        writer, self._writer = self._writer, None
        return writer.close()

    def _route(self, segment: EncodedSegment, now: datetime) -> None:
        if self.state is AgentState.RECORDING:
            self._store(segment)
        else:
            self.buffer.push(segment, now)

    def _store(self, segment: EncodedSegment) -> None:
        assert self._recording is not None and self._notice is not None
        fixes, self._pending_fixes = self._pending_fixes, []
        try:
            self._recording.add_segment(segment.data, segment.started_at, segment.duration_s, notice=self._notice,
                                        fixes=fixes)
        except OSError as exc:  # disk full or failing: the wearer must know at once
            self.errors.append(f"segment at {segment.started_at.isoformat()} not stored: {exc}")
            self.signals.led(Led.ATTENTION)
            self.signals.vibrate(Vibration.ATTENTION)

    def _poll_gps(self, at: datetime) -> None:
        recording = self.state is AgentState.RECORDING
        if self.gps is None or not self._gps_schedule.due(at, recording):
            return
        fix = self.gps.fix(at)
        if fix is None:
            return
        self.last_fix = fix
        if recording:
            self._pending_fixes.append(fix)
            self._check_territory([fix])
        else:
            self._standby_fixes.append(fix)
            horizon = at - timedelta(seconds=self.config.pre_event_s + self.config.gps_standby_interval_s)
            while self._standby_fixes and self._standby_fixes[0].t < horizon:
                self._standby_fixes.popleft()

    def _check_territory(self, fixes: list[GpsFix]) -> None:
        if self._outside or not self.territory:
            return
        if any(not contains(self.territory, f.lat, f.lon) for f in fixes):
            self._outside = True  # marked in the manifest; recording goes on (never refused)
            self.signals.warn("outside the authorised territory (R241-8 II): the recording goes on and is marked")

    # --- the wearer's and the inputs' actions ----------------------------------------------------

    def start_recording(self, trigger: Trigger = Trigger.INCIDENT, *, notice: Notice | None = None,
                        detail: str | None = None) -> str:
        """Start recording now; the pre-event buffer becomes the start of the recording."""
        if self.state is AgentState.RECORDING:
            assert self._recording is not None
            return self._recording.recording_id
        now = self.clock()
        if notice is None:
            notice = self.config.button_notice if trigger is not Trigger.AUTOMATIC else Notice.not_told(
                NotInformedReason.CIRCUMSTANCES, f"automatic start ({detail or 'input'}): not confirmed by the wearer")
        if self._writer is not None:
            self._feed_audio(now)
            self.buffer.push(self._close_writer(), now)
        pre_event = self.buffer.take(now)
        header = RecordingHeader(recording_id=f"rec-{uuid.uuid4().hex[:16]}", camera_id=self.config.camera_id,
                                 agent_id=self.agent_id, trigger=trigger, trigger_detail=detail,
                                 triggered_at=now, pre_event_buffer_s=self.config.pre_event_s)
        self._recording = self.store.begin(header)
        self._notice = notice
        self.state = AgentState.RECORDING
        first = pre_event[0].started_at if pre_event else now
        self._pending_fixes = _fixes_since(self._standby_fixes, first)
        self._standby_fixes.clear()
        self._outside = False
        self._check_territory(self._pending_fixes)
        self._gps_schedule.reset()
        self._poll_gps(now)  # the place of collection, now
        self._indicator.start(now)  # the light and the beep first: the people filmed see it at once
        self.signals.vibrate(Vibration.AUTOMATIC_TRIGGER if trigger is Trigger.AUTOMATIC
                             else Vibration.RECORDING_STARTED)
        if self.agent_id == UNASSIGNED:
            self.signals.warn("recording as UNASSIGNED: no agent is checked out with this camera")
        for segment in pre_event:
            self._store(segment)
        return header.recording_id

    def inform(self, notice: Notice) -> None:
        """The wearer says whether the people filmed were told (kept from the next checkpoint on)."""
        if self.state is not AgentState.RECORDING:
            raise StoreError("not recording")
        self._notice = notice

    def stop_recording(self) -> SignedManifest:
        """Stop, store the last segment and finalise the signed manifest; back to standby."""
        if self.state is not AgentState.RECORDING or self._recording is None:
            raise StoreError("not recording")
        if self._writer is None and not self._recording.segments:
            self.step()  # stopped before a single frame: keep at least that one
        now = self.clock()
        if self._writer is not None:
            self._feed_audio(now)
            self._store(self._close_writer())
        if self.audio is not None:
            self.audio.stop()
        recording, self._recording = self._recording, None
        self.state = AgentState.STANDBY
        try:
            signed = recording.finalise(notice=self._notice, clock_offset_ms=self.clock_offset_ms,
                                        outside_territory=self._outside)
        finally:
            self.store.release(recording)
            self._notice = None
            self._outside = False
            self._gps_schedule.reset()
            self._indicator.stop(now)
            self.signals.vibrate(Vibration.RECORDING_STOPPED)
            if self._deferred is not None:
                self._apply_standby(self._deferred)
        return signed

    def press_record(self, notice: Notice | None = None) -> str | SignedManifest:
        """The record button: starts a recording (trigger: incident), or stops the current one."""
        if self.state is AgentState.RECORDING:
            return self.stop_recording()
        return self.start_recording(Trigger.INCIDENT, notice=notice)

    def trigger_input(self, name: str, active: bool) -> str | None:
        """An input changed (e.g. "taser" armed): an active automatic input starts recording now.

        Disarming does not stop the recording: only the wearer does.
        """
        if name not in self.config.automatic_inputs:
            raise ValueError(f"unknown input {name!r}: known are {sorted(self.config.automatic_inputs)}")
        if not active:
            return None
        if self.state is AgentState.RECORDING:
            return self.recording_id
        return self.start_recording(Trigger.AUTOMATIC, detail=self.config.automatic_inputs[name])

    def press_live(self) -> str | None:
        """One press of the live button. The second press within 0.5 s is a live request: recording
        starts at once (trigger: live_request). Returns the recording id on a live request."""
        now = self.clock()
        if not self._live_button.press(now):
            return None
        self.live_requested_at = now
        if self.state is AgentState.RECORDING:
            rid = self.recording_id
        else:
            # A threat is presumed (R241-11): nobody stops to announce the camera.
            rid = self.start_recording(Trigger.LIVE_REQUEST, detail="live button (double press)", notice=Notice.not_told(
                NotInformedReason.CIRCUMSTANCES, "live request (threat): not confirmed by the wearer"))
        # Honest to the wearer: nobody is watching yet, the CSU must be called by radio.
        self.signals.vibrate(Vibration.ATTENTION)
        self.signals.warn("live request: the camera records, but live transmission to the CSU is not "
                          "available in this version: call the CSU by radio")
        return rid

    # --- docked ----------------------------------------------------------------------------

    def offload(self, vault: VaultClient, progress: Callable[[str, int], None] | None = None) -> OffloadOutcome:
        """Hand every finalised recording to the vault; each local copy goes only on a valid receipt.

        `progress(recording_id, n)` hears of the bytes the vault holds as they arrive.
        """
        outcome = OffloadOutcome()
        self.signals.led(Led.OFFLOADING)
        for rid in self.store.pending():
            send = vault.offload if progress is None else (
                lambda signed, segments, rid=rid: vault.offload(signed, segments, progress=lambda n: progress(rid, n)))
            try:
                outcome.sent[rid] = self.store.hand_over(rid, send)
            except (OffloadError, StoreError, httpx.HTTPError) as exc:
                outcome.kept[rid] = f"{type(exc).__name__}: {exc}"
        self.signals.led(Led.ATTENTION if outcome.kept else
                         Led.RECORDING if self.state is AgentState.RECORDING else Led.STANDBY)
        return outcome


def _fixes_since(fixes: deque[GpsFix], start: datetime) -> list[GpsFix]:
    """The fixes from `start` on, led by the last one before it (where the footage begins)."""
    before = [f for f in fixes if f.t <= start]
    return ([before[-1]] if before else []) + [f for f in fixes if f.t > start]
