"""Standard WHIP and WHEP (issue 16, item 3): an encoder that is not Témoin's own publishes with the bearer token
RFC 9725 describes, a browser on another origin passes the CORS preflight, every 401 says how to authenticate,
an offer without candidates is refused (no trickle ICE), and the late DELETE of a replaced publication ends
only itself.

The publishers here are not the camera agent's code: a plain WHIP client written against the RFC (aiortc for
WebRTC, httpx for HTTP, a bearer token), and Debian's Chromium publishing its fake camera and microphone from a
page of another origin. A real server (uvicorn), a real WHEP viewer (aiortc) decoding what the relay forwards.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fractions
import http.server
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urljoin

import httpx
import numpy as np
import pytest
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import VideoStreamTrack
from av import VideoFrame

from temoin.law.access import Role
from temoin.platform import Platform
from tests.helpers import make_commune
from tests.live_helpers import (
    Events,
    Viewer,
    _cheap_password_hashes,
    entries,
    on_shift,
    server,
    settings,
    token_for,
    until,
)

pytestmark = pytest.mark.slow
SDP = {"Content-Type": "application/sdp"}


class Pattern(VideoStreamTrack):
    """A moving test pattern (aiortc's own track class): what a third-party encoder would send."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    async def recv(self) -> VideoFrame:
        pts, time_base = await self.next_timestamp()
        self.n += 1
        image = np.zeros((120, 160, 3), np.uint8)
        image[:, (self.n * 4) % 160] = 255
        frame = VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = pts, time_base or fractions.Fraction(1, 90_000)
        return frame


class WhipClient:
    """WHIP as RFC 9725 writes it: POST the offer (with its candidates) with a bearer token, 201 + Location,
    DELETE the Location to stop. Nothing of Témoin's camera agent."""

    def __init__(self, endpoint: str, token: str | None) -> None:
        self.endpoint, self.token = endpoint, token
        self.pc: RTCPeerConnection | None = None
        self.location: str | None = None

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    async def offer(self, *, candidates: bool = True) -> str:
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        self.pc.addTransceiver(Pattern(), direction="sendonly")
        await self.pc.setLocalDescription(await self.pc.createOffer())  # gathers: the SDP holds candidates
        sdp = self.pc.localDescription.sdp
        if not candidates:  # what a trickle-ICE client sends first
            sdp = "".join(
                line
                for line in sdp.splitlines(keepends=True)
                if not line.startswith(("a=candidate:", "a=end-of-candidates"))
            )
        return sdp

    async def publish(self, *, candidates: bool = True) -> httpx.Response:
        sdp = await self.offer(candidates=candidates)
        async with httpx.AsyncClient(timeout=30) as http:
            r = await http.post(self.endpoint, content=sdp.encode(), headers={**SDP, **self.headers})
        if r.status_code == 201:
            self.location = urljoin(self.endpoint, r.headers["location"])
            await self.pc.setRemoteDescription(RTCSessionDescription(sdp=r.text, type="answer"))
        else:
            await self.pc.close()
        return r

    async def delete(self, location: str | None = None) -> httpx.Response:
        async with httpx.AsyncClient(timeout=30) as http:
            return await http.delete(location or self.location, headers=self.headers)

    async def close(self) -> None:
        if self.pc is not None:
            await self.pc.close()


def issue_token(url: str, admin_token: str, device_id: str) -> dict:
    r = httpx.post(
        f"{url}/api/v1/live/publish-tokens",
        json={"device_id": device_id, "label": "OBS, car 12"},
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    assert r.status_code == 201, r.text
    return r.json()


def test_a_standard_whip_encoder_publishes_with_a_bearer_token(platform: Platform, server: str):
    commune = make_commune(platform, cameras=2)
    on_shift(platform, commune)
    operator = token_for(platform, commune.users[Role.CSU_OPERATOR])
    admin = token_for(platform, commune.users[Role.TECH_ADMIN])
    cam_a, cam_b = commune.cameras[0][0], commune.cameras[1][0]
    issued = issue_token(server, admin, cam_a)
    assert issued["token"].startswith("tmw_") and issued["whip_url"] == "/api/v1/live/whip"
    other = issue_token(server, admin, cam_b)
    # An operator may not hand out publishing rights.
    r = httpx.post(
        f"{server}/api/v1/live/publish-tokens",
        json={"device_id": cam_a},
        headers={"Authorization": f"Bearer {operator}"},
    )
    assert r.status_code == 403
    listed = httpx.get(f"{server}/api/v1/live/publish-tokens", headers={"Authorization": f"Bearer {admin}"}).json()
    assert {t["id"] for t in listed} == {issued["id"], other["id"]} and all("token" not in t for t in listed)
    endpoint = f"{server}/api/v1/live/whip"
    asyncio.run(_standard_story(server, endpoint, issued["token"], other["token"], operator, cam_a))

    # Revoked: that encoder can no longer publish; the journal says who issued and who revoked.
    r = httpx.delete(
        f"{server}/api/v1/live/publish-tokens/{issued['id']}", headers={"Authorization": f"Bearer {admin}"}
    )
    assert r.status_code == 200 and r.json()["revoked_by"] == commune.users[Role.TECH_ADMIN]
    refused = asyncio.run(_publish_once(endpoint, issued["token"]))
    assert refused.status_code == 401 and 'error="invalid_token"' in refused.headers["www-authenticate"]
    names = [e["event"] for e in entries(platform, commune.slug)]
    assert names.count("live.publish_token_issued") == 2 and "live.publish_token_revoked" in names


async def _publish_once(endpoint: str, token: str) -> httpx.Response:
    client = WhipClient(endpoint, token)
    try:
        return await client.publish()
    finally:
        await client.close()


async def _standard_story(url: str, endpoint: str, token: str, other_token: str, operator: str, device_id: str):
    async with httpx.AsyncClient(timeout=30) as http:
        # The CORS preflight of a browser publisher on another origin, then of a viewer.
        pre = await http.options(
            endpoint,
            headers={
                "Origin": "https://encoder.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert pre.status_code == 204, pre.text
        assert pre.headers["access-control-allow-origin"] == "*"
        assert "POST" in pre.headers["access-control-allow-methods"]
        assert "authorization" in pre.headers["access-control-allow-headers"].lower()
        assert pre.headers["accept-post"] == "application/sdp"
        assert "location" in pre.headers["access-control-expose-headers"].lower()
        assert "access-control-allow-credentials" not in pre.headers  # never the operators' cookies

        # No credentials, or another kind: a 401 that says what to send.
        plain = WhipClient(endpoint, None)
        r = await plain.publish()
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith('Bearer realm="temoin-whip"')
        assert r.headers["access-control-allow-origin"] == "*"  # a browser client can read why
        r = await http.get(f"{url}/api/v1/live/sessions", headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")  # the token is WHIP-only

    async with Events(url, operator) as events:
        # Trickle ICE is not taken: an offer without candidates is refused clearly, and alerts nobody.
        encoder = WhipClient(endpoint, token)
        r = await encoder.publish(candidates=False)
        assert r.status_code == 400 and "no ICE candidate" in r.json()["detail"], r.text
        assert not [k for k, _ in events.items if k == "alert"]

        # The real publication: 201, the answer and the resource; the CSU is alerted (a live session opened).
        r = await encoder.publish()
        assert r.status_code == 201, r.text
        assert r.headers["content-type"].startswith("application/sdp")
        assert r.headers["access-control-allow-origin"] == "*"
        alert = await events.wait_for("alert", device_id=device_id, timeout=10)
        sid = alert["id"]
        assert encoder.location.startswith(f"{url}/api/v1/live/whip/{sid}/")
        await events.wait_for("session", id=sid, state="streaming", timeout=10)

        viewer = Viewer(url, operator)
        r = await viewer.watch(sid)
        assert r.status_code == 201, r.text
        await viewer.wait_frames(video=10, audio=0, timeout=15)

        # Another camera's token cannot reach this session.
        intruder = WhipClient(f"{url}/api/v1/live/whip/{sid}", other_token)
        r = await intruder.publish()
        assert r.status_code == 404, r.text

        # The encoder reconnects (a new POST: same session, new resource); the old connection's DELETE comes
        # late: it ends that resource only, the session and the new publication carry on.
        first, first_pc = encoder.location, encoder.pc
        r = await encoder.publish()
        assert r.status_code == 201 and encoder.location != first and f"/{sid}/" in encoder.location
        before = len(viewer.frames["video"])
        await until(lambda: len(viewer.frames["video"]) > before + 10, 10, "pictures from the new publication")
        r = await encoder.delete(first)
        assert r.status_code == 200
        await first_pc.close()
        before = len(viewer.frames["video"])
        await until(lambda: len(viewer.frames["video"]) > before + 10, 10, "pictures after the stale DELETE")
        assert not [d for k, d in events.items if k == "session" and d.get("id") == sid and d["state"] == "ended"]

        # An offer whose answer never reaches its encoder (it goes silent at once): the newer publication carries
        # nothing, so the DELETE of the one the encoder knows ends the live session, as it means to.
        second = encoder.location
        ghost = WhipClient(endpoint, token)
        r = await ghost.publish()
        assert r.status_code == 201 and f"/{sid}/" in ghost.location
        await ghost.close()
        await asyncio.sleep(1.2)  # longer than the stall delay (0.6 s here): the ghost never sent anything
        r = await encoder.delete(second)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "*"
        await events.wait_for("session", id=sid, state="ended", timeout=10)
        await viewer.close()
        await encoder.close()


# --- Chromium publishing from a page of another origin ------------------------------------------------

PAGE = """<!doctype html><meta charset="utf-8"><title>third-party WHIP publisher</title>
<script>
window.publish = async (endpoint, token) => {
  const media = await navigator.mediaDevices.getUserMedia({video: {width: 320, height: 240}, audio: true});
  const pc = new RTCPeerConnection();
  for (const track of media.getTracks()) {
    const t = pc.addTransceiver(track, {direction: "sendonly"});
    if (track.kind === "video") {
      t.setCodecPreferences(RTCRtpSender.getCapabilities("video").codecs.filter(c => c.mimeType === "video/H264"));
    }
  }
  await pc.setLocalDescription(await pc.createOffer());
  await new Promise(done => {  // no trickle: the offer goes with its candidates
    if (pc.iceGatheringState === "complete") return done();
    pc.addEventListener("icegatheringstatechange", () => pc.iceGatheringState === "complete" && done());
  });
  const r = await fetch(endpoint, {method: "POST", body: pc.localDescription.sdp,
                                   headers: {"Content-Type": "application/sdp", "Authorization": "Bearer " + token}});
  if (r.status !== 201) return {status: r.status, text: await r.text()};
  const location = r.headers.get("Location");
  await pc.setRemoteDescription({type: "answer", sdp: await r.text()});
  window.pc = pc;
  window.resource = new URL(location, endpoint).href;
  return {status: r.status, location};
};
window.sent = async () => {
  let frames = 0;
  (await window.pc.getStats()).forEach(s => {
    if (s.type === "outbound-rtp" && s.kind === "video") frames = s.framesEncoded;
  });
  return frames;
};
window.stop = async token => (await fetch(window.resource, {method: "DELETE",
                                                           headers: {"Authorization": "Bearer " + token}})).status;
</script>"""


@contextlib.contextmanager
def page_server() -> Iterator[str]:
    """The publisher's page from an origin of its own (another port): its fetches to the platform are
    cross-origin, so the browser sends CORS preflights first."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = PAGE.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_chromium_publishes_over_whip_from_another_origin_and_a_whep_viewer_receives_it(
    platform: Platform, server: str
):
    from playwright.sync_api import sync_playwright

    from tests.conftest import CHROMIUM, CHROMIUM_ARGS

    commune = make_commune(platform, cameras=1)
    on_shift(platform, commune)
    operator = token_for(platform, commune.users[Role.CSU_OPERATOR])
    token = issue_token(server, token_for(platform, commune.users[Role.TECH_ADMIN]), commune.cameras[0][0])["token"]
    with sync_playwright() as pw, page_server() as origin:
        try:
            browser = pw.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=[*CHROMIUM_ARGS, "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"],
            )
        except Exception as exc:  # noqa: BLE001 - any failure to start says how to install Chromium
            pytest.fail(
                f"Chromium cannot start from {CHROMIUM} ({exc}): install Debian's chromium package", pytrace=False
            )
        try:
            page = browser.new_page()
            page.goto(f"{origin}/publisher.html")
            out = page.evaluate("([e, t]) => window.publish(e, t)", [f"{server}/api/v1/live/whip", token])
            assert out["status"] == 201, out
            sid = out["location"].split("/")[-2]
            deadline = time.monotonic() + 15
            while page.evaluate("window.sent()") < 10:
                assert time.monotonic() < deadline, "Chromium did not start sending"
                time.sleep(0.2)

            async def watch() -> tuple[int, int]:
                viewer = Viewer(server, operator)
                r = await viewer.watch(sid)
                assert r.status_code == 201, r.text
                await viewer.wait_frames(video=20, audio=20, timeout=20)
                picture = viewer.frames["video"][-1][1]
                await viewer.close()
                return picture.width, picture.height

            # Its own thread: Playwright's sync API keeps an event loop running in this one.
            with concurrent.futures.ThreadPoolExecutor(1) as pool:
                size = pool.submit(lambda: asyncio.run(watch())).result(60)
            assert size == (320, 240)  # Chromium's own picture, forwarded as it sent it
            assert page.evaluate("([t]) => window.stop(t)", [token]) == 200
        finally:
            browser.close()
    names = [e["event"] for e in entries(platform, commune.slug)]
    assert names.index("live.requested") < names.index("live.streaming") < names.index("live.ended"), names


# --- GStreamer's WebRTC stack publishing (webrtcbin, libnice, x264, Opus) -------------------------------------

SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, with GStreamer's introspection bindings


def test_a_gstreamer_webrtcbin_publisher_is_relayed_to_a_whep_viewer(platform: Platform, server: str):
    """A publisher on GStreamer's WebRTC stack (tests/gst_whip_helpers.py: webrtcbin, libnice, OpenSSL DTLS,
    libsrtp, x264, Opus; only the RFC 9725 HTTP is ours) publishes with a bearer token; the CSU is alerted, a WHEP
    viewer decodes its 320x240 picture and its sound, and its DELETE ends the session."""
    probe = subprocess.run(
        [SYSTEM_PYTHON, "-c", "import gi; gi.require_version('GstWebRTC', '1.0'); from gi.repository import GstWebRTC"],
        capture_output=True,
    )
    if probe.returncode != 0:
        pytest.fail(
            "GStreamer's WebRTC bindings are missing: apt-get install python3-gi gir1.2-gst-plugins-bad-1.0 "
            "gstreamer1.0-plugins-bad gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly gstreamer1.0-nice "
            "(./dev.sh test does)",
            pytrace=False,
        )
    commune = make_commune(platform, cameras=1)
    on_shift(platform, commune)
    operator = token_for(platform, commune.users[Role.CSU_OPERATOR])
    admin = token_for(platform, commune.users[Role.TECH_ADMIN])
    device_id = commune.cameras[0][0]
    token = issue_token(server, admin, device_id)["token"]
    helper = str(Path(__file__).parent / "gst_whip_helpers.py")

    async def story() -> tuple[dict, tuple[int, int], int]:
        async with Events(server, operator) as events:
            encoder = await asyncio.create_subprocess_exec(
                SYSTEM_PYTHON, helper, f"{server}/api/v1/live/whip", token, "10",
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )  # fmt: skip
            try:
                alert = await events.wait_for("alert", device_id=device_id, timeout=20)
                viewer = Viewer(server, operator)
                r = await viewer.watch(alert["id"])
                assert r.status_code == 201, r.text
                try:
                    await viewer.wait_frames(video=20, audio=20, timeout=20)
                except AssertionError as exc:
                    if encoder.returncode is None:
                        encoder.kill()
                    _, err = await encoder.communicate()
                    raise AssertionError(f"{exc}; the encoder said: {err.decode(errors='replace')[-6000:]}") from None
                picture = viewer.frames["video"][-1][1]
                await viewer.close()
                out, err = await asyncio.wait_for(encoder.communicate(), 60)
            finally:
                if encoder.returncode is None:
                    encoder.kill()
            assert encoder.returncode == 0, err.decode(errors="replace")[-2000:]
            await events.wait_for("session", id=alert["id"], state="ended", timeout=10)
            return json.loads(out.decode().strip().splitlines()[-1]), (picture.width, picture.height), 0

    result, size, _ = asyncio.run(story())
    assert result["status"] == 201 and result["deleted"] == 200, result
    assert size == (320, 240)
