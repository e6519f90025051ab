"""The live viewer page in a real browser (Debian's Chromium through Playwright): a CSU operator watches a
camera's live feed over WHEP, acknowledges the alert, and sees "link lost" when the camera falls silent.

The camera is the platform's own WHIP publisher (aiortc, H.264 + Opus), in a thread of its own.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future

import pytest
from playwright.sync_api import expect

from temoin.law.access import Role
from temoin.platform import Platform
from tests.helpers import Commune, agent_number, make_commune
from tests.live_helpers import (
    FIX,
    _cheap_password_hashes,
    entries,
    on_shift,
    publisher,
    server,
    settings,
    sign_in_context,
)

pytestmark = pytest.mark.slow


class CameraThread:
    """A camera pressing the live button and streaming, in its own thread and event loop."""

    def __init__(self, url: str, commune: Commune) -> None:
        self.loop = asyncio.new_event_loop()
        self.camera = publisher(url, commune)
        self.ready: Future = Future()
        self._stop: asyncio.Event | None = None
        self.thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            start = await self.camera.start(position=FIX)
            self.ready.set_result(start.session_id)
            await self._stop.wait()
            await self.camera.stop()
        except Exception as exc:  # reported to the test
            if not self.ready.done():
                self.ready.set_exception(exc)
            raise
        finally:
            await self.camera.aclose()

    def __enter__(self) -> CameraThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._stop is not None:
            self.loop.call_soon_threadsafe(self._stop.set)
        self.thread.join(15)

    def run(self, coro) -> Future:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def call(self, fn) -> None:
        self.loop.call_soon_threadsafe(fn)


def test_viewer_page_plays_the_live_feed(platform: Platform, server: str, browser):
    commune = make_commune(platform, cameras=1)
    on_shift(platform, commune)
    operator = commune.users[Role.CSU_OPERATOR]
    context = browser.new_context(base_url=server, locale="fr-FR", viewport={"width": 1000, "height": 800})
    context.set_default_timeout(15_000)
    try:
        with CameraThread(server, commune) as cam:
            sid = cam.ready.result(20)
            sign_in_context(platform, context, operator)
            page = context.new_page()
            # The CSU's dashboard lists the alert, with the agent and the link state; "Voir" opens the viewer.
            page.goto("/live")
            row = page.locator(f'#live-sessions tr[data-session="{sid}"]')
            expect(row).to_contain_text(agent_number(commune))
            expect(row.locator("td.link")).to_have_text("En direct")
            row.get_by_role("link", name="Voir").click()
            expect(page).to_have_url(f"{server}/live/{sid}")
            expect(page.locator("#live-agent")).to_have_text(agent_number(commune))
            # Pictures are decoded, and keep coming; sound arrives.
            page.wait_for_function("() => window.temoinLive.stats.framesDecoded > 10")
            first = page.evaluate("window.temoinLive.stats.framesDecoded")
            page.wait_for_timeout(1000)
            later = page.evaluate("window.temoinLive.stats")
            assert later["framesDecoded"] >= first + 8, (first, later)
            assert later["frameWidth"] == 160
            # Sound: Opus packets arrive and are decoded (samples received), while the picture plays.
            page.wait_for_function(
                "() => window.temoinLive.stats.audioPackets > 25 && window.temoinLive.stats.audioSamples > 0"
            )
            expect(page.locator("#live-status")).to_have_text("En direct")
            expect(page.locator("#live-lost")).to_be_hidden()

            # The operator acknowledges from the page: the camera hears it.
            heard = cam.run(cam.camera.wait_for_state("acknowledged", timeout_s=15))
            page.get_by_role("button", name="Accuser réception").click()
            assert heard.result(15)["acknowledged_by"] == operator
            expect(page.locator("#live-state")).to_have_text("Réception confirmée")
            expect(page.get_by_role("button", name="Accuser réception")).to_be_disabled()

            # The camera falls silent: the page says so, and greys the stale picture.
            cam.call(cam.camera.pause_media)
            expect(page.locator("#live-lost")).to_be_visible(timeout=6000)
            expect(page.locator("#live-lost")).to_contain_text("Liaison perdue depuis")
            expect(page.locator("#live-frame")).to_have_class("live-frame stale")
            page.wait_for_function("() => window.temoinLive.lostForS >= 2")
            cam.call(cam.camera.resume_media)
            expect(page.locator("#live-lost")).to_be_hidden(timeout=8000)
            # Leaving the page ends the viewing (DELETE of the WHEP resource), and the journal says when.
            page.close(run_before_unload=True)
            deadline = time.monotonic() + 10
            while "live.viewing_ended" not in [e["event"] for e in entries(platform, commune.slug)]:
                assert time.monotonic() < deadline, "the viewing's end was not journaled"
                time.sleep(0.1)
    finally:
        context.close()
    events = [e["event"] for e in entries(platform, commune.slug)]
    assert "live.viewing_started" in events and "live.acknowledged" in events
    started = [e for e in entries(platform, commune.slug) if e["event"] == "live.viewing_started"]
    assert started[0]["recipients"] == [operator]
