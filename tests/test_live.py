"""Live transmission (issue 4): the live button, WHIP publication by a camera and WHEP viewing by the CSU,
with real WebRTC (aiortc on both sides) against a real server (uvicorn); the alert on the events channel,
the acknowledgement reaching the camera, the journal; and the refusals.

Media is small (160x120, 15 fps) and short: the whole file stays within a few tens of seconds.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import time

import av
import httpx
import pytest
from sqlalchemy import select

from temoin.camera.offload import DeviceAuth
from temoin.identity import devices, service
from temoin.identity.models import Device, DeviceNonce
from temoin.journal.entry import Actor
from temoin.journal.verify import verify_all
from temoin.law.access import Role
from temoin.law.profiles import get_profile
from temoin.live import backup, hub as live_hub
from temoin.live.models import LiveSession
from temoin.platform import Platform
from tests.artefact_helpers import artefact_raw
from tests.helpers import agent_number, enrol_camera, make_commune, sign_in
from tests.live_helpers import (
    FIX,
    Events,
    Viewer,
    _cheap_password_hashes,
    as_camera,
    count_h264_work,
    entries,
    on_shift,
    publisher,
    server,
    settings,
    signed,
    token_for,
    until,
)

# --- the whole story ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_live_button_to_csu_and_back(platform: Platform, server: str, monkeypatch: pytest.MonkeyPatch):
    commune = make_commune(platform)
    on_shift(platform, commune)
    operator = commune.users[Role.CSU_OPERATOR]
    token = token_for(platform, operator)
    # Count what the H.264 encoder does: the camera encodes (and packetizes what it encoded); the platform must
    # only packetize the camera's access units again (live.forwarding.packetize), never encode.
    calls = count_h264_work(monkeypatch)

    async def story() -> str:
        camera = publisher(server, commune)
        async with Events(server, token) as events:
            start = await camera.start(position=FIX, agent=agent_number(commune))
            sid = start.session_id
            assert start.resource_url.startswith(f"{server}/api/v1/live/whip/{sid}/")
            # The CSU is alerted at once, with the agent (from the shift) and the position.
            alert = await events.wait_for("alert", id=sid)
            assert alert["agent"] == agent_number(commune) and alert["reason"] == "threat"
            assert alert["position"]["lat"] == pytest.approx(FIX.lat)
            await events.wait_for("session", id=sid, state="streaming")

            await asyncio.sleep(1.0)  # the viewer joins mid-stream
            viewer = Viewer(server, token)
            r = await viewer.watch(sid)
            assert r.status_code == 201, r.text
            assert r.headers["content-type"].startswith("application/sdp")
            assert r.headers["location"].startswith(f"/api/v1/live/whep/{sid}/")
            await viewer.wait_frames(video=15, audio=25)
            first_video = viewer.frames["video"][0][0] - viewer.joined_at
            # aiortc's encoder makes a keyframe every ~250 frames (17 s at 15 fps): a first picture within
            # 3 s of joining means the joining viewer's keyframe request reached the camera.
            assert first_video < 3.0, f"first picture {first_video:.2f} s after joining ({viewer.timeline()})"
            picture = viewer.frames["video"][-1][1]
            assert (picture.width, picture.height) == (160, 120)
            sound = viewer.frames["audio"][-1][1]
            assert sound.sample_rate == 48_000 and sound.samples == 960
            # Forwarded, not transcoded: the relay packetized the camera's H.264, it encoded nothing itself.
            assert calls["_packetize"] > calls["encode"], calls
            video_sent = camera.pc.getTransceivers()[0].sender.track.index
            assert calls["encode"] <= video_sent + 2, (calls, video_sent)

            # The operator acknowledges: the camera, waiting on its long poll, hears it at once.
            waiting = asyncio.create_task(camera.wait_for_state("acknowledged", timeout_s=10))
            await asyncio.sleep(0.2)
            t0 = time.monotonic()
            async with httpx.AsyncClient(base_url=server, headers=viewer.auth) as http:
                ack = await http.post(f"/api/v1/live/sessions/{sid}/ack")
                assert ack.status_code == 200 and ack.json()["acknowledged_by"] == operator
                seen = await asyncio.wait_for(waiting, 10)
                assert seen["state"] == "acknowledged" and time.monotonic() - t0 < 3.0
                await events.wait_for("session", id=sid, state="acknowledged")
                r = await http.post(f"/api/v1/live/sessions/{sid}/reinforcements", json={"note": "2 patrouilles"})
                assert r.status_code == 200 and r.json()["state"] == "reinforcements_sent"
                await camera.send_position(FIX.model_copy(update={"lat": 43.5590}))
                assert (await events.wait_for("position", id=sid))["position"]["lat"] == pytest.approx(43.5590)

                # The camera's media stops (uplink lost): the dashboards are told, never shown a frozen image.
                camera.pause_media()
                lost = await events.wait_for("stream", id=sid, link="lost", timeout=5)
                assert lost["silent_s"] > 0.6
                listed = (await http.get(f"/api/v1/live/sessions/{sid}")).json()
                assert listed["link"] == "lost" and listed["silent_s"] > 0.6
                camera.resume_media()
                await events.wait_for("stream", id=sid, link="live", timeout=5)

                # The camera reconnects (a new WHIP offer): the viewer keeps its connection and gets pictures.
                before = len(viewer.frames["video"])
                await camera.publish()
                await until(lambda: len(viewer.frames["video"]) > before + 10, 8, "pictures after reconnection")

                # The camera ends the session (DELETE of its WHIP resource): the viewer's tracks end.
                await camera.stop()
                await events.wait_for("session", id=sid, state="ended")
                await until(lambda: viewer.ended >= {"video", "audio"}, 10, "viewer tracks ending")
                r = await http.post(f"/api/v1/live/sessions/{sid}/ack")
                assert r.status_code == 409
            await viewer.close()
        await camera.aclose()
        return sid

    sid = asyncio.run(story())
    time.sleep(0.3)  # the viewing's end entry is written as the viewer's connection closes

    # Every step is journaled with its time and author; the viewing has the operator as recipient.
    chain = commune.slug
    log = entries(platform, chain)
    events = [e["event"] for e in log]
    for expected in (
        "live.requested",
        "live.streaming",
        "live.viewing_started",
        "live.acknowledged",
        "live.reinforcements_sent",
        "live.stream_resumed",
        "live.ended",
        "live.viewing_ended",
    ):
        assert expected in events, (expected, events)
    assert (
        events.index("live.requested")
        < events.index("live.streaming")
        < events.index("live.acknowledged")
        < events.index("live.reinforcements_sent")
        < events.index("live.ended")
    )
    by_event = {e["event"]: e for e in log}
    assert all(e["action"] == "communication" for e in log)
    assert by_event["live.requested"]["actor"]["kind"] == "device"
    assert by_event["live.requested"]["details"]["agent"] == agent_number(commune)
    assert by_event["live.acknowledged"]["actor"]["id"] == operator
    started, ended = by_event["live.viewing_started"], by_event["live.viewing_ended"]
    assert started["recipients"] == [operator] and ended["recipients"] == [operator]
    assert ended["details"]["started_at"] == started["details"]["started_at"]
    assert ended["details"]["duration_s"] > 1 and ended["details"]["reason"] == "stream_ended"
    assert started["cameras"] == [commune.cameras[0][0]]
    with platform.session() as db:
        s = db.get(LiveSession, sid)
        assert s.state == "ended" and s.end_reason == "camera_ended" and s.backup_file is None  # off by default
        assert verify_all(db, platform.journal.sink, platform.keyring.public_key).ok


@pytest.mark.slow
@pytest.mark.slow
def test_a_live_request_sent_three_times_at_once_opens_one_session(platform: Platform, server: str):
    commune = make_commune(platform)
    device_id = commune.cameras[0][0]

    def nonces() -> int:
        with platform.session() as db:
            return len(db.scalars(select(DeviceNonce).where(DeviceNonce.device_id == device_id)).all())

    async def story() -> dict:
        camera = publisher(server, commune, request_copies=3)
        try:
            before = nonces()
            out = await camera.request(position=FIX)
            deadline = time.monotonic() + 10
            while nonces() < before + 3 and time.monotonic() < deadline:  # the other copies land too
                await asyncio.sleep(0.05)
            assert nonces() == before + 3  # three signed requests, each with its own nonce
            await asyncio.sleep(0.3)
            return out
        finally:
            await camera.aclose()

    out = asyncio.run(story())
    with platform.session() as db:
        assert [s.id for s in db.scalars(select(LiveSession))] == [out["id"]]
    assert [e["event"] for e in entries(platform, commune.slug)] == ["live.requested"]  # one alert


def test_backup_recording_when_the_profile_allows_it(platform: Platform, server: str, monkeypatch: pytest.MonkeyPatch):
    allowing = get_profile("fr-police-municipale").model_copy(update={"live_backup_recording": True})
    monkeypatch.setattr(live_hub, "get_profile", lambda _id: allowing)
    commune = make_commune(platform, cameras=1)

    async def story() -> str:
        camera = publisher(server, commune)
        start = await camera.start(position=FIX)
        await asyncio.sleep(1.5)
        await camera.stop()
        await camera.aclose()
        return start.session_id

    sid = asyncio.run(story())
    deadline = time.monotonic() + 10
    while True:
        with platform.session() as db:
            s = db.get(LiveSession, sid)
            if s.backup_sha256 or time.monotonic() > deadline:
                break
        time.sleep(0.1)
    assert s.backup_sha256, "the backup was not stored"
    (sealed,) = artefact_raw(platform.store, s.backup_file)  # in the blob store, sealed
    assert sealed.startswith(b"TMNB1") and b"\x47\x40\x00" not in sealed[:4096]  # no MPEG-TS in clear
    plain = b"".join(
        backup.read_backup(
            platform.store, platform.settings.home, s.backup_file, platform.keyring.master_key, s.backup_key, sid
        )
    )
    assert len(plain) == s.backup_bytes
    assert hashlib.sha256(plain).hexdigest() == s.backup_sha256
    with av.open(io.BytesIO(plain)) as ts:
        kinds = sorted(st.codec_context.name for st in ts.streams)
        assert kinds == ["h264", "opus"]
        counted = {"video": 0, "audio": 0}
        for frame in ts.decode(*ts.streams):
            counted["video" if isinstance(frame, av.VideoFrame) else "audio"] += 1
    assert counted["video"] >= 10 and counted["audio"] >= 30, counted
    stored = [e for e in entries(platform, commune.slug) if e["event"] == "live.backup_stored"]
    assert stored and stored[0]["action"] == "collection" and stored[0]["details"]["sha256"] == s.backup_sha256


# --- refusals ---------------------------------------------------------------------------------------------

OFFER_HEAD = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n"


def test_refusals(platform: Platform, client):
    commune = make_commune(platform, cameras=3)
    other = make_commune(platform, slug="autre-ville", cameras=1)
    token = token_for(platform, commune.users[Role.CSU_OPERATOR])
    bearer = {"Authorization": f"Bearer {token}"}
    sdp = {"Content-Type": "application/sdp"}

    # The live button, then a session to aim at.
    r = client.post("/api/v1/live/sessions", json={"reason": "threat"}, auth=as_camera(commune))
    assert r.status_code == 201, r.text
    sid = r.json()["id"]
    assert r.json()["whip_url"] == f"/api/v1/live/whip/{sid}"
    assert r.json()["state"] == "requested" and r.json()["requested_at"] and r.json()["agent"] is None  # no shift
    again = client.post("/api/v1/live/sessions", json={"reason": "threat"}, auth=as_camera(commune))
    assert again.status_code == 200 and again.json()["id"] == sid  # pressing again: the same session
    # Only the legal condition opens a live session.
    r = client.post("/api/v1/live/sessions", json={"reason": "curiosity"}, auth=as_camera(commune, 1))
    assert r.status_code == 422

    whip = f"/api/v1/live/whip/{sid}"
    # Malformed SDP: 400, with why.
    r = client.post(whip, content=b"hello", headers={**sdp, **signed(commune, "POST", whip, body=b"hello")})
    assert r.status_code == 400 and "SDP" in r.json()["detail"]
    no_ice = (OFFER_HEAD + "m=video 9 UDP/TLS/RTP/SAVPF 96\r\n").encode()
    r = client.post(whip, content=no_ice, headers={**sdp, **signed(commune, "POST", whip, body=no_ice)})
    assert r.status_code == 400
    vp8_only = (
        OFFER_HEAD
        + "a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuv\r\na=fingerprint:sha-256 "
        + ":".join(["AB"] * 32)
        + "\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"
    )
    r = client.post(whip, content=vp8_only.encode(), auth=as_camera(commune), headers=sdp)
    assert r.status_code == 400 and "H.264" in r.json()["detail"]
    r = client.post(
        whip, content=b"v=0", headers={"Content-Type": "text/plain", **signed(commune, "POST", whip, body=b"v=0")}
    )
    assert r.status_code == 415
    # Unknown stream: 404 for the camera and for the viewer.
    r = client.post("/api/v1/live/whip/live-0000", content=b"v=0\r\n", auth=as_camera(commune), headers=sdp)
    assert r.status_code == 404
    r = client.post("/api/v1/live/whep/live-0000", content=b"v=0\r\n", headers={**sdp, **bearer})
    assert r.status_code == 404
    # Another camera of the same commune cannot publish into this session.
    r = client.post(whip, content=b"v=0\r\n", auth=as_camera(commune, 1), headers=sdp)
    assert r.status_code == 404
    # Forged device signature: 401, journaled as a security event.
    forged = signed(commune, "POST", "/api/v1/live/whip/another-path", body=b"v=0\r\n")
    r = client.post(whip, content=b"v=0\r\n", headers={**sdp, **forged})
    assert r.status_code == 401 and "signature" in r.json()["detail"]
    # A revoked camera: 403, journaled.
    revoked_id = commune.cameras[2][0]
    with platform.session() as db:
        devices.revoke(platform, db, db.get(Device, revoked_id), Actor.system("test"))
    r = client.post("/api/v1/live/sessions", json={"reason": "threat"}, auth=as_camera(commune, 2))
    assert r.status_code == 403
    client.app.state.refusals.flush(platform, every=True)  # journaled by the minute (web.refusals)
    security = entries(platform, commune.slug, "device.auth_refused")
    assert {e["details"]["reason"].split(" ")[0] for e in security} >= {"device", "this"}
    assert {e["cameras"][0] for e in security} == {commune.cameras[0][0], revoked_id}

    # A user of another tenant, even with LIVE_VIEW: 404 (the session's existence is not leaked), journaled.
    foreign = {"Authorization": f"Bearer {token_for(platform, other.users[Role.CSU_OPERATOR])}"}
    for method, path in (
        ("POST", f"/api/v1/live/whep/{sid}"),
        ("POST", f"/api/v1/live/sessions/{sid}/ack"),
        ("GET", f"/api/v1/live/sessions/{sid}"),
    ):
        r = client.request(method, path, content=b"v=0\r\n", headers={**sdp, **foreign})
        assert r.status_code == 404, (path, r.status_code)
    assert [e["event"] for e in entries(platform, other.slug)].count("live.viewing_refused") == 3
    r = client.get("/api/v1/live/sessions", headers=foreign)
    assert r.status_code == 200 and r.json() == []
    r = client.get("/api/v1/live/events", headers=foreign)
    assert all(e["data"].get("id") != sid for e in r.json()["events"])
    # Roles without LIVE_VIEW: 403.
    for role in (Role.AGENT, Role.TECH_ADMIN, Role.AUDITOR, Role.DESIGNATED_AGENT):
        who = {"Authorization": f"Bearer {token_for(platform, commune.users[role])}"}
        for method, path in (
            ("POST", f"/api/v1/live/whep/{sid}"),
            ("POST", f"/api/v1/live/sessions/{sid}/ack"),
            ("GET", "/api/v1/live/events"),
            ("GET", "/api/v1/live/sessions"),
        ):
            r = client.request(method, path, content=b"v=0\r\n", headers={**sdp, **who})
            assert r.status_code == 403, (role, path, r.status_code)
            assert "live.view" in r.json()["detail"]
    # No credentials at all: 401.
    assert client.post(f"/api/v1/live/whep/{sid}", content=b"v=0\r\n", headers=sdp).status_code == 401
    # With a session cookie, a state-changing request needs the CSRF token.
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    assert client.post(f"/api/v1/live/sessions/{sid}/ack").status_code == 403
    r = client.post(f"/api/v1/live/sessions/{sid}/reinforcements", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 409 and "acknowledge" in r.json()["detail"]
    r = client.post(f"/api/v1/live/sessions/{sid}/ack", headers={"X-CSRF-Token": csrf})
    assert r.status_code == 200 and r.json()["state"] == "acknowledged"
    # The events channel without SSE: the recent events as JSON (the alert and the acknowledgement).
    r = client.get("/api/v1/live/events", headers=bearer)
    kinds = [(e["type"], e["data"].get("state")) for e in r.json()["events"] if e["data"].get("id") == sid]
    assert ("alert", "requested") in kinds and ("session", "acknowledged") in kinds
    client.cookies.clear()

    # A tenant whose legal profile does not allow live transmission: 403, journaled.
    with platform.session() as db:
        service.create_tenant(
            platform, db, slug="caserne", name="Caserne", profile="fr-sapeurs-pompiers", authorised_cameras=2
        )
        db.commit()
    camera = enrol_camera(platform, "caserne", "caserne-cam-0")
    r = client.post("/api/v1/live/sessions", json={"reason": "threat"}, auth=DeviceAuth(*camera))
    assert r.status_code == 403 and "fr-sapeurs-pompiers" in r.json()["detail"]
    assert [e["event"] for e in entries(platform, "caserne")] == ["live.refused"]


def test_trickle_ice_and_ice_restart_through_patch_are_refused_with_405_and_why(client):
    """RFC 9725 section 4.3: a server without trickle ICE or ICE restart answers PATCH with 405. Offers must carry
    their candidates (one without is refused with 400: tests/test_live_whip.py); a restart is a new POST."""
    for path in ("/api/v1/live/whip/some-session/some-resource", "/api/v1/live/whep/some-session/some-resource"):
        r = client.patch(
            path,
            content=b"a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n"
            b"a=candidate:1 1 udp 1 192.0.2.1 9 typ host\r\n",
            headers={"Content-Type": "application/trickle-ice-sdpfrag", "Origin": "https://encoder.example"},
        )
        assert r.status_code == 405, r.text
        assert "trickle ICE" in r.json()["detail"] and "POST a new offer" in r.json()["detail"]
        assert r.headers["allow"] == "DELETE, OPTIONS"
        assert r.headers["access-control-allow-origin"] == "*"  # a browser publisher can read why
        pre = client.options(
            path, headers={"Origin": "https://encoder.example", "Access-Control-Request-Method": "PATCH"}
        )
        assert "PATCH" not in pre.headers["access-control-allow-methods"]


def test_camera_session_view_and_position(platform: Platform, client):
    commune = make_commune(platform, cameras=2)
    path = "/api/v1/live/sessions"
    sid = client.post(
        path, json={"reason": "threat", "position": FIX.model_dump(mode="json")}, auth=as_camera(commune)
    ).json()["id"]
    view = f"/api/v1/live/camera/sessions/{sid}"
    r = client.get(view, headers=signed(commune, "GET", view))
    assert r.status_code == 200 and r.json()["state"] == "requested"
    # Another camera does not see it.
    assert client.get(view, headers=signed(commune, "GET", view, camera=1)).status_code == 404
    # The long poll returns at once when the state already differs, and after the wait otherwise.
    query = f"{view}?known_state=requested&wait_s=0.3"
    t0 = time.monotonic()
    r = client.get(query, headers=signed(commune, "GET", query))
    assert r.status_code == 200 and r.json()["state"] == "requested" and time.monotonic() - t0 >= 0.3
    pos = f"{view}/position"
    r = client.post(pos, json=FIX.model_dump(mode="json") | {"lat": 43.56}, auth=as_camera(commune))
    assert r.status_code == 204
    with platform.session() as db:
        assert db.get(LiveSession, sid).position["lat"] == pytest.approx(43.56)


def test_media_plane_refuses_bad_offers_before_aiortc():
    from temoin.live.plane import BadOffer, check_offer

    for bad in (
        "",
        "hello",
        OFFER_HEAD,
        OFFER_HEAD + "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n",
    ):
        with pytest.raises(BadOffer):
            check_offer(bad)
    with pytest.raises(BadOffer, match="larger"):
        check_offer("v=0\r\n" + "a=x\r\n" * 20_000)


def test_aiortc_still_has_the_hook_forwarding_needs():
    """Forwarding without transcoding uses a private attribute of aiortc's receiver (live.forwarding):
    an aiortc upgrade that removes it must fail here, not silently transcode or drop media."""
    from aiortc import RTCRtpReceiver

    from temoin.live import forwarding

    receiver = RTCRtpReceiver("video", type("Transport", (), {"state": "new"})())
    got = []
    forwarding.tap_receiver(receiver, lambda mime, data, ts: got.append((mime, data, ts)))
    codec = type("Codec", (), {"mimeType": "video/H264", "payloadType": 102})()
    getattr(receiver, forwarding._QUEUE_ATTR).put((codec, type("F", (), {"data": b"x", "timestamp": 3})()))
    assert got == [("video/h264", b"x", 3)]
    assert forwarding.nal_types(b"\x00\x00\x00\x01\x67ab\x00\x00\x01\x68cd\x00\x00\x01\x65ef") == [7, 8, 5]
    # Frames leave the relay's jitter buffer as soon as they are complete: at the marker packet (video),
    # at once (audio), not when the next frame begins.
    from aiortc.rtp import RtpPacket

    def rtp(seq: int, ts: int, marker: int, data: bytes) -> RtpPacket:
        packet = RtpPacket(payload_type=96, marker=marker, sequence_number=seq, timestamp=ts)
        packet._data = data
        return packet

    video = forwarding.EagerJitterBuffer(capacity=128, is_video=True)
    assert video.add(rtp(10, 3000, 0, b"a"))[1] is None
    frame = video.add(rtp(11, 3000, 1, b"b"))[1]
    assert frame.data == b"ab" and frame.timestamp == 3000
    assert video.add(rtp(13, 6000, 1, b"d"))[1] is None  # 12 is missing: nothing is released out of order
    frame = video.add(rtp(12, 6000, 0, b"c"))[1]
    assert frame.data == b"cd"
    audio = forwarding.EagerJitterBuffer(capacity=16)
    assert audio.add(rtp(1, 960, 0, b"x"))[1].data == b"x"
    assert audio.add(rtp(2, 1920, 0, b"y"))[1].data == b"y"
    sets = forwarding.ParameterSets()
    sets.complete(b"\x00\x00\x00\x01\x67sps\x00\x00\x00\x01\x68pps\x00\x00\x00\x01\x65idr")
    data, key = sets.complete(b"\x00\x00\x00\x01\x65idr2")
    assert key and forwarding.nal_types(data) == [7, 8, 5]

    # A viewer's sender takes the relay's RTP loop (ForwardTrack.bind) only if aiortc still has what it uses.
    from aiortc import RTCPeerConnection

    async def bind() -> None:
        pc = RTCPeerConnection()
        track = forwarding.ForwardTrack("video", lambda: None)
        sender = pc.addTransceiver(track, direction="sendonly").sender
        await pc.setLocalDescription(await pc.createOffer())
        track.bind(sender)
        await pc.close()

    asyncio.run(bind())
