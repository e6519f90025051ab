"""Web-layer safeguards that hold for every route: request body limits enforced before the application reads a byte,
the security headers (content security policy, HSTS on TLS), and an access log without query strings.

Body limits: each route has a ceiling (`limit_for`); a request announcing more (Content-Length) is answered 413
at once, unread; a chunked body is counted as it arrives and the request is cut off at the ceiling with the same
413. The answer is RFC 9457 problem+json, like every other refusal of the API.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import orjson

from temoin import errors
from temoin.settings import Settings

ASGIApp = Callable[..., Awaitable[None]]
PROBLEM_JSON = b"application/problem+json"

# Scripts, styles, frames, fonts and connections from this origin only; no inline script or style, no eval, no
# plugins. Images: this origin and the tenant's raster basemap (any https tile server; an image cannot run code).
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob: https:; "
    "media-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# The interactive API documentation (/docs: Swagger UI, /redoc: ReDoc), served by the platform itself and started by
# FastAPI's inline bootstrap script. Those pages show only the (public) OpenAPI document, never a tenant's data:
# they get their own policy, which allows that inline script and nothing from elsewhere.
DOCS_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self'; worker-src 'self' blob:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
DOCS_PATHS = ("/docs", "/redoc", "/docs/oauth2-redirect")
HSTS = "max-age=63072000; includeSubDomains"


def security_headers(path: str, *, tls: bool) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": DOCS_POLICY if path in DOCS_PATHS else CONTENT_SECURITY_POLICY,
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",
        "Cross-Origin-Opener-Policy": "same-origin",
    }
    if tls:
        headers["Strict-Transport-Security"] = HSTS
    return headers


# --- request body limits -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class BodyRule:
    method: str
    path: re.Pattern[str]
    limit: int
    what: str


def body_rules(settings: Settings) -> list[BodyRule]:
    """The routes allowed more than the default (small JSON, forms, SDP offers): uploads, which the route streams."""
    from temoin.supervision.registry import MAX_FILE_BYTES

    return [
        BodyRule(
            "PUT",
            re.compile(r"^/api/v1/ingest/recordings/[^/]+/segments/[^/]+$"),
            settings.max_segment_bytes,
            "a recording segment",
        ),
        BodyRule(
            "POST", re.compile(r"^/api/v1/ingest/recordings$"), settings.max_manifest_bytes, "a recording manifest"
        ),
        BodyRule("POST", re.compile(r"^/api/v1/cctv/import$"), MAX_FILE_BYTES, "a CCTV registry file"),
        # Axis Body Worn objects (clips, trails...): streamed and sealed by the route, which applies each kind's limit.
        BodyRule("PUT", re.compile(r"^/v1/[^/]+/[^/]+/.+$"), settings.max_segment_bytes, "an Axis Body Worn object"),
    ]


class BodyTooLarge(errors.PayloadTooLarge):
    pass


def _too_large(limit: int, what: str) -> bytes:
    detail = (
        f"the request body is larger than {limit} bytes, the most this route accepts for {what}: "
        "send less (split the data, or upload media through the ingest API)"
    )
    return orjson.dumps(
        {
            "type": "urn:temoin:problem:too-large",
            "title": "Content Too Large",
            "status": 413,
            "detail": detail,
            "limit_bytes": limit,
        }
    )


class BodyLimit:
    """ASGI middleware: refuse bodies over the route's limit before the application reads them."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app, self.default = app, settings.max_body_bytes
        self.rules = body_rules(settings)

    def limit_for(self, method: str, path: str) -> tuple[int, str]:
        for rule in self.rules:
            if rule.method == method and rule.path.match(path):
                return rule.limit, rule.what
        return self.default, "a request of this kind"

    async def _refuse(self, send: Callable, limit: int, what: str) -> None:
        body = _too_large(limit, what)
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", PROBLEM_JSON),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, what = self.limit_for(scope["method"], scope["path"])
        declared = next((v for k, v in scope.get("headers", []) if k == b"content-length"), None)
        if declared is not None:
            try:
                announced = int(declared)
            except ValueError:
                announced = None  # the server (h11/httptools) refuses a malformed Content-Length itself
            if announced is not None and announced > limit:
                await self._refuse(send, limit, what)
                return
        received = 0
        exceeded = False
        started = False

        async def counted_receive() -> dict:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge()
            return message

        async def guarded_send(message: dict) -> None:
            nonlocal started
            if exceeded and not started:
                # Whatever the application made of the cut-off body (a 400, a 500), the answer is the 413.
                if message["type"] == "http.response.start":
                    started = True
                    await self._refuse(send, limit, what)
                return
            if exceeded:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, guarded_send)
        except Exception:
            if not exceeded:
                raise
        if exceeded and not started:
            await self._refuse(send, limit, what)


class SecurityHeaders:
    """ASGI middleware: the security headers on every HTTP answer (HSTS only when the request came over TLS)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Callable, send: Callable) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = security_headers(scope["path"], tls=scope.get("scheme") == "https")

        async def with_headers(message: dict) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (k.lower().encode(), v.encode()) for k, v in extra.items() if k.lower().encode() not in present
                ]
            await send(message)

        await self.app(scope, receive, with_headers)


# --- access log ----------------------------------------------------------------------------------------


class NoQueryString(logging.Filter):
    """uvicorn's access log without query strings: content grants and tokens travel in them (e.g. ?grant=...)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # uvicorn.protocols: (client_addr, method, full_path, http_version, status_code)
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str) and "?" in args[2]:
            record.args = (args[0], args[1], args[2].split("?", 1)[0] + "?…", args[3], args[4])
        return True


def access_log_config() -> dict:
    """uvicorn's own logging configuration, its access log passed through NoQueryString."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["no_query_string"] = {"()": NoQueryString}
    config["handlers"]["access"]["filters"] = ["no_query_string"]
    return config


# --- transport ---------------------------------------------------------------------------------------------


def is_loopback(host: str) -> bool:
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_warning(host: str, *, tls: bool) -> str | None:
    """What `temoin serve` says when it would serve plain HTTP beyond this machine."""
    if tls or is_loopback(host):
        return None
    return (
        f"WARNING: serving plain HTTP on {host}, beyond this machine: passwords, session cookies, content "
        "grants and recordings would cross the network in clear. Serve TLS (`temoin serve --certfile CERT "
        "--keyfile KEY`) or bind to 127.0.0.1 behind a reverse proxy that terminates TLS (docs/security.md)."
    )
