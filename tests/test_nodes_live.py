"""Live media across nodes (issue 21, item 5): a camera publishes to the node it reaches, a viewer on another node
gets the stream. The stream stays on the node that owns it; WHIP/WHEP requests reaching another node are authorised
there, then forwarded to the owner, signed with the nodes' shared secret; the media flows between the client and the
owner. Two nodes on one PostgreSQL and one NATS, real aiortc publishers and viewers (decoded frames)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import orjson
import pytest

from temoin.camera.live_whip import LivePublisher
from temoin.demo.cctv.rtsp_server import CctvRtspServer
from temoin.demo.cctv.scene import FixedScene
from temoin.identity.service import update_settings
from temoin.law.access import Role
from temoin.live import nodes
from temoin.live.models import LiveMediaOwner
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.supervision.models import CctvCamera
from tests.helpers import agent_number, make_commune
from tests.live_helpers import (
    FIX,
    Viewer,
    _cheap_password_hashes,
    as_camera,
    entries,
    on_shift,
    publisher,
    running_server,
    token_for,
    until,
)
from tests.serve_helpers import ServerProcess, base_env, free_port, temoin

__all__ = ["_cheap_password_hashes"]  # fixture

pytestmark = pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
SECRET = "a-secret-the-nodes-share-0123456789abcdef"
LEASE_S = 3.0


def _node(shared: Settings) -> tuple[Settings, int]:
    port = free_port()
    return shared.model_copy(update={"node_url": f"http://127.0.0.1:{port}"}), port


@pytest.fixture
def shared(settings: Settings, nats_stream: tuple[str, str]) -> Settings:
    url, stream = nats_stream
    return settings.model_copy(
        update={"events_url": url, "events_stream": stream, "node_secret": SECRET, "live_owner_lease_s": LEASE_S}
    )


@pytest.fixture
def two_nodes(shared: Settings) -> Iterator[tuple[str, str, Platform]]:
    """Nodes A and B serving (in threads), each with its own TEMOIN_NODE_URL; yields their URLs and A's platform."""
    (sa, pa), (sb, pb) = _node(shared), _node(shared)
    a = Platform.open(sa, init=True)
    b = Platform.open(sb)
    try:
        with running_server(a, pa) as node_a, running_server(b, pb) as node_b:
            yield node_a, node_b, a
    finally:
        a.close()
        b.close()


def _session(url: str, token: str, sid: str) -> dict:
    r = httpx.get(f"{url}/api/v1/live/sessions/{sid}", headers={"Authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    return r.json()


def _owner(p: Platform, sid: str) -> str | None:
    with p.session() as db:
        row = db.get(LiveMediaOwner, sid)
        return row.node_url if row else None


def test_a_viewer_on_node_b_watches_a_camera_publishing_to_node_a(two_nodes):
    node_a, node_b, a = two_nodes
    commune = make_commune(a)
    on_shift(a, commune)
    operator = commune.users[Role.CSU_OPERATOR]
    token = token_for(a, operator)

    async def story() -> str:
        camera = publisher(node_a, commune)
        start = await camera.start(position=FIX, agent=agent_number(commune))
        sid = start.session_id
        assert _owner(a, sid) == node_a  # the node the camera reached carries its stream

        viewer = Viewer(node_b, token)
        r = await viewer.watch(sid)
        assert r.status_code == 201, r.text
        # The resource is named by the same path on every node: its DELETE may reach any of them.
        assert r.headers["location"].startswith(f"/api/v1/live/whep/{sid}/")
        await viewer.wait_frames(video=15, audio=20)
        assert (viewer.frames["video"][-1][1].width, viewer.frames["video"][-1][1].height) == (160, 120)
        # The media comes from A: A counts the viewer, B carries no stream of its own.
        await until(lambda: _session(node_a, token, sid)["viewers"] == 1, 5, "A counting B's viewer")
        assert _session(node_b, token, sid)["link"] is None

        # The camera re-publishes through B (its connection moved): B forwards it to A, the viewer stays attached.
        before = len(viewer.frames["video"])
        async with httpx.AsyncClient(base_url=node_b, auth=as_camera(commune), timeout=30) as via_b:
            await camera.publish(http=via_b)
            await until(lambda: len(viewer.frames["video"]) > before + 10, 10, "pictures after re-publishing via B")
            assert _owner(a, sid) == node_a

            # The viewer ends through B: A's stream is no longer watched.
            assert await viewer.stop() == 200
            await until(lambda: _session(node_a, token, sid)["viewers"] == 0, 5, "A's viewer gone")

            # The camera ends its session through B: A ends the stream and gives its ownership up.
            assert camera.resource_url is not None
            path = camera.resource_url.removeprefix(node_a)
            r = await via_b.delete(path)
            assert r.status_code == 200, r.text
        await until(lambda: _owner(a, sid) is None, 5, "A releasing the ended stream")
        assert _session(node_a, token, sid)["state"] == "ended"
        await camera.aclose()
        return sid

    sid = asyncio.run(story())
    time.sleep(0.3)  # the viewing's end entry is written as the viewer's connection closes
    log = [e for e in entries(a, commune.slug) if e["details"].get("live_session") == sid]
    started = [e for e in log if e["event"] == "live.viewing_started"]
    assert len(started) == 1 and started[0]["recipients"] == [operator]
    assert [e["event"] for e in log].count("live.ended") == 1


def test_forwards_are_refused_unless_signed_fresh_once_and_unauthorised_viewers_are_refused_on_b(
    two_nodes, monkeypatch: pytest.MonkeyPatch
):
    node_a, node_b, a = two_nodes
    commune = make_commune(a)
    other = make_commune(a, slug="autre-commune")
    sent: list[dict] = []
    real_forward = nodes.Nodes.forward

    async def counted(self, owner: str, retry_after_s: float, message: dict) -> dict:
        sent.append(message)
        return await real_forward(self, owner, retry_after_s, message)

    monkeypatch.setattr(nodes.Nodes, "forward", counted)

    async def story() -> None:
        camera = publisher(node_a, commune)
        sid = (await camera.start(position=FIX)).session_id
        try:
            # Refused on B, before anything reaches A: another tenant's operator, and a user without LIVE_VIEW.
            stranger = Viewer(node_b, token_for(a, other.users[Role.CSU_OPERATOR]))
            r = await stranger.watch(sid)
            assert r.status_code == 404, r.text
            await stranger.close()
            clerk = Viewer(node_b, token_for(a, commune.users[Role.AGENT]))
            r = await clerk.watch(sid)
            assert r.status_code == 403, r.text
            await clerk.close()
            assert sent == []
        finally:
            await camera.aclose()

        url = f"{node_a}{nodes.PATH}"
        body = orjson.dumps({"op": "stop_playing", "session_id": sid, "user_id": 1, "resource_id": "nothing"})
        async with httpx.AsyncClient() as http:

            async def send(header: str | None, content: bytes = body) -> httpx.Response:
                headers = {"Content-Type": "application/json"}
                if header is not None:
                    headers[nodes.HEADER] = header
                return await http.post(url, content=content, headers=headers)

            assert (await send(None)).status_code == 401
            forged = nodes.sign("not-the-secret-but-as-long-as-one-000000", node_a, body)
            assert (await send(forged)).status_code == 401
            expired = nodes.sign(SECRET, node_a, body, now=time.time() - 60)
            assert "expired" in (await send(expired)).json()["detail"]
            meant_for_b = nodes.sign(SECRET, node_b, body)
            assert (await send(meant_for_b)).status_code == 401
            good = nodes.sign(SECRET, node_a, body)
            tampered = body.replace(b'"user_id":1', b'"user_id":2')
            assert (await send(good, tampered)).status_code == 401
            first = await send(good)
            assert first.status_code == 200 and first.json()["error"]["kind"] == "NotFound"
            replay = await send(good)
            assert replay.status_code == 401 and "replay" in replay.json()["detail"]

    asyncio.run(story())


# --- CCTV cameras: each node pulls the RTSP itself; a viewing's DELETE and a withdrawal reach its node ----------


def _cctv_camera(p: Platform, slug: str, stream_url: str) -> None:
    with p.session() as db:
        tenant = p.tenant(db, slug)
        update_settings(p, db, tenant, {"cctv_networks": ["127.0.0.0/8"]})  # the simulated camera is on loopback
        db.add(
            CctvCamera(
                tenant_id=tenant.id,
                id="rue-mairie",
                name="Rue de la Mairie",
                lat=FIX.lat,
                lon=FIX.lon,
                heading_deg=0.0,
                fov_deg=60.0,
                stream_url=stream_url,
            )
        )
        db.commit()


async def _watch_cctv(url: str, token: str) -> tuple[Viewer, str]:
    viewer = Viewer(url, token)
    r = await viewer.watch_at("/api/v1/cctv/cameras/rue-mairie/whep", kinds=("video",))
    assert r.status_code == 201, r.text
    return viewer, r.headers["location"]


def test_a_cctv_viewing_ends_through_any_node_and_a_withdrawal_reaches_every_node(two_nodes):
    node_a, node_b, a = two_nodes
    commune = make_commune(a, cameras=0)
    operator = token_for(a, commune.users[Role.CSU_OPERATOR])
    admin = token_for(a, commune.users[Role.TECH_ADMIN])
    server = CctvRtspServer()
    server.add("rue-mairie", FixedScene("Rue de la Mairie", width=320, height=180, fps=10, seed=1))
    server.start()
    try:
        _cctv_camera(a, commune.slug, server.url("rue-mairie"))

        async def story() -> None:
            first, location = await _watch_cctv(node_a, operator)
            await until(lambda: len(first.frames["video"]) >= 5, 15, "CCTV pictures through A")
            # Its DELETE reaches B: B hands it to A, where the viewing is.
            async with httpx.AsyncClient(base_url=node_b, headers=first.auth) as http:
                assert (await http.delete(location)).status_code == 200
                assert (await http.delete(location)).status_code == 404  # gone now, whichever node is asked
            await until(lambda: "video" in first.ended, 10, "the viewing ended on A")
            await first.close()

            second, _ = await _watch_cctv(node_a, operator)
            await until(lambda: len(second.frames["video"]) >= 5, 15, "CCTV pictures through A again")
            # The camera is withdrawn through B: A's viewing of it ends too.
            async with httpx.AsyncClient(base_url=node_b, headers={"Authorization": f"Bearer {admin}"}) as http:
                r = await http.delete("/api/v1/cctv/cameras/rue-mairie", params={"reason": "vandalised"})
                assert r.status_code == 204, r.text
            await until(lambda: "video" in second.ended, 10, "A's viewing ended by the withdrawal through B")
            await second.close()
            await until(lambda: server.players("rue-mairie") == 0, 15, "no node pulling the withdrawn camera")

        asyncio.run(story())
    finally:
        server.stop()
    time.sleep(0.3)
    ended = entries(a, commune.slug, "cctv.viewing_ended")
    assert sorted(e["details"]["reason"] for e in ended) == ["deleted", "withdrawn"], ended


# --- the owner killed -------------------------------------------------------------------------------------


def _serve(settings: Settings, port: int, log: Path) -> ServerProcess:
    """`temoin serve` in its own process, answering: node A, to be SIGKILLed (a start that fails too: grace 0)."""
    server = ServerProcess(
        "node A",
        [temoin(), "serve", "--port", str(port)],
        env=base_env(
            settings,
            TEMOIN_EVENTS_URL=settings.events_url,
            TEMOIN_EVENTS_STREAM=settings.events_stream,
            TEMOIN_NODE_URL=settings.node_url,
            TEMOIN_NODE_SECRET=SECRET,
            TEMOIN_LIVE_OWNER_LEASE_S=str(settings.live_owner_lease_s),
        ),
        cwd=settings.home,
        log=log,
        url=settings.node_url,
        grace_s=0,
    )
    server.wait_answering(45)
    return server


@pytest.mark.slow
def test_the_owner_killed_viewers_get_a_quick_503_and_the_camera_publishes_again_through_b(
    shared: Settings, tmp_path: Path
):
    (sa, pa), (sb, pb) = _node(shared), _node(shared)
    b = Platform.open(sb, init=True)
    commune = make_commune(b)
    token = token_for(b, commune.users[Role.CSU_OPERATOR])
    with ExitStack() as stack:
        stack.callback(b.close)
        node_b = stack.enter_context(running_server(b, pb))
        node_a = _serve(sa, pa, tmp_path / "node-a.log")
        stack.callback(node_a.kill)

        async def story() -> None:
            camera = publisher(sa.node_url, commune)
            sid = (await camera.start(position=FIX)).session_id
            viewer = Viewer(node_b, token)
            assert (await viewer.watch(sid)).status_code == 201
            await viewer.wait_frames(video=10, audio=10, timeout=15)
            await viewer.close()

            node_a.kill()
            late = Viewer(node_b, token)
            t0 = time.monotonic()
            r = await late.watch(sid)
            took = time.monotonic() - t0
            await late.close()
            assert r.status_code == 503, r.text
            assert took < 3.0, f"the refusal took {took:.1f} s"
            assert 1 <= int(r.headers["retry-after"]) <= LEASE_S + 1
            assert "does not answer" in r.json()["detail"]
            assert "127.0.0.1" not in r.text  # the nodes' internal addresses are not told to clients

            # A's lease lapses: the camera publishes again, now through B, which takes the stream.
            await asyncio.sleep(LEASE_S + 0.5)
            again = LivePublisher(node_b, *commune.cameras[0])
            again.session_id = sid
            await again.publish()
            with b.session() as db:
                row = db.get(LiveMediaOwner, sid)
                assert row is not None and row.node_url == sb.node_url
            watcher = Viewer(node_b, token)
            assert (await watcher.watch(sid)).status_code == 201
            await watcher.wait_frames(video=10, audio=10, timeout=15)
            await watcher.close()
            await again.aclose()
            await camera.aclose()

        asyncio.run(story())


def test_a_single_node_takes_no_forwards(client):
    """TEMOIN_NODE_URL unset (the default): the forward endpoint refuses everything, whatever it is signed with."""
    body = orjson.dumps({"op": "withdraw_cctv", "tenant_id": 1, "camera_id": "x"})
    r = client.post(
        nodes.PATH, content=body, headers={"Content-Type": "application/json", nodes.HEADER: nodes.sign("", "", body)}
    )
    assert r.status_code == 401 and "TEMOIN_NODE_URL is not set" in r.json()["detail"]
