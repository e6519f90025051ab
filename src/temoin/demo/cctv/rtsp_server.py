"""A small RTSP 1.0 server (RFC 2326) for simulated CCTV cameras: many paths on one port, H.264 over RTP.

Each path has a renderer (`demo.cctv.scene`); it is encoded with PyAV/libx264 (constrained baseline,
zerolatency, a keyframe every second) only while at least one client plays it, and packetised per RFC 6184
(single NAL unit packets, FU-A fragments). Media travels interleaved in the RTSP connection (RTP over TCP,
RFC 2326 §10.12): what a CCTV camera behind a NAT or a firewall does, and all the platform asks for; a
client asking for UDP only is told 461 (FFmpeg then retries over TCP by itself).

    server = CctvRtspServer(host="127.0.0.1", port=0)
    server.add("place-mairie", FixedScene("Place de la Mairie"))
    server.start()
    server.url("place-mairie")  # rtsp://127.0.0.1:PORT/place-mairie
    server.stop()

The server runs an asyncio loop in a background thread; each path being played has an encoder thread.
A client that vanishes (or cannot keep up) is dropped alone: the others carry on.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import random
import secrets
import struct
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from fractions import Fraction
from urllib.parse import unquote, urlsplit

import av

from temoin.demo.cctv.scene import Renderer
from temoin.live.rtsp_pull import split_annexb

log = logging.getLogger("temoin.demo.cctv")

CLOCK = 90_000  # the RTP clock of H.264 (RFC 6184)
PAYLOAD_TYPE = 96
MAX_PAYLOAD = 1400  # RTP payload size: fits an Ethernet MTU once tunnelled in TCP or sent over UDP
MAX_BACKLOG = 1 << 20  # bytes queued to a client before it is deemed too slow (frames dropped until a keyframe)
SESSION_TIMEOUT_S = 60
TRACK = "track1"
SERVER_NAME = "Temoin CCTV simulator"
NAL_FU_A = 28
NAL_AUD = 9


@dataclass(frozen=True)
class EncoderSettings:
    bitrate: int = 600_000  # bit/s: a modest CCTV sub-stream
    preset: str = "ultrafast"  # about twelve of them run on two cores in the demo

    def open(self, width: int, height: int, fps: int) -> av.VideoCodecContext:
        ctx = av.CodecContext.create("libx264", "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = Fraction(1, CLOCK)
        ctx.framerate = Fraction(fps, 1)
        ctx.bit_rate = self.bitrate
        ctx.gop_size = fps
        kbit = self.bitrate // 1000
        ctx.options = {
            "preset": self.preset,
            "tune": "zerolatency",
            "profile": "baseline",
            "forced-idr": "1",
            # A keyframe every second exactly; SPS/PPS both out of band (for the SDP) and before every IDR.
            "x264-params": f"keyint={fps}:min-keyint={fps}:scenecut=0:repeat-headers=1:"
            f"vbv-maxrate={kbit * 3 // 2}:vbv-bufsize={kbit}",
        }
        ctx.flags |= av.codec.context.Flags.global_header
        ctx.open()
        return ctx


def rtp_payloads(units: Iterable[bytes], max_payload: int = MAX_PAYLOAD) -> list[bytes]:
    """RFC 6184 payloads for one access unit: a NAL unit that fits goes alone (single NAL unit packet),
    a larger one is cut into FU-A fragments."""
    out: list[bytes] = []
    for nal in units:
        if len(nal) <= max_payload:
            out.append(nal)
            continue
        indicator = (nal[0] & 0xE0) | NAL_FU_A
        kind = nal[0] & 0x1F
        body, first = nal[1:], True
        step = max_payload - 2
        for offset in range(0, len(body), step):
            last = offset + step >= len(body)
            header = (0x80 if first else 0) | (0x40 if last else 0) | kind
            out.append(bytes((indicator, header)) + body[offset : offset + step])
            first = False
    return out


def sdp_for(path: str, host: str, sps: bytes, pps: bytes, fps: int) -> str:
    sprop = f"{base64.b64encode(sps).decode()},{base64.b64encode(pps).decode()}"
    profile = sps[1:4].hex().upper()
    return "\r\n".join(
        [
            "v=0",
            f"o=- {random.getrandbits(32)} 1 IN IP4 {host}",
            f"s={path}",
            "c=IN IP4 0.0.0.0",
            "t=0 0",
            "a=control:*",
            "a=range:npt=now-",
            f"m=video 0 RTP/AVP {PAYLOAD_TYPE}",
            f"a=rtpmap:{PAYLOAD_TYPE} H264/{CLOCK}",
            f"a=fmtp:{PAYLOAD_TYPE} packetization-mode=1;profile-level-id={profile};sprop-parameter-sets={sprop}",
            f"a=framerate:{fps}",
            f"a=control:{TRACK}",
            "",
        ]
    )


@dataclass(eq=False)
class _Session:
    """One client's RTSP session: where its RTP goes and its RTP numbering."""

    id: str
    conn: _Connection
    path: _Path | None = None
    channel: int = 0  # the interleaved channel of RTP (RTCP is channel + 1)
    ssrc: int = field(default_factory=lambda: random.getrandbits(32))
    seq: int = field(default_factory=lambda: random.getrandbits(16))
    ts_base: int = field(default_factory=lambda: random.getrandbits(32))
    playing: bool = False
    waiting_key: bool = True  # a client starts (and restarts after falling behind) at a keyframe

    def send(self, payloads: list[bytes], pts: int, keyframe: bool) -> None:
        if self.waiting_key:
            if not keyframe:
                return
            self.waiting_key = False
        transport = self.conn.writer.transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size() > MAX_BACKLOG:  # too slow: drop, and resume at a keyframe
            self.waiting_key = True
            return
        timestamp = (self.ts_base + pts) & 0xFFFFFFFF
        chunks = []
        for n, payload in enumerate(payloads):
            marker = 0x80 if n == len(payloads) - 1 else 0  # the last packet of the access unit
            header = struct.pack("!BBHII", 0x80, marker | PAYLOAD_TYPE, self.seq, timestamp, self.ssrc)
            self.seq = (self.seq + 1) & 0xFFFF
            chunks.append(struct.pack("!cBH", b"$", self.channel, len(header) + len(payload)) + header + payload)
        self.conn.writer.write(b"".join(chunks))


class _Path:
    """One simulated camera: its renderer, the sessions playing it, and its encoder while they do."""

    def __init__(self, name: str, renderer: Renderer, encoder: EncoderSettings) -> None:
        self.name, self.renderer, self.encoder = name, renderer, encoder
        self.players: set[_Session] = set()
        self._params: tuple[bytes, bytes] | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._key_wanted = threading.Event()
        self._epoch = time.monotonic()
        self.frames_encoded = 0
        self.encoder_runs = 0

    def parameter_sets(self) -> tuple[bytes, bytes]:
        """(SPS, PPS), as the encoder writes them: an encoder opened with the same settings tells."""
        if self._params is None:
            ctx = self.encoder.open(self.renderer.width, self.renderer.height, self.renderer.fps)
            units = split_annexb(bytes(ctx.extradata or b""))
            sps = next((u for u in units if u[0] & 0x1F == 7), None)
            pps = next((u for u in units if u[0] & 0x1F == 8), None)
            if sps is None or pps is None:
                raise RuntimeError("libx264 gave no SPS/PPS in its global header")
            self._params = (sps, pps)
        return self._params

    def now_pts(self) -> int:
        return int((time.monotonic() - self._epoch) * CLOCK)

    @property
    def encoding(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def play(self, session: _Session, loop: asyncio.AbstractEventLoop) -> None:
        session.waiting_key = True
        self.players.add(session)
        self._key_wanted.set()  # the newcomer gets a picture now, not at the next periodic keyframe
        if self._thread is None or not self._thread.is_alive() or self._stop.is_set():
            self._stop = threading.Event()  # a thread told to stop finishes its frame and goes
            self._thread = threading.Thread(
                target=self._encode, args=(loop, self._stop), name=f"cctv-encode-{self.name}", daemon=True
            )
            self.encoder_runs += 1
            self._thread.start()

    def leave(self, session: _Session) -> None:
        self.players.discard(session)
        if not self.players:
            self._stop.set()  # nobody watches: stop encoding

    def halt(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)

    def _broadcast(self, data: bytes, pts: int, keyframe: bool) -> None:
        payloads = rtp_payloads(u for u in split_annexb(data) if u[0] & 0x1F != NAL_AUD)
        for session in list(self.players):
            try:
                session.send(payloads, pts, keyframe)
            except Exception:  # one broken client must not cut the others
                log.exception("cctv rtsp: dropping a client of %s", self.name)
                self.players.discard(session)

    def _encode(self, loop: asyncio.AbstractEventLoop, stop: threading.Event) -> None:
        r = self.renderer
        try:
            ctx = self.encoder.open(r.width, r.height, r.fps)
        except Exception:
            log.exception("cctv rtsp: cannot open the H.264 encoder for %s", self.name)
            return
        interval = 1.0 / r.fps
        next_at = time.monotonic()
        last_pts = -1
        while not stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            now = time.monotonic()
            next_at = max(next_at + interval, now - interval)  # a late frame is not caught up by a burst
            try:
                image = av.VideoFrame.from_ndarray(r.render(datetime.now(UTC)), format="rgb24")
                pts = max(int((now - self._epoch) * CLOCK), last_pts + 1)
                image.pts, last_pts = pts, pts
                if self._key_wanted.is_set():
                    self._key_wanted.clear()
                    image.pict_type = av.video.frame.PictureType.I
                packets = ctx.encode(image)
            except Exception:  # a renderer bug: skip the frame, keep the camera up
                log.exception("cctv rtsp: rendering or encoding a frame of %s", self.name)
                continue
            self.frames_encoded += 1
            for packet in packets:
                assert packet.pts is not None, "every frame sent to the encoder has its pts, and so its packets"
                try:
                    loop.call_soon_threadsafe(self._broadcast, bytes(packet), packet.pts, packet.is_keyframe)
                except RuntimeError:  # the loop is closed: the server is stopping
                    return


_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    454: "Session Not Found",
    455: "Method Not Valid in This State",
    459: "Aggregate Operation Not Allowed",
    461: "Unsupported Transport",
    500: "Internal Server Error",
    501: "Not Implemented",
}


class _Connection:
    def __init__(self, server: CctvRtspServer, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server, self.reader, self.writer = server, reader, writer
        self.sessions: dict[str, _Session] = {}

    async def serve(self) -> None:
        try:
            while True:
                first = await self.reader.readexactly(1)
                if first == b"$":  # an interleaved packet from the client (its RTCP receiver reports)
                    _, length = struct.unpack("!BH", await self.reader.readexactly(3))
                    await self.reader.readexactly(length)
                    continue
                head = first + await self.reader.readuntil(b"\r\n\r\n")
                lines = head.decode("utf-8", "replace").split("\r\n")
                headers: dict[str, str] = {}
                for line in lines[1:]:
                    if ":" in line:
                        key, value = line.split(":", 1)
                        headers[key.strip().lower()] = value.strip()
                if length := int(headers.get("content-length", "0") or 0):
                    await self.reader.readexactly(length)
                self._handle(lines[0], headers)  # replies are small: no drain, keep-alives stay answered
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass  # the client left, or spoke something else than RTSP
        finally:
            for session in self.sessions.values():
                if session.path is not None:
                    session.path.leave(session)
            self.sessions.clear()
            self.writer.close()

    def _reply(self, code: int, cseq: str, headers: dict[str, str] | None = None, body: str = "") -> None:
        out = [f"RTSP/1.0 {code} {_REASONS.get(code, 'Error')}", f"CSeq: {cseq}", f"Server: {SERVER_NAME}"]
        out += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            out.append(f"Content-Length: {len(body.encode())}")
        self.writer.write(("\r\n".join(out) + "\r\n\r\n" + body).encode())

    def _handle(self, request_line: str, headers: dict[str, str]) -> None:
        cseq = headers.get("cseq", "0")
        parts = request_line.split(" ")
        if len(parts) != 3 or not parts[2].startswith("RTSP/1."):
            self._reply(400, cseq)
            return
        method, url = parts[0].upper(), parts[1]
        try:
            handler = getattr(self, f"_{method.lower()}", None)
            if handler is None:
                self._reply(501, cseq)
            else:
                handler(url, cseq, headers)
        except Exception:
            log.exception("cctv rtsp: %s %s", method, url)
            self._reply(500, cseq)

    def _resolve(self, url: str) -> tuple[_Path | None, str | None]:
        name = unquote(urlsplit(url).path).strip("/")
        if name in self.server.paths:
            return self.server.paths[name], None
        base, _, control = name.rpartition("/")
        return self.server.paths.get(base), control or None

    def _session(self, headers: dict[str, str]) -> _Session | None:
        return self.sessions.get(headers.get("session", "").split(";")[0].strip())

    def _options(self, url: str, cseq: str, headers: dict[str, str]) -> None:
        self._reply(
            200, cseq, {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, PAUSE, TEARDOWN, GET_PARAMETER, SET_PARAMETER"}
        )

    def _describe(self, url: str, cseq: str, headers: dict[str, str]) -> None:
        path, control = self._resolve(url)
        if path is None or control is not None:
            self._reply(404, cseq)
            return
        sps, pps = path.parameter_sets()
        base = url.rstrip("/") + "/"  # as the client named us (host names, NAT): its SETUP URLs follow
        self._reply(
            200,
            cseq,
            {"Content-Base": base, "Content-Type": "application/sdp"},
            sdp_for(path.name, self.server.host, sps, pps, path.renderer.fps),
        )

    def _setup(self, url: str, cseq: str, headers: dict[str, str]) -> None:
        path, control = self._resolve(url)
        if path is None or control not in (TRACK, None):
            self._reply(404, cseq)
            return
        offers = [t.strip() for t in headers.get("transport", "").split(",")]
        chosen = next((t for t in offers if t.upper().startswith("RTP/AVP/TCP")), None)
        if chosen is None:
            self._reply(461, cseq)  # UDP is not served: the client retries over TCP
            return
        channel = 0
        for param in chosen.split(";"):
            if param.strip().startswith("interleaved="):
                channel = int(param.split("=", 1)[1].split("-")[0])
        session = self._session(headers)
        if session is None:
            if headers.get("session"):
                self._reply(454, cseq)
                return
            session = _Session(secrets.token_hex(8), self)
            self.sessions[session.id] = session
        if session.path is not None and session.path is not path:
            self._reply(459, cseq)
            return
        session.path, session.channel = path, channel
        self._reply(
            200,
            cseq,
            {
                "Transport": f"RTP/AVP/TCP;unicast;interleaved={channel}-{channel + 1};ssrc={session.ssrc:08X}",
                "Session": f"{session.id};timeout={SESSION_TIMEOUT_S}",
            },
        )

    def _play(self, url: str, cseq: str, headers: dict[str, str]) -> None:
        session = self._session(headers)
        if session is None or session.path is None:
            self._reply(454, cseq)
            return
        path = session.path
        rtptime = (session.ts_base + path.now_pts()) & 0xFFFFFFFF
        track = url.rstrip("/") if url.rstrip("/").endswith("/" + TRACK) else f"{url.rstrip('/')}/{TRACK}"
        self._reply(
            200,
            cseq,
            {
                "Session": session.id,
                "Range": "npt=now-",
                "RTP-Info": f"url={track};seq={session.seq};rtptime={rtptime}",
            },
        )
        if not session.playing:  # the reply goes out before the first RTP packet
            session.playing = True
            path.play(session, asyncio.get_running_loop())

    def _pause(self, url: str, cseq: str, headers: dict[str, str]) -> None:
        session = self._session(headers)
        if session is None:
            self._reply(454, cseq)
            return
        if session.playing and session.path is not None:
            session.playing = False
            session.path.leave(session)
        self._reply(200, cseq, {"Session": session.id})

    def _teardown(self, url: str, cseq: str, headers: dict[str, str]) -> None:
        session = self._session(headers)
        if session is None:
            self._reply(454, cseq)
            return
        if session.path is not None:
            session.path.leave(session)
        del self.sessions[session.id]
        self._reply(200, cseq, {"Session": session.id})

    def _get_parameter(self, url: str, cseq: str, headers: dict[str, str]) -> None:
        session = self._session(headers)  # a keep-alive
        self._reply(200, cseq, {"Session": session.id} if session else None)

    _set_parameter = _get_parameter


class CctvRtspServer:
    """Simulated CCTV cameras served over RTSP; see the module's documentation."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, encoder: EncoderSettings | None = None) -> None:
        self.host, self.port = host, port
        self.encoder = encoder or EncoderSettings()
        self.paths: dict[str, _Path] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.Server | None = None
        self._connections: dict[_Connection, asyncio.Task | None] = {}
        self._finished: asyncio.Event | None = None

    def add(self, path: str, renderer: Renderer) -> None:
        name = path.strip("/")
        if not name or any(c in name for c in " ?#\r\n") or name.endswith("/" + TRACK):
            raise ValueError(f"unusable RTSP path {path!r}")
        self.paths[name] = _Path(name, renderer, self.encoder)

    def url(self, path: str) -> str:
        if self.port == 0:
            raise RuntimeError("start the server first: its port is not known yet")
        return f"rtsp://{self.host}:{self.port}/{path.strip('/')}"

    def start(self) -> None:
        """Listen (on the port given, or the port of a previous start, or a free one) and serve in the
        background. Returns once it accepts connections."""
        if self._thread is not None:
            raise RuntimeError("the RTSP server is already running")
        started = threading.Event()
        failure: list[BaseException] = []

        async def serve() -> None:
            self._finished = asyncio.Event()
            try:
                self._server = await asyncio.start_server(self._accept, self.host, self.port, reuse_address=True)
            except BaseException as exc:  # noqa: BLE001 - reported by start()
                failure.append(exc)
                started.set()
                return
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()
            await self._finished.wait()  # set by stop()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                loop.run_until_complete(serve())
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name="cctv-rtsp", daemon=True)
        self._thread.start()
        if not started.wait(10) or failure:
            self._thread.join(1)
            self._thread = None
            raise RuntimeError(
                f"the RTSP server could not listen on {self.host}:{self.port}: {failure[0] if failure else 'timed out'}"
            )

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Connection(self, reader, writer)
        self._connections[conn] = asyncio.current_task()
        try:
            await conn.serve()
        finally:
            self._connections.pop(conn, None)

    def stop(self) -> None:
        """Close every connection, stop every encoder, and stop listening. `start()` may be called again:
        it listens on the same port (a camera coming back)."""
        if self._thread is None or self._loop is None:
            return

        async def shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for path in self.paths.values():
                path.players.clear()
                path._stop.set()
            for conn in list(self._connections):
                conn.writer.close()
            tasks = [t for t in self._connections.values() if t is not None]
            if tasks:
                await asyncio.wait(tasks, timeout=5)
            assert self._finished is not None, "made by serve() before start() returned"
            self._finished.set()

        try:
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        except RuntimeError:
            pass  # the loop already ended
        for path in self.paths.values():
            path.halt()
        self._thread.join(10)
        self._thread, self._loop, self._server = None, None, None
        self._connections.clear()

    # --- what the tests and the demo look at ---------------------------------------------------------

    def players(self, path: str) -> int:
        """How many clients play `path` now."""
        return len(self.paths[path.strip("/")].players)

    def encoding(self, path: str) -> bool:
        return self.paths[path.strip("/")].encoding

    def frames_encoded(self, path: str) -> int:
        return self.paths[path.strip("/")].frames_encoded

    def __enter__(self) -> CctvRtspServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
