"""A citizen's access request in a real browser (Debian's Chromium through Playwright) against a real server: the
chief registers the request, finds the recording, starts a redacted copy, ticks the requester's face, draws a
region to hide and a region to leave clear on a still of the original, removes a region drawn by mistake,
produces the copy, watches it, approves it and downloads it for the requester. The downloaded file is then
measured against the generated clip's ground truth: the requester's face is clear, the other face is blurred
except inside the region left clear, the region drawn by hand is blurred exactly over its time range.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from temoin.db import utcnow
from temoin.journal.models import JournalEntry
from temoin.journal.service import parse_body
from temoin.law.access import Role
from temoin.rights.register import PARIS
from tests.facesynth import Actor, clear, clipped, luma_frames, make_clip, redacted
from tests.helpers import make_commune, sign_in_page, upload_media

pytestmark = pytest.mark.slow

TIMEOUT_MS = 30_000
PLACE = (43.556, 4.07)  # the start of "Avenue de la Mer" in the demo commune
FPS, SECONDS = 30, 3.0
FRAMES = int(FPS * SECONDS)
HIDE = (270, 290, 100, 50)  # a patch of wall with a poster on it, say: hidden by hand over 0-1 s
HIDE_FRAMES = range(0, 31)


@pytest.fixture
def api(server_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server_url, timeout=60) as c:
        yield c


@pytest.fixture
def page(browser, server_url: str):
    context = browser.new_context(
        base_url=server_url, locale="fr-FR", viewport={"width": 1280, "height": 1100}, accept_downloads=True
    )
    context.set_default_timeout(TIMEOUT_MS)
    pg = context.new_page()
    yield pg
    context.close()


def draw(page, box: tuple[int, int, int, int]) -> None:
    """Drag the mouse over the still, from a box's corner to the opposite one (box in source pixels)."""
    canvas = page.locator("#still-draw")
    canvas.scroll_into_view_if_needed()
    where = canvas.bounding_box()
    k = page.locator("#still").evaluate("img => img.clientWidth / img.naturalWidth")
    x, y, w, h = box
    page.mouse.move(where["x"] + x * k, where["y"] + y * k)
    page.mouse.down()
    page.mouse.move(where["x"] + (x + w / 2) * k, where["y"] + (y + h / 2) * k, steps=4)
    page.mouse.move(where["x"] + (x + w) * k, where["y"] + (y + h) * k, steps=4)
    page.mouse.up()


def show_still(page, at_s: float) -> None:
    page.get_by_label("Instant (s)").fill(str(at_s))
    with page.expect_response(lambda r: "/still?" in r.url) as shown:
        page.get_by_role("button", name="Afficher l'image").click()
    assert shown.value.status == 200
    expect(page.locator("#still-box")).to_be_visible()
    page.wait_for_function(
        "() => document.getElementById('still').complete && document.getElementById('still').naturalWidth > 0"
    )


def add_region(page, mode: str, start_s: float, end_s: float) -> None:
    page.locator("#region-mode").select_option(mode)
    page.get_by_label("Du (s)").fill(str(start_s))
    page.get_by_label("Au (s)").fill(str(end_s))
    page.get_by_role("button", name="Ajouter la zone").click()


FORM_LABELS = {
    "fr": (
        "Type",
        "Description de la personne",
        "Contact pour la réponse",
        "Faits : début",
        "Faits : fin",
        "Enregistrer",
    ),
    "en": ("Kind", "Description of the person", "Contact for the answer", "Facts: start", "Facts: end", "Save"),
}


def register_access_request(
    page, around: datetime, person: str, *, lang: str = "fr", place: tuple[float, float] | None = None
) -> None:
    """Fill the register's form for an access request, facts 5 minutes either side of `around`."""
    kind, description, contact, start, end, save = FORM_LABELS[lang]
    page.goto("/rights")
    form = page.locator("#new-request")
    form.get_by_label(kind).select_option("access")
    form.get_by_label(description).fill(person)
    form.get_by_label(contact).fill("dupont@example.org")
    local = around.astimezone(PARIS)
    form.get_by_label(start).fill((local - timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"))
    form.get_by_label(end).fill((local + timedelta(minutes=5)).strftime("%Y-%m-%dT%H:%M"))
    if place:
        form.get_by_label("Latitude").fill(str(place[0]))
        form.get_by_label("Longitude").fill(str(place[1]))
    form.get_by_role("button", name=save).click()
    expect(page).to_have_url(re.compile(r"/rights/\d+$"))


def test_access_copy_prepared_reviewed_and_downloaded_in_the_browser(platform, api, page, tmp_path: Path):
    # The requester (left) and a passer-by (right) stand still; the clip's truth says where each face is.
    actors = [Actor(0, 0, FRAMES - 1, 170, 170, 0.0, 0.0, 95, 95), Actor(1, 0, FRAMES - 1, 470, 160, 0.0, 0.0, 90, 90)]
    clip = make_clip(tmp_path / "street.mp4", fps=FPS, seconds=SECONDS, actors=actors)
    commune = make_commune(platform, cameras=1)
    started = utcnow() - timedelta(minutes=20)
    rid = upload_media(
        platform, api, commune, clip.path.read_bytes(), duration_s=SECONDS, started_at=started, place=PLACE
    )

    sign_in_page(page, platform, commune.users[Role.CHIEF])
    register_access_request(page, started, "veste bleue, à gauche, avenue de la Mer", place=PLACE)

    row = page.locator(f"tr[data-recording='{rid}']")
    row.get_by_role("button", name="Préparer une copie masquée").click()
    expect(page).to_have_url(re.compile(r"/rights/copies/\d+$"))
    copy_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#copy-state")).to_have_attribute("data-state", "tracks_ready", timeout=120_000)

    # Two faces found, each with its thumbnail; the one on the left is the requester's.
    cards = page.locator(".face")
    expect(cards).to_have_count(2)
    expect(page.locator(".face img").first).to_have_attribute("src", re.compile(r"^data:image/jpeg"))
    copy = page.request.get(f"/api/v1/rights/copies/{copy_id}").json()
    left = [t["id"] for t in copy["tracks"] if t["box"][0] + t["box"][2] / 2 < 320]
    right = [t["id"] for t in copy["tracks"] if t["box"][0] + t["box"][2] / 2 >= 320]
    assert len(left) == 1 and len(right) == 1, copy["tracks"]
    page.locator(f".face input[name=keep][value='{left[0]}']").check()

    # A still at 0.5 s: hide a region over 0-1 s.
    show_still(page, 0.5)
    assert page.locator("#still").evaluate("img => [img.naturalWidth, img.naturalHeight]") == [640, 360]
    draw(page, HIDE)
    add_region(page, "add", 0, 1)
    # A region drawn by mistake is taken back before the copy is produced.
    draw(page, (20, 20, 60, 40))
    add_region(page, "add", 0, 3)
    expect(page.locator("#regions li")).to_have_count(2)
    page.locator("#regions li").nth(1).get_by_role("button", name="Retirer").click()
    expect(page.locator("#regions li")).to_have_count(1)
    # A still at 2.5 s: the passer-by is left clear over 2-3 s (as if the detector were wrong there).
    show_still(page, 2.5)
    px, py, pw, ph = clipped(actors[1].box_at(75, 640, 360), 640, 360)
    draw(page, (px - 20, py - 20, pw + 40, ph + 40))
    add_region(page, "remove", 2, 3)
    expect(page.locator("#regions li.remove")).to_have_count(1)

    page.get_by_role("button", name="Produire la copie").click()
    expect(page.locator("#copy-state")).to_have_attribute("data-state", "to_review", timeout=120_000)
    video = page.locator("#copy-video")
    expect(video).to_be_visible()
    page.wait_for_function("() => document.getElementById('copy-video').videoWidth === 640", timeout=TIMEOUT_MS)
    expect(page.get_by_role("link", name="Télécharger pour le demandeur (journalisé)")).to_be_hidden()
    # Four eyes: a colleague who did not produce the copy watches and approves it; the chief then hands it over.
    copy_url = page.url
    sign_in_page(page, platform, commune.users[Role.DESIGNATED_AGENT])
    page.goto(copy_url)
    page.get_by_role("button", name="Approuver pour remise").click()
    expect(page.locator("#copy-state")).to_have_attribute("data-state", "approved")
    sign_in_page(page, platform, commune.users[Role.CHIEF])
    page.goto(copy_url)
    with page.expect_download() as got:
        page.get_by_role("link", name="Télécharger pour le demandeur (journalisé)").click()
    out = tmp_path / "copie.mp4"
    got.value.save_as(out)

    copy = page.request.get(f"/api/v1/rights/copies/{copy_id}").json()
    assert copy["keep_tracks"] == left and len(copy["add_regions"]) == 1 and len(copy["remove_regions"]) == 1
    assert hashlib.sha256(out.read_bytes()).hexdigest() == copy["sha256"]

    # Measured on the downloaded copy, frame by frame, against the clip's ground truth.
    requester_clear = passer_blurred = passer_clear_in_region = hidden = hide_left = frames = 0
    for i, (src_y, out_y) in enumerate(zip(luma_frames(clip.path), luma_frames(out), strict=False)):
        frames += 1
        boxes = dict(clip.truth[i])
        requester_clear += clear(src_y, out_y, clipped(boxes[0], 640, 360))
        passer = clipped(boxes[1], 640, 360)
        if i < 58:
            passer_blurred += redacted(src_y, out_y, passer)
        elif i > 62:
            passer_clear_in_region += clear(src_y, out_y, passer)
        if i in HIDE_FRAMES:
            hidden += redacted(src_y, out_y, HIDE)
        elif i > 33:
            hide_left += clear(src_y, out_y, HIDE)
    assert frames == FRAMES
    assert requester_clear >= 0.95 * FRAMES, requester_clear
    assert passer_blurred >= 0.95 * 58, passer_blurred
    assert passer_clear_in_region >= 0.95 * (FRAMES - 63), passer_clear_in_region
    assert hidden == len(HIDE_FRAMES), hidden
    assert hide_left >= 0.95 * (FRAMES - 34), hide_left

    with platform.session() as db:
        events = [e.event for e in db.scalars(select(JournalEntry).order_by(JournalEntry.id))]
    for event in (
        "rights.copy.started",
        "rights.copy.faces_viewed",
        "rights.copy.still_viewed",
        "rights.copy.redaction_started",
        "rights.copy.produced",
        "rights.copy.viewed",
        "rights.copy.approved",
        "rights.copy.delivered",
    ):
        assert event in events, event


def test_the_copy_page_speaks_english_and_refuses_another_commune(platform, api, browser, server_url, tmp_path: Path):
    clip = make_clip(tmp_path / "street.mp4", fps=FPS, seconds=1.0, audio=False)
    ours = make_commune(platform, cameras=1)
    theirs = make_commune(platform, slug="autre-commune", cameras=0)
    rid = upload_media(
        platform,
        api,
        ours,
        clip.path.read_bytes(),
        duration_s=1.0,
        started_at=utcnow() - timedelta(minutes=5),
        place=PLACE,
    )
    context = browser.new_context(base_url=server_url, locale="en-GB")
    context.set_default_timeout(TIMEOUT_MS)
    try:
        pg = context.new_page()
        sign_in_page(pg, platform, ours.users[Role.CHIEF], "en")
        register_access_request(pg, utcnow() - timedelta(minutes=5), "red jacket", lang="en")
        pg.locator(f"tr[data-recording='{rid}']").get_by_role("button", name="Prepare a redacted copy").click()
        expect(pg.get_by_role("heading", name=re.compile("Redacted copy"))).to_be_visible()
        expect(pg.locator("#copy-state")).to_have_attribute("data-state", "tracks_ready", timeout=120_000)
        expect(pg.get_by_role("button", name="Produce the copy")).to_be_visible()
        copy_url = pg.url
        # Another commune's chief meets a 404 on this copy's page and API, and the attempt is journaled.
        pg2 = browser.new_context(base_url=server_url, locale="en-GB").new_page()
        sign_in_page(pg2, platform, theirs.users[Role.CHIEF], "en")
        assert pg2.goto(copy_url).status == 404
        copy_id = copy_url.rsplit("/", 1)[1]
        assert pg2.request.get(f"/api/v1/rights/copies/{copy_id}/still?at=0").status == 404
        pg2.context.close()
    finally:
        context.close()
    with platform.session() as db:
        assert db.scalar(select(JournalEntry).where(JournalEntry.event == "access.cross_tenant")) is not None


def test_stretches_the_detector_was_unsure_of_are_flagged_hidden_in_a_click_and_confirmed(
    platform, api, page, tmp_path: Path
):
    # The passer-by steps out of sight for a third of a second (behind a van, say) and back to the same place:
    # the detector misses them on a key frame, the tracker bridges the gap with a guessed box.
    actors = [
        Actor(0, 0, FRAMES - 1, 170, 170, 0.0, 0.0, 95, 95),
        Actor(1, 0, 40, 470, 160, 0.0, 0.0, 90, 90),
        Actor(1, 50, FRAMES - 1, 470, 160, 0.0, 0.0, 90, 90),
    ]
    clip = make_clip(tmp_path / "street.mp4", fps=FPS, seconds=SECONDS, actors=actors)
    commune = make_commune(platform, cameras=1)
    started = utcnow() - timedelta(minutes=20)
    rid = upload_media(
        platform, api, commune, clip.path.read_bytes(), duration_s=SECONDS, started_at=started, place=PLACE
    )
    sign_in_page(page, platform, commune.users[Role.CHIEF])
    register_access_request(page, started, "veste bleue, à gauche", place=PLACE)
    page.locator(f"tr[data-recording='{rid}']").get_by_role("button", name="Préparer une copie masquée").click()
    expect(page).to_have_url(re.compile(r"/rights/copies/\d+$"))
    copy_id = int(page.url.rsplit("/", 1)[1])
    expect(page.locator("#copy-state")).to_have_attribute("data-state", "tracks_ready", timeout=120_000)

    copy = page.request.get(f"/api/v1/rights/copies/{copy_id}").json()
    passer = next(t for t in copy["tracks"] if t["box"][0] + t["box"][2] / 2 >= 320)
    gap = next(r for r in passer["review"] if r["why"] == "gap")
    assert gap["start_frame"] <= 45 <= gap["end_frame"], passer["review"]  # the key frame it was missed on
    card = page.locator(f".face[data-track='{passer['id']}']")
    flag = card.locator(".flags li.gap")
    expect(flag).to_contain_text("visage manqué, position estimée")
    # One click hides the whole stretch, over a box that covers the face all along it.
    flag.get_by_role("button", name="Masquer ce passage").click()
    expect(page.locator("#regions li.add")).to_have_count(1)
    page.get_by_role("button", name="Produire la copie").click()
    expect(page.locator("#copy-state")).to_have_attribute("data-state", "to_review", timeout=120_000)

    # The reviewer must say they looked at the flagged stretches before approving.
    copy_url = page.url
    sign_in_page(page, platform, commune.users[Role.DESIGNATED_AGENT])
    page.goto(copy_url)
    expect(page.locator("#flagged-box")).to_be_visible()
    flagged = int(page.locator("#flagged-count").inner_text())
    assert flagged >= 1
    page.get_by_role("button", name="Approuver pour remise").click()
    expect(page.locator("#copy-error")).to_contain_text("unsure")
    expect(page.locator("#copy-state")).to_have_attribute("data-state", "to_review")
    page.get_by_label("J'ai regardé dans la copie chaque passage signalé comme incertain").check()
    page.get_by_role("button", name="Approuver pour remise").click()
    expect(page.locator("#copy-state")).to_have_attribute("data-state", "approved")

    copy = page.request.get(f"/api/v1/rights/copies/{copy_id}").json()
    [region] = copy["add_regions"]
    assert (region["start_frame"], region["end_frame"]) == (gap["start_frame"], gap["end_frame"])
    with platform.session() as db:
        approved = parse_body(
            db.scalars(select(JournalEntry).where(JournalEntry.event == "rights.copy.approved")).one().body
        )
    assert approved["details"]["flagged_stretches"] == flagged and approved["details"]["flagged_seen"] is True


def test_a_step_under_way_is_cancelled_from_the_copy_page(platform, api, page, tmp_path: Path, monkeypatch):
    """The detector is replaced by one that reports progress until it is stopped (its run time is the boundary we
    do not own); the page shows the step with its progress and a button that stops it."""
    import threading
    from types import SimpleNamespace

    from temoin.rights import copy_jobs

    stop = threading.Event()

    def detect_tracks(src, progress=None):
        done = 0
        while not stop.wait(0.1):
            done = min(done + 1, 9)
            progress(done, 10)  # where the cancellation is seen
        return []

    monkeypatch.setattr(
        copy_jobs, "engine", lambda: SimpleNamespace(detect_tracks=detect_tracks, redact_file=None, ManualRegion=tuple)
    )
    clip = make_clip(tmp_path / "street.mp4", fps=FPS, seconds=1.0, audio=False)
    commune = make_commune(platform, cameras=1)
    started = utcnow() - timedelta(minutes=5)
    rid = upload_media(platform, api, commune, clip.path.read_bytes(), duration_s=1.0, started_at=started, place=PLACE)
    try:
        sign_in_page(page, platform, commune.users[Role.CHIEF])
        register_access_request(page, started, "veste rouge", place=PLACE)
        page.locator(f"tr[data-recording='{rid}']").get_by_role("button", name="Préparer une copie masquée").click()
        expect(page.locator("#copy-state")).to_have_attribute("data-state", "detecting")
        expect(page.locator("#copy-progress")).to_be_visible()
        page.get_by_role("button", name="Annuler cette étape").click()
        expect(page.locator("#copy-state")).to_have_attribute("data-state", "failed")
        expect(page.locator("#copy-error")).to_contain_text("cancelled")
        expect(page.get_by_role("button", name="Annuler cette étape")).to_be_hidden()
    finally:
        stop.set()
    with platform.session() as db:
        failed = db.scalar(select(JournalEntry).where(JournalEntry.event == "rights.copy.failed"))
        assert failed is not None and parse_body(failed.body)["details"]["error"] == "cancelled"
