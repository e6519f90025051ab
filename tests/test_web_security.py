"""Web and transport safeguards (docs/security.md, "Web and transport"): the content security policy and text that
never becomes HTML, request body limits enforced before reading, the security headers, the access log.

Each test runs on SQLite and PostgreSQL (the `platform` fixture); the browser tests drive Debian's Chromium
against a real uvicorn.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from temoin.identity import service
from temoin.identity.models import Tenant
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.supervision import registry
from temoin.web import hardening
from tests.helpers import Commune, make_commune, sign_in_page

TIMEOUT_MS = 30_000
# Would run if it ever reached the DOM as HTML: an image whose error handler marks the page.
PAYLOAD = '<img src="/nowhere.png" onerror="window.__xss=(window.__xss||0)+1">'
CCTV_CSV = (
    "id,name,lat,lon,heading_deg,fov_deg,stream_url\n"
    f'cctv-x,"Rue {PAYLOAD.replace(chr(34), chr(34) * 2)}",43.556,4.07,90,60,rtsp://10.0.0.9:554/x\n'
)
# Installed before any page script: keeps every Leaflet map, and records CSP violations the page meets.
SPY = """
(() => {
  window.__csp = [];
  document.addEventListener("securitypolicyviolation",
    (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
  let real;
  Object.defineProperty(window, "L", {configurable: true, get() { return real; }, set(v) {
    real = v;
    if (v && v.Map) v.Map.addInitHook(function () { (window.__maps = window.__maps || []).push(this); });
  }});
})();
"""


@pytest.fixture
def commune(platform: Platform) -> Commune:
    c = make_commune(platform, cameras=0)
    with platform.session() as db:
        tenant = db.query(Tenant).filter_by(slug=c.slug).one()
        registry.import_file(platform, db, tenant, "cameras.csv", CCTV_CSV.encode(), actor=Actor.system("test"))
        service.update_settings(
            platform,
            db,
            tenant,
            {"tile_url": "https://tiles.invalid/{z}/{x}/{y}.png", "tile_attribution": f"Tiles {PAYLOAD}"},
        )
        db.commit()
    return c


@pytest.fixture
def page(browser, server_url: str):
    context = browser.new_context(base_url=server_url, locale="fr-FR", viewport={"width": 1280, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    context.add_init_script(SPY)
    pg = context.new_page()
    console: list[str] = []
    pg.on("console", lambda m: console.append(m.text))
    pg.console_messages = console  # type: ignore[attr-defined]  # carried for the tests to read
    yield pg
    context.close()


def csp_problems(page) -> list[str]:
    return page.evaluate("() => window.__csp") + [m for m in page.console_messages if "Content Security Policy" in m]


@pytest.mark.slow
def test_injected_names_do_not_execute_and_pages_work_under_the_csp(platform: Platform, commune: Commune, page) -> None:
    sign_in_page(page, platform, commune.users[Role.CHIEF])
    response = page.goto("/live")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    page.wait_for_function("() => (window.__maps || []).length > 0")
    # The camera's marker carries its name; open every tooltip of the map, as hovering each marker would.
    page.wait_for_function("""() => { let found = false; window.__maps[0].eachLayer(l => {
        const t = l.getTooltip && l.getTooltip(); if (!t) return;
        const c = t.getContent(); if ((typeof c === "string" ? c : c.textContent).includes("Rue")) found = true; });
        return found; }""")
    page.evaluate("() => window.__maps[0].eachLayer(l => { if (l.getTooltip && l.getTooltip()) l.openTooltip(); })")
    tooltip = page.locator(".leaflet-tooltip", has_text="Rue")
    expect(tooltip).to_have_text(f"Rue {PAYLOAD}")  # shown as text, exactly as imported
    assert page.locator(".leaflet-tooltip img").count() == 0
    # The tenant's tile attribution is text too.
    expect(page.locator(".leaflet-control-attribution")).to_contain_text(f"Tiles {PAYLOAD}")
    assert page.locator(".leaflet-control-attribution img").count() == 0
    page.wait_for_timeout(300)  # an image error handler would have run by now
    assert page.evaluate("() => window.__xss") is None
    assert csp_problems(page) == []

    for path, ready in (("/recordings", "#search-form"), ("/rights", "#new-request")):
        page.goto(path)
        expect(page.locator(ready)).to_be_visible()
        page.wait_for_timeout(300)
        assert page.evaluate("() => window.__xss") is None, path
        assert csp_problems(page) == [], path
    # The review map draws the same attribution, as text.
    page.goto("/recordings")
    expect(page.locator(".leaflet-control-attribution")).to_contain_text(f"Tiles {PAYLOAD}")


@pytest.mark.slow
def test_an_inline_script_is_refused_by_the_policy(platform: Platform, commune: Commune, page) -> None:
    """The policy itself: were some text to slip through as HTML, its script would not run."""
    sign_in_page(page, platform, commune.users[Role.CHIEF])
    page.goto("/rights")
    page.evaluate("""() => { const d = document.createElement("div");
        d.innerHTML = '<img src="/nowhere.png" onerror="window.__xss=1">'; document.body.append(d);
        const s = document.createElement("script"); s.textContent = "window.__xss2 = 1"; document.body.append(s); }""")
    page.wait_for_timeout(300)
    assert page.evaluate("() => [window.__xss, window.__xss2]") == [None, None]
    assert any("script-src" in v for v in page.evaluate("() => window.__csp"))


# --- headers ---------------------------------------------------------------------------------------------


def test_every_answer_carries_the_policy_and_no_hsts_over_plain_http(client) -> None:
    for path in ("/login", "/api/v1/platform", "/static/csu.js"):
        r = client.get(path)
        assert r.headers["content-security-policy"] == hardening.CONTENT_SECURITY_POLICY, path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "strict-transport-security" not in r.headers
    assert "'unsafe-inline'" not in hardening.CONTENT_SECURITY_POLICY


def test_hsts_over_tls(platform: Platform) -> None:
    from fastapi.testclient import TestClient

    from temoin.web.app import create_app

    with TestClient(create_app(platform, scheduler=False), base_url="https://testserver") as c:
        assert c.get("/login").headers["strict-transport-security"].startswith("max-age=")


def test_templates_and_static_pages_have_no_inline_script_or_style() -> None:
    import re
    from pathlib import Path

    web = Path(hardening.__file__).parent
    for path in [*(web / "templates").glob("*.html"), *(web / "static").glob("*.html")]:
        text = path.read_text("utf-8")
        for script in re.findall(r"<script\b[^>]*>", text):
            assert "src=" in script or 'type="application/json"' in script, (path.name, script)
        assert not re.search(r"\sstyle=\"", text), path.name
        assert "<style" not in text, path.name
        assert not re.search(r"\son[a-z]+=", text), path.name


# --- body limits -----------------------------------------------------------------------------------------


def _raw_request(url: str, head: str, chunks: Iterator[bytes]) -> tuple[int, bytes]:
    """Send a request by hand (chunked bodies, bodies the client would not send) and read the status."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as s:
        s.sendall(head.encode())
        try:
            for chunk in chunks:
                s.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server cut us off: read its answer
        data = b""
        s.settimeout(20)
        try:
            while b"\r\n\r\n" not in data or len(data) < data.find(b"\r\n\r\n") + 4 + 10:
                got = s.recv(65536)
                if not got:
                    break
                data += got
        except (TimeoutError, ConnectionResetError):
            pass
    return int(data.split(b" ", 2)[1]), data


@pytest.mark.slow
def test_an_anonymous_oversized_json_body_is_refused_before_reading(server_url: str) -> None:
    """The announced size alone refuses it: 200 MB announced, 1 MB sent, 413 at once, nothing buffered."""
    head = "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200000000\r\n\r\n"
    status, raw = _raw_request(server_url, head, iter([b"{" + b" " * 1_000_000]))
    assert status == 413
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert b"problem" in raw.split(b"\r\n\r\n", 1)[0].lower()  # application/problem+json
    assert b"1048576" in body


@pytest.mark.slow
def test_a_chunked_body_is_counted_and_cut_off(server_url: str) -> None:
    head = (
        "POST /api/v1/session HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b" " * 65536

    def chunks() -> Iterator[bytes]:
        for _ in range(64):  # 4 MiB, in 64 KiB chunks
            yield f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        yield b"0\r\n\r\n"

    status, raw = _raw_request(server_url, head, chunks())
    assert status == 413
    assert b"too-large" in raw


def test_bodies_within_the_limit_and_upload_routes_keep_working(client, platform: Platform) -> None:
    limit = hardening.BodyLimit(lambda *a: None, platform.settings)
    assert limit.limit_for("POST", "/api/v1/rights")[0] == 1_048_576
    assert (
        limit.limit_for("PUT", "/api/v1/ingest/recordings/rec-1/segments/0")[0] == platform.settings.max_segment_bytes
    )
    assert limit.limit_for("POST", "/api/v1/cctv/import")[0] == registry.MAX_FILE_BYTES
    r = client.post("/login", data={"username": "nobody", "password": "x" * 1000})
    assert r.status_code != 413
    r = client.post(
        "/api/v1/rights", content=b"{" + b" " * 1_100_000 + b"}", headers={"Content-Type": "application/json"}
    )
    assert r.status_code == 413
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["limit_bytes"] == 1_048_576


# --- access log ------------------------------------------------------------------------------------------


def test_the_access_log_drops_query_strings() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", "/api/v1/recordings/r1/media?grant=SECRET", "1.1", 200),
        None,
    )
    hardening.NoQueryString().filter(record)
    line = record.getMessage()
    assert "SECRET" not in line and "/api/v1/recordings/r1/media" in line


def test_the_demo_server_access_log_drops_query_strings_too(platform: Platform, capsys) -> None:
    """`temoin demo` serves through BackgroundServer: its access log, once turned on, leaves grants out too."""
    import httpx

    from temoin.demo.server import BackgroundServer
    from temoin.web.app import create_app

    access = logging.getLogger("uvicorn.access")
    with BackgroundServer(create_app(platform, scheduler=False)) as server:
        level = access.level
        access.setLevel(logging.INFO)  # the demo logs warnings only; an operator may turn the access log on
        try:
            httpx.get(f"{server.url}/api/v1/platform?grant=SECRET-GRANT", timeout=10)
        finally:
            access.setLevel(level)
    out = capsys.readouterr()
    logged = out.out + out.err
    assert "/api/v1/platform?" in logged and "SECRET-GRANT" not in logged, logged


# --- refused authentications, journaled by the minute ------------------------------------------------------


def test_forged_requests_naming_a_real_camera_cannot_flood_the_journal(platform: Platform, client) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from sqlalchemy import func, select

    from temoin.identity import devices
    from temoin.journal.models import JournalEntry
    from temoin.journal.service import parse_body

    commune = make_commune(platform, cameras=2)
    log = client.app.state.refusals
    now = [1_800_000_000.0]  # a minute boundary
    log.clock = lambda: now[0]

    def count() -> int:
        with platform.session() as db:
            return db.scalar(
                select(func.count()).select_from(JournalEntry).where(JournalEntry.event == "device.auth_refused")
            )

    path = "/api/v1/ingest/recordings/anything"
    forger = Ed25519PrivateKey.generate()
    cam_a, cam_b = commune.cameras[0][0], commune.cameras[1][0]
    for n in range(200):  # ~30 a second for several seconds, as seen in the field
        camera = cam_a if n % 4 else cam_b
        assert client.get(path, headers=devices.signed_headers(camera, forger, "GET", path)).status_code == 401
    assert count() == 0  # the minute is not over
    now[0] += 61
    forged = devices.signed_headers(cam_a, forger, "GET", path)
    assert client.get(path, headers=forged).status_code == 401  # closes the past minute
    with platform.session() as db:
        rows = [
            parse_body(e.body)
            for e in db.scalars(
                select(JournalEntry).where(JournalEntry.event == "device.auth_refused").order_by(JournalEntry.seq)
            )
        ]
    assert sorted((r["cameras"][0], r["details"]["count"]) for r in rows) == sorted([(cam_a, 150), (cam_b, 50)])
    assert all(r["details"]["address"] == "testclient" and r["action"] == "security" for r in rows)
    assert all("signature invalid" in r["details"]["reason"] for r in rows)
    # The current minute's refusal is written at shutdown (or by the server's periodic pass).
    log.flush(platform, every=True)
    assert count() == 3
