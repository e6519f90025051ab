"""The camera agent: standby (buffering) -> recording -> standby, and offload when docked.

One frame at a time (`step`): the agent reads the sensor, asks for a GPS fix when one is due
(every second while recording, every 15 s otherwise), keeps the recording light and beep going,
and encodes into short keyframe-aligned segments:

- in standby, video only by default, into the pre-event buffer (a ring file on the camera's storage,
  sealed under a key that never leaves the process: `camera.buffer_ring`; with a 0 s buffer nothing
  is encoded at all);
- while recording, with sound, into the device store: each segment sealed, chained and
  checkpointed as soon as it closes.

Recording starts on the record button or on an input (a Taser-type weapon armed must be
recorded from that moment, R511-28): the buffered segments become the first segments of the
recording, the trigger and whether the people filmed were told (and why not) go into the signed
header, checkpoints and manifest. Stopping finalises the manifest (`build_manifest`, signed).
Docked, `offload` hands every finalised recording to the vault and deletes the local copy only
once the vault's receipt verifies and matches (`camera.docking`).

Online, the agent takes its settings from the platform (`apply`, see `platform_link`): the
wearer from the shift assignment (`UNASSIGNED` when there is none: it records anyway and says
so), the tenant's pre-event buffer, the territory (a recording with a fix outside it is marked
`outside_territory`, never refused) and the measured clock offset, written into each manifest.

Faults the agent copes with, and how the wearer learns of them (`signals.warn`, a long vibration,
and an entry in the device's log, `DeviceStore.events`):

- Storage (`DeviceStore(budget_bytes=...)`): the pre-event buffer may never take what the store will
  need; its ring file counts against the budget (`DeviceStore.also_counts`) and is sized to what the buffer
  may hold, which is half of what lies beyond `storage_low_bytes` (a recording's start copies the buffer out
  of the ring, so it takes its room twice then); it shrinks as the free budget approaches the threshold, and
  is off below it (the wearer is warned then). A recording still starts when storage is low (safety
  first), but nothing is ever deleted or overwritten to make room: when a segment no longer fits, the
  recording stops there, finalised and signed, with a warning.
- The vault's receipt does not verify or does not match: the recording stays, the incident is logged.
- The clock jumps (set by hand, by NTP or GPS after a long time off, or a failing RTC): a jump is
  a frame whose capture time moved by more than `clock_jump_s` beyond the time that passed on the
  monotonic clock (with no monotonic clock, only a step back can be told from a pause; told by
  `camera.clock_jumps`). A recording
  never spans two clocks: the one running is closed at the last frame before the jump (finalised,
  signed, its clock offset as measured) and continues at once, without a frame lost, as a new
  recording whose trigger detail names the first and the jump; the measured clock offset moves by the
  jump, so the second manifest's `clock_offset_ms` says how to read its timestamps, and the vault
  flags it past 2 s. Timestamps are never rewritten: each stays what the clock said. In standby the
  pre-event buffer is emptied (it would otherwise hand over footage of the other clock).

The wearer's API is what this class exposes: start, stop, say whether people were told, the live
button, dock. There is no way through it to play back or delete a recording.

Its configuration and states are in `camera.agent_config`; what the wearer is told of the live link in
`camera.live_wearer`.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import deque
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from temoin.camera import memory
from temoin.camera.agent_config import AgentConfig, AgentState
from temoin.camera.buffer import BufferedSegment, PreEventBuffer
from temoin.camera.buffer_ring import SLACK_BYTES, RingDamaged
from temoin.camera.clock import Clock, system_clock
from temoin.camera.clock_jumps import ClockJump, ClockJumpDetector
from temoin.camera.device_store import DeviceStore, Notice, RecordingHeader, RecordingWriter, StorageFull, StoreError
from temoin.camera.docking import OffloadOutcome, offload_pending
from temoin.camera.gps import GpsSchedule, GpsSource
from temoin.camera.inputs import LiveButton
from temoin.camera.live_wearer import tell_wearer
from temoin.camera.media import EncodedSegment, SegmentWriter
from temoin.camera.offload import VaultClient
from temoin.camera.platform_link import DRIFT_FLAG_MS, UNASSIGNED, CameraSettings
from temoin.camera.signals import Led, RecordingIndicator, Signals, TerminalSignals, Vibration
from temoin.camera.sources import AudioSource, VideoSource
from temoin.evidence.manifest import GpsFix, NotInformedReason, SignedManifest, Trigger
from temoin.geo.territory import contains

if TYPE_CHECKING:  # aiortc is loaded only by a camera that has a live link
    from temoin.camera.dispatch import DispatchLink
    from temoin.camera.live_publisher import LiveEvent, LiveLink

log = logging.getLogger(__name__)

ROLL_SLACK_S = 1e-6
STORAGE_LOW_FRACTION = 0.1  # default low-storage threshold: a tenth of the store's budget


def buffer_room(spare: int, *, on_disk: bool, natural: int) -> int | None:
    """The pre-event buffer's cap when `spare` bytes of the store's budget lie beyond the low threshold (None: no
    cap below its natural size). On disk the buffer takes its bound twice when a recording starts: its ring file
    (the bound and the tags' slack) and the copy of what it held into the recording."""
    room = max(0, (spare - SLACK_BYTES) // 2) if on_disk else max(0, spare)
    return room if room < natural else None


class CameraAgent:
    def __init__(
        self,
        config: AgentConfig,
        *,
        store: DeviceStore,
        video: VideoSource,
        audio: AudioSource | None = None,
        gps: GpsSource | None = None,
        signals: Signals | None = None,
        clock: Clock = system_clock,
        recover: bool = True,
        settings: CameraSettings | None = None,
        live: LiveLink | None = None,
        monotonic: Callable[[], float] | None = None,
        dispatch: DispatchLink | None = None,
    ) -> None:
        """`monotonic`: seconds on a clock that never jumps, to tell a clock jump from a pause (default:
        `time.monotonic` with the system clock, the clock's own `monotonic()` if it has one)."""
        memory.fix_mmap_threshold()  # the encoder's and segments' large blocks go back when freed (camera.memory)
        self.config = config
        self.agent_id = config.agent_id  # the wearer now; a recording keeps the one it started with
        self.territory: dict | None = None  # the tenant's authorised territory (R241-8 II), once known
        self.settings: CameraSettings | None = None
        self.live_requested_at: datetime | None = None
        self.live = live  # live transmission to the CSU (the live button), when the camera has a platform
        self.live_session_id: str | None = None
        self.live_acknowledged_at: datetime | None = None
        self.dispatch = dispatch  # position to the CSU's map, reinforcement orders (its own threads)
        self.store = store
        self.video = video
        self.audio = audio
        self.gps = gps
        self.signals: Signals = signals or TerminalSignals()
        self.clock = clock
        # The buffer's bytes lie in a sealed ring file on the camera's storage, not in memory (camera.buffer_ring).
        self.buffer = PreEventBuffer(config.pre_event_s, bitrate_bps=config.buffer_bitrate_bps, folder=store.root)
        store.also_counts(lambda: self.buffer.disk_bytes)  # its ring file lies on the store's storage
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
        self._clock_watch = ClockJumpDetector(
            config.clock_jump_s,
            monotonic or (time.monotonic if clock is system_clock else getattr(clock, "monotonic", None)),
            video,
        )
        self.clock_jumps: list[ClockJump] = []
        self.storage_low = False
        self._full: str | None = None  # a segment refused for want of room: the recording stops
        self.signals.led(Led.STANDBY)
        if settings is not None:
            self.apply(settings)
        # A camera that died mid-recording finalises what it kept, so that it can be offloaded.
        self.recovered: list[SignedManifest] = (
            store.recover(territory=self.territory, clock_offset_ms=self.clock_offset_ms) if recover else []
        )
        self._check_storage()

    # --- settings from the platform ---------------------------------------------------------

    def apply(self, settings: CameraSettings) -> None:
        """Take the platform's settings: clock offset and territory at once; the wearer and the
        pre-event buffer at once in standby, after the current recording otherwise (a recording
        keeps one wearer from start to end)."""
        previous, self.settings = self.settings, settings
        self.clock_offset_ms = settings.clock_offset_ms
        self.territory = settings.territory
        if settings.clock_drift and (previous is None or not previous.clock_drift):
            self.signals.warn(
                f"camera clock off by {settings.clock_offset_ms / 1000:+.1f} s from the platform: "
                "recordings are flagged; have the clock set"
            )
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
            self.buffer.close()
            self.buffer = PreEventBuffer(
                settings.pre_event_buffer_s, bitrate_bps=self.config.buffer_bitrate_bps, folder=self.store.root
            )
            self._check_storage()
        self.agent_id = settings.agent_id
        if changed and settings.assignment is not None:
            self.signals.warn(f"camera assigned to {settings.assignment.display_name} ({settings.agent_id})")
        if self.agent_id == UNASSIGNED and (changed or first):
            self.signals.warn("no agent assigned to this camera: it records as UNASSIGNED (have it checked out to you)")

    # --- the capture loop -------------------------------------------------------------------

    @property
    def recording_id(self) -> str | None:
        return self._recording.recording_id if self._recording else None

    def step(self) -> None:
        """Capture one frame and do whatever is due at its time."""
        frame, at = self.video.read()
        jump = self._clock_watch.check(at)
        if jump is not None:
            self._on_clock_jump(jump, at)
        if self.live is not None:
            self._live_tick(frame)
        self._poll_gps(at)
        if self.dispatch is not None:
            self.dispatch.tick(self)
        self._indicator.tick(at)
        recording = self.state is AgentState.RECORDING
        if not recording and not self.buffer.enabled:
            return  # no pre-event buffer: nothing is encoded in standby
        if self._writer is not None:
            self._feed_audio(at)
            if (at - self._writer.started_at).total_seconds() >= self.config.segment_s - ROLL_SLACK_S:
                self._route(self._close_writer(), at)
                if self._full is not None:
                    self._stop_when_full(at)
                    return
        if self._writer is None:
            self._writer = self._open_writer(
                at, audio=self.config.record_audio if recording else self.config.pre_event_audio
            )
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
        return SegmentWriter(
            0,
            at,
            width=self.video.width,
            height=self.video.height,
            fps=self.video.fps,
            agent_id=agent_id,
            camera_id=self.config.camera_id,
            audio=audio,
            sample_rate=self.audio.sample_rate if self.audio is not None else 48_000,
        )

    def _feed_audio(self, until: datetime) -> None:
        if self._writer is None or self.audio is None or not self._writer_audio:
            return
        chunk = self.audio.read(until)
        if chunk is not None:
            if self.live is not None:
                try:
                    self.live.feed.put_audio(chunk)  # the live stream's sound (a no-op when not live)
                except Exception:  # a fault of the live stream never stops the recording
                    log.exception("live sound dropped; the recording goes on")
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
        if self._full is not None:
            return  # already out of room: the caller stops the recording
        fixes, self._pending_fixes = self._pending_fixes, []
        try:
            self._recording.add_segment(
                segment.data, segment.started_at, segment.duration_s, notice=self._notice, fixes=fixes
            )
        except StorageFull as exc:  # nothing written: the caller stops the recording, finalised, at once
            self._pending_fixes = fixes + self._pending_fixes
            self._full = str(exc)
            self.errors.append(f"segment at {segment.started_at.isoformat()} not stored: {exc}")
            return
        except OSError as exc:  # disk full or failing: the wearer must know at once
            self.errors.append(f"segment at {segment.started_at.isoformat()} not stored: {exc}")
            self.signals.led(Led.ATTENTION)
            self.signals.vibrate(Vibration.ATTENTION)
            return
        self._check_storage()

    # --- storage running low ----------------------------------------------------------------

    def _check_storage(self) -> None:
        """Under a store budget: cap the pre-event buffer to what the store can spare beyond the
        low threshold (the buffer lands on the store when a recording starts), warn once when the
        free budget falls under the threshold."""
        usage = self.store.usage()
        if usage.budget_bytes is None:
            return
        assert usage.free_bytes is not None
        free = usage.free_bytes + self.buffer.disk_bytes  # the ring file gives its room back first
        low = (
            self.config.storage_low_bytes
            if self.config.storage_low_bytes is not None
            else int(usage.budget_bytes * STORAGE_LOW_FRACTION)
        )
        self.buffer.limit(buffer_room(free - low, on_disk=self.buffer.on_disk, natural=self.buffer.max_bytes))
        if not self.buffer.enabled and self.state is AgentState.STANDBY and self._writer is not None:
            self._writer.abort()  # standby footage that has nowhere to go
            self._writer = None
        was_low, self.storage_low = self.storage_low, free <= low
        if self.storage_low and not was_low:
            self.signals.warn(
                f"storage low: {_mb(free)} left of {_mb(usage.budget_bytes)}; recordings not yet "
                "offloaded are kept, the pre-event buffer is off, recording still works until the "
                "storage is full: dock the camera to offload"
            )
            self.signals.vibrate(Vibration.ATTENTION)
            if self.state is AgentState.STANDBY:
                self.signals.led(Led.ATTENTION)
            self.store.log_event(
                "storage.low", free_bytes=free, budget_bytes=usage.budget_bytes, pending=len(self.store.pending())
            )
        elif was_low and not self.storage_low:
            self.store.log_event("storage.ok", free_bytes=free, budget_bytes=usage.budget_bytes)
            if self.state is AgentState.STANDBY:
                self.signals.led(Led.STANDBY)

    def _stop_when_full(self, now: datetime) -> SignedManifest | None:
        """A segment did not fit: stop here, keep and finalise what is stored, tell the wearer."""
        assert self._recording is not None
        reason, self._full = self._full, None
        if self._writer is not None:
            self._writer.abort()
            self._writer = None
        rid = self._recording.recording_id
        kept = len(self._recording.segments)
        self.signals.warn(
            f"storage full: recording {rid} stopped at {now:%H:%M:%S} UTC with {kept} segment(s) "
            "kept; nothing was overwritten or deleted: dock the camera to offload"
        )
        self.signals.vibrate(Vibration.ATTENTION)
        self.store.log_event("storage.full", recording=rid, segments_kept=kept, detail=reason)
        signed = self._finish(now)
        self.signals.led(Led.ATTENTION)
        return signed

    # --- the clock jumping ------------------------------------------------------------------

    def _on_clock_jump(self, jump_s: float, at: datetime) -> None:
        jump_ms = round(jump_s * 1000)
        before_ms = self.clock_offset_ms
        if before_ms is not None:
            self.clock_offset_ms = before_ms + jump_ms  # the camera's clock moved that far from the platform's
        # Schedules measured on the old clock start again on the new one.
        self._gps_schedule.reset()
        if self._indicator.on:
            self._indicator._last_beep = at  # the beep keeps its rhythm (a step back would silence it)
        self._standby_fixes.clear()
        rid = self.recording_id
        continued: str | None = None
        if (
            self.state is AgentState.RECORDING
            and self._recording is not None
            and (self._writer is not None or self._recording.segments)
        ):
            continued = self._continue_after_jump(jump_s, at, before_ms)
            what = (
                f"recording {rid} closed and continued as {continued}, no frame lost"
                if continued
                else f"recording {rid} closed (storage full)"
            )
        elif self.state is AgentState.STANDBY:
            if self._writer is not None:
                self._writer.abort()
                self._writer = None
            self.buffer.clear()  # its footage is stamped by the old clock
            what = "pre-event buffer emptied"
        else:
            what = "the recording had not stored anything yet: it goes on"
        self.clock_jumps.append(ClockJump(at, jump_s, rid, continued))
        offset = "unknown" if self.clock_offset_ms is None else f"{self.clock_offset_ms / 1000:+.1f} s"
        self.signals.warn(
            f"camera clock jumped {jump_s:+.1f} s at {at:%Y-%m-%d %H:%M:%S} UTC: {what}; clock offset "
            f"from the platform now {offset}"
            + (
                "; recordings are flagged: have the clock set"
                if self.clock_offset_ms is not None and abs(self.clock_offset_ms) > DRIFT_FLAG_MS
                else ""
            )
        )
        self.signals.vibrate(Vibration.ATTENTION)
        self.store.log_event(
            "clock.jump",
            at=at.isoformat(),
            jump_ms=jump_ms,
            recording=rid,
            continued_as=continued,
            clock_offset_ms=self.clock_offset_ms,
        )

    def _continue_after_jump(self, jump_s: float, at: datetime, offset_before_ms: int | None) -> str | None:
        """Close the recording on the old clock (finalised, signed) and carry on in a new one."""
        assert self._recording is not None and self._notice is not None
        if self._writer is not None:
            self._store(self._close_writer())  # its frames all carry old-clock times
        if self._full is not None:  # that last segment did not fit: the recording stops here
            self._stop_when_full(at)
            return None
        old, self._recording = self._recording, None
        try:
            old.finalise(notice=self._notice, clock_offset_ms=offset_before_ms, outside_territory=self._outside)
        finally:
            self.store.release(old)
        detail = f"continues {old.recording_id} after the camera clock jumped {jump_s:+.1f} s"
        if old.header.trigger_detail:
            detail = f"{old.header.trigger_detail}; {detail}"
        header = RecordingHeader(
            recording_id=f"rec-{uuid.uuid4().hex[:16]}",
            camera_id=self.config.camera_id,
            agent_id=old.header.agent_id,
            trigger=old.header.trigger,
            trigger_detail=detail[:500],
            triggered_at=at,
            pre_event_buffer_s=0,
        )
        self._recording = self.store.begin(header)
        self._outside = False
        return header.recording_id

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

    def start_recording(
        self, trigger: Trigger = Trigger.INCIDENT, *, notice: Notice | None = None, detail: str | None = None
    ) -> str:
        """Start recording now; the pre-event buffer becomes the start of the recording."""
        if self.state is AgentState.RECORDING:
            assert self._recording is not None
            return self._recording.recording_id
        now = self.clock()
        if notice is None:
            notice = (
                self.config.button_notice
                if trigger is not Trigger.AUTOMATIC
                else Notice.not_told(
                    NotInformedReason.CIRCUMSTANCES,
                    f"automatic start ({detail or 'input'}): not confirmed by the wearer",
                )
            )
        if self._writer is not None:
            self._feed_audio(now)
            self.buffer.push(self._close_writer(), now)
        self._check_storage()  # what the store cannot spare of the buffer goes now, before anything is written
        pre_event = self.buffer.take(now)
        header = RecordingHeader(
            recording_id=f"rec-{uuid.uuid4().hex[:16]}",
            camera_id=self.config.camera_id,
            agent_id=self.agent_id,
            trigger=trigger,
            trigger_detail=detail,
            triggered_at=now,
            pre_event_buffer_s=self.config.pre_event_s,
        )
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
        self.signals.vibrate(
            Vibration.AUTOMATIC_TRIGGER if trigger is Trigger.AUTOMATIC else Vibration.RECORDING_STARTED
        )
        if self.agent_id == UNASSIGNED:
            self.signals.warn("recording as UNASSIGNED: no agent is checked out with this camera")
        for held in pre_event:  # read back one at a time: the whole buffer is never in memory at once
            try:
                segment = held.read()
            except (RingDamaged, OSError) as exc:
                self._unreadable(held, exc)
                continue
            self._store(segment)
        if self._full is not None:
            self._stop_when_full(now)
        return header.recording_id

    def _unreadable(self, held: BufferedSegment, exc: Exception) -> None:
        """A pre-event segment that does not come back from the buffer's file: the recording goes on without it,
        the wearer is warned and the device's log keeps it."""
        self.errors.append(f"pre-event segment at {held.started_at.isoformat()} lost: {exc}")
        self.store.log_event(
            "buffer.unreadable", recording=self.recording_id, started_at=held.started_at, size=held.size, error=str(exc)
        )
        self.signals.warn(f"a pre-event segment ({held.started_at:%H:%M:%S}) could not be read back: {exc}")

    def inform(self, notice: Notice) -> None:
        """The wearer says whether the people filmed were told (kept from the next checkpoint on)."""
        if self.state is not AgentState.RECORDING:
            raise StoreError("not recording")
        self._notice = notice

    def stop_recording(self) -> SignedManifest:
        """Stop, store the last segment and finalise the signed manifest; back to standby."""
        if self.state is not AgentState.RECORDING or self._recording is None:
            raise StoreError("not recording")
        if self.live is not None:
            self.live.stop()  # the wearer stops recording: the live transmission ends with it
        if self._writer is None and not self._recording.segments:
            self.step()  # stopped before a single frame: keep at least that one
        now = self.clock()
        if self._writer is not None:
            self._feed_audio(now)
            self._store(self._close_writer())
        signed = self._stop_when_full(now) if self._full is not None else self._finish(now)
        if signed is None:
            raise StoreError("storage full: not a single segment of this recording could be stored")
        return signed

    def _finish(self, now: datetime) -> SignedManifest | None:
        """Back to standby; the recording finalised (None when not a segment of it could be stored:
        its signed header stays on the device as the trace that recording was attempted)."""
        assert self._recording is not None
        if self.audio is not None:
            self.audio.stop()
        recording, self._recording = self._recording, None
        self.state = AgentState.STANDBY
        signed: SignedManifest | None = None
        try:
            if recording.segments:
                signed = recording.finalise(
                    notice=self._notice, clock_offset_ms=self.clock_offset_ms, outside_territory=self._outside
                )
            else:
                self.store.log_event("recording.empty", recording=recording.recording_id)
        finally:
            self.store.release(recording)
            self._notice = None
            self._outside = False
            self._gps_schedule.reset()
            self._indicator.stop(now)
            if self.storage_low:
                self.signals.led(Led.ATTENTION)  # standby, but the store needs the dock
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
        """One press of the live button. The second press within 0.5 s is a live request: the CSU is
        alerted and the camera streams to it (in the live link's own thread: nothing here waits on the
        network), and recording starts at once (trigger: live_request). Returns the recording id on a
        live request. The live transmission ends when the wearer stops recording, or when the CSU ends it
        (the recording goes on)."""
        now = self.clock()
        if not self._live_button.press(now):
            return None
        self.live_requested_at = now
        if self.live is not None and not self.live.active:
            # The alert first: the request leaves while the recording opens.
            self.live_session_id, self.live_acknowledged_at = None, None
            self.live.start(position=self.last_fix, agent=self.agent_id, detail="live button (double press)")
        if self.state is AgentState.RECORDING:
            rid = self.recording_id
        else:
            # A threat is presumed (R241-11): nobody stops to announce the camera.
            rid = self.start_recording(
                Trigger.LIVE_REQUEST,
                detail="live button (double press)",
                notice=Notice.not_told(
                    NotInformedReason.CIRCUMSTANCES, "live request (threat): not confirmed by the wearer"
                ),
            )
        if self.live is None:
            # Honest to the wearer: a camera without a platform link cannot reach the CSU.
            self.signals.vibrate(Vibration.ATTENTION)
            self.signals.warn(
                "live request: the camera records, but live transmission is not available on this "
                "camera (no platform link): call the CSU by radio"
            )
        return rid

    def _live_tick(self, frame) -> None:  # the captured picture (RGB array)
        """Between two frames: the picture to the live stream, the position to the CSU's map, and what the
        live link heard (the CSU's acknowledgement) to the wearer."""
        live = self.live
        assert live is not None
        if live.feed.active:
            try:
                live.feed.put_video(frame)
            except Exception:  # a fault of the live stream never stops the recording
                log.exception("live picture dropped; the recording goes on")
            live.position = self.last_fix
        for event in live.events():
            self._live_event(event)

    def _live_event(self, event: LiveEvent) -> None:
        if event.session_id:
            self.live_session_id = event.session_id
        if event.kind == "acknowledged":
            self.live_acknowledged_at = self.clock()
        tell_wearer(self.signals, event)

    # --- docked ----------------------------------------------------------------------------

    def offload(self, vault: VaultClient, progress: Callable[[str, int], None] | None = None) -> OffloadOutcome:
        """Hand every finalised recording to the vault; each local copy goes only on a valid receipt
        (`camera.docking`).

        `progress(recording_id, n)` hears of the bytes the vault holds as they arrive.
        """
        self.signals.led(Led.OFFLOADING)
        outcome = offload_pending(self.store, self.signals, vault, progress)
        self._check_storage()  # room came back with every local copy deleted
        self.signals.led(
            Led.ATTENTION
            if outcome.kept or outcome.quarantined or self.storage_low
            else Led.RECORDING
            if self.state is AgentState.RECORDING
            else Led.STANDBY
        )
        return outcome


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def _fixes_since(fixes: deque[GpsFix], start: datetime) -> list[GpsFix]:
    """The fixes from `start` on, led by the last one before it (where the footage begins)."""
    before = [f for f in fixes if f.t <= start]
    return ([before[-1]] if before else []) + [f for f in fixes if f.t > start]
