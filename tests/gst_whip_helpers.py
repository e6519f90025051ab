"""A WHIP publisher on GStreamer's WebRTC stack (webrtcbin: libnice for ICE, OpenSSL DTLS, libsrtp, x264, Opus),
none of it aiortc's or Témoin's: only the HTTP of RFC 9725 is written here (POST the offer with its candidates and
a bearer token, 201 + Location, DELETE at the end). Run by Debian's own Python, which has GStreamer's
introspection bindings (python3-gi, gir1.2-gst-plugins-bad-1.0), not by the project's virtual environment:

    /usr/bin/python3 tests/gst_whip_helpers.py ENDPOINT TOKEN SECONDS

Prints one JSON line: {"status": 201, "location": ..., "deleted": 200} or {"status": ..., "detail": ...}.
(Debian's `simple-whip-client` would be the obvious independent client, but bookworm's aborts at start-up: it
links libsoup 2.4 while webrtcbin's libnice pulls libsoup 3 in through gupnp-igd.)
"""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstWebRTC", "1.0")
gi.require_version("GstSdp", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402 - only after gi.require_version

PIPELINE = (
    "webrtcbin name=pub bundle-policy=max-bundle "
    "videotestsrc is-live=true pattern=ball ! video/x-raw,width=320,height=240,framerate=15/1 ! videoconvert ! "
    "queue ! x264enc tune=zerolatency speed-preset=ultrafast bitrate=400 key-int-max=30 ! "
    "video/x-h264,profile=constrained-baseline ! rtph264pay config-interval=-1 pt=96 ! "
    "application/x-rtp,media=video,encoding-name=H264,payload=96,clock-rate=90000 ! pub. "
    "audiotestsrc is-live=true wave=sine ! audioconvert ! audioresample ! opusenc ! rtpopuspay pt=111 ! "
    "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! pub."
)


def request(method: str, url: str, token: str, body: bytes | None = None) -> tuple[int, dict, str]:
    headers = {"Authorization": f"Bearer {token}"}
    if body is not None:
        headers["Content-Type"] = "application/sdp"
    req = urllib.request.Request(url, data=body, method=method, headers=headers)  # noqa: S310 - a test's own URL
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - a test's own URL
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def main() -> None:
    endpoint, token, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
    Gst.init(None)
    pipeline = Gst.parse_launch(PIPELINE)
    webrtc = pipeline.get_by_name("pub")
    loop = GLib.MainLoop()
    out: dict = {}

    def finish() -> bool:
        if out.get("location"):
            out["deleted"] = request("DELETE", out["location"], token)[0]
        pipeline.set_state(Gst.State.NULL)
        loop.quit()
        return False

    def gathered(*_: object) -> None:
        if webrtc.get_property("ice-gathering-state") != GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            return
        offer = webrtc.get_property("local-description").sdp.as_text()  # with its candidates: no trickle
        threading.Thread(target=post, args=(offer,), daemon=True).start()

    def post(offer: str) -> None:
        status, headers, text = request("POST", endpoint, token, offer.encode())
        out["status"] = status
        if status != 201:
            out["detail"] = text[:500]
            GLib.idle_add(finish)
            return
        out["location"] = urllib.parse.urljoin(endpoint, headers.get("Location") or headers.get("location"))
        _, sdp = GstSdp.SDPMessage.new_from_text(text)
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        GLib.idle_add(lambda: webrtc.emit("set-remote-description", answer, Gst.Promise.new()) and False)
        GLib.timeout_add(int(seconds * 1000), finish)

    def on_offer(promise: Gst.Promise) -> None:
        reply = promise.get_reply()
        offer = reply.get_value("offer")
        if offer is None:
            print(reply.to_string(), file=sys.stderr)
            return
        webrtc.emit("set-local-description", offer, Gst.Promise.new())

    def negotiate(*_: object) -> None:
        webrtc.emit("create-offer", None, Gst.Promise.new_with_change_func(on_offer))

    def state(element: Gst.Element, spec: object) -> None:
        print(f"{spec.name}: {element.get_property(spec.name)}", file=sys.stderr, flush=True)

    webrtc.connect("notify::ice-connection-state", state)
    webrtc.connect("notify::connection-state", state)
    webrtc.connect("on-negotiation-needed", negotiate)
    webrtc.connect("notify::ice-gathering-state", gathered)
    pipeline.set_state(Gst.State.PLAYING)
    GLib.timeout_add(int((seconds + 30) * 1000), finish)  # never hang a test
    loop.run()
    print(json.dumps(out), flush=True)


if __name__ == "__main__":
    main()
