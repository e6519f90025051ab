"""Agents on the CSU's map and reinforcements (issue 5), through the HTTP API: cameras post their positions
(device-signed), the CSU lists its agents, asks for the nearest available ones for a live session, sends
them; their cameras long-poll for the order, acknowledge it, walk there; the CSU may cancel; the end of the
live session closes what is still open. Journal and events checked at each step; tenants kept apart.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from temoin.camera.offload import DeviceAuth
from temoin.db import utcnow
from temoin.identity import devices, service, shifts
from temoin.identity.models import Device, User
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.live.models import LiveSession
from temoin.platform import Platform
from temoin.supervision.dispatch import DETOUR_FACTOR, MIN_INTERVAL_S
from temoin.supervision.dispatch_models import AgentPosition, ReinforcementOrder
from tests.helpers import Commune, make_commune
from tests.live_helpers import entries, token_for

HERE = (43.5585, 4.0845)  # where the agent in danger stands
M_PER_DEG_LAT = 111_195.0  # on the sphere geo.geometry uses


def north_of(metres: float, base: tuple[float, float] = HERE) -> tuple[float, float]:
    return base[0] + metres / M_PER_DEG_LAT, base[1]


@dataclass
class Crew:
    """A commune whose camera i is worn by agent i (agent 0 is the commune's own agent user)."""

    platform: Platform
    client: TestClient
    commune: Commune
    agents: list[str] = field(default_factory=list)  # matricule of camera i's wearer

    def camera(self, i: int) -> str:
        return self.commune.cameras[i][0]

    def signed(self, i: int) -> DeviceAuth:
        """Camera i's signature over each request, body included (as the camera agent signs)."""
        return DeviceAuth(*self.commune.cameras[i])

    def fix(self, lat_lon: tuple[float, float], t: datetime | None = None) -> dict:
        return {"t": (t or utcnow()).isoformat(), "lat": lat_lon[0], "lon": lat_lon[1], "accuracy_m": 6.0}

    def post_position(self, i: int, lat_lon: tuple[float, float], status: str = "patrol"):
        path = "/api/v1/dispatch/camera/position"
        return self.client.post(path, json={"position": self.fix(lat_lon), "status": status}, auth=self.signed(i))

    def orders(self, i: int, after: str | None = None, wait_s: float = 0) -> dict:
        path = f"/api/v1/dispatch/camera/orders?wait_s={wait_s}" + (f"&after={after}" if after else "")
        r = self.client.get(path, auth=self.signed(i))
        assert r.status_code == 200, r.text
        return r.json()

    def ack(self, i: int, order_id: str):
        path = f"/api/v1/dispatch/camera/orders/{order_id}/ack"
        return self.client.post(path, auth=self.signed(i))

    def go_live(self, i: int, lat_lon: tuple[float, float] = HERE) -> str:
        path = "/api/v1/live/sessions"
        r = self.client.post(path, json={"reason": "threat", "position": self.fix(lat_lon)}, auth=self.signed(i))
        assert r.status_code == 201, r.text
        return r.json()["id"]


def crew(platform: Platform, client: TestClient, slug: str = "port-temoin", size: int = 4) -> Crew:
    commune = make_commune(platform, slug, cameras=size, authorised=size + 1)
    out = Crew(platform, client, commune)
    with platform.session() as db:
        tenant = platform.tenant(db, slug)
        for i in range(size):
            if i == 0:
                user = db.scalar(select(User).where(User.username == commune.users[Role.AGENT]))
            else:
                number = f"{slug[:3].upper()}-{i + 1:04d}"
                service.create_user(
                    platform,
                    db,
                    tenant,
                    username=f"{slug}-agent{i + 1}",
                    display_name=f"Agent {i + 1} of {slug}",
                    role=Role.AGENT,
                    agent_number=number,
                )
                db.commit()
                user = db.scalar(select(User).where(User.username == f"{slug}-agent{i + 1}"))
            shifts.check_out(platform, db, db.get(Device, commune.cameras[i][0]), user, Actor.system("test"))
            out.agents.append(user.agent_number)
    return out


def bearer(platform: Platform, commune: Commune, role: Role = Role.CSU_OPERATOR) -> dict:
    return {"Authorization": f"Bearer {token_for(platform, commune.users[role])}"}


def events(client: TestClient, headers: dict, kind: str) -> list[dict]:
    r = client.get("/api/v1/live/events", headers=headers)
    assert r.status_code == 200
    return [e["data"] for e in r.json()["events"] if e["type"] == kind]


def dispatch_entries(platform: Platform, slug: str) -> list[dict]:
    return entries(platform, slug, "dispatch.")


def test_positions_are_the_last_one_per_camera_with_agent_events(platform: Platform, client: TestClient):
    c = crew(platform, client, size=3)
    csu = bearer(platform, c.commune)
    assert c.post_position(0, north_of(50)).status_code == 204
    # Faster than a camera ever needs, same status: refused, with when to come back.
    r = c.post_position(0, north_of(51))
    assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "every" in r.json()["detail"]
    assert MIN_INTERVAL_S <= 1.0
    # A status change goes through at once (the agent starts recording): the same row, overwritten.
    assert c.post_position(0, north_of(60), "recording").status_code == 204
    assert c.post_position(1, north_of(200)).status_code == 204
    with platform.session() as db:
        rows = db.scalars(select(AgentPosition).order_by(AgentPosition.device_id)).all()
        assert len(rows) == 2
        row = db.get(AgentPosition, c.camera(0))
        assert row.status == "recording" and row.agent_id == c.agents[0]
        assert row.lat == pytest.approx(north_of(60)[0])

    agents = {a["device_id"]: a for a in client.get("/api/v1/dispatch/agents", headers=csu).json()}
    assert set(agents) == {c.camera(0), c.camera(1), c.camera(2)}  # everyone on shift, with a fix or not
    first = agents[c.camera(0)]
    assert first["agent"] == c.agents[0] and first["status"] == "recording" and first["available"]
    assert first["position"]["lat"] == pytest.approx(north_of(60)[0]) and 0 <= first["age_s"] < 60
    assert agents[c.camera(2)]["position"] is None and not agents[c.camera(2)]["available"]

    # Each accepted position reaches the dashboards as an "agent" event (the contract's fields).
    seen = [e for e in events(client, csu, "agent") if e["device_id"] == c.camera(0)]
    assert [e["status"] for e in seen] == ["patrol", "recording"]
    assert set(seen[-1]) >= {"device_id", "agent", "name", "status", "position", "at"}
    assert set(seen[-1]["position"]) == {"lat", "lon", "accuracy_m", "t"} and seen[-1]["agent"] == c.agents[0]
    # Personal data: nothing journaled per fix.
    assert dispatch_entries(platform, c.commune.slug) == []

    # A camera nobody wears has no place on the map.
    with platform.session() as db:
        shifts.check_in(platform, db, db.get(Device, c.camera(1)), Actor.system("test"))
    r = c.post_position(1, north_of(210))
    assert r.status_code == 409 and "checked out" in r.json()["detail"]
    # And its last position goes with its wearer's shift.
    agents = client.get("/api/v1/dispatch/agents", headers=csu).json()
    assert c.camera(1) not in {a["device_id"] for a in agents}
    with platform.session() as db:
        assert db.get(AgentPosition, c.camera(1)) is None

    # Another tenant's CSU sees none of them.
    other = make_commune(platform, "autre-ville", cameras=0)
    assert client.get("/api/v1/dispatch/agents", headers=bearer(platform, other)).json() == []
    assert all(e["device_id"] != c.camera(0) for e in events(client, bearer(platform, other), "agent"))
    # Bad input: a camera that sends nonsense gets a 422, never a crash.
    path = "/api/v1/dispatch/camera/position"
    r = client.post(path, json={"position": {"lat": 95, "lon": 0, "t": "now"}, "status": "patrol"}, auth=c.signed(0))
    assert r.status_code == 422


def test_candidates_are_the_nearest_available_agents(platform: Platform, client: TestClient):
    c = crew(platform, client, size=5)
    csu = bearer(platform, c.commune)
    sid = c.go_live(0)
    c.post_position(0, HERE, "live")
    c.post_position(1, north_of(600))  # far
    c.post_position(2, north_of(150), "recording")  # near, recording: still available
    c.post_position(3, north_of(80))  # nearest, but its fix is stale (below)
    c.post_position(4, north_of(90))
    c.go_live(4, north_of(90))  # live themselves: needs help, cannot give it
    with platform.session() as db:
        db.get(AgentPosition, c.camera(3)).received_at = utcnow() - timedelta(minutes=3)
        db.commit()
    # Another commune's agent standing right there is not a candidate.
    other = crew(platform, client, "autre-ville", size=1)
    other.post_position(0, north_of(10))

    r = client.get(f"/api/v1/dispatch/sessions/{sid}/candidates", headers=csu)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["target"] == {"lat": HERE[0], "lon": HERE[1]} and out["detour_factor"] == DETOUR_FACTOR
    found = out["candidates"]
    assert [x["device_id"] for x in found] == [c.camera(2), c.camera(1)]  # nearest first
    near = found[0]
    assert near["agent"] == c.agents[2] and near["status"] == "recording"
    assert near["straight_m"] == pytest.approx(150, abs=1)
    assert near["distance_m"] == pytest.approx(150 * DETOUR_FACTOR, abs=2)
    assert near["eta_s"] == pytest.approx(150 * DETOUR_FACTOR / 1.4, abs=2)  # the default patrol speed
    assert near["bearing_deg"] == 180  # the target is due south of them
    assert client.get(f"/api/v1/dispatch/sessions/{sid}/candidates?limit=1", headers=csu).json()["candidates"][0][
        "device_id"
    ] == c.camera(2)

    # The ETA follows the tenant's patrol speed.
    with platform.session() as db:
        tenant = platform.tenant(db, c.commune.slug)
        tenant.settings = {**(tenant.settings or {}), "patrol_speed_m_s": 3.0}
        db.commit()
    near = client.get(f"/api/v1/dispatch/sessions/{sid}/candidates", headers=csu).json()["candidates"][0]
    assert near["eta_s"] == pytest.approx(150 * DETOUR_FACTOR / 3.0, abs=2)

    # Another tenant's CSU: 404, and the attempt is journaled on its own chain.
    r = client.get(f"/api/v1/dispatch/sessions/{sid}/candidates", headers=bearer(platform, other.commune))
    assert r.status_code == 404
    assert [e["event"] for e in dispatch_entries(platform, "autre-ville")] == ["dispatch.refused"]
    # A session whose camera never sent a fix: the CSU is told why there is nobody to suggest.
    with platform.session() as db:
        db.get(LiveSession, sid).position = None
        db.commit()
    r = client.get(f"/api/v1/dispatch/sessions/{sid}/candidates", headers=csu)
    assert r.status_code == 409 and "position" in r.json()["detail"]


def test_order_sent_acknowledged_arrived(platform: Platform, client: TestClient):
    c = crew(platform, client, size=3)
    csu = bearer(platform, c.commune)
    sid = c.go_live(0)
    start = north_of(300)
    c.post_position(1, start)
    c.post_position(2, north_of(500))
    url = f"/api/v1/dispatch/sessions/{sid}/reinforcements"

    # Not before the alert is acknowledged: the agent in danger must know the CSU has it first.
    r = client.post(url, json={"device_ids": [c.camera(1)]}, headers=csu)
    assert r.status_code == 409 and "acknowledge" in r.json()["detail"]
    with platform.session() as db:
        assert db.scalar(select(func.count()).select_from(ReinforcementOrder)) == 0
    assert client.post(f"/api/v1/live/sessions/{sid}/ack", headers=csu).status_code == 200

    # Refusals name what is wrong.
    assert client.post(url, json={"device_ids": [c.camera(0)]}, headers=csu).status_code == 409  # in danger
    assert client.post(url, json={"device_ids": ["cam-unknown"]}, headers=csu).status_code == 404
    assert client.post(url, json={"device_ids": []}, headers=csu).status_code == 422

    r = client.post(url, json={"device_ids": [c.camera(1)], "note": "rue du Port, au coin"}, headers=csu)
    assert r.status_code == 201, r.text
    order = r.json()["orders"][0]
    oid = order["order_id"]
    assert r.json()["state"] == "reinforcements_sent"
    assert (
        order["state"] == "sent"
        and order["agent"] == c.agents[1]
        and order["target"] == {"lat": HERE[0], "lon": HERE[1]}
    )
    assert order["distance_m"] == pytest.approx(300 * DETOUR_FACTOR, abs=2) and order["eta_s"] > 0
    assert order["for_agent"]["agent"] == c.agents[0]
    with platform.session() as db:
        s = db.get(LiveSession, sid)
        assert s.state == "reinforcements_sent" and s.reinforcements_note == "rue du Port, au coin"
    # Already on an order: neither a candidate nor sendable again.
    found = client.get(f"/api/v1/dispatch/sessions/{sid}/candidates", headers=csu).json()["candidates"]
    assert [x["device_id"] for x in found] == [c.camera(2)]
    assert client.post(url, json={"device_ids": [c.camera(1)]}, headers=csu).status_code == 409

    # The camera hears of it at once; another camera has nothing.
    heard = c.orders(1, wait_s=5)
    assert [o["order_id"] for o in heard["orders"]] == [oid] and heard["orders"][0]["note"] == "rue du Port, au coin"
    assert c.orders(2)["orders"] == []
    # Another camera cannot acknowledge it; its own camera can, once (idempotent).
    assert c.ack(2, oid).status_code == 404
    r = c.ack(1, oid)
    assert r.status_code == 200 and r.json()["state"] == "acknowledged" and r.json()["acknowledged_at"]
    assert c.ack(1, oid).status_code == 200
    changed = c.orders(1, after=heard["cursor"], wait_s=5)  # the long poll answers at once: it changed
    assert changed["cursor"] != heard["cursor"] and changed["orders"][0]["state"] == "acknowledged"

    # The agent walks there: on the way, still on order; within 30 m of the target, arrived.
    c.post_position(1, north_of(120), "patrol")
    assert client.get(f"/api/v1/dispatch/sessions/{sid}/orders", headers=csu).json()[0]["state"] == "acknowledged"
    agent = next(a for a in client.get("/api/v1/dispatch/agents", headers=csu).json() if a["device_id"] == c.camera(1))
    assert agent["order"]["order_id"] == oid and not agent["available"]
    with platform.session() as db:  # (no need to wait out the rate limit in a test)
        db.get(AgentPosition, c.camera(1)).received_at -= timedelta(seconds=2)
        db.commit()
    assert c.post_position(1, north_of(12)).status_code == 204
    orders = client.get(f"/api/v1/dispatch/sessions/{sid}/orders", headers=csu).json()
    assert orders[0]["state"] == "arrived" and orders[0]["arrived_at"]
    assert next(a for a in client.get("/api/v1/dispatch/agents", headers=csu).json() if a["device_id"] == c.camera(1))[
        "available"
    ]
    assert c.orders(1)["orders"] == [] and c.orders(1)["closed"][0]["state"] == "arrived"

    # The events channel told the dashboards each step; the journal has each, with its recipients.
    steps = [e["state"] for e in events(client, csu, "reinforcement") if e["order_id"] == oid]
    assert steps == ["sent", "acknowledged", "arrived"]
    sent_event = next(e for e in events(client, csu, "reinforcement") if e["state"] == "sent")
    assert {"order_id", "session_id", "device_id", "agent", "state", "target", "distance_m", "eta_s"} <= set(sent_event)
    log = dispatch_entries(platform, c.commune.slug)
    assert [e["event"] for e in log] == ["dispatch.order_sent", "dispatch.order_acknowledged", "dispatch.order_arrived"]
    assert all(e["action"] == "communication" for e in log)
    assert log[0]["recipients"] == [c.agents[1]] and log[0]["actor"]["id"] == c.commune.users[Role.CSU_OPERATOR]
    assert log[0]["details"]["orders"][0]["order_id"] == oid and set(log[0]["cameras"]) == {c.camera(0), c.camera(1)}
    assert log[1]["actor"]["kind"] == "device"
    assert "live.reinforcements_sent" in [e["event"] for e in entries(platform, c.commune.slug)]


def test_cancelled_orders_and_the_end_of_the_live_session(platform: Platform, client: TestClient):
    c = crew(platform, client, size=3)
    csu = bearer(platform, c.commune)
    sid = c.go_live(0)
    c.post_position(1, north_of(200))
    c.post_position(2, north_of(400))
    assert client.post(f"/api/v1/live/sessions/{sid}/ack", headers=csu).status_code == 200
    r = client.post(
        f"/api/v1/dispatch/sessions/{sid}/reinforcements", json={"device_ids": [c.camera(1), c.camera(2)]}, headers=csu
    )
    assert r.status_code == 201, r.text
    first, second = (o["order_id"] for o in r.json()["orders"])
    before = c.orders(1)

    # Another tenant cannot cancel it (404, journaled there); this CSU can, once.
    other = make_commune(platform, "autre-ville", cameras=0)
    assert client.post(f"/api/v1/dispatch/orders/{first}/cancel", headers=bearer(platform, other)).status_code == 404
    r = client.post(f"/api/v1/dispatch/orders/{first}/cancel", json={"reason": "agent PM-2 plus proche"}, headers=csu)
    assert r.status_code == 200 and r.json()["state"] == "cancelled"
    assert client.post(f"/api/v1/dispatch/orders/{first}/cancel", headers=csu).status_code == 409
    # The camera's long poll answers with the change: no open order, the cancelled one and why.
    after = c.orders(1, after=before["cursor"], wait_s=5)
    assert after["orders"] == [] and after["closed"][0]["cancel_reason"] == "agent PM-2 plus proche"
    assert c.ack(1, first).status_code == 409  # too late to acknowledge a cancelled order

    # The live stream ends (the operator's "Clore", or the camera stops publishing): the incident is not over,
    # the agent still on their way keeps their order, and the camera still shows it.
    assert client.post(f"/api/v1/live/sessions/{sid}/end", headers=csu).status_code == 200
    with platform.session() as db:
        assert db.get(ReinforcementOrder, second).state == "sent"
    assert [o["order_id"] for o in c.orders(2)["orders"]] == [second]
    states = {
        o["order_id"]: o["state"] for o in client.get(f"/api/v1/dispatch/sessions/{sid}/orders", headers=csu).json()
    }
    assert states == {first: "cancelled", second: "sent"}
    assert client.get(f"/api/v1/live/sessions/{sid}", headers=csu).json()["incident_closed_at"] is None

    # Closing the incident is for the CSU's operators and chiefs, not another tenant's; it recalls what is open.
    assert (
        client.post(f"/api/v1/live/sessions/{sid}/close", headers=bearer(platform, c.commune, Role.AGENT)).status_code
        == 403
    )
    assert client.post(f"/api/v1/live/sessions/{sid}/close", headers=bearer(platform, other)).status_code == 404
    with platform.session() as db:
        assert db.get(ReinforcementOrder, second).state == "sent"
    r = client.post(f"/api/v1/live/sessions/{sid}/close", headers=csu)
    assert r.status_code == 200, r.text
    assert r.json()["incident_closed_by"] == c.commune.users[Role.CSU_OPERATOR]
    with platform.session() as db:  # at the closing itself, not at the next read of the orders
        assert db.get(ReinforcementOrder, second).state == "cancelled"
    closed = c.orders(2)
    assert closed["orders"] == [] and closed["closed"][0]["cancel_reason"] == "incident_closed"
    again = client.post(f"/api/v1/live/sessions/{sid}/close", headers=csu)
    assert again.status_code == 409 and "already closed" in again.json()["detail"]
    with platform.session() as db:
        assert {o.id: o.state for o in db.scalars(select(ReinforcementOrder))} == {
            first: "cancelled",
            second: "cancelled",
        }
    log = dispatch_entries(platform, c.commune.slug)
    cancels = [e for e in log if e["event"] == "dispatch.order_cancelled"]
    assert [(e["details"]["order_id"], e["actor"]["kind"]) for e in cancels] == [(first, "user"), (second, "user")]
    assert cancels[1]["details"]["reason"] == "incident_closed"
    closing = [e for e in entries(platform, c.commune.slug) if e["event"] == "live.incident_closed"]
    assert len(closing) == 1 and closing[0]["actor"]["id"] == c.commune.users[Role.CSU_OPERATOR]
    assert [e["event"] for e in dispatch_entries(platform, "autre-ville")] == ["dispatch.refused"]
    # Nothing is sent to an ended session.
    r = client.post(f"/api/v1/dispatch/sessions/{sid}/reinforcements", json={"device_ids": [c.camera(1)]}, headers=csu)
    assert r.status_code == 409


def test_camera_routes_need_the_camera_signature(platform: Platform, client: TestClient):
    c = crew(platform, client, size=1)
    path = "/api/v1/dispatch/camera/position"
    r = client.post(path, json={"position": c.fix(HERE), "status": "patrol"})
    assert r.status_code == 401
    body = json.dumps({"position": c.fix(HERE), "status": "patrol"}).encode()
    forged = devices.signed_headers(*c.commune.cameras[0], "POST", "/api/v1/dispatch/camera/elsewhere", body)
    r = client.post(path, content=body, headers={**forged, "Content-Type": "application/json"})
    assert r.status_code == 401 and "signature invalid" in r.json()["detail"]
    assert client.get("/api/v1/dispatch/camera/orders").status_code == 401
    # A wearing agent's own account is no CSU.
    who = bearer(platform, c.commune, Role.AGENT)
    assert client.get("/api/v1/dispatch/agents", headers=who).status_code == 403
