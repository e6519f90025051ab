"""Shift assignment: the agent identity a camera records comes from the check-out, not the camera."""

from __future__ import annotations

from temoin.camera.offload import DeviceAuth
from temoin.law.access import Role
from tests.helpers import agent_number, make_commune, sign_in


def test_checkout_gives_the_camera_its_agent_and_checkin_takes_it_back(platform, client):
    commune = make_commune(platform)
    device_id, key = commune.cameras[0]
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(
        "/api/v1/shifts/checkout",
        json={"device_id": device_id, "username": commune.users[Role.AGENT]},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 201, r.text
    # Twice is refused: one camera, one agent.
    r = client.post(
        "/api/v1/shifts/checkout",
        json={"device_id": device_id, "username": commune.users[Role.AGENT]},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 409 and "already" in r.json()["detail"]
    # Only wearing agents get cameras.
    r = client.post(
        "/api/v1/shifts/checkout",
        json={"device_id": commune.cameras[1][0], "username": commune.users[Role.MAYOR]},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 409 and "agent" in r.json()["detail"]

    client.cookies.clear()
    config = client.get("/api/v1/camera/config", auth=DeviceAuth(device_id, key)).json()
    assert config["assignment"]["agent_id"] == agent_number(commune)
    assert config["pre_event_buffer_s"] == 30 and config["territory"]["type"] == "FeatureCollection"

    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(f"/api/v1/shifts/checkin/{device_id}", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["checked_in_at"]
    client.cookies.clear()
    config = client.get("/api/v1/camera/config", auth=DeviceAuth(device_id, key)).json()
    assert config["assignment"] is None


def test_another_tenants_camera_cannot_be_checked_out(platform, client):
    a = make_commune(platform, "ville-a")
    b = make_commune(platform, "ville-b")
    csrf = sign_in(platform, client, a.users[Role.CHIEF])
    r = client.post(
        "/api/v1/shifts/checkout",
        json={"device_id": b.cameras[0][0], "username": a.users[Role.AGENT]},
        headers={"X-CSRF-Token": csrf},
    )
    assert r.status_code == 404


def test_camera_config_needs_a_device_signature(platform, client):
    make_commune(platform)
    assert client.get("/api/v1/camera/config").status_code == 401
