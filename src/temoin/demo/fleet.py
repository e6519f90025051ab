"""The demo fleet: simulated cameras that are each the real `CameraAgent`, with synthetic inputs.

Each camera has its own home (keys, device store), is enrolled with a one-time code and checked
out to a demo agent like a real one, and gets its settings (wearer, buffer, territory, clock)
from `GET /api/v1/camera/config`. Its pictures and sound are the synthetic scene, its GPS a walk
along its own street of the demo commune. During a shift the agent patrols (the pre-event buffer
running), and now and then records: an incident (the record button), a person's request, a
flagrant offence (people not always told), a Taser armed (automatic, R511-28; the wearer
confirms a few seconds later that the people were told). At the end of its shift the camera
docks and offloads through the real HTTP ingest; local copies go only on verified receipts.

With `live_every_s`, every so often one camera's wearer presses the live button (the camera's real live
link: the CSU is alerted on /live and can watch what the camera captures, and acknowledge; the
acknowledgement reaches the camera, which reports it); the wearer stops recording a minute or so later,
which ends the live session.

Reinforcements: each camera also sends its position and status to the CSU's map every few seconds and waits
for orders (its real dispatch link, `camera/dispatch.py`). An agent the CSU sends walks from where they are
to the target in a straight line at the tenant's patrol speed, and their positions show them converging on
the map; once there they stay a minute, then walk back to their street and patrol on. An order cancelled
on the way sends them straight back. The other agents keep patrolling their streets.

Time: each camera runs on its own `SimulatedClock`, advanced by `Fleet.run` in small ticks,
camera after camera in one thread (no encoder threads to contend on two cores). In real time
(`realtime=True`, the demo) the ticks follow the wall clock; otherwise (tests) they go as fast as
the encoders allow. At 320x240, 10 fps, a camera costs a few per cent of one core (buffering
about 2 %, recording about 4 %), so six cameras run in real time on two cores.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

import httpx

from temoin.camera.agent import CameraAgent
from temoin.camera.agent_config import AgentConfig, AgentState
from temoin.camera.clock import SimulatedClock
from temoin.camera.device_store import Notice, StoreError
from temoin.camera.dispatch import POSITION_EVERY_S, DispatchLink, Order
from temoin.camera.docking import OffloadOutcome
from temoin.camera.gps import SimulatedWalk
from temoin.camera.media import SyntheticScene
from temoin.camera.offload import OffloadError
from temoin.camera.runner import CameraHome
from temoin.camera.signals import TerminalSignals
from temoin.camera.sources import SyntheticAudio, SyntheticVideo
from temoin.demo.commune import streets
from temoin.evidence.manifest import GpsFix, NotInformedReason, Trigger
from temoin.geo.geometry import distance_m

# What starts the recordings, in turn (each camera starts at its own place in the cycle).
SCENARIOS = ("incident", "person_request", "flagrant_offence", "taser")
SCENARIO_TRIGGER = {
    "incident": Trigger.INCIDENT,
    "person_request": Trigger.PERSON_REQUEST,
    "flagrant_offence": Trigger.FLAGRANT_OFFENCE,
    "taser": Trigger.AUTOMATIC,
    "live": Trigger.LIVE_REQUEST,
}  # "live": the live button (`live_every_s`), not in the cycle


@dataclass(frozen=True)
class FleetSettings:
    width: int = 320
    height: int = 240
    fps: int = 10
    segment_s: float = 4.0
    shift_s: float = 300.0  # patrol time between two docks
    stagger: bool = True  # first shifts of different lengths: the cameras dock one after another
    first_delay_s: tuple[float, float] = (10.0, 40.0)  # from the shift start to the first recording
    gap_s: tuple[float, float] = (60.0, 180.0)  # between two recordings
    duration_s: tuple[float, float] = (15.0, 45.0)  # of a recording
    tick_s: float = 0.5
    live_every_s: float | None = None  # one camera presses the live button this often (None: never)
    live_first_s: float = 45.0  # the first press, from the start of the run
    live_duration_s: tuple[float, float] = (60.0, 90.0)  # until the wearer stops recording (the live ends)
    # Where a press shows the most (the demo: where a PTZ CCTV camera can be aimed at the agent); a press waits
    # for a camera's wearer to be at such a place, at most `live_wait_s`, then happens wherever they are.
    live_where: Callable[[float, float], bool] | None = None
    live_wait_s: float = 120.0
    dispatch: bool = True  # positions to the CSU's map, and reinforcement orders followed
    on_scene_s: float = 60.0  # how long a reinforcing agent stays at the target before patrolling again
    position_every_s: float = POSITION_EVERY_S  # a GPS fix, and a position to the CSU's map, this often


@dataclass(frozen=True)
class FleetRecord:
    recording_id: str
    camera_id: str
    agent_id: str
    scenario: str
    started_at: datetime

    @property
    def trigger(self) -> Trigger:
        return SCENARIO_TRIGGER[self.scenario]


Report = Callable[[str, str], None]  # (camera label, what happened)


class FleetSignals(TerminalSignals):
    """The wearer's signals, kept as text; what concerns the live transmission is reported as it happens."""

    def __init__(self, label: str, report: Report) -> None:
        super().__init__()
        self._label, self._report = label, report

    def acknowledged(self, message: str) -> None:
        super().acknowledged(message)
        self._report(self._label, f"LIVE acknowledged by the CSU: the camera vibrates ({message})")

    def reinforcement(self, message: str) -> None:
        super().reinforcement(message)
        self._report(self._label, f"ORDER from the CSU, the camera vibrates: {message}")

    def warn(self, message: str) -> None:
        super().warn(message)
        if message.startswith(("live", "CSU")):
            self._report(self._label, message)


class FleetCamera:
    def __init__(
        self,
        index: int,
        home: CameraHome,
        base_url: str,
        street: str,
        clock: SimulatedClock,
        settings: FleetSettings,
        report: Report,
        seed: int | None = None,
        walk_offset_s: int = 0,
    ) -> None:
        self.index, self.home, self.base_url, self.settings, self.report = index, home, base_url, settings, report
        self.identity = home.require_identity()
        self.label = self.identity.serial
        self.clock = clock
        self.rng = random.Random(index if seed is None else seed)  # noqa: S311 - the demo's seeded, reproducible patrols, not cryptography
        self.records: list[FleetRecord] = []
        self.offloads: list[OffloadOutcome] = []
        self.link = home.link(base_url, clock=clock)
        platform_settings, why = self.link.current()
        if why:
            report(self.label, why)
        scene = SyntheticScene(settings.width, settings.height, fps=settings.fps, seed=100 + index)
        start = clock()
        self.signals = FleetSignals(self.label, report)
        self.live = None
        if settings.live_every_s:
            from temoin.camera.live_publisher import LiveLink  # aiortc: only when the fleet goes live

            self.live = LiveLink(
                base_url,
                self.identity.device_id,
                home.keys().signing_key,
                width=settings.width,
                height=settings.height,
                fps=settings.fps,
                clock_skew_s=lambda: self.link.auth.clock_skew_s,
                name=f"live-{self.label}",
            )
        self._live_reported: str | None = None
        self.dispatch: DispatchLink | None = None
        config = AgentConfig(camera_id=self.identity.device_id, segment_s=settings.segment_s)
        if settings.dispatch:
            self.dispatch = DispatchLink(
                base_url,
                self.identity.device_id,
                home.keys().signing_key,
                clock_skew_s=lambda: self.link.auth.clock_skew_s,
                position_every_s=settings.position_every_s,
                name=f"dispatch-{self.label}",
            )
            config = AgentConfig(
                camera_id=self.identity.device_id,
                segment_s=settings.segment_s,
                gps_standby_interval_s=settings.position_every_s,
            )  # a fix for each position
        self.patrol = SimulatedWalk(start, street, offset_s=walk_offset_s)
        self.route: Route | None = None  # where the CSU sent this agent, when it did
        self.agent = CameraAgent(
            config,
            store=home.store(clock),
            video=SyntheticVideo(scene, clock, start),
            audio=SyntheticAudio(scene, start),
            gps=self.patrol,
            signals=self.signals,
            clock=clock,
            settings=platform_settings,
            live=self.live,
            dispatch=self.dispatch,
        )
        self.street = street
        self._cycle = 2 * index  # camera i starts its cycle at its own place (two cameras: all four kinds)
        first = settings.shift_s * (index + 1) / (index + 2) if settings.stagger else settings.shift_s
        self._begin_shift(start, first)

    @property
    def who(self) -> str:
        s = self.agent.settings
        return f"{s.assignment.display_name} ({s.agent_id})" if s and s.assignment else self.agent.agent_id

    def _begin_shift(self, start: datetime, length_s: float) -> None:
        self.shift_end = start + timedelta(seconds=length_s)
        self._next_start = start + timedelta(seconds=self.rng.uniform(*self.settings.first_delay_s))
        self._stop_at: datetime | None = None
        self._confirm_at: datetime | None = None
        self.report(self.label, f"shift starts: {self.who} patrols {self.street}")

    def advance(self, until: datetime) -> None:
        """Live the camera's life up to `until`: frames, scheduled actions, the dock at shift end."""
        while self.clock() < until:
            now = self.clock()
            if now >= self.shift_end:
                self.dock()
                self._begin_shift(now, self.settings.shift_s)
                continue
            recording = self.agent.state is AgentState.RECORDING
            if recording and self._confirm_at is not None and now >= self._confirm_at:
                self._confirm_at = None
                self.agent.trigger_input("taser", False)
                self.agent.inform(Notice.told())  # the wearer confirms the people were told
            if recording and self._stop_at is not None and now >= self._stop_at:
                self._stop()
            elif not recording and now >= self._next_start:
                if now + timedelta(seconds=self.settings.duration_s[0]) < self.shift_end:
                    self._start(now)
                else:
                    self._next_start = self.shift_end  # too late in the shift: next one
            self.agent.step()
            self._follow_orders(self.clock())
            if self.agent.live_session_id and self.agent.live_session_id != self._live_reported:
                self._live_reported = self.agent.live_session_id
                self.report(
                    self.label,
                    f"LIVE alert received by the platform ({self.agent.live_session_id}): "
                    "the CSU watches and acknowledges on /live",
                )

    @property
    def shift_left_s(self) -> float:
        return (self.shift_end - self.clock()).total_seconds()

    def press_live(self) -> None:
        """The wearer presses the live button twice: the CSU is alerted, the camera streams and records
        (trigger: live request); the wearer stops recording later on, which ends the live session."""
        now = self.clock()
        self.agent.press_live()
        rid = self.agent.press_live()  # the second press within 0.5 s: a live request
        duration = self.rng.uniform(*self.settings.live_duration_s)
        stop_at = min(now + timedelta(seconds=duration), self.shift_end)
        if self._stop_at is None or self._stop_at < stop_at:
            if self._stop_at is None:  # a recording started by the live button
                self.records.append(FleetRecord(rid or "", self.identity.device_id, self.agent.agent_id, "live", now))
            self._stop_at = stop_at
        self.report(
            self.label,
            f"LIVE button pressed twice ({self.who}): threat, alert to the CSU, "
            f"streaming for about {(stop_at - now).total_seconds():.0f} s",
        )

    def _start(self, now: datetime) -> None:
        scenario = SCENARIOS[self._cycle % len(SCENARIOS)]
        self._cycle += 1
        agent = self.agent
        if scenario == "incident":
            rid = agent.start_recording(Trigger.INCIDENT)
        elif scenario == "person_request":
            rid = agent.start_recording(
                Trigger.PERSON_REQUEST, notice=Notice.told(), detail="asked by the person filmed"
            )
        elif scenario == "flagrant_offence":
            notice = (
                Notice.told()
                if self.rng.random() < 0.5
                else Notice.not_told(
                    NotInformedReason.FLAGRANT_OFFENCE, "suspect fleeing: no time to announce the camera"
                )
            )
            rid = agent.start_recording(Trigger.FLAGRANT_OFFENCE, notice=notice, detail="flagrant offence")
        else:
            rid = agent.trigger_input("taser", True) or ""
            self._confirm_at = now + timedelta(seconds=self.rng.uniform(3, 8))
        duration = self.rng.uniform(*self.settings.duration_s)
        self._stop_at = min(now + timedelta(seconds=duration), self.shift_end)
        self.records.append(FleetRecord(rid, self.identity.device_id, agent.agent_id, scenario, now))
        self.report(self.label, f"REC {scenario.replace('_', ' ')} ({self.who}), about {duration:.0f} s")

    def _stop(self) -> None:
        signed = self.agent.stop_recording()
        m = signed.manifest
        self._stop_at = None
        self._confirm_at = None
        self._next_start = self.clock() + timedelta(seconds=self.rng.uniform(*self.settings.gap_s))
        flags = " outside territory" if m.outside_territory else ""
        self.report(
            self.label,
            f"stopped: {len(m.segments)} segments, {(m.ended_at - m.started_at).total_seconds():.0f} s{flags}",
        )

    def dock(self) -> OffloadOutcome:
        """End of shift: stop what is recording, dock, offload through the real ingest."""
        if self.agent.state is AgentState.RECORDING:
            self._stop()
        pending = self.agent.store.pending()
        if not pending:
            self.report(self.label, "docked: nothing to offload")
            return OffloadOutcome()
        vault = self.home.vault(self.base_url)
        try:
            outcome = self.agent.offload(vault)
        except (OffloadError, StoreError, httpx.HTTPError) as exc:
            outcome = OffloadOutcome(kept={rid: str(exc) for rid in pending})
        finally:
            vault.close()
        self.offloads.append(outcome)
        kept = f", {len(outcome.kept)} kept ({next(iter(outcome.kept.values()))})" if outcome.kept else ""
        self.report(self.label, f"docked: {len(outcome.sent)} recording(s) offloaded, receipts verified{kept}")
        return outcome

    def close(self) -> None:
        if self.live is not None:
            self.live.close()
        if self.dispatch is not None:
            self.dispatch.close()
        self.link.close()

    # --- reinforcements ------------------------------------------------------------------------------

    def _here(self, now: datetime) -> tuple[float, float]:
        fix = (self.agent.gps.fix(now) if self.agent.gps is not None else None) or self.agent.last_fix
        fix = fix or self.patrol.fix(now)
        return (fix.lat, fix.lon) if fix else (0.0, 0.0)

    def _follow_orders(self, now: datetime) -> None:
        """Go where the CSU sends this agent (the order its camera heard and acknowledged), stay there a while,
        then walk back to the street and patrol on; straight back if the order is cancelled on the way."""
        if self.dispatch is None:
            return
        orders = self.dispatch.orders
        route = self.route
        order = next(iter(orders.values()), None)
        if order is not None and (route is None or route.order.id != order.id):
            self._head_to(order, now)
            return
        if route is None:
            return
        if route.leg == "to_target" and order is None:  # arrived, or cancelled on the way
            here = self._here(now)
            if distance_m(here[0], here[1], route.order.target_lat, route.order.target_lon) <= 30.0:
                route.leg, route.until = "on_scene", now + timedelta(seconds=self.settings.on_scene_s)
                self.report(self.label, f"{self.who} arrived on the scene: stays {self.settings.on_scene_s:.0f} s")
            else:
                self._walk_back(now, "order cancelled")
        elif route.leg == "on_scene" and route.until is not None and now >= route.until:
            self._walk_back(now, "leaves the scene")
        elif route.leg == "back" and route.walk.reached(now):
            # On the street again, where they left it: the patrol goes on from there.
            self.patrol = SimulatedWalk(now, self.street, offset_s=route.left_at_s)
            self.agent.gps = self.patrol
            self.route = None
            self.report(self.label, f"{self.who} patrols {self.street} again")

    def _head_to(self, order: Order, now: datetime) -> None:
        here = self._here(now)
        speed = float(order.data.get("speed_m_s") or 1.4)
        if self.route is None:  # leaving the street: remember where, to come back to it
            left = self.patrol.fix(now)
            left_at = (left.lat, left.lon) if left else here
            left_at_s = self.patrol.offset_s + max(0, int((now - self.patrol.started_at).total_seconds()))
        else:
            left_at, left_at_s = self.route.left_at, self.route.left_at_s
        walk = StraightWalk(here, (order.target_lat, order.target_lon), now, speed)
        self.route = Route(order, "to_target", walk, left_at, left_at_s)
        self.agent.gps = walk
        self.report(
            self.label,
            f"{self.who} heads for {order.for_agent}: {walk.length_m:.0f} m in a straight line "
            f"at {speed:.1f} m/s, about {walk.length_m / speed:.0f} s",
        )

    def _walk_back(self, now: datetime, why: str) -> None:
        route = self.route
        assert route is not None
        route.leg, route.until = "back", None
        route.walk = StraightWalk(self._here(now), route.left_at, now, route.walk.speed_m_s)
        self.agent.gps = route.walk
        self.report(self.label, f"{self.who} {why}: back to {self.street} ({route.walk.length_m:.0f} m)")


class StraightWalk:
    """A GPS source walking from `start` to `end` in a straight line at `speed_m_s`, then standing there."""

    def __init__(
        self,
        start: tuple[float, float],
        end: tuple[float, float],
        started_at: datetime,
        speed_m_s: float,
        accuracy_m: float = 5.0,
    ) -> None:
        self.start, self.end, self.started_at = start, end, started_at
        self.speed_m_s, self.accuracy_m = max(speed_m_s, 0.1), accuracy_m
        self.length_m = distance_m(start[0], start[1], end[0], end[1])

    def _done(self, at: datetime) -> float:
        walked = self.speed_m_s * max(0.0, (at - self.started_at).total_seconds())
        return 1.0 if self.length_m < 0.5 else min(1.0, walked / self.length_m)

    def reached(self, at: datetime) -> bool:
        return self._done(at) >= 1.0

    def fix(self, at: datetime) -> GpsFix:
        f = self._done(at)  # a straight line on the map: fine at a town's scale
        return GpsFix(
            t=at,
            lat=self.start[0] + (self.end[0] - self.start[0]) * f,
            lon=self.start[1] + (self.end[1] - self.start[1]) * f,
            accuracy_m=self.accuracy_m,
        )


@dataclass
class Route:
    """Where an agent the CSU sent is: going to the target, on the scene, or back to their street."""

    order: Order
    leg: str  # to_target | on_scene | back
    walk: StraightWalk
    left_at: tuple[float, float]  # where they left their street
    left_at_s: int  # how far along their street's walk that was (SimulatedWalk offset)
    until: datetime | None = None


@dataclass
class Fleet:
    cameras: list[FleetCamera]
    settings: FleetSettings = field(default_factory=FleetSettings)
    lag_s: float = 0.0  # how far behind the wall clock a real-time run fell

    @classmethod
    def build(
        cls,
        homes: list[Path],
        base_url: str,
        *,
        start: datetime,
        settings: FleetSettings | None = None,
        report: Report | None = None,
    ) -> Fleet:
        """One camera per home folder of an enrolled camera, each on its own street (two on one
        street walk it 5 minutes apart); all start at `start`."""
        settings = settings or FleetSettings()
        report = report or (lambda label, what: None)
        names = list(streets())
        cameras = [
            FleetCamera(
                i,
                CameraHome(home),
                base_url,
                names[i % len(names)],
                SimulatedClock(start),
                settings,
                report,
                walk_offset_s=300 * (i // len(names)),
            )
            for i, home in enumerate(homes)
        ]
        return cls(cameras, settings)

    @property
    def records(self) -> list[FleetRecord]:
        return [r for c in self.cameras for r in c.records]

    def _press_live(self, now: datetime, overdue_s: float) -> bool:
        """One camera's wearer presses the live button: one that is not live, preferably not recording, with
        the most of its shift left. False (try again at the next tick) if none has a minute left, or none is at
        a place `live_where` likes yet (for at most `live_wait_s`)."""
        idle = [c for c in self.cameras if c.live is not None and not c.live.active and c.shift_left_s >= 60]
        where = self.settings.live_where
        if where is not None and overdue_s < self.settings.live_wait_s:
            idle = [c for c in idle if where(*c._here(now))]
        if not idle:
            return False
        camera = max(idle, key=lambda c: (c.agent.state is not AgentState.RECORDING, c.shift_left_s))
        camera.press_live()
        return True

    def run(
        self,
        seconds: float | None = None,
        *,
        realtime: bool = True,
        stop: threading.Event | None = None,
        dock_at_end: bool = True,
    ) -> None:
        """Advance every camera tick by tick for `seconds` (or until `stop`), then dock them all."""
        if not self.cameras:
            return
        t0 = self.cameras[0].clock()
        t = t0
        wall0 = time.monotonic()
        tick = timedelta(seconds=self.settings.tick_s)
        every_s = self.settings.live_every_s
        live_every = timedelta(seconds=every_s) if every_s else None
        next_live = t0 + timedelta(seconds=self.settings.live_first_s) if live_every else None
        try:
            while (seconds is None or (t - t0).total_seconds() < seconds) and not (stop and stop.is_set()):
                t += tick
                if (
                    live_every is not None
                    and next_live is not None
                    and t >= next_live
                    and self._press_live(t, (t - next_live).total_seconds())
                ):
                    next_live += live_every
                for camera in self.cameras:
                    camera.advance(t)
                if realtime:
                    ahead = (t - t0).total_seconds() - (time.monotonic() - wall0)
                    if ahead > 0:
                        time.sleep(ahead)
                    else:
                        self.lag_s = -ahead
        finally:
            if dock_at_end:
                for camera in self.cameras:
                    camera.dock()
            for camera in self.cameras:
                camera.close()
