"""Live transmission: the camera's live button and WHIP publication (device-signed, or a standard encoder's
bearer token), WHEP viewing, the CSU's acknowledgement and dispatch, and the events channel of the dashboards
(LIVE_VIEW, own tenant). WHIP and WHEP answer CORS preflights and carry CORS headers (browser clients)."""

from __future__ import annotations

import html
import time
from pathlib import Path

import orjson
from fastapi import APIRouter, Body, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, StreamingResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from temoin.db import utcnow
from temoin.errors import TemoinError
from temoin.evidence.manifest import GpsFix
from temoin.identity.models import Device, WebSession
from temoin.identity.tenant_settings import settings_of
from temoin.law.access import Permission
from temoin.live import nodes, publish_tokens
from temoin.live.hub import LiveHub
from temoin.live.plane import MAX_SDP_BYTES, Answer
from temoin.live.sessions import LiveRequest
from temoin.platform import Platform
from temoin.web import problems
from temoin.web.deps import Principal, current_device, get_db, get_platform, require, whip_publisher
from temoin.web.i18n import lang_of
from temoin.web.pages import PageRequire
from temoin.web.templating import page

router = APIRouter(prefix="/api/v1/live", tags=["live"])
pages = APIRouter(include_in_schema=False)
SDP = "application/sdp"
SSE_MAX_S = 120  # a dashboard reconnects (EventSource does it alone, with Last-Event-ID) and misses nothing
KEEPALIVE_S = 15
STATIC = Path(__file__).parent.parent / "static"


def get_hub(request: Request) -> LiveHub:
    return request.app.state.live


async def _offer(request: Request) -> str:
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != SDP:
        raise HTTPException(415, f"send the SDP offer as the body, with Content-Type: {SDP}")
    body = await request.body()
    if len(body) > MAX_SDP_BYTES:
        raise HTTPException(413, f"SDP offer larger than {MAX_SDP_BYTES} bytes")
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        raise HTTPException(400, "the SDP offer is not UTF-8 text") from None


def _answer(answer: Answer, location: str) -> Response:
    # RFC 9725: 201 Created, the answer as application/sdp, the session resource in Location.
    return Response(answer.sdp, 201, media_type=SDP, headers={"Location": location, "ETag": f'"{answer.resource_id}"'})


# --- WHIP and WHEP for any client: CORS, preflight ------------------------------------------------------
# A browser page on another origin (a vendor's publisher, a viewer embedded elsewhere) may publish or watch:
# every WHIP/WHEP answer carries CORS headers, and OPTIONS answers the preflight. Any origin: these routes
# authenticate with a token or a signature the script must send itself, never with an ambient cookie
# (no Access-Control-Allow-Credentials), so another site gains nothing it could not do without a browser.
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Expose-Headers": "Location, ETag, Accept-Post, WWW-Authenticate, Retry-After",
}
PREFLIGHT = {
    **CORS,
    "Access-Control-Allow-Headers": "Authorization, Content-Type, If-Match",
    "Access-Control-Max-Age": "600",
}


class MediaRoute(APIRoute):
    """A WHIP/WHEP route: its answers, refusals included, carry the CORS headers."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def with_cors(request: Request) -> Response:
            try:
                response = await handler(request)
            except HTTPException as exc:
                response = JSONResponse({"detail": exc.detail}, exc.status_code, headers=exc.headers)
            except TemoinError as exc:  # answered here, not by the app's handler, to carry the CORS headers
                response = problems.problem(exc)
            response.headers.update(CORS)
            return response

        return with_cors


def media(path: str, method: str, **kw):
    """Register a WHIP/WHEP route (CORS on every answer)."""

    def register(endpoint):
        router.add_api_route(path, endpoint, methods=[method], route_class_override=MediaRoute, **kw)
        return endpoint

    return register


def _preflight(methods: str, *, endpoint: bool) -> Response:
    headers = {**PREFLIGHT, "Allow": methods, "Access-Control-Allow-Methods": methods}
    if endpoint:
        headers["Accept-Post"] = SDP  # RFC 9725: what the endpoint takes
    return Response(status_code=204, headers=headers)


@router.options("/whip", include_in_schema=False)
@router.options("/whip/{session_id}", include_in_schema=False)
@router.options("/whep/{session_id}", include_in_schema=False)
def media_endpoint_options() -> Response:
    """CORS preflight of a WHIP or WHEP endpoint (no authentication: a preflight carries none)."""
    return _preflight("POST, OPTIONS", endpoint=True)


@router.options("/whip/{session_id}/{resource_id}", include_in_schema=False)
@router.options("/whep/{session_id}/{resource_id}", include_in_schema=False)
def media_resource_options() -> Response:
    """CORS preflight of a WHIP or WHEP session resource. No PATCH: no trickle ICE, offers carry their
    candidates (an offer without any is refused)."""
    return _preflight("DELETE, OPTIONS", endpoint=False)


NO_TRICKLE = (
    "this server takes neither trickle ICE nor ICE restarts (PATCH, RFC 9725 section 4.3): send the offer once "
    "ICE gathering is complete, with its candidates in the SDP; to restart, POST a new offer to the endpoint "
    "(the new publication replaces this one, its viewers stay attached)"
)


@media("/whip/{session_id}/{resource_id}", "PATCH", include_in_schema=False)
@media("/whep/{session_id}/{resource_id}", "PATCH", include_in_schema=False)
def media_resource_patch() -> Response:
    """RFC 9725 section 4.3: a server without trickle ICE or ICE restart answers a PATCH with 405. Said in words
    (not Starlette's bare "Method Not Allowed"), with the CORS headers a browser client needs to read it. No
    authentication: the answer is the same for anyone and reveals nothing."""
    raise HTTPException(405, NO_TRICKLE, headers={"Allow": "DELETE, OPTIONS"})


# --- the camera (device-signed) ------------------------------------------------------------------------


class LiveSessionOut(BaseModel):
    id: str
    state: str
    whip_url: str | None = None
    model_config = {"extra": "allow"}


@router.post(
    "/sessions",
    status_code=201,
    response_model=LiveSessionOut,
    summary="Live button: ask for a live session (201; 200 with the open one if already live)",
)
async def live_request(
    body: LiveRequest, response: Response, device: Device = Depends(current_device), hub: LiveHub = Depends(get_hub)
) -> dict:
    out, created = await hub.request(device.id, body)
    if not created:
        response.status_code = 200
    return {**out, "whip_url": f"/api/v1/live/whip/{out['id']}"}


@router.get("/camera/sessions/{session_id}", summary="The camera's view of its live session (long poll)")
async def camera_session(
    session_id: str,
    known_state: str | None = None,
    wait_s: float = Query(0, ge=0, le=25),
    device: Device = Depends(current_device),
    hub: LiveHub = Depends(get_hub),
) -> dict:
    return await hub.camera_view(device.id, session_id, known_state, wait_s)


@router.post("/camera/sessions/{session_id}/position", status_code=204, summary="The agent's position while live")
async def camera_position(
    session_id: str, fix: GpsFix, device: Device = Depends(current_device), hub: LiveHub = Depends(get_hub)
) -> Response:
    await hub.position(device.id, session_id, fix)
    return Response(status_code=204)


@media(
    "/whip",
    "POST",
    status_code=201,
    response_class=Response,
    summary="WHIP (RFC 9725) for standard encoders: publish the camera's live session (bearer token); opens "
    "one, and alerts the CSU, if the camera has none open",
)
async def whip_endpoint(
    request: Request, device: Device = Depends(whip_publisher), hub: LiveHub = Depends(get_hub)
) -> Response:
    offer = await _offer(request)
    session_id, answer = await hub.publish_as_camera(device.id, offer, "live published over WHIP")
    return _answer(answer, f"/api/v1/live/whip/{session_id}/{answer.resource_id}")


@media(
    "/whip/{session_id}",
    "POST",
    status_code=201,
    response_class=Response,
    summary="WHIP (RFC 9725): publish the live session's media (SDP offer in, answer out)",
)
async def whip(
    session_id: str, request: Request, device: Device = Depends(whip_publisher), hub: LiveHub = Depends(get_hub)
) -> Response:
    offer = await _offer(request)
    answer = await hub.publish(device.id, session_id, offer)
    return _answer(answer, f"/api/v1/live/whip/{session_id}/{answer.resource_id}")


@media(
    "/whip/{session_id}/{resource_id}",
    "DELETE",
    summary="End the publication, and the live session (a publication already replaced ends alone)",
)
async def whip_delete(
    session_id: str, resource_id: str, device: Device = Depends(whip_publisher), hub: LiveHub = Depends(get_hub)
) -> Response:
    await hub.unpublish(device.id, session_id, resource_id)
    return Response(status_code=200)


# --- between nodes (TEMOIN_NODE_URL): a WHIP/WHEP request authorised by another node, for the stream owned here --


@router.post("/nodes/forward", include_in_schema=False)
async def node_forward(request: Request, hub: LiveHub = Depends(get_hub)) -> Response:
    """Signed by the forwarding node with the nodes' shared secret (live.nodes): anything else is refused, 401.
    The owner's own refusal travels back in the body, by kind, for the forwarding node to answer its client."""
    body = await request.body()
    hub.nodes.verify(request.headers.get(nodes.HEADER, ""), body)
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise HTTPException(400, "a forward's body is JSON") from None
    if not isinstance(message, dict):
        raise HTTPException(400, "a forward's body is a JSON object")
    try:
        return JSONResponse({"ok": await hub.forwarded(message)})
    except TemoinError as exc:
        return JSONResponse({"error": nodes.error_view(exc)})


# --- WHIP tokens for standard encoders (ADMIN_DEVICES, own tenant) ----------------------------------------


class PublishTokenIn(BaseModel):
    device_id: str = Field(max_length=128)
    label: str | None = Field(default=None, max_length=100)


@router.post(
    "/publish-tokens",
    status_code=201,
    summary="A WHIP bearer token for one camera (shown once): a standard encoder publishes its live "
    "session with it, and can do nothing else",
)
def issue_publish_token(
    body: PublishTokenIn,
    who: Principal = require(Permission.ADMIN_DEVICES),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    row, token = publish_tokens.issue(p, db, who.user, body.device_id, body.label)
    return {**publish_tokens.view(row), "token": token, "whip_url": "/api/v1/live/whip"}


@router.get("/publish-tokens", summary="The tenant's WHIP tokens (never their secret)")
def list_publish_tokens(
    who: Principal = require(Permission.ADMIN_DEVICES), db: Session = Depends(get_db)
) -> list[dict]:
    return publish_tokens.listing(db, who.tenant.id)


@router.delete("/publish-tokens/{token_id}", summary="Revoke a WHIP token: its encoder can no longer publish")
def revoke_publish_token(
    token_id: str,
    who: Principal = require(Permission.ADMIN_DEVICES),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    return publish_tokens.view(publish_tokens.revoke(p, db, who.user, token_id))


# --- the CSU (LIVE_VIEW, own tenant) --------------------------------------------------------------------


@media(
    "/whep/{session_id}",
    "POST",
    status_code=201,
    response_class=Response,
    summary="WHEP: watch the live session (SDP offer in, answer out); journaled as a communication",
)
async def whep(
    session_id: str, request: Request, who: Principal = require(Permission.LIVE_VIEW), hub: LiveHub = Depends(get_hub)
) -> Response:
    offer = await _offer(request)
    answer = await hub.play(who.user.id, session_id, offer)
    return _answer(answer, f"/api/v1/live/whep/{session_id}/{answer.resource_id}")


@media("/whep/{session_id}/{resource_id}", "DELETE", summary="Stop watching")
async def whep_delete(
    session_id: str, resource_id: str, who: Principal = require(Permission.LIVE_VIEW), hub: LiveHub = Depends(get_hub)
) -> Response:
    await hub.stop_playing(who.user.id, session_id, resource_id)
    return Response(status_code=200)


@router.get("/sessions", summary="Open live sessions, and those of the last 24 hours")
async def list_sessions(who: Principal = require(Permission.LIVE_VIEW), hub: LiveHub = Depends(get_hub)) -> list[dict]:
    return await hub.list_sessions(who.user.id)


@router.get("/sessions/{session_id}", summary="A live session, with its link state")
async def get_session(
    session_id: str, who: Principal = require(Permission.LIVE_VIEW), hub: LiveHub = Depends(get_hub)
) -> dict:
    return await hub.get_session(who.user.id, session_id)


@router.get(
    "/sessions/{session_id}/timeline",
    summary="The incident record: every journaled step of the session (request, acknowledgement, viewers, "
    "cameras shown, PTZ moves, reinforcements, end)",
)
async def session_timeline(
    session_id: str, who: Principal = require(Permission.LIVE_VIEW), hub: LiveHub = Depends(get_hub)
) -> dict:
    return await hub.timeline(who.user.id, session_id)


@router.post("/sessions/{session_id}/ack", summary="Acknowledge the alert: the agent's camera is told")
async def acknowledge(
    session_id: str, who: Principal = require(Permission.LIVE_VIEW), hub: LiveHub = Depends(get_hub)
) -> dict:
    return await hub.acknowledge(who.user.id, session_id)


class NoteIn(BaseModel):
    note: str | None = Field(default=None, max_length=500)


@router.post("/sessions/{session_id}/reinforcements", summary="Record that reinforcements were sent")
async def reinforcements(
    session_id: str,
    body: NoteIn | None = Body(default=None),
    who: Principal = require(Permission.LIVE_VIEW),
    hub: LiveHub = Depends(get_hub),
) -> dict:
    return await hub.reinforcements(who.user.id, session_id, body.note if body else None)


@router.post("/sessions/{session_id}/end", summary="End a live session from the CSU")
async def end_session(
    session_id: str,
    body: NoteIn | None = Body(default=None),
    who: Principal = require(Permission.LIVE_VIEW),
    hub: LiveHub = Depends(get_hub),
) -> dict:
    return await hub.end(who.user.id, session_id, (body.note if body and body.note else "ended_by_csu"))


@router.post(
    "/sessions/{session_id}/close",
    summary="Close the incident: the stream ends if it had not, and the "
    "reinforcements still engaged are recalled (journaled)",
)
async def close_incident(
    session_id: str, who: Principal = require(Permission.LIVE_DISPATCH), hub: LiveHub = Depends(get_hub)
) -> dict:
    return await hub.close_incident(who.user.id, session_id)


@router.get("/events", summary="Events channel (Server-Sent Events with Accept: text/event-stream; JSON otherwise)")
async def events(
    request: Request,
    who: Principal = require(Permission.LIVE_VIEW),
    hub: LiveHub = Depends(get_hub),
    after: int | None = Query(None, ge=0),
    last_event_id: str | None = Header(None),
) -> Response:
    if last_event_id and last_event_id.isdigit():
        after = int(last_event_id)
    tenant_id = who.tenant.id
    if "text/event-stream" not in request.headers.get("accept", ""):
        return Response(
            orjson.dumps({"events": [e.as_dict() for e in await run_in_threadpool(hub.bus.recent, tenant_id, after)]}),
            media_type="application/json",
        )
    sub = hub.bus.subscribe(tenant_id, after)
    snapshot = await hub.list_sessions(who.user.id)
    session_hash = who.session.id_hash if who.session else None
    p = get_platform(request)

    def signed_in() -> bool:
        with p.session() as db:
            s = db.get(WebSession, session_hash)
            return s is not None and s.expires_at > utcnow()

    async def stream():
        deadline = time.monotonic() + SSE_MAX_S
        next_check = time.monotonic() + KEEPALIVE_S
        try:
            yield b"retry: 1000\n\n"
            yield b"event: snapshot\ndata: " + orjson.dumps({"sessions": snapshot}) + b"\n\n"
            while (left := deadline - time.monotonic()) > 0:
                # A session signed out or expired meanwhile: the stream ends, and its reconnection is refused
                # (401), so the dashboard says so instead of carrying on as if connected.
                if session_hash is not None and time.monotonic() >= next_check:
                    next_check = time.monotonic() + KEEPALIVE_S
                    if not await run_in_threadpool(signed_in):
                        return
                event = await sub.next(min(KEEPALIVE_S, left))
                if event is None:
                    if sub.closed:
                        return
                    yield b": keep-alive\n\n"
                    continue
                yield event.sse()
        finally:
            sub.close()

    return StreamingResponse(
        stream(), media_type="text/event-stream", headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
    )


# --- the pages ----------------------------------------------------------------------------------------


def _page(name: str, who: Principal, **values: str) -> HTMLResponse:
    text = (STATIC / name).read_text("utf-8")
    values |= {"csrf_token": who.session.csrf_token if who.session else "", "viewer": who.user.display_name}
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value, quote=True))
    return HTMLResponse(text, headers={"Cache-Control": "no-store"})


@pages.get("/live")
async def dashboard_page(request: Request, who: Principal = Depends(PageRequire(Permission.LIVE_VIEW))) -> HTMLResponse:
    """The CSU dashboard: map, alerts, video wall, PTZ, reinforcements, incident record."""
    # JSON inside a <script> element: "</" must not close it.
    settings = orjson.dumps(settings_of(who.tenant).model_dump()).decode().replace("</", "<\\/")
    response = page(
        request, "csu.html", who=who, csrf_token=who.session.csrf_token if who.session else "", settings_json=settings
    )
    response.headers["Cache-Control"] = "no-store"
    return response


@pages.get("/live/{session_id}")
async def viewer_page(
    session_id: str,
    request: Request,
    who: Principal = Depends(PageRequire(Permission.LIVE_VIEW)),
    hub: LiveHub = Depends(get_hub),
) -> HTMLResponse:
    await hub.get_session(who.user.id, session_id)
    return _page("live-viewer.html", who, session_id=session_id, lang=lang_of(request))
