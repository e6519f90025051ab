"""The demo commune's CCTV network: the cameras of `cameras.geojson`, each streaming a synthetic street view over
RTSP (one server, a path per camera), the PTZ ones also answering ONVIF on a port of their own and rendering
what their pose points at. The network is entered into the tenant's registry exactly as a commune would import
its own (`supervision.registry`), with the addresses it got at start-up.

Used by `temoin demo` and by the CSU scenario test.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from importlib import resources

from temoin.demo.cctv.onvif_sim import OnvifPtzSimulator
from temoin.demo.cctv.rtsp_server import CctvRtspServer
from temoin.demo.cctv.scene import FixedScene, PtzScene, Renderer
from temoin.demo.cctv.state import PtzPose
from temoin.geo.geometry import distance_m
from temoin.identity.models import Tenant
from temoin.journal.entry import Actor
from temoin.platform import Platform
from temoin.supervision import registry

ONVIF_USER = "temoin-csu"


def demo_registry() -> dict:
    return json.loads(resources.files("temoin.demo.cctv").joinpath("cameras.geojson").read_text("utf-8"))


@dataclass
class CctvNetwork:
    """Simulated cameras, running: `start()`, then `register()` them with a tenant; `stop()` at the end."""

    features: list[dict] = field(default_factory=lambda: demo_registry()["features"])
    host: str = "127.0.0.1"
    width: int = 480
    height: int = 270
    fps: int = 10
    rtsp: CctvRtspServer | None = None
    onvif: dict[str, OnvifPtzSimulator] = field(default_factory=dict)
    poses: dict[str, PtzPose] = field(default_factory=dict)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(18), repr=False)

    def start(self) -> CctvNetwork:
        self.rtsp = CctvRtspServer(self.host)
        for n, feature in enumerate(self.features):
            props = feature["properties"]
            name = props["name"]
            renderer: Renderer
            if props.get("ptz"):
                pose = self.poses[props["id"]] = PtzPose(pan_deg=float(props["heading_deg"]), tilt_deg=-10.0)
                renderer = PtzScene(name, pose, width=self.width, height=self.height, fps=self.fps, seed=n)
            else:
                renderer = FixedScene(name, width=self.width, height=self.height, fps=self.fps, seed=n)
            self.rtsp.add(props["stream_path"], renderer)
        self.rtsp.start()  # encodes a camera only while someone watches it
        for feature in self.features:
            props = feature["properties"]
            if props.get("onvif"):
                self.onvif[props["id"]] = OnvifPtzSimulator(
                    self.poses[props["id"]],
                    float(props["heading_deg"]),
                    float(props.get("max_zoom", 20)),
                    ONVIF_USER,
                    self.password,
                    self.host,
                    serial=props["id"],
                ).start()
        return self

    def ptz_reaches(self, lat: float, lon: float) -> bool:
        """Can a PTZ camera of this network be aimed at the point (within its range)?"""
        return any(
            distance_m(lat, lon, f["geometry"]["coordinates"][1], f["geometry"]["coordinates"][0])
            <= float(f["properties"]["range_m"])
            for f in self.features
            if f["properties"].get("ptz")
        )

    def register(self, p: Platform, tenant: Tenant) -> int:
        """Enter the running cameras in the tenant's registry (an upsert, journaled). Returns how many."""
        assert self.rtsp is not None, "start() the network first"
        features: list[dict] = []
        for feature in self.features:
            props = dict(feature["properties"])
            sim = self.onvif.get(props["id"])
            if sim is not None:
                props |= {"onvif_url": sim.url, "onvif_username": ONVIF_USER, "onvif_password": self.password}
            features.append({**feature, "properties": props})
        doc = {"type": "FeatureCollection", "features": features}
        rows = registry.parse_geojson(doc, stream_base=f"rtsp://{self.rtsp.host}:{self.rtsp.port}")
        with p.session() as db:
            registry.import_rows(
                p, db, db.get_one(Tenant, tenant.id), rows, actor=Actor.system("demo"), source="demo CCTV network"
            )
        return len(rows)

    def stop(self) -> None:
        for sim in self.onvif.values():
            sim.stop()
        self.onvif.clear()
        if self.rtsp is not None:
            self.rtsp.stop()
            self.rtsp = None
