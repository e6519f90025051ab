"""The camera agent's configuration (`AgentConfig`: what the camera is set up with before the platform's settings
arrive, `CameraAgent.apply`) and its two states."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from temoin.camera.buffer import DEFAULT_BITRATE_BPS, DEFAULT_PRE_EVENT_S
from temoin.camera.clock_jumps import CLOCK_JUMP_S
from temoin.camera.device_store import Notice
from temoin.camera.gps import RECORDING_INTERVAL_S, STANDBY_INTERVAL_S
from temoin.camera.platform_link import UNASSIGNED
from temoin.camera.signals import DEFAULT_BEEP_INTERVAL_S

# Inputs that start a recording by themselves, and what the recording says about them.
AUTOMATIC_INPUTS = {"taser": "Taser-type weapon armed (R511-28)"}


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
    # Under a store budget: free bytes under which the wearer is warned and the pre-event buffer is
    # off (None: a tenth of the budget). Above it the buffer may only use what lies beyond it.
    storage_low_bytes: int | None = None
    clock_jump_s: float = CLOCK_JUMP_S

    def __post_init__(self) -> None:
        if self.segment_s <= 0:
            raise ValueError("segment_s must be positive")
        if self.clock_jump_s <= 0:
            raise ValueError("clock_jump_s must be positive")
