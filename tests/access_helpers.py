"""Shared by the access-control tests: every route's guard, a scene with what each route needs, and one call
as each role."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient

from temoin.law.access import Permission, Role
from temoin.web.deps import Guard, Require
from tests.helpers import Commune

# Routes FastAPI itself adds, and the static files: not ours to guard.
FRAMEWORK_PATHS = {
    "/docs",
    "/redoc",
    "/openapi.json",
    "/docs/oauth2-redirect",
    "/static",
    "/static/leaflet",
    "/static/api-docs",
}  # Swagger UI and ReDoc assets, served for /docs offline


# Every route without a `Require` guard, and why. A new unguarded route fails the matrix test until
# it is added here, with its reason.
PUBLIC = "public"  # anyone, signed in or not


DEVICE = "device"  # a request signed by an enrolled camera (current_device)


PUBLISHER = "publisher"  # a camera's signed request, or its WHIP bearer token (whip_publisher)


SESSION = "session"  # any signed-in user, whatever the role (current_principal)


NODE = "node"  # another Témoin node, signed with the nodes' shared secret (temoin.live.nodes)


AXIS = "axis"  # an Axis Body Worn token (temoin.axis.connection.check_token): write-only, never a user's content


UNGUARDED: dict[tuple[str, str], str] = {
    ("POST", "/api/v1/session"): PUBLIC,  # sign-in, first factor
    ("POST", "/api/v1/session/totp"): PUBLIC,  # sign-in, second factor
    ("POST", "/api/v1/devices/enrol"): PUBLIC,  # a camera with a one-time code
    ("GET", "/api/v1/platform"): PUBLIC,  # platform key and clock, for cameras
    ("GET", "/.well-known/temoin/keys.json"): PUBLIC,  # the platform keys, current and retired, for recipients
    ("GET", "/.well-known/temoin/keys.pem"): PUBLIC,  # the same, as PEM
    ("GET", "/"): PUBLIC,  # redirects to the login page or the user's home
    ("GET", "/i18n/{lang}.json"): PUBLIC,  # the interface texts for the scripts (the sign-in page needs them too)
    ("GET", "/login"): PUBLIC,
    ("POST", "/login"): PUBLIC,
    ("GET", "/login/totp"): PUBLIC,
    ("POST", "/login/totp"): PUBLIC,
    ("GET", "/lang/{code}"): PUBLIC,
    ("POST", "/api/v1/ingest/recordings"): DEVICE,
    ("GET", "/api/v1/ingest/recordings/{recording_id}"): DEVICE,
    ("HEAD", "/api/v1/ingest/recordings/{recording_id}/segments/{index}"): DEVICE,
    ("PUT", "/api/v1/ingest/recordings/{recording_id}/segments/{index}"): DEVICE,
    ("POST", "/api/v1/ingest/recordings/{recording_id}/complete"): DEVICE,
    ("GET", "/api/v1/camera/config"): DEVICE,
    ("POST", "/api/v1/live/sessions"): DEVICE,  # the camera's live button
    ("GET", "/api/v1/live/camera/sessions/{session_id}"): DEVICE,
    ("POST", "/api/v1/live/camera/sessions/{session_id}/position"): DEVICE,
    ("POST", "/api/v1/dispatch/camera/position"): DEVICE,  # the agent on the CSU's map
    ("GET", "/api/v1/dispatch/camera/orders"): DEVICE,  # reinforcement orders (long poll)
    ("POST", "/api/v1/dispatch/camera/orders/{order_id}/ack"): DEVICE,
    ("POST", "/api/v1/live/whip"): PUBLISHER,  # a standard encoder (RFC 9725)
    ("POST", "/api/v1/live/whip/{session_id}"): PUBLISHER,
    ("DELETE", "/api/v1/live/whip/{session_id}/{resource_id}"): PUBLISHER,
    ("OPTIONS", "/api/v1/live/whip"): PUBLIC,  # CORS preflights: they carry no credentials
    ("OPTIONS", "/api/v1/live/whip/{session_id}"): PUBLIC,
    ("OPTIONS", "/api/v1/live/whip/{session_id}/{resource_id}"): PUBLIC,
    ("OPTIONS", "/api/v1/live/whep/{session_id}"): PUBLIC,
    ("OPTIONS", "/api/v1/live/whep/{session_id}/{resource_id}"): PUBLIC,
    ("PATCH", "/api/v1/live/whip/{session_id}/{resource_id}"): PUBLIC,  # always 405: no trickle ICE
    ("PATCH", "/api/v1/live/whep/{session_id}/{resource_id}"): PUBLIC,
    ("POST", "/api/v1/live/nodes/forward"): NODE,  # a WHIP/WHEP request another node authorised
    ("DELETE", "/api/v1/session"): SESSION,  # sign out
    ("POST", "/api/v1/tokens"): SESSION,  # an API token for oneself
    ("GET", "/api/v1/tokens"): SESSION,  # one's own tokens
    ("DELETE", "/api/v1/tokens/{token_id}"): SESSION,  # revoke one's own token
    ("POST", "/api/v1/account/password"): SESSION,  # change one's own password
    ("GET", "/account"): SESSION,  # the account page: password, tokens
    ("POST", "/account/password"): SESSION,
    ("POST", "/account/tokens"): SESSION,
    ("POST", "/account/tokens/{token_id}/revoke"): SESSION,
    ("POST", "/logout"): SESSION,
    ("GET", "/api/v1/map/basemap"): SESSION,  # the commune's outline and streets: no content
    ("GET", "/api/v1/map/place"): SESSION,  # the nearest street to a point: the same streets
    ("GET", "/api/v1/map/streets"): SESSION,  # street names and a point on each: the same streets
    # The Axis Body Worn system: Swift sign-in with its connection file's credential, then its token (temoin.axis).
    ("GET", "/auth/v1.0"): PUBLIC,
    ("GET", "/auth/v1.0/"): PUBLIC,
    ("GET", "/v1/{account}"): AXIS,
    ("HEAD", "/v1/{account}"): AXIS,
    ("PUT", "/v1/{account}"): AXIS,
    ("POST", "/v1/{account}"): AXIS,
    ("DELETE", "/v1/{account}"): AXIS,
    ("COPY", "/v1/{account}"): AXIS,
    ("GET", "/v1/{account}/"): AXIS,
    ("HEAD", "/v1/{account}/"): AXIS,
    ("PUT", "/v1/{account}/"): AXIS,
    ("POST", "/v1/{account}/"): AXIS,
    ("DELETE", "/v1/{account}/"): AXIS,
    ("COPY", "/v1/{account}/"): AXIS,
    ("GET", "/v1/{account}/{container}"): AXIS,
    ("HEAD", "/v1/{account}/{container}"): AXIS,
    ("PUT", "/v1/{account}/{container}"): AXIS,
    ("POST", "/v1/{account}/{container}"): AXIS,
    ("DELETE", "/v1/{account}/{container}"): AXIS,
    ("COPY", "/v1/{account}/{container}"): AXIS,
    ("GET", "/v1/{account}/{container}/{name:path}"): AXIS,
    ("HEAD", "/v1/{account}/{container}/{name:path}"): AXIS,
    ("PUT", "/v1/{account}/{container}/{name:path}"): AXIS,
    ("POST", "/v1/{account}/{container}/{name:path}"): AXIS,
    ("DELETE", "/v1/{account}/{container}/{name:path}"): AXIS,
    ("COPY", "/v1/{account}/{container}/{name:path}"): AXIS,
}


@dataclass(frozen=True)
class RouteInfo:
    method: str
    path: str
    guards: tuple[Guard, ...]
    calls: frozenset  # every dependency callable, recursively

    @property
    def permission(self) -> Permission | None:
        return self.guards[0].permission if self.guards else None

    @property
    def is_page(self) -> bool:
        return any(type(g) is not Require for g in self.guards)  # PageRequire, the other kind of Guard


def _walk(dependant) -> Iterator:
    for dep in dependant.dependencies:
        yield dep.call
        yield from _walk(dep)


def _flat_routes(app: FastAPI) -> Iterator[tuple[object, str, set[str] | None, object]]:
    """(route, path, methods, dependant) of every route, routers included.

    FastAPI >= 0.13x keeps included routers as nodes of `app.routes`; `iter_route_contexts` flattens
    them with the prefixes applied. Older versions list the routes flat.
    """
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI: app.routes is already flat
        for route in app.routes:
            yield route, route.path, getattr(route, "methods", None), getattr(route, "dependant", None)
        return
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        dependant = ctx.dependant if isinstance(route, APIRoute) else None
        yield route, ctx.path, getattr(ctx, "methods", None), dependant


def inventory(app: FastAPI) -> list[RouteInfo]:
    routes = []
    for route, path, methods, dependant in _flat_routes(app):
        if path in FRAMEWORK_PATHS:
            continue
        assert isinstance(route, APIRoute), f"unexpected kind of route {type(route).__name__} at {path}"
        calls = frozenset(_walk(dependant))
        guards = tuple(c for c in calls if isinstance(c, Guard))
        assert len({g.permission for g in guards}) <= 1, f"{path} carries several permissions: {guards}"
        for method in sorted(methods):
            routes.append(RouteInfo(method, path, guards, calls))
    return routes


@dataclass
class Scene:
    commune: Commune
    recording_id: str  # recorded by the commune's wearing agent with camera 0

    @property
    def device(self) -> str:  # a camera of the commune for device routes (shifts)
        return self.commune.cameras[min(1, len(self.commune.cameras) - 1)][0]

    @property
    def spare_device(self) -> str:  # the camera the matrix revokes
        return self.commune.cameras[-1][0]


def fill(path: str, s: Scene) -> str:
    values = {
        "recording_id": s.recording_id,
        "index": "0",
        "code": "en",
        "device_id": s.spare_device if path.endswith("/revoke") else s.device,
    }
    # A parameter not known here gets a placeholder: an allowed role then meets a 404, never a 401/403.
    return re.sub(r"\{(\w+)(:\w+)?\}", lambda m: values.get(m.group(1), "unknown"), path)


def call(client: TestClient, info: RouteInfo, s: Scene, csrf: str | None, role: Role, grant: str = "no-grant") -> int:
    headers = {"X-CSRF-Token": csrf} if csrf and info.method not in {"GET", "HEAD", "OPTIONS"} else {}
    kw: dict = {}
    key = (info.method, info.path)
    if key == ("POST", "/api/v1/recordings/{recording_id}/consultations"):
        kw["json"] = {"motive": {"code": "report_facts", "text": "route matrix check"}}
    elif key in (
        ("GET", "/api/v1/recordings/{recording_id}/segments/{index}"),
        ("GET", "/api/v1/recordings/{recording_id}/track"),
    ):  # the place goes with the content's grant
        kw["params"] = {"grant": grant}
    elif key == ("POST", "/api/v1/recordings/{recording_id}/holds"):
        kw["json"] = {"procedure": "judicial", "reference": "PV-2024-000123"}
    elif key == ("POST", "/api/v1/recordings/{recording_id}/holds/lift"):
        kw["json"] = {"reason": "route matrix check"}
    elif key == ("PUT", "/api/v1/recordings/{recording_id}/categories"):
        kw["json"] = {"categories": ["matrix"]}
    elif key == ("POST", "/api/v1/recordings/holds"):
        kw["json"] = {"recording_ids": [s.recording_id], "procedure": "judicial", "reference": "PV-2024-000124"}
    elif key == ("POST", "/api/v1/admin/users"):  # a role the caller may grant (identity.grants)
        kw["json"] = {
            "username": f"matrix-{role.value.replace('_', '-')}",
            "display_name": "Matrix",
            "role": {Role.TECH_ADMIN: "tech_admin", Role.MAYOR: "auditor"}.get(role, "csu_operator"),
        }
    elif key == ("POST", "/api/v1/admin/users/{username}/deactivate"):
        kw["json"] = {"reason": "route matrix check"}
    elif key == ("POST", "/api/v1/admin/devices/codes"):
        kw["json"] = {"label": "matrix camera"}
    elif key == ("POST", "/recordings/{recording_id}/consult"):
        kw["data"] = {"motive_code": "report_facts", "motive_text": "route matrix check"}
    elif key == ("POST", "/api/v1/shifts/checkout"):
        kw["json"] = {"device_id": s.device, "username": s.commune.users[Role.AGENT]}
    elif key == ("POST", "/api/v1/rights/requests"):
        kw["json"] = {"kind": "access", "person_description": "route matrix", "contact": "matrix@example.org"}
    elif key == ("POST", "/rights"):
        kw["data"] = {"kind": "access", "person_description": "route matrix", "contact": "matrix@example.org"}
    elif key in (("POST", "/api/v1/extractions"), ("POST", "/api/v1/extractions/jobs")):
        kw["json"] = {
            "recording_ids": [s.recording_id],
            "recipient_name": "OPJ Matrix",
            "recipient_kind": "judicial_police",
            "procedure_type": "judicial",
            "reference": "PV-2024-000123",
        }
    # Any other route gets no body: an allowed role then meets a 422 at worst, never a 401/403.
    return client.request(info.method, fill(info.path, s), headers=headers, follow_redirects=False, **kw).status_code
