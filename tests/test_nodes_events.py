"""The CSU's events across nodes (issue 21, item 2): two servers on one PostgreSQL database share a real NATS
JetStream (a stream of this test's own); an alert raised through one reaches the dashboards of both, and a dashboard
that reconnects to the other node with `Last-Event-ID` gets what it missed. NATS unreachable: the local dashboards
keep getting the local events, and the log says what is lost."""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import orjson
import pytest
from playwright.sync_api import expect

from temoin.law.access import Role
from temoin.live.events_nats import NatsEventBus
from temoin.platform import Platform
from temoin.settings import Settings
from tests.helpers import Commune, make_commune
from tests.live_helpers import (
    FIX,
    _cheap_password_hashes,
    on_shift,
    open_dashboard,
    running_server,
    signed,
    token_for,
)

__all__ = ["_cheap_password_hashes"]  # fixture


@dataclass
class Sse:
    id: int | None
    kind: str
    data: dict


@dataclass
class Dashboard:
    """A CSU dashboard on one node's events channel, keeping each event's number."""

    url: str
    token: str
    last_event_id: int | None = None
    items: list[Sse] = field(default_factory=list)

    async def __aenter__(self) -> Dashboard:
        self._changed = asyncio.Event()
        self._open = asyncio.Event()
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._open.wait(), 10)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        headers = {"Accept": "text/event-stream", "Authorization": f"Bearer {self.token}"}
        if self.last_event_id is not None:
            headers["Last-Event-ID"] = str(self.last_event_id)
        async with (
            httpx.AsyncClient(base_url=self.url, timeout=None) as http,  # noqa: S113 - a stream: open until closed
            http.stream("GET", "/api/v1/live/events", headers=headers) as r,
        ):
            assert r.status_code == 200, await r.aread()
            ident, kind, data = None, None, None
            async for line in r.aiter_lines():
                if line.startswith("id: "):
                    ident = int(line[4:])
                elif line.startswith("event: "):
                    kind = line[7:]
                elif line.startswith("data: "):
                    data = orjson.loads(line[6:])
                elif line == "" and kind is not None:
                    if kind == "snapshot":
                        self._open.set()
                    else:
                        self.items.append(Sse(ident, kind, data or {}))
                        self._changed.set()
                    ident, kind, data = None, None, None

    async def wait_for(self, kind: str, timeout: float = 10, **match: object) -> Sse:
        deadline = time.monotonic() + timeout
        while True:
            for item in self.items:
                if item.kind == kind and all(item.data.get(k) == v for k, v in match.items()):
                    return item
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind} event matching {match} within {timeout} s; got {self.items}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except TimeoutError:
                pass


def press_live(url: str, commune: Commune, camera: int) -> str:
    """The camera's live button, through the node at `url`; returns the live session's id."""
    path = "/api/v1/live/sessions"
    body = orjson.dumps({"reason": "threat", "position": FIX.model_dump(mode="json")})
    r = httpx.post(
        f"{url}{path}",
        content=body,
        headers={**signed(commune, "POST", path, camera, body), "Content-Type": "application/json"},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


@pytest.fixture
def two_nodes(settings: Settings, nats_stream: tuple[str, str]) -> Iterator[tuple[Platform, Platform]]:
    """Two platforms (two nodes) on one database and one data folder, sharing a JetStream stream."""
    url, stream = nats_stream
    shared = settings.model_copy(update={"events_url": url, "events_stream": stream})
    a = Platform.open(shared, init=True)
    b = Platform.open(shared)
    yield a, b
    a.close()
    b.close()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_alert_on_one_node_reaches_every_dashboard_and_a_reconnection_elsewhere_catches_up(two_nodes):
    a, b = two_nodes
    commune = make_commune(a, cameras=3)
    token = token_for(a, commune.users[Role.CSU_OPERATOR])
    with running_server(a) as node_a, running_server(b) as node_b:

        async def story() -> None:
            async with Dashboard(node_b, token) as on_b, Dashboard(node_a, token) as on_a:
                first = press_live(node_a, commune, camera=0)
                seen_b = await on_b.wait_for("alert", id=first)
                seen_a = await on_a.wait_for("alert", id=first)
                # One number for one event on every node: Last-Event-ID means the same everywhere.
                assert seen_b.id is not None and seen_b.id == seen_a.id
                assert seen_b.data["reason"] == "threat"
                last = seen_b.id
            # The dashboard on B is gone (network, a node restarted); meanwhile a second camera calls through A
            # and A's operator acknowledges the first alert.
            second = press_live(node_a, commune, camera=1)
            r = httpx.post(f"{node_a}/api/v1/live/sessions/{first}/ack", headers={"Authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            async with Dashboard(node_b, token, last_event_id=last) as back_on_b:
                missed = await back_on_b.wait_for("alert", id=second)
                await back_on_b.wait_for("session", id=first, state="acknowledged")
                assert missed.id is not None and missed.id > last
                # What it had already seen is not sent again.
                assert all(item.id is None or item.id > last for item in back_on_b.items)
                assert not [i for i in back_on_b.items if i.kind == "alert" and i.data["id"] == first]
                # And what follows reaches it live, raised on B this time, in order.
                third = press_live(node_b, commune, camera=2)
                live = await back_on_b.wait_for("alert", id=third)
                numbers = [i.id for i in back_on_b.items if i.id is not None]
                assert numbers == sorted(numbers) and len(numbers) == len(set(numbers))
                assert live.id is not None and live.id > missed.id
            # The JSON form (after=N) reads the same numbers from any node.
            r = httpx.get(
                f"{node_b}/api/v1/live/events", params={"after": last}, headers={"Authorization": f"Bearer {token}"}
            )
            assert r.status_code == 200
            assert second in [e["data"]["id"] for e in r.json()["events"] if e["type"] == "alert"]

        asyncio.run(story())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_nats_unreachable_local_dashboards_still_get_local_events(
    settings: Settings, closed_port: int, caplog: pytest.LogCaptureFixture
):
    down = settings.model_copy(update={"events_url": f"nats://127.0.0.1:{closed_port}", "events_stream": "DOWN"})
    p = Platform.open(down, init=True)
    commune = make_commune(p)
    token = token_for(p, commune.users[Role.CSU_OPERATOR])
    caplog.set_level(logging.ERROR, logger="temoin.live.events")
    try:
        with running_server(p) as node:

            async def story() -> None:
                async with Dashboard(node, token) as dashboard:
                    sid = press_live(node, commune, camera=0)
                    alert = await dashboard.wait_for("alert", id=sid, timeout=5)
                    assert alert.id is None  # not numbered: the stream never had it, so no replay promise

            asyncio.run(story())
    finally:
        p.close()
    said = " ".join(r.getMessage() for r in caplog.records if r.name == "temoin.live.events")
    assert "NATS unreachable" in said and "this node's dashboards only" in said


def _nats_server(port: int, store: Path) -> subprocess.Popen:
    binary = shutil.which("nats-server") or "/usr/sbin/nats-server"
    if not Path(binary).exists():
        pytest.fail("nats-server is not installed (Debian's nats-server package; ./dev.sh test installs it)")
    server = subprocess.Popen(
        [binary, "-js", "-a", "127.0.0.1", "-p", str(port), "-sd", str(store)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return server
        time.sleep(0.05)
    server.kill()
    pytest.fail(f"nats-server did not start on port {port}")


async def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not within {timeout} s")
        await asyncio.sleep(0.05)


def test_a_nats_outage_mid_run_keeps_local_events_flowing_then_heals(
    tmp_path: Path, closed_port: int, caplog: pytest.LogCaptureFixture
):
    """A NATS server of the test's own, stopped and started again under two nodes' buses."""
    caplog.set_level(logging.WARNING, logger="temoin.live.events")
    url, store = f"nats://127.0.0.1:{closed_port}", tmp_path / "jetstream"
    server = _nats_server(closed_port, store)
    a, b = NatsEventBus(url, "OUTAGE", 60), NatsEventBus(url, "OUTAGE", 60)
    try:
        assert a.wait_ready(10) and b.wait_ready(10)

        async def story() -> None:
            nonlocal server
            on_a, on_b = a.subscribe(7), b.subscribe(7)
            a.publish(7, "alert", {"n": 1})
            first = await on_b.next(5)
            assert first is not None and first.data == {"n": 1} and first.id
            assert (await on_a.next(5)) == first

            server.terminate()
            server.wait(10)
            await _until(lambda: not a._up(), 10, "node A sees the outage")
            a.publish(7, "alert", {"n": 2})
            during = await on_a.next(2)  # A's own dashboards: at once, never frozen
            assert during is not None and during.data == {"n": 2} and during.id == 0
            assert await on_b.next(1) is None  # what the outage loses: B never hears of it

            server = _nats_server(closed_port, store)
            await _until(lambda: a._up() and b._up(), 15, "both nodes back on NATS")
            a.publish(7, "alert", {"n": 3})
            after = await on_b.next(15)
            assert after is not None and after.data == {"n": 3} and after.id > first.id
            on_a.close()
            on_b.close()

        asyncio.run(story())
    finally:
        a.close()
        b.close()
        server.terminate()
        server.wait(10)
    said = [r.getMessage() for r in caplog.records if r.name == "temoin.live.events"]
    assert any("NATS connection lost" in m and "this node's dashboards only" in m for m in said), said
    assert any("back" in m for m in said), said


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_live_button_on_node_a_alerts_a_csu_browser_on_node_b(two_nodes, browser):
    """The issue's story in a real browser: the camera reaches node A, the CSU's Chromium is on node B; the operator
    acknowledges on B and the camera, asking A, is told."""
    a, b = two_nodes
    commune = make_commune(a, cameras=1)
    on_shift(a, commune)
    with running_server(a) as node_a, running_server(b) as node_b:
        context, page = open_dashboard(b, browser, node_b, commune.users[Role.CSU_OPERATOR])
        try:
            sid = press_live(node_a, commune, camera=0)
            expect(page.locator("#csu-alert")).to_be_visible()
            page.locator("#csu-ack").click()
            expect(page.locator("#csu-alert-acked")).not_to_have_text("—")
            path = f"/api/v1/live/camera/sessions/{sid}"
            seen = httpx.get(f"{node_a}{path}", headers=signed(commune, "GET", path, 0))
            assert seen.status_code == 200, seen.text
            assert seen.json()["state"] == "acknowledged"
        finally:
            context.close()
