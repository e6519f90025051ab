"""The camera's inputs: the record button, the live button, and trigger inputs over local HTTP.

- The record button starts a recording (trigger: incident) or stops the current one.
- The live button must be pressed twice within 0.5 s (a single press in a pocket must not call
  the CSU): that is a live request, which starts recording at once (trigger: live_request) and
  opens a live transmission to the CSU (`camera.live_publisher.LiveLink`).
- Trigger inputs (a Taser-type weapon's holster or arming switch, R511-28) arrive on a small HTTP
  server bound to 127.0.0.1 only, so that any local process wired to the hardware can report
  them: `POST /trigger/taser {"armed": true}` starts recording from that moment.

The server never touches the agent itself: each request becomes a command that the capture
loop runs between two frames (`InputQueue.run_pending`), so that the agent stays single-threaded.
Nothing served here shows or returns any content.

    POST /trigger/<input>   {"armed": true|false}    an input changed (also accepts "active")
    POST /button/record                              the record button
    POST /button/live                                one press of the live button
    POST /dock              {"docked": true|false}   put on / taken off the dock
    GET  /status                                     state, wearer, pending offloads (no content)
"""

from __future__ import annotations

import functools
import json
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, TimeoutError as FutureTimeout
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from temoin import errors

LIVE_DOUBLE_PRESS_S = 0.5
LOOPBACK = "127.0.0.1"
MAX_BODY = 4096
ANSWER_TIMEOUT_S = 10.0


class LiveButton:
    """Two presses within `window_s` make a live request; a lone press does nothing."""

    def __init__(self, window_s: float = LIVE_DOUBLE_PRESS_S) -> None:
        self.window_s = window_s
        self._first: datetime | None = None

    def press(self, at: datetime) -> bool:
        if self._first is not None and 0 <= (at - self._first).total_seconds() <= self.window_s:
            self._first = None
            return True
        self._first = at
        return False


class InputError(errors.InvalidInput, ValueError):
    """A request the camera cannot act on (malformed body): answered 422."""


class UnknownInput(errors.NotFound, InputError):
    """No such input on this camera: answered 404."""


Command = Callable[[], Any]


class InputQueue:
    """Commands from other threads, run by the capture loop, each answered through a future."""

    def __init__(self) -> None:
        self._queue: queue.SimpleQueue[tuple[Command, Future]] = queue.SimpleQueue()

    def submit(self, command: Command) -> Future:
        future: Future = Future()
        self._queue.put((command, future))
        return future

    def run_pending(self) -> int:
        done = 0
        while True:
            try:
                command, future = self._queue.get_nowait()
            except queue.Empty:
                return done
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(command())
                except BaseException as exc:  # noqa: BLE001 - handed to the requester
                    future.set_exception(exc)
            done += 1


Routes = dict[tuple[str, str], Callable[[str, dict], Any]]


class InputServer:
    """A tiny HTTP server on 127.0.0.1 whose routes run as commands in the capture loop.

    `routes` maps (method, path prefix) to a function of (the rest of the path, the JSON body).
    """

    def __init__(self, inputs: InputQueue, routes: Routes, port: int = 0) -> None:
        self.inputs = inputs
        self.routes = routes
        handler = type("Handler", (_Handler,), {"owner": self})
        try:
            self.httpd = ThreadingHTTPServer((LOOPBACK, port), handler)
        except OSError as exc:
            raise OSError(f"cannot listen for inputs on {LOOPBACK}:{port}: {exc.strerror or exc}") from exc
        self.httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> InputServer:
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="camera-inputs", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> InputServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def handle(self, method: str, path: str, body: dict) -> tuple[int, Any]:
        for (m, prefix), route in self.routes.items():
            if m == method and (path == prefix or (prefix.endswith("/") and path.startswith(prefix))):
                rest = path[len(prefix) :]
                future = self.inputs.submit(functools.partial(route, rest, body))
                try:
                    return HTTPStatus.OK, future.result(timeout=ANSWER_TIMEOUT_S)
                except FutureTimeout:
                    return HTTPStatus.SERVICE_UNAVAILABLE, {"detail": "the camera did not answer in time"}
                except InputError as exc:
                    if isinstance(exc, errors.NotFound):
                        return HTTPStatus.NOT_FOUND, {"detail": str(exc)}
                    return HTTPStatus.UNPROCESSABLE_ENTITY, {"detail": str(exc)}
                except ValueError as exc:
                    return HTTPStatus.UNPROCESSABLE_ENTITY, {"detail": str(exc)}
                except Exception as exc:  # noqa: BLE001 - reported to the caller, the camera goes on
                    return HTTPStatus.INTERNAL_SERVER_ERROR, {"detail": f"{type(exc).__name__}: {exc}"}
        known = sorted(f"{m} {p}{'<name>' if p.endswith('/') else ''}" for m, p in self.routes)
        return HTTPStatus.NOT_FOUND, {"detail": f"no such input: {method} {path}; known: {', '.join(known)}"}


class _Handler(BaseHTTPRequestHandler):
    owner: InputServer
    server_version = "temoin-camera-inputs"

    def log_message(self, format: str, *args: object) -> None:  # quiet: the loop reports
        pass

    def do_GET(self) -> None:
        self._answer(*self.owner.handle("GET", self.path.split("?", 1)[0], {}))

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._answer(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"detail": f"body over {MAX_BODY} bytes"})
            return
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError:
            self._answer(HTTPStatus.BAD_REQUEST, {"detail": 'the body must be JSON, e.g. {"armed": true}'})
            return
        if not isinstance(body, dict):
            self._answer(HTTPStatus.BAD_REQUEST, {"detail": "the body must be a JSON object"})
            return
        self._answer(*self.owner.handle("POST", self.path.split("?", 1)[0], body))

    def _answer(self, status: int, payload: Any) -> None:
        data = json.dumps(payload, default=str).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def flag(body: dict, *names: str) -> bool:
    """The boolean a body carries under one of `names` ({"armed": true}); an error if none."""
    for name in names:
        if name in body:
            value = body[name]
            if not isinstance(value, bool):
                raise InputError(f"{name!r} must be true or false")
            return value
    raise InputError(f'the body must say {" or ".join(repr(n) for n in names)}, e.g. {{"{names[0]}": true}}')
