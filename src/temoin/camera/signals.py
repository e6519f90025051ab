"""What the camera shows and makes felt: the recording light and beep, vibrations, LED patterns.

The law asks for a visible signal while recording (seed 003: a steady red light and a regular
beep). `Signals` is what a hardware backend implements; `RecordingIndicator` owns the timing
(the beep every `beep_interval_s` while recording) so that backends stay dumb.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Protocol, TextIO

DEFAULT_BEEP_INTERVAL_S = 30.0


class Led(StrEnum):
    OFF = "off"
    STANDBY = "green-slow-blink"  # on, buffering, not recording
    RECORDING = "red-steady"  # the legal signal: steady red while recording
    OFFLOADING = "amber-blink"  # docked, handing recordings to the vault
    ATTENTION = "amber-steady"  # something needs the wearer (storage full, offload refused, ...)
    REINFORCEMENT = "blue-fast-blink"  # the CSU sends the wearer to help another agent


class Vibration(StrEnum):
    RECORDING_STARTED = "one-long"
    RECORDING_STOPPED = "two-short"
    AUTOMATIC_TRIGGER = "three-short"  # recording started by an input (Taser armed), not by the wearer
    ACKNOWLEDGED = "one-short"  # the CSU acknowledged (live alert)
    ATTENTION = "long-long"
    REINFORCEMENT = "three-long"  # a reinforcement order from the CSU (camera/dispatch.py)


class Signals(Protocol):
    """A camera's outputs. Implementations only switch things on and off; timing is elsewhere."""

    def recording(self, on: bool, at: datetime) -> None:
        """Recording state changed: steady red light on (and a first beep) or off."""

    def beep(self, at: datetime) -> None:
        """One short beep (repeated by `RecordingIndicator` while recording)."""

    def vibrate(self, pattern: Vibration) -> None: ...

    def led(self, pattern: Led) -> None: ...

    def acknowledged(self, message: str) -> None:
        """The CSU confirmed reception (live alert): the wearer must feel and see it."""

    def reinforcement(self, message: str) -> None:
        """The CSU sends the wearer to help another agent: "Renfort demandé : <agent> à <distance> m,
        <direction>" (the vibration and LED come through vibrate() and led())."""

    def warn(self, message: str) -> None:
        """Something the wearer must know that is not an error of theirs: no agent assigned,
        clock drift, outside the authorised territory, live streaming unavailable."""


@dataclass
class RecordingIndicator:
    """Drives a `Signals` backend while recording: red light, a beep at start and every interval."""

    signals: Signals
    beep_interval_s: float = DEFAULT_BEEP_INTERVAL_S
    _last_beep: datetime | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        if self.beep_interval_s <= 0:
            raise ValueError("the beep interval must be positive")

    @property
    def on(self) -> bool:
        return self._last_beep is not None

    def start(self, at: datetime) -> None:
        self.signals.recording(True, at)
        self.signals.led(Led.RECORDING)
        self.signals.beep(at)
        self._last_beep = at

    def tick(self, at: datetime) -> None:
        if self._last_beep is not None and (at - self._last_beep).total_seconds() >= self.beep_interval_s:
            self.signals.beep(at)
            self._last_beep = at

    def stop(self, at: datetime) -> None:
        self._last_beep = None
        self.signals.recording(False, at)
        self.signals.led(Led.STANDBY)


RED_DOT = "\N{LARGE RED CIRCLE}"
WHITE_DOT = "\N{MEDIUM WHITE CIRCLE}"


@dataclass
class TerminalSignals:
    """Signals as text: every event is kept in `events`, and printed to `out` when one is given.

    `status_line()` is what a terminal UI shows: a red dot and the elapsed time while recording.
    """

    out: TextIO | None = None
    events: list[str] = field(default_factory=list)
    recording_since: datetime | None = None
    current_led: Led = Led.OFF
    beeps: int = 0
    warnings: list[str] = field(default_factory=list)

    def _emit(self, text: str) -> None:
        self.events.append(text)
        if self.out is not None:
            print(text, file=self.out, flush=True)

    def recording(self, on: bool, at: datetime) -> None:
        self.recording_since = at if on else None
        self._emit(f"{RED_DOT} REC started {at:%H:%M:%S}" if on else f"{WHITE_DOT} recording stopped {at:%H:%M:%S}")

    def beep(self, at: datetime) -> None:
        self.beeps += 1
        self._emit(f"beep {at:%H:%M:%S}")

    def vibrate(self, pattern: Vibration) -> None:
        self._emit(f"vibrate {pattern.value}")

    def led(self, pattern: Led) -> None:
        self.current_led = pattern
        self._emit(f"led {pattern.value}")

    def acknowledged(self, message: str) -> None:
        self._emit(f"acknowledged: {message}")

    def reinforcement(self, message: str) -> None:
        self._emit(message)

    def warn(self, message: str) -> None:
        self.warnings.append(message)
        self._emit(f"warning: {message}")

    def status_line(self, now: datetime) -> str:
        if self.recording_since is None:
            return f"{WHITE_DOT} standby ({self.current_led.value})"
        elapsed = int((now - self.recording_since).total_seconds())
        return f"{RED_DOT} REC {elapsed // 3600:02d}:{elapsed % 3600 // 60:02d}:{elapsed % 60:02d}"


GPIO_WIRING = (
    "GpioSignals is the extension point for real hardware: subclass it and wire "
    "recording() to the red LED held steady on (legal signal, seed 003), beep() to the buzzer "
    "(one short pulse), vibrate() to the vibration motor (patterns in temoin.camera.signals.Vibration), "
    "led() to the status LED (patterns in Led), acknowledged() to motor + LED together and warn() to "
    "the attention LED (and a display if the camera has one), "
    "e.g. through libgpiod lines of your board; then pass it to CameraAgent(signals=...)"
)


class GpioSignals:
    """Where a real camera's LEDs, buzzer and motor plug in: not wired in this build."""

    def __init__(self, *_args: object, **_kwargs: object) -> None:
        if type(self) is GpioSignals:
            raise NotImplementedError(GPIO_WIRING)

    def recording(self, on: bool, at: datetime) -> None:
        raise NotImplementedError(GPIO_WIRING)

    def beep(self, at: datetime) -> None:
        raise NotImplementedError(GPIO_WIRING)

    def vibrate(self, pattern: Vibration) -> None:
        raise NotImplementedError(GPIO_WIRING)

    def led(self, pattern: Led) -> None:
        raise NotImplementedError(GPIO_WIRING)

    def acknowledged(self, message: str) -> None:
        raise NotImplementedError(GPIO_WIRING)

    def reinforcement(self, message: str) -> None:
        raise NotImplementedError(GPIO_WIRING)

    def warn(self, message: str) -> None:
        raise NotImplementedError(GPIO_WIRING)
