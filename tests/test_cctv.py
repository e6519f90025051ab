"""The CCTV registry through the API: import (CSV, GeoJSON; all or nothing), the map, nearby cameras, PTZ aiming
(one camera, every camera around a live session) against simulated ONVIF cameras, tenants kept apart, and the
ONVIF password never shown nor journaled."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from temoin.camera.offload import DeviceAuth
from temoin.demo.cctv.onvif_sim import OnvifPtzSimulator
from temoin.demo.cctv.state import PtzPose
from temoin.demo.commune import territory
from temoin.geo.geometry import angle_diff_deg, bearing_deg
from temoin.identity.service import update_settings
from temoin.journal.models import JournalEntry
from temoin.law.access import Role
from temoin.supervision.models import CctvCamera
from temoin.supervision.registry import open_password
from tests.helpers import Commune, make_commune, sign_in
from tests.journal_helpers import journal

HEADER = (
    "id,name,lat,lon,height_m,heading_deg,fov_deg,range_m,ptz,max_zoom,stream_url,onvif_url,onvif_username,"
    "onvif_password"
)
SECRET = "Zq9-onvif-SECRET-41"
STREAM_SECRET = "rtsp-pw-77"
AGENT = (43.5585, 4.0845)  # inside Port-Témoin's territory
CSV_TYPE = {"Content-Type": "text/csv"}
GEOJSON_TYPE = {"Content-Type": "application/geo+json"}


def at(bearing: float, metres: float, origin: tuple[float, float] = AGENT) -> tuple[float, float]:
    lat, lon = origin
    return (
        round(lat + metres * math.cos(math.radians(bearing)) / 111_195, 7),
        round(lon + metres * math.sin(math.radians(bearing)) / (111_195 * math.cos(math.radians(lat))), 7),
    )


def row(
    cid: str,
    where: tuple[float, float],
    heading: float,
    *,
    fov: float = 60,
    range_m: float = 150,
    ptz: bool = False,
    onvif: str = "",
    user: str = "",
    password: str = "",
    name: str | None = None,
) -> str:
    return (
        f"{cid},{name or 'Camera ' + cid},{where[0]},{where[1]},6,{heading},{fov},{range_m},"
        f"{'true' if ptz else 'false'},20,rtsp://viewer:{STREAM_SECRET}@10.0.0.9:554/{cid},{onvif},{user},{password}"
    )


def csv(*rows: str) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def post_import(client, csrf: str, body: str, headers: dict = CSV_TYPE):
    return client.post("/api/v1/cctv/import", content=body.encode(), headers={**headers, "X-CSRF-Token": csrf})


def everything_journaled(platform) -> str:
    with platform.session() as db:
        text = "\n".join(db.scalars(select(JournalEntry.body)))
    files = "\n".join(
        f.read_text("utf-8", errors="replace") for f in Path(platform.settings.journal_dir).rglob("*") if f.is_file()
    )
    return text + files


@pytest.fixture
def commune(platform) -> Commune:
    c = make_commune(platform, cameras=1)
    with platform.session() as db:  # the simulated cameras listen on loopback: the commune's CCTV network here
        update_settings(platform, db, platform.tenant(db, c.slug), {"cctv_networks": ["127.0.0.0/8"]})
        db.commit()
    return c


def test_import_csv_and_geojson_then_the_map_never_shows_secrets(platform, client, commune):
    csrf = sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    r = post_import(
        client,
        csrf,
        csv(
            row("cctv-01", at(0, 40), 180),
            row(
                "cctv-02",
                at(90, 60),
                270,
                ptz=True,
                onvif="http://10.0.0.20/onvif/device_service",
                user="csu",
                password=SECRET,
            ),
        ),
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 2, "updated": 0, "total": 2, "ptz": 1}
    # GeoJSON: cctv-02 renamed (its password not given: kept), cctv-03 new.
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [AGENT[1], AGENT[0] + 0.0005]},
                "properties": {
                    "id": "cctv-02",
                    "name": "Mât du port",
                    "heading_deg": 270,
                    "fov_deg": 60,
                    "ptz": True,
                    "stream_url": "rtsp://10.0.0.9/cctv-02",
                    "onvif_url": "http://10.0.0.20/onvif/device_service",
                    "onvif_username": "csu",
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [AGENT[1] + 0.001, AGENT[0]]},
                "properties": {
                    "id": "cctv-03",
                    "name": "Quai",
                    "heading_deg": 10,
                    "fov_deg": 50,
                    "range_m": 90,
                    "stream_url": "rtsp://10.0.0.9/cctv-03",
                },
            },
        ],
    }
    r = post_import(client, csrf, json.dumps(doc), GEOJSON_TYPE)
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 1, "updated": 1, "total": 2, "ptz": 1}
    with platform.session() as db:
        cam = db.get(CctvCamera, (platform.tenant(db, commune.slug).id, "cctv-02"))
        assert cam.name == "Mât du port" and SECRET.encode() not in cam.onvif_password_sealed
        assert open_password(platform.keyring.master_key, cam.tenant_id, cam.id, cam.onvif_password_sealed) == SECRET

    csrf = sign_in(platform, client, commune.users[Role.CSU_OPERATOR])
    r = client.get("/api/v1/cctv/cameras")
    assert r.status_code == 200
    fc = r.json()
    assert fc["type"] == "FeatureCollection" and [f["id"] for f in fc["features"]] == ["cctv-01", "cctv-02", "cctv-03"]
    props = fc["features"][1]["properties"]
    assert {"id", "name", "ptz", "heading_deg", "fov_deg", "range_m", "height_m"} <= set(props)
    assert props["ptz"] is True and fc["features"][1]["geometry"]["coordinates"] == [AGENT[1], AGENT[0] + 0.0005]
    for text in (r.text, client.get("/api/v1/cctv/nearby", params={"lat": AGENT[0], "lon": AGENT[1]}).text):
        assert SECRET not in text and STREAM_SECRET not in text and "rtsp://" not in text and "csu" not in text
    # Journaled as administration, counts only.
    entries = journal(platform, commune.slug, "cctv.imported")
    assert [e["details"]["created"] for e in entries] == [2, 1] and entries[0]["action"] == "administration"
    assert entries[0]["actor"]["id"] == commune.users[Role.TECH_ADMIN]
    assert SECRET not in everything_journaled(platform)


def test_a_bad_file_is_refused_whole_with_the_row_and_field_named(platform, client, commune):
    csrf = sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    assert post_import(client, csrf, csv(row("cctv-01", at(0, 40), 180, name="Avant"))).status_code == 200
    # Line 2 would update cctv-01; lines 3 and 4 are wrong: nothing at all is imported.
    bad = csv(
        row("cctv-01", at(0, 40), 180, name="Après"),
        row("cctv-02", (123.0, 4.08), 90),
        row("cctv-03", at(0, 10), 90).replace("Camera cctv-03", ""),
    )
    r = post_import(client, csrf, bad)
    assert r.status_code == 422
    detail = r.json()["detail"]
    assert "nothing was imported" in detail and "line 3, field lat" in detail and "line 4, field name" in detail
    assert r.json()["problems"] == [
        "line 3, field lat: Input should be less than or equal to 90 (got '123.0')",
        "line 4, field name: is required",
    ]
    r = post_import(client, csrf, "id,name,lat,lon,heading,fov_deg,stream_url\ncctv-09,X,43.5,4.0,90,60,rtsp://h/x\n")
    assert r.status_code == 422 and "unknown column 'heading'" in r.json()["detail"]
    assert "missing column 'heading_deg'" in r.json()["detail"]
    r = post_import(client, csrf, csv(row("cctv-04", at(0, 10), 90, ptz=True, onvif="ftp://10.0.0.1/")))
    assert r.status_code == 422 and "line 2, field onvif_url: onvif_url must be a http:// or https:// URL" in r.text
    doc = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "geometry": {"type": "Point", "coordinates": [4.08, 43.55]},
                "properties": {
                    "id": "cctv-05",
                    "name": "ok",
                    "heading_deg": 0,
                    "fov_deg": 60,
                    "stream_url": "rtsp://h/5",
                },
            },
            {
                "type": "Feature",
                "geometry": {"type": "LineString", "coordinates": [[4.08, 43.55], [4.09, 43.56]]},
                "properties": {
                    "id": "cctv-06",
                    "name": "a street",
                    "heading_deg": 0,
                    "fov_deg": 60,
                    "stream_url": "rtsp://h/6",
                },
            },
        ],
    }
    r = post_import(client, csrf, json.dumps(doc), GEOJSON_TYPE)
    assert r.status_code == 422 and "feature 1 (cctv-06): field geometry" in r.json()["detail"]
    r = post_import(client, csrf, "{not json", {"Content-Type": "application/json"})
    assert r.status_code == 422 and "not valid JSON" in r.json()["detail"]
    assert post_import(client, csrf, "<xml/>", {"Content-Type": "application/xml"}).status_code == 415
    assert post_import(client, csrf, "").status_code == 400

    sign_in(platform, client, commune.users[Role.CSU_OPERATOR])
    features = client.get("/api/v1/cctv/cameras").json()["features"]
    assert [(f["id"], f["properties"]["name"]) for f in features] == [("cctv-01", "Avant")]
    assert [e["details"]["total"] for e in journal(platform, commune.slug, "cctv.imported")] == [1]


def test_nearby_returns_exactly_the_cameras_that_can_see_the_agent_and_their_live_view(platform, client, commune):
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])  # the chief manages the registry and watches
    cameras = [
        row("toward", at(0, 40), 180),  # 40 m north, looking south at the agent
        row("away", at(90, 30), 90),  # 30 m east, looking further east
        row("across", at(270, 6), 90),  # across the street, looking onto it
        row("ptz-behind", at(180, 100), 180, ptz=True),  # looks away, but can turn
        row("ptz-far", at(270, 200), 90, ptz=True, range_m=150),  # beyond its own range
        row("beyond-radius", at(0, 350), 180, range_m=500),  # sees the agent, but 350 m away
        row("beyond-range", at(45, 120), 225, range_m=100),  # looks at the agent, cannot see that far
    ]
    assert post_import(client, csrf, csv(*cameras)).status_code == 200

    def nearby(**params: float) -> list[tuple[str, str, int]]:
        r = client.get("/api/v1/cctv/nearby", params={"lat": AGENT[0], "lon": AGENT[1], **params})
        assert r.status_code == 200, r.text
        return [(c["id"], c["sees"], round(c["distance_m"])) for c in r.json()["cameras"]]

    # The tenant's default radius (300 m), nearest first.
    assert nearby() == [("across", "fov", 6), ("toward", "fov", 40), ("ptz-behind", "ptz", 100)]
    assert nearby(radius_m=400) == [
        ("across", "fov", 6),
        ("toward", "fov", 40),
        ("ptz-behind", "ptz", 100),
        ("beyond-radius", "fov", 350),
    ]
    assert nearby(radius_m=50) == [("across", "fov", 6), ("toward", "fov", 40)]
    found = client.get("/api/v1/cctv/nearby", params={"lat": AGENT[0], "lon": AGENT[1]}).json()["cameras"]
    assert found[1]["bearing_from_camera"] == pytest.approx(180, abs=0.5)
    assert found[0]["whep_url"] == "/api/v1/cctv/cameras/across/whep"
    # The registry changes (the camera turned towards the street): the index follows at once.
    assert post_import(client, csrf, csv(row("away", at(90, 30), 270))).status_code == 200
    assert nearby(radius_m=50) == [("across", "fov", 6), ("away", "fov", 30), ("toward", "fov", 40)]
    assert client.get("/api/v1/cctv/nearby", params={"lat": 91, "lon": 0}).status_code == 422

    # Live view of a CCTV camera: a known camera and an SDP offer (the media path is the live hub's).
    headers = {"X-CSRF-Token": csrf, "Content-Type": "application/sdp"}
    assert client.post("/api/v1/cctv/cameras/nope/whep", content=b"v=0\r\n", headers=headers).status_code == 404
    r = client.post(
        "/api/v1/cctv/cameras/toward/whep",
        content=b"{}",
        headers={"X-CSRF-Token": csrf, "Content-Type": "application/json"},
    )
    assert r.status_code == 415

    # A camera taken out of service leaves the map, the nearby list and the wall at once; importing it restores it.
    csrf_only = {"X-CSRF-Token": csrf}
    r = client.delete("/api/v1/cctv/cameras/across", params={"reason": "mât déposé"}, headers=csrf_only)
    assert r.status_code == 204, r.text
    assert nearby(radius_m=50) == [("away", "fov", 30), ("toward", "fov", 40)]
    assert "across" not in {f["id"] for f in client.get("/api/v1/cctv/cameras").json()["features"]}
    assert client.post("/api/v1/cctv/cameras/across/whep", content=b"v=0\r\n", headers=headers).status_code == 404
    assert client.delete("/api/v1/cctv/cameras/across", headers=csrf_only).status_code == 404
    with platform.session() as db:
        tenant_id = platform.tenant(db, commune.slug).id
    assert [e.type for e in client.app.state.live.bus.recent(tenant_id)].count("registry") == 3  # dashboards redraw
    withdrawn = journal(platform, commune.slug, "cctv.withdrawn")
    assert [(e["cameras"], e["details"]["reason"]) for e in withdrawn] == [(["across"], "mât déposé")]
    assert post_import(client, csrf, csv(cameras[2])).status_code == 200
    assert nearby(radius_m=50) == [("across", "fov", 6), ("away", "fov", 30), ("toward", "fov", 40)]
    # Another commune cannot withdraw it.
    other = make_commune(platform, slug="autre-commune", cameras=0)
    other_csrf = sign_in(platform, client, other.users[Role.CHIEF])
    r = client.delete("/api/v1/cctv/cameras/across", headers={"X-CSRF-Token": other_csrf})
    assert r.status_code == 404
    sign_in(platform, client, commune.users[Role.CHIEF])
    assert nearby(radius_m=50)[0] == ("across", "fov", 6)


def _press_live(platform, client, commune: Commune, where: tuple[float, float]) -> str:
    device_id, key = commune.cameras[0]
    path = "/api/v1/live/sessions"
    fix = {"t": datetime(2026, 6, 1, 14, 0, tzinfo=UTC).isoformat(), "lat": where[0], "lon": where[1], "accuracy_m": 5}
    r = client.post(path, json={"reason": "threat", "position": fix}, auth=DeviceAuth(device_id, key))
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def sims() -> Iterator[dict[str, OnvifPtzSimulator]]:
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(OnvifPtzSimulator(PtzPose(), heading, 20.0, "csu", password))
            for name, heading, password in (
                ("a1", 180.0, SECRET),
                ("a2", 0.0, "pw-a2-xxxxxx"),
                ("far", 90.0, SECRET),
                ("b1", 0.0, "pw-b1-yyyyyy"),
            )
        }


def test_aiming_ptz_cameras_tenants_apart_and_every_move_journaled(platform, client, commune, sims):
    other = make_commune(platform, slug="autre-ville", cameras=0)
    # The other commune has its own cctv-01, a PTZ camera, right where our agent is.
    csrf = sign_in(platform, client, other.users[Role.TECH_ADMIN])
    assert (
        post_import(
            client,
            csrf,
            csv(
                row("cctv-01", at(0, 20), 0, ptz=True, onvif=sims["b1"].url, user="csu", password="pw-b1-yyyyyy"),
                row("only-b", at(0, 30), 0, ptz=True, onvif=sims["b1"].url, user="csu", password="pw-b1-yyyyyy"),
            ),
        ).status_code
        == 200
    )
    csrf = sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    assert (
        post_import(
            client,
            csrf,
            csv(
                row(
                    "cctv-01", at(0, 80), 180, ptz=True, onvif=sims["a1"].url, user="csu", password=SECRET, range_m=200
                ),
                row(
                    "cctv-02",
                    at(180, 60),
                    0,
                    ptz=True,
                    onvif=sims["a2"].url,
                    user="csu",
                    password="wrong-password-here",
                ),
                row("cctv-03", at(270, 15), 90),  # fixed, sees the agent: never aimed
                row("cctv-04", at(90, 900), 90, ptz=True, onvif=sims["far"].url, user="csu", password=SECRET),
            ),
        ).status_code
        == 200
    )

    csrf = sign_in(platform, client, commune.users[Role.CSU_OPERATOR])
    assert [f["id"] for f in client.get("/api/v1/cctv/cameras").json()["features"]] == [
        "cctv-01",
        "cctv-02",
        "cctv-03",
        "cctv-04",
    ]
    # One camera, at a point: the pose is the bearing from the camera, looking down.
    r = client.post(
        "/api/v1/cctv/cameras/cctv-01/aim", json={"lat": AGENT[0], "lon": AGENT[1]}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 200, r.text
    out = r.json()
    expected = bearing_deg(*at(0, 80), *AGENT)
    assert abs(angle_diff_deg(out["requested"]["pan_deg"], expected)) < 0.5
    assert abs(angle_diff_deg(out["reported"]["pan_deg"], expected)) < 0.5 and out["reported"]["tilt_deg"] < 0
    assert abs(angle_diff_deg(sims["a1"].pose.snapshot()[0], expected)) < 0.5
    assert sims["b1"].pose.moves == 0  # the other commune's cctv-01 did not move
    assert (
        client.post(
            "/api/v1/cctv/cameras/only-b/aim", json={"lat": AGENT[0], "lon": AGENT[1]}, headers={"X-CSRF-Token": csrf}
        ).status_code
        == 404
    )
    r = client.post(
        "/api/v1/cctv/cameras/cctv-03/aim", json={"lat": AGENT[0], "lon": AGENT[1]}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 409 and "fixed camera" in r.json()["detail"]
    r = client.post(
        "/api/v1/cctv/cameras/cctv-02/aim", json={"lat": AGENT[0], "lon": AGENT[1]}, headers={"X-CSRF-Token": csrf}
    )
    assert r.status_code == 502 and "refused the ONVIF credentials" in r.json()["detail"]

    # Every PTZ camera in range, at the live session's last position: the one that fails is reported.
    sid = _press_live(platform, client, commune, AGENT)
    sims["a1"].pose.set(0, 0, 1)
    r = client.post("/api/v1/cctv/aim-all", json={"session_id": sid}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["target"] == {"lat": AGENT[0], "lon": AGENT[1]} and (out["aimed"], out["failed"]) == (1, 1)
    by_id = {x["camera_id"]: x for x in out["results"]}
    assert set(by_id) == {"cctv-01", "cctv-02"}  # not the fixed one, not the one 900 m away
    assert by_id["cctv-01"]["ok"] and abs(angle_diff_deg(by_id["cctv-01"]["reported"]["pan_deg"], expected)) < 0.5
    assert not by_id["cctv-02"]["ok"] and by_id["cctv-02"]["reason"] == "auth_refused"
    assert abs(angle_diff_deg(sims["a1"].pose.snapshot()[0], expected)) < 0.5
    assert sims["far"].pose.moves == 0 and sims["a2"].pose.moves == 0 and sims["b1"].pose.moves == 0

    # Another tenant's live session cannot be aimed at.
    other_device = make_commune(platform, slug="troisieme", cameras=1)
    foreign_sid = _press_live(platform, client, other_device, AGENT)
    csrf = sign_in(platform, client, commune.users[Role.CSU_OPERATOR])
    assert (
        client.post(
            "/api/v1/cctv/aim-all", json={"session_id": foreign_sid}, headers={"X-CSRF-Token": csrf}
        ).status_code
        == 404
    )

    # Journaled (administration: an operation on a vidéoprotection device), and announced to the dashboards.
    moves = journal(platform, commune.slug, "ptz.")
    assert [(e["event"], e["details"]["camera_id"], e["details"].get("reason")) for e in moves[:3]] == [
        ("ptz.aimed", "cctv-01", None),
        ("ptz.failed", "cctv-03", "not_ptz"),
        ("ptz.failed", "cctv-02", "auth_refused"),
    ]
    assert sorted((e["event"], e["details"]["camera_id"]) for e in moves[3:]) == [
        ("ptz.aimed", "cctv-01"),
        ("ptz.failed", "cctv-02"),
    ]
    assert all(e["action"] == "administration" for e in moves)
    assert moves[0]["actor"]["id"] == commune.users[Role.CSU_OPERATOR]
    assert moves[0]["details"]["target"] == {"lat": AGENT[0], "lon": AGENT[1]}
    assert moves[0]["details"]["session_id"] is None and {e["details"]["session_id"] for e in moves[3:]} == {sid}
    assert not journal(platform, other.slug, "ptz.")
    events = client.get("/api/v1/live/events").json()["events"]
    ptz_events = [e["data"] for e in events if e["type"] == "ptz"]
    assert [e["camera_id"] for e in ptz_events] == ["cctv-01", "cctv-01"] and ptz_events[1]["session_id"] == sid
    assert set(ptz_events[0]["requested"]) == {"pan_deg", "tilt_deg", "zoom"}
    assert SECRET not in everything_journaled(platform) and "wrong-password-here" not in everything_journaled(platform)


def test_the_cli_imports_the_demo_registry_and_lists_it(tmp_path: Path):
    env = {**os.environ, "TEMOIN_HOME": str(tmp_path / "home"), "COLUMNS": "200"}
    env.pop("TEMOIN_DATABASE_URL", None)

    def temoin(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "temoin", *args], env=env, capture_output=True, text=True, timeout=120
        )

    assert temoin("init").returncode == 0
    shape = tmp_path / "territory.geojson"  # a municipal police tenant needs its territory (R241-8 II)
    shape.write_text(json.dumps(territory()))
    assert (
        temoin(
            "admin", "tenant", "create", "port-temoin", "Port-Témoin", "--cameras", "4", "--territory", str(shape)
        ).returncode
        == 0
    )
    demo = Path(__file__).parent.parent / "src" / "temoin" / "demo" / "cctv" / "cameras.geojson"
    r = temoin("cctv", "import", "port-temoin", str(demo))
    assert r.returncode == 1 and "--stream-base" in r.stderr and "feature 0 (cctv-01)" in r.stderr
    r = temoin("cctv", "import", "port-temoin", str(demo), "--stream-base", "rtsp://127.0.0.1:8554")
    assert r.returncode == 0, r.stderr
    assert "12 camera(s) imported" in r.stdout and "3 PTZ" in r.stdout
    r = temoin("cctv", "list", "port-temoin")
    assert r.returncode == 0 and "cctv-12" in r.stdout and "12 camera(s)" in r.stdout and "rtsp" not in r.stdout
    r = temoin("cctv", "withdraw", "port-temoin", "cctv-12", "--reason", "mât déposé")
    assert r.returncode == 0 and "withdrawn" in r.stdout, r.stderr
    r = temoin("cctv", "list", "port-temoin")
    assert "cctv-12" not in r.stdout and "11 camera(s)" in r.stdout
    r = temoin("cctv", "withdraw", "port-temoin", "cctv-12")
    assert r.returncode == 1 and "no CCTV camera cctv-12" in r.stderr
