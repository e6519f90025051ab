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

The wearer's API is what this class exposes: start, stop, say whether people were told, dock.
There is no way through it to play back or delete a recording.
"""

from __future__ import annotations

import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

import httpx

from temoin.camera.buffer import DEFAULT_BITRATE_BPS, DEFAULT_PRE_EVENT_S, PreEventBuffer
from temoin.camera.clock import Clock, system_clock
from temoin.camera.device_store import DeviceStore, Notice, RecordingHeader, RecordingWriter, StoreError
from temoin.camera.gps import RECORDING_INTERVAL_S, STANDBY_INTERVAL_S, GpsSchedule, GpsSource
from temoin.camera.media import EncodedSegment, SegmentWriter
from temoin.camera.offload import OffloadError, VaultClient
from temoin.camera.signals import DEFAULT_BEEP_INTERVAL_S, Led, RecordingIndicator, Signals, TerminalSignals, Vibration
from temoin.camera.sources import AudioSource, VideoSource
from temoin.evidence.manifest import GpsFix, NotInformedReason, SignedManifest, SignedReceipt, Trigger

# Inputs that start a recording by themselves, and what the recording says about them.
AUTOMATIC_INPUTS = {"taser": "Taser-type weapon armed (R511-28)"}
ROLL_SLACK_S = 1e-6


class AgentState(StrEnum):
    STANDBY = "standby"
    RECORDING = "recording"


@dataclass(frozen=True)
class AgentConfig:
    camera_id: str
    agent_id: str  # the wearer, from the shift assignment
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
                 clock: Clock = system_clock, recover: bool = True) -> None:
        self.config = config
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
        # A camera that died mid-recording finalises what it kept, so that it can be offloaded.
        self.recovered: list[SignedManifest] = store.recover() if recover else []
        self.signals.led(Led.STANDBY)

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
        return SegmentWriter(0, at, width=self.video.width, height=self.video.height, fps=self.video.fps,
                             agent_id=self.config.agent_id, camera_id=self.config.camera_id, audio=audio,
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
        else:
            self._standby_fixes.append(fix)
            horizon = at - timedelta(seconds=self.config.pre_event_s + self.config.gps_standby_interval_s)
            while self._standby_fixes and self._standby_fixes[0].t < horizon:
                self._standby_fixes.popleft()

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
                                 agent_id=self.config.agent_id, trigger=trigger, trigger_detail=detail,
                                 triggered_at=now, pre_event_buffer_s=self.config.pre_event_s)
        self._recording = self.store.begin(header)
        self._notice = notice
        self.state = AgentState.RECORDING
        first = pre_event[0].started_at if pre_event else now
        self._pending_fixes = _fixes_since(self._standby_fixes, first)
        self._standby_fixes.clear()
        self._gps_schedule.reset()
        self._poll_gps(now)  # the place of collection, now
        self._indicator.start(now)  # the light and the beep first: the people filmed see it at once
        self.signals.vibrate(Vibration.AUTOMATIC_TRIGGER if trigger is Trigger.AUTOMATIC
                             else Vibration.RECORDING_STARTED)
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
            signed = recording.finalise(notice=self._notice, clock_offset_ms=self.clock_offset_ms)
        finally:
            self.store.release(recording)
            self._notice = None
            self._gps_schedule.reset()
            self._indicator.stop(now)
            self.signals.vibrate(Vibration.RECORDING_STOPPED)
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

    # --- docked ----------------------------------------------------------------------------

    def offload(self, vault: VaultClient) -> OffloadOutcome:
        """Hand every finalised recording to the vault; each local copy goes only on a valid receipt."""
        outcome = OffloadOutcome()
        self.signals.led(Led.OFFLOADING)
        for rid in self.store.pending():
            try:
                outcome.sent[rid] = self.store.hand_over(rid, vault.offload)
            except (OffloadError, StoreError, httpx.HTTPError) as exc:
                outcome.kept[rid] = f"{type(exc).__name__}: {exc}"
        self.signals.led(Led.ATTENTION if outcome.kept else
                         Led.RECORDING if self.state is AgentState.RECORDING else Led.STANDBY)
        return outcome


def _fixes_since(fixes: deque[GpsFix], start: datetime) -> list[GpsFix]:
    """The fixes from `start` on, led by the last one before it (where the footage begins)."""
    before = [f for f in fixes if f.t <= start]
    return ([before[-1]] if before else []) + [f for f in fixes if f.t > start]
