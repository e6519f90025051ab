"""Pieces shared by the camera agent's benchmarks: `bench/common.py` on the path, a noisy 720p source
(a synthetic street with sensor-like noise, so that H.264 needs about 4 Mbit/s), a camera on a
temporary device store, and `temoin serve` in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/, for `common`

import numpy as np  # noqa: E402

import common  # noqa: E402,F401  (re-exported)

WIDTH, HEIGHT, FPS = 1280, 720, 30
NOISY_ROWS = 620  # rows of the picture that get noise: about 4.5 Mbit/s at the agent's crf 23 (measured)
NOISE = 10  # ± levels of noise per channel
NOISE_BAND = 40  # rows the noise is added to at once


class NoisyVideo:
    """`SyntheticVideo` with noise on most of the picture: H.264 then needs a body-camera bitrate
    (about 4 Mbit/s at 720p30) instead of the 0.4 Mbit/s the clean synthetic street takes."""

    def __init__(self, scene, clock, seed: int = 0) -> None:  # noqa: ANN001
        from temoin.camera.sources import SyntheticVideo

        self.inner = SyntheticVideo(scene, clock)
        self.width, self.height, self.fps = scene.width, scene.height, scene.fps
        rng = np.random.default_rng(seed)
        rows = min(NOISY_ROWS, scene.height)
        # Four noise frames (int8: 2.4 MB each at 720p) are enough: x264 "veryfast" refers to one frame back.
        self._pool = [rng.integers(-NOISE, NOISE + 1, size=(rows, scene.width, 3), dtype=np.int8) for _ in range(4)]
        self._n = 0

    @property
    def pool_bytes(self) -> int:
        """Memory the bench's noise takes (not the camera's)."""
        return sum(p.nbytes for p in self._pool)

    def read(self):  # noqa: ANN201
        frame, at = self.inner.read()
        noise = self._pool[self._n % len(self._pool)]
        self._n += 1
        tail = frame[-noise.shape[0] :]
        # A band of rows at a time: the int16 sum of the whole picture is 14 MB of temporaries per frame, which
        # the process's peak (VmHWM) would count as the camera's.
        for top in range(0, noise.shape[0], NOISE_BAND):
            band = tail[top : top + NOISE_BAND]
            band[...] = np.clip(band.astype(np.int16) + noise[top : top + NOISE_BAND], 0, 255)
        return frame, at


def camera(
    root: Path,
    *,
    noisy: bool,
    pre_event_s: float = 0,
    buffer_bitrate_bps: int = 2_000_000,
    width: int = WIDTH,
    height: int = HEIGHT,
    fps: int = FPS,
    budget_bytes: int | None = None,
    keys=None,
    platform_key: bytes | None = None,
    camera_id: str = "cam-bench",
):  # noqa: ANN001, ANN201
    """A camera agent on a fresh device store under `root`, with a simulated clock (it runs as fast as it can)."""
    from temoin.camera.agent import CameraAgent
    from temoin.camera.agent_config import AgentConfig
    from temoin.camera.clock import SimulatedClock
    from temoin.camera.device_store import DeviceStore
    from temoin.camera.gps import SimulatedWalk
    from temoin.camera.keys import DeviceKeys
    from temoin.camera.media import SyntheticScene
    from temoin.camera.signals import TerminalSignals
    from temoin.camera.sources import SyntheticAudio, SyntheticVideo

    clock = SimulatedClock(datetime.now(UTC))  # (not temoin.db.utcnow: SQLAlchemy is no part of a camera)
    keys = keys or DeviceKeys.load_or_create(root / "keys")
    store = DeviceStore(root, keys, platform_key, clock, budget_bytes=budget_bytes)
    scene = SyntheticScene(width, height, fps=fps, seed=1)
    video = NoisyVideo(scene, clock) if noisy else SyntheticVideo(scene, clock)
    start = clock()
    return CameraAgent(
        AgentConfig(
            camera_id=camera_id, agent_id="PM-0001", pre_event_s=pre_event_s, buffer_bitrate_bps=buffer_bitrate_bps
        ),
        store=store,
        video=video,
        audio=SyntheticAudio(scene, start),
        gps=SimulatedWalk(start, "Rue du Port"),
        signals=TerminalSignals(),
        clock=clock,
    )


def frames_for(seconds: float, fps: int = FPS) -> int:
    return round(seconds * fps)


def seconds_of(manifest) -> float:  # noqa: ANN001
    return (manifest.ended_at - manifest.started_at) / timedelta(seconds=1)


def rss_mib() -> tuple[float, float]:
    """(VmHWM, VmRSS) of this process, MiB."""
    return common.peak_rss_mib()


@contextmanager
def temoin_serve(home: Path, port: int) -> Iterator[subprocess.Popen]:
    """`temoin serve` on 127.0.0.1:port over `home` (as bench/ingest.py runs it)."""
    import httpx

    env = dict(os.environ, TEMOIN_HOME=str(home), TEMOIN_INSECURE_COOKIES="1")
    env.pop("TEMOIN_DATABASE_URL", None)
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("temoin")), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/api/v1/platform", timeout=2).raise_for_status()
                break
            except httpx.HTTPError:
                if server.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not start: see {home / 'server.log'}") from None
                time.sleep(0.2)
        yield server
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log.close()
