"""The camera's link to the platform: its settings, its wearer and the clock.

When it is online (docked, or on the network) the camera asks `GET /api/v1/camera/config`,
signed with its device key, and learns:

- the wearer, from the shift assignment (R241-10: the agent identity recorded and burned in comes
  from the check-out, never from the camera). No assignment: the camera records anyway as
  `UNASSIGNED` and says so to the wearer (safety first: a camera that refuses to record when
  it matters is worse than a recording whose wearer is proven otherwise);
- the tenant's pre-event buffer (its legal profile) and authorised territory (R241-8 II), cached
  on the camera so that a recording made offline is still checked against it;
- the platform's clock: offset = camera clock - platform clock, measured half-way through the
  round trip (RTT/2). It goes into every manifest (`clock_offset_ms`); over 2 s the wearer is
  told and the vault flags the recording (`clock_drift_flag`). The camera does not rewrite its
  timestamps: what it burned in stays what it saw, and the offset says how to read it.

The settings are cached in `<camera home>/platform-config.json` with the time they were fetched.
A cached assignment older than a shift (`ASSIGNMENT_MAX_AGE`) is not trusted: a camera offline
since yesterday records as `UNASSIGNED` rather than under yesterday's wearer.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin.camera.clock import Clock, system_clock
from temoin.camera.files import atomic_write, private_dir
from temoin.camera.offload import DeviceAuth, OffloadError, error_detail

UNASSIGNED = "UNASSIGNED"
DRIFT_FLAG_MS = 2000  # the vault's CLOCK_DRIFT_FLAG_MS: over this, recordings are flagged
ASSIGNMENT_MAX_AGE = timedelta(hours=12)  # a cached assignment is trusted for one shift at most
CONFIG_FILE = "platform-config.json"
CONFIG_PATH = "/api/v1/camera/config"


@dataclass(frozen=True)
class Assignment:
    agent_id: str  # the agent's matricule
    display_name: str


@dataclass(frozen=True)
class CameraSettings:
    """What the platform told the camera, and when (on the camera's clock)."""

    device_id: str
    tenant: str
    profile: str
    pre_event_buffer_s: float
    territory: dict | None
    assignment: Assignment | None
    clock_offset_ms: int  # camera clock minus platform clock
    rtt_ms: int
    fetched_at: datetime

    @property
    def agent_id(self) -> str:
        return self.assignment.agent_id if self.assignment else UNASSIGNED

    @property
    def clock_drift(self) -> bool:
        return abs(self.clock_offset_ms) > DRIFT_FLAG_MS

    def to_json(self) -> bytes:
        data = asdict(self)
        data["fetched_at"] = self.fetched_at.isoformat()
        return json.dumps(data, ensure_ascii=False, sort_keys=True).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> CameraSettings:
        data = json.loads(raw)
        data["fetched_at"] = datetime.fromisoformat(data["fetched_at"])
        data["assignment"] = Assignment(**data["assignment"]) if data.get("assignment") else None
        return cls(**data)

    def stale(self, now: datetime) -> CameraSettings:
        """These settings as trusted at `now`: the assignment dropped once older than a shift."""
        if self.assignment is None or now - self.fetched_at <= ASSIGNMENT_MAX_AGE:
            return self
        return replace(self, assignment=None)


class PlatformLink:
    """Fetches the camera's settings from the platform (device-signed) and caches them."""

    def __init__(
        self,
        base_url: str,
        device_id: str,
        key: Ed25519PrivateKey,
        *,
        clock: Clock = system_clock,
        cache_dir: Path | None = None,
        timeout: float = 10.0,
        http: httpx.Client | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.device_id = device_id
        self.clock = clock
        self.cache_dir = cache_dir
        self.auth = DeviceAuth(device_id, key)
        self.http = http or httpx.Client(base_url=self.base_url, timeout=timeout)
        # How many recordings wait for the vault: told to the platform in each poll (warned at check-in).
        self.pending: Callable[[], int] | None = None

    def close(self) -> None:
        self.http.close()

    def fetch(self) -> CameraSettings:
        """Ask the platform now; cache and return what it says. Raises OffloadError or httpx.HTTPError."""
        response, rtt_s, received_at = self._get()
        if response.status_code == 401 and "clock" in error_detail(response):
            # The camera's clock is so far off that its signatures look stale: sign with the
            # platform's time (the nonce still prevents replay) and measure the offset as usual.
            self.auth.clock_skew_s = self._skew()
            response, rtt_s, received_at = self._get()
        if response.status_code != 200:
            raise OffloadError(f"GET {CONFIG_PATH}: {response.status_code} {error_detail(response)}")
        body = response.json()
        # The platform read its clock about half-way through the round trip.
        camera_then = received_at - timedelta(seconds=rtt_s / 2)
        offset_ms = round((camera_then.timestamp() - float(body["platform_time"])) * 1000)
        assignment = body.get("assignment")
        settings = CameraSettings(
            device_id=body["device_id"],
            tenant=body["tenant"],
            profile=body["profile"],
            pre_event_buffer_s=float(body["pre_event_buffer_s"]),
            territory=body.get("territory"),
            assignment=Assignment(assignment["agent_id"], assignment["display_name"]) if assignment else None,
            clock_offset_ms=offset_ms,
            rtt_ms=round(rtt_s * 1000),
            fetched_at=received_at,
        )
        if self.cache_dir is not None:
            atomic_write(private_dir(self.cache_dir) / CONFIG_FILE, settings.to_json())
        return settings

    def cached(self) -> CameraSettings | None:
        """The last settings fetched, with an assignment older than a shift dropped."""
        return load_cached(self.cache_dir, self.clock()) if self.cache_dir is not None else None

    def current(self) -> tuple[CameraSettings | None, str | None]:
        """Fetch, or fall back on the cache when offline. Returns the settings and, offline, why."""
        try:
            return self.fetch(), None
        except (OffloadError, httpx.HTTPError, ValueError, KeyError) as exc:
            return self.cached(), f"platform unreachable ({type(exc).__name__}: {exc}): using cached settings"

    def _get(self) -> tuple[httpx.Response, float, datetime]:
        start = time.monotonic()
        params = {"pending": self.pending()} if self.pending is not None else None
        response = self.http.get(CONFIG_PATH, params=params, auth=self.auth)
        rtt = time.monotonic() - start
        return response, rtt, self.clock()

    def _skew(self) -> float:
        """Device clock minus platform clock, from the public, unsigned platform endpoint."""
        start = time.monotonic()
        platform_time = float(self.http.get("/api/v1/platform").json()["time"])
        rtt = time.monotonic() - start
        return time.time() - rtt / 2 - platform_time


def load_cached(folder: Path, now: datetime) -> CameraSettings | None:
    path = folder / CONFIG_FILE
    try:
        return CameraSettings.from_json(path.read_bytes()).stale(now)
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None
