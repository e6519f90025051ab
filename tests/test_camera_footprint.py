"""The camera agent's memory in standby (issue #20: the camera agent with a full 120 s buffer under 150 MB). The
pre-event buffer holds encoded segments only; what else the process holds must not grow with it. These tests fail
loudly when a module-level import brings a heavy library into the camera, or when the standby footprint grows
beyond the bytes buffered again (glibc's heap fragmenting under the encoder's per-segment blocks: about 4 MiB of
RSS per MB buffered before `temoin.camera.memory`). The full-size figure is bench/camera/buffer_rss.py's."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Never in a camera process: no database, no web server, no document or detection engine.
NOT_IN_CAMERA = ("sqlalchemy", "fastapi", "starlette", "uvicorn", "aiortc", "fpdf", "onnxruntime", "cv2", "argon2")
# Measured 98 MiB after importing the agent and the runner on 2026-12-07 (numpy 21, PyAV 26, httpx 14 of it).
IMPORT_RSS_MIB = 115
# RSS grown beyond the bytes buffered over 10 s of noisy 720p standby: 2 MiB measured with the fixed mmap
# threshold, 15 MiB without it (growing with the buffer). Loose for another libc or encoder; tight enough for that.
EXCESS_MIB = 8

_STANDBY = """
import sys, tempfile
from datetime import UTC, datetime
from pathlib import Path

import temoin.camera.agent, temoin.camera.runner

def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) / 1024

print(rss())
print(",".join(m for m in NOT_IN_CAMERA if m in sys.modules))

import numpy as np
from temoin.camera.agent import CameraAgent
from temoin.camera.agent_config import AgentConfig
from temoin.camera.clock import SimulatedClock
from temoin.camera.device_store import DeviceStore
from temoin.camera.keys import DeviceKeys
from temoin.camera.media import SyntheticScene
from temoin.camera.signals import TerminalSignals
from temoin.camera.sources import SyntheticVideo


class Noisy(SyntheticVideo):
    # Sensor-like noise: H.264 then needs a body-camera bitrate (~4 Mbit/s), as in bench/camera/_shared.py.
    noise = [np.random.default_rng(i).integers(-10, 11, size=(620, 1280, 3), dtype=np.int8) for i in range(2)]

    def read(self):
        frame, at = super().read()
        tail = frame[-620:]
        tail[...] = np.clip(tail.astype(np.int16) + self.noise[self._next % 2], 0, 255)
        return frame, at


root = Path(tempfile.mkdtemp())
clock = SimulatedClock(datetime.now(UTC))
store = DeviceStore(root, DeviceKeys.load_or_create(root / "keys"), None, clock)
video = Noisy(SyntheticScene(1280, 720, fps=30, seed=1), clock)
agent = CameraAgent(
    AgentConfig(camera_id="cam-rss", agent_id="PM-0001", pre_event_s=30, buffer_bitrate_bps=4_000_000),
    store=store, video=video, signals=TerminalSignals(), clock=clock,
)
for _ in range(60):  # 2 s: the encoder opened, the first segment closed
    agent.step()
start, held = rss(), agent.buffer.bytes
for _ in range(300):
    agent.step()
print(rss() - start)
print((agent.buffer.bytes - held) / 2**20)
"""


def _standby() -> tuple[float, str, float, float]:
    code = f"NOT_IN_CAMERA = {NOT_IN_CAMERA!r}\n" + _STANDBY
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    rss, loaded, grown, buffered = out.stdout.splitlines()[-4:]
    return float(rss), loaded, float(grown), float(buffered)


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_camera_standby_holds_the_buffer_and_little_more() -> None:
    rss, loaded, grown, buffered = _standby()
    assert loaded == "", f"the camera agent loaded {loaded}: import it where it is first needed, never in a camera"
    assert rss <= IMPORT_RSS_MIB, f"importing the camera agent takes {rss:.0f} MiB (bound {IMPORT_RSS_MIB} MiB)"
    assert buffered > 3, f"the standby buffer should have filled ({buffered:.1f} MiB): the test measures nothing"
    excess = grown - buffered
    assert excess <= EXCESS_MIB, (
        f"in 10 s of standby the camera's RSS grew {grown:.0f} MiB for {buffered:.1f} MiB buffered: "
        f"{excess:.0f} MiB beyond the buffer (bound {EXCESS_MIB} MiB); see temoin.camera.memory"
    )
