"""A recording whose camera found some segments damaged reaches the vault with those segments declared lost
(`lost_segments`, named in the signed receipt). Everything downstream handles it:

1. Review: the stored segments play (API and page, the player skipping the gap), the lost ones are named with
   their time ranges (French first, English), and integrity says "intact except lost segments [..] declared by
   the camera", neither "corrupt" nor a silent "ok". A segment hidden in the catalogue without the receipt
   declaring it lost is a problem, not a loss.
2. Extraction packages (original, trimmed, training) hold the stored originals or what derives from them, the
   manifest lists the lost segments, and `temoin verify` with the pinned key accepts the package while stating
   them; a package that drops a segment the signed receipt does not declare lost still fails, even re-signed.
3. Scrub skips the lost segments without reporting corruption; retention and erasure delete everything.
4. Rights access copies are made of the stored segments.
"""

from __future__ import annotations

import json
import re
import shutil
from datetime import timedelta
from itertools import pairwise
from pathlib import Path

import av
import pytest
from sqlalchemy import select

from temoin.db import utcnow
from temoin.demo.samples import sample_recording
from temoin.evidence.manifest import SignedReceipt
from temoin.extraction import package as pkg
from temoin.journal.models import JournalEntry
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.vault import integrity, retention, scrub
from temoin.vault.models import DeletionCertificate, Recording, Segment
from tests.extraction_helpers import _download, _extract, _pinned, _verify
from tests.helpers import (
    JUSTIFIED,
    agent_number,
    approve_erasure,
    make_commune,
    pdf_text,
    sign_in,
    vault_client,
)

PARIS_FMT = "%d/%m/%Y %H:%M:%S"


def upload_lost(
    p: Platform, client, commune, lost: tuple[int, ...] = (1,), *, duration_s: float = 8, segment_s: float = 2, **kw
) -> tuple[str, SignedReceipt, list[bytes]]:
    """A recording of duration_s / segment_s segments handed over with `lost` declared damaged on the camera."""
    cam = commune.cameras[0]
    signed, segments = sample_recording(
        cam[1],
        camera_id=cam[0],
        agent_id=agent_number(commune),
        started_at=utcnow() - timedelta(minutes=10),
        duration_s=duration_s,
        segment_s=segment_s,
        **kw,
    )
    receipt = vault_client(p, client, cam).offload(signed, segments, lost=lost)
    client.auth = None
    assert receipt.receipt.lost_segments == list(lost)
    return signed.manifest.recording_id, receipt, segments


def _h(csrf: str) -> dict:
    return {"X-CSRF-Token": csrf}


# --- 1. review and integrity -------------------------------------------------------------------------------


def test_review_plays_the_stored_segments_and_names_the_lost_ones_with_their_times(platform, client) -> None:
    from temoin.law.legal_time import PARIS

    commune = make_commune(platform, cameras=1)
    rid, _, originals = upload_lost(platform, client, commune, (1,))
    with platform.session() as db:
        seg1 = db.get(Segment, (rid, 1))
        lost_start, lost_end = seg1.started_at, seg1.started_at + timedelta(seconds=seg1.duration_s)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])

    # Metadata: one recording's and the search's say which segments were lost.
    assert client.get(f"/api/v1/recordings/{rid}").json()["lost_segments"] == [1]
    assert [r["lost_segments"] for r in client.get("/api/v1/recordings").json()] == [[1]]

    # Integrity: intact except the lost segment, with its time range; not "corrupt", not a silent "ok".
    known = client.get(f"/api/v1/recordings/{rid}/integrity").json()
    assert known["signature_ok"] and known["chain_ok"]
    assert known["verdict"] == "intact_except_lost"
    assert known["summary"].startswith("intact except lost segments [1] declared by the camera"), known["summary"]
    [lost] = known["lost_segments"]
    assert lost["index"] == 1 and lost["offset_s"] == 2.0 and lost["duration_s"] == 2.0
    assert lost["started_at"].startswith(lost_start.strftime("%Y-%m-%dT%H:%M:%S"))

    # The API consultation: the stored segments' URLs (the lost one left out, and named), each the camera's bytes.
    r = client.post(
        f"/api/v1/recordings/{rid}/consultations",
        headers=_h(csrf),
        json={"motive": {"code": "incident_review", "text": "Analyse de l'intervention"}},
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert [u.split("?")[0].rsplit("/", 1)[1] for u in out["segments"]] == ["0", "2", "3"]
    assert [x["index"] for x in out["lost_segments"]] == [1]
    for url, index in zip(out["segments"], (0, 2, 3)):
        got = client.get(url)
        assert got.status_code == 200 and got.content == originals[index]
    gone = client.get(f"/api/v1/recordings/{rid}/segments/1?grant={out['grant']}")
    assert gone.status_code == 404 and "lost on the camera" in gone.json()["detail"]

    # The page, in French first: the lost segment with its Paris times, integrity in words.
    page = client.get(f"/recordings/{rid}").text
    when = lost_start.astimezone(PARIS).strftime(PARIS_FMT) + " – " + lost_end.astimezone(PARIS).strftime("%H:%M:%S")
    assert "Segments perdus à la caméra" in page
    assert f"Segment 1 perdu à la caméra : {when}" in page
    assert "Intègre, sauf les segments [1] perdus à la caméra" in page
    english = client.get(f"/recordings/{rid}?lang=en").text
    assert f"Segment 1 lost at the camera : {when}" in english
    assert "Intact except lost segments [1] declared by the camera" in english

    # The page's consultation: the player gets the stored segments by index, none for the lost one.
    watched = client.post(
        f"/recordings/{rid}/consult",
        data={"csrf_token": csrf, "motive_code": "incident_review", "motive_text": "Analyse de l'intervention"},
    )
    assert watched.status_code == 200, watched.text
    urls = json.loads(watched.text.split("data-segments='")[1].split("'")[0])
    assert urls[1] is None and all(urls[i] and f"/segments/{i}?" in urls[i] for i in (0, 2, 3))
    assert f'src="{urls[0]}"' in watched.text
    play = json.loads(watched.text.split('id="review-data">')[1].split("</script>")[0])["play"]
    assert [s["lost"] for s in play["segments"]] == [False, True, False, False]

    # Re-read now: no problem, the lost segment named as not re-read.
    check = client.post(f"/api/v1/recordings/{rid}/integrity", headers=_h(csrf)).json()
    assert check["ok"] is True and check["problems"] == [] and check["lost_segments"] == [1]
    again = client.get(f"/api/v1/recordings/{rid}/integrity").json()
    assert again["verdict"] == "intact_except_lost" and again["last_full_check"]["lost_segments"] == [1]
    assert "segments perdus à la caméra, non relus : [1]" in client.get(f"/recordings/{rid}").text

    # A segment hidden in the catalogue (marked not stored) that the signed receipt does not declare lost is a
    # problem, not a loss: integrity, the page and the scrub say so.
    with platform.session() as db:
        db.get(Segment, (rid, 2)).complete = False
        db.commit()
    hidden = client.get(f"/api/v1/recordings/{rid}/integrity").json()
    assert hidden["verdict"] == "damaged" and "segments [2]" in hidden["summary"], hidden
    assert "ANOMALIE : segments [2] absents du coffre" in client.get(f"/recordings/{rid}").text
    with platform.session() as db:
        problems, _ = scrub.check_recording(platform, db.get(Recording, rid), commune.slug)
    assert [(c.segment, "does not declare it lost" in c.message) for c in problems] == [(2, True)]


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the browser is the point here
def test_the_player_skips_the_lost_segment_and_says_so(browser, platform, server_url) -> None:
    import httpx
    from playwright.sync_api import expect

    from tests.helpers import sign_in_page

    commune = make_commune(platform, cameras=1)
    with httpx.Client(base_url=server_url, timeout=30) as api:
        rid, _, _ = upload_lost(platform, api, commune, (1,), duration_s=6)
    context = browser.new_context(base_url=server_url, locale="fr-FR", viewport={"width": 1280, "height": 1000})
    context.set_default_timeout(20_000)
    page = context.new_page()
    try:
        sign_in_page(page, platform, commune.users[Role.CHIEF])
        page.goto(f"/recordings/{rid}")
        expect(page.locator("#lost-segments")).to_contain_text("Segment 1 perdu à la caméra")
        form = page.locator("#motive-form")
        form.get_by_label("Motif de la consultation").select_option("incident_review")
        form.get_by_label("Précisez (obligatoire)").fill("Analyse de l'intervention")
        form.get_by_role("button", name="Consulter").click()
        # Segment 0 plays, then the player goes straight to segment 2 and says segment 1 was lost.
        page.wait_for_function(
            "() => { const v = document.getElementById('player');"
            " if (v.error) throw new Error('media error ' + v.error.code);"
            " return v.currentSrc.includes('/segments/2?') && v.currentTime > 0.2; }",
            timeout=30_000,
        )
        expect(page.locator("#lost-playback")).to_contain_text("Segment 1 perdu à la caméra")
        expect(page.locator("#lost-playback")).to_contain_text("lecture reprise au segment suivant")
        # The timeline spans the whole recording and shows the lost segment as a gap, not hidden.
        expect(page.locator("#timeline-time")).to_have_text(re.compile(r"/ 0:06$"))
        gap = page.locator("#timeline-bar .timeline-gap")
        expect(gap).to_have_count(1)
        assert gap.get_attribute("data-index") == "1"
        assert "Segment 1 perdu à la caméra" in gap.get_attribute("title")
        bar, box = page.locator("#timeline-bar").bounding_box(), gap.bounding_box()
        assert abs((box["x"] - bar["x"]) / bar["width"] - 2 / 6) < 0.02  # seconds 2 to 4 of 6
        assert abs(box["width"] / bar["width"] - 2 / 6) < 0.02
        # A seek into the lost range plays on from the next stored segment.
        page.evaluate("() => { const v = document.getElementById('player'); v.pause(); }")
        start = page.evaluate("JSON.parse(document.getElementById('review-data').textContent).play.start")
        page.evaluate(f"window.temoinReview.seekTo({start + 0.1})")
        page.wait_for_function("() => document.getElementById('player').currentSrc.includes('/segments/0?')")
        page.evaluate(f"window.temoinReview.seekTo({start + 3})")
        page.wait_for_function("() => document.getElementById('player').currentSrc.includes('/segments/2?')")
        assert page.evaluate("document.getElementById('lost-playback').dataset.segment") == "1"
    finally:
        context.close()


# --- 2. extraction packages ---------------------------------------------------------------------------------


def _resign(platform: Platform, folder: Path) -> None:
    """Rewrite SHA256SUMS over the folder's files and sign it with the platform's own key (an insider holding
    it): what the pinned key signs must still agree with the receipt signed at ingest."""
    names = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and p.name not in (pkg.SUMS, pkg.SIGNATURE, pkg.TIMESTAMP)
    )
    import hashlib

    sums = "".join(f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names).encode()
    (folder / pkg.SUMS).write_bytes(sums)
    (folder / pkg.SIGNATURE).write_bytes(platform.keyring.signing_key.sign(sums))


def test_a_package_holds_the_stored_originals_names_the_lost_and_verifies(platform, client, tmp_path) -> None:
    commune = make_commune(platform, cameras=1)
    rid, _, originals = upload_lost(platform, client, commune, (1,))
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    out = _extract(client, csrf, [rid])
    assert out["media_kind"] == "original"
    _, folder = _download(client, out, tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text("utf-8"))
    rec = manifest["recordings"][0]
    assert [(m["segment"], m["file"]) for m in rec["media"]] == [(i, f"media/{rid}/{i:05d}.mp4") for i in (0, 2, 3)]
    for i in (0, 2, 3):
        assert (folder / f"media/{rid}/{i:05d}.mp4").read_bytes() == originals[i]
    assert not (folder / f"media/{rid}/00001.mp4").exists()
    [lost] = rec["lost_segments"]
    assert lost["index"] == 1 and lost["sha256"] == rec["segments"][1]["sha256"] and lost["offset_s"] == 2.0
    assert rec["receipt"]["receipt"]["lost_segments"] == [1]
    assert any("lost at the camera" in n for n in manifest["notes"])
    readme = (folder / "README.txt").read_text("utf-8")
    assert "Des segments ont été perdus à la caméra" in readme and "Some segments were lost at the camera" in readme

    code, output = _verify(folder, *_pinned(platform))
    assert code == 0, output
    flat = " ".join(output.split())
    assert f"recording {rid}: segments [1] lost at the camera before hand-over" in flat, flat
    assert "package intact except segments lost at the camera" in flat and f"{rid} segments [1]" in flat
    zipped = tmp_path / f"{out['id']}.zip"
    assert _verify(zipped, *_pinned(platform))[0] == 0

    # Drop segment 2 as well and call it lost in manifest.json, re-signed with the platform's own key: the
    # receipt signed at ingest declares only segment 1, so the package fails.
    dropped = tmp_path / "dropped"
    shutil.copytree(folder, dropped)
    (dropped / f"media/{rid}/00002.mp4").unlink()
    forged = json.loads((dropped / "manifest.json").read_text("utf-8"))
    forged_rec = forged["recordings"][0]
    forged_rec["media"] = [m for m in forged_rec["media"] if m["segment"] != 2]
    forged_rec["lost_segments"].append(
        {
            **forged_rec["lost_segments"][0],
            "index": 2,
            "sha256": forged_rec["segments"][2]["sha256"],
            "started_at": forged_rec["segments"][2]["started_at"],
        }
    )
    (dropped / "manifest.json").write_text(json.dumps(forged, indent=2))
    _resign(platform, dropped)
    code, output = _verify(dropped, *_pinned(platform))
    flat = " ".join(output.split())
    assert code == 1, output
    assert (
        "original segments [2] are missing (the vault's signed receipt declares only [1] lost at the camera)" in flat
    ), flat
    assert "manifest.json lists lost segments [1, 2], the vault's signed receipt declares [1]" in flat

    # The same with the receipt's list changed too: the receipt's signature no longer holds.
    forged_rec["receipt"]["receipt"]["lost_segments"] = [1, 2]
    (dropped / "manifest.json").write_text(json.dumps(forged, indent=2))
    _resign(platform, dropped)
    code, output = _verify(dropped, *_pinned(platform))
    flat = " ".join(output.split())
    assert code == 1 and "the vault's receipt is not signed by platform key" in flat, flat
    assert "original segments [1, 2] are missing" in flat  # an unproven receipt declares nothing lost

    # Nor may a package quietly leave out a lost segment's mention: manifest.json must say what the receipt says.
    silent = tmp_path / "silent"
    shutil.copytree(folder, silent)
    quiet = json.loads((silent / "manifest.json").read_text("utf-8"))
    quiet["recordings"][0]["lost_segments"] = []
    (silent / "manifest.json").write_text(json.dumps(quiet, indent=2))
    _resign(platform, silent)
    code, output = _verify(silent, *_pinned(platform))
    assert code == 1 and "manifest.json lists lost segments [], the vault's signed receipt declares [1]" in " ".join(
        output.split()
    ), output

    # The chain-of-custody PDF names the lost segment too.
    assert "Segment 1 perdu à la caméra / lost at the camera" in pdf_text(
        (folder / "chain-of-custody.pdf").read_bytes()
    )

    # A segment hidden in the catalogue that the signed receipt does not declare lost: no package is made.
    with platform.session() as db:
        db.get(Segment, (rid, 2)).complete = False
        db.commit()
    r = client.post(
        "/api/v1/extractions",
        headers=_h(csrf),
        json={
            "recording_ids": [rid],
            "recipient_name": "OPJ Martin",
            "recipient_kind": "judicial_police",
            "procedure_type": "judicial",
            "reference": "PV 2026/3",
        },
    )
    assert r.status_code == 409 and "segments [2] are not in the vault" in r.json()["detail"], r.text


def test_a_forged_receipt_declaring_lost_segments_the_camera_never_signed_fails_verification(
    platform, client, tmp_path
) -> None:
    """An insider with the platform key re-signs the receipt to declare lost segments the camera did not: beyond
    its signed manifest, all of them (which the vault never stores), or within them but not in the camera's own
    signed declaration of the loss (its `complete` request, kept at ingest): `temoin verify` names each."""
    commune = make_commune(platform, cameras=1)
    rid, _, _ = upload_lost(platform, client, commune, (1,))
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    _, folder = _download(client, _extract(client, csrf, [rid]), tmp_path)
    code, output = _verify(folder, *_pinned(platform))
    assert code == 0 and "the camera itself declared segments [1] lost, signed with its key" in " ".join(
        output.split()
    ), output
    for declared, expected in (
        ([1, 7], "declares segments [7] lost at the camera, but the camera signed only segments 0 to 3"),
        ([0, 1, 2, 3], "declares every segment the camera signed lost"),
        ([1, 2], "declares segments [2] lost at the camera, but the camera's signed declaration names only [1]"),
    ):
        forged_dir = tmp_path / f"forged-{'-'.join(map(str, declared))}"
        shutil.copytree(folder, forged_dir)
        forged = json.loads((forged_dir / "manifest.json").read_text("utf-8"))
        rec = forged["recordings"][0]
        receipt = SignedReceipt.model_validate(rec["receipt"])
        r = receipt.receipt.model_copy(update={"lost_segments": declared})
        with platform.keyring.signing() as signer:
            rec["receipt"] = SignedReceipt(receipt=r, signature=signer.sign(r.signing_bytes())).model_dump(mode="json")
        rec["lost_segments"] = [
            {**rec["lost_segments"][0], "index": i, "sha256": rec["segments"][i]["sha256"]}
            for i in declared
            if i < len(rec["segments"])
        ]
        (forged_dir / "manifest.json").write_text(json.dumps(forged, indent=2))
        _resign(platform, forged_dir)
        code, output = _verify(forged_dir, *_pinned(platform))
        flat = " ".join(output.split())
        assert code == 1 and expected in flat, flat

    # Nor can the camera's declaration be made to say more: its signature covers the body.
    forged_dir = tmp_path / "forged-declaration"
    shutil.copytree(folder, forged_dir)
    forged = json.loads((forged_dir / "manifest.json").read_text("utf-8"))
    said = forged["recordings"][0]["lost_declaration"]
    said["body"] = said["body"].replace("[1]", "[1,2]")
    (forged_dir / "manifest.json").write_text(json.dumps(forged, indent=2))
    _resign(platform, forged_dir)
    code, output = _verify(forged_dir, *_pinned(platform))
    assert code == 1 and "not signed by the camera's key" in " ".join(output.split()), output


def test_review_names_a_loss_the_receipt_declares_and_the_camera_did_not(platform, client) -> None:
    """Root with the platform key removes segment 2 and re-signs the receipt declaring it lost too: the camera's
    signed declaration (kept at ingest) names only segment 1, so the integrity check says so, API and page."""
    commune = make_commune(platform, cameras=1)
    rid, receipt, _ = upload_lost(platform, client, commune, (1,))
    sign_in(platform, client, commune.users[Role.CHIEF])
    assert client.get(f"/api/v1/recordings/{rid}/integrity").json()["verdict"] == "intact_except_lost"
    forged = receipt.receipt.model_copy(update={"lost_segments": [1, 2]})
    with platform.session() as db:
        with platform.keyring.signing() as signer:
            signed = SignedReceipt(receipt=forged, signature=signer.sign(forged.signing_bytes()))
        db.get(Recording, rid).receipt = signed.model_dump_json()
        db.get(Segment, (rid, 2)).complete = False
        db.commit()
    known = client.get(f"/api/v1/recordings/{rid}/integrity").json()
    assert known["verdict"] == "damaged", known
    assert "declares segments [2] lost, but the camera's signed declaration does not" in known["summary"], known
    page = client.get(f"/recordings/{rid}", headers={"Accept-Language": "fr-FR"}).text
    assert 'id="integrity-not-by-camera"' in page
    assert "ANOMALIE : le reçu signé déclare perdus les segments [2]" in page


def test_a_trimmed_extraction_across_the_lost_segment_keeps_the_gap_and_verifies(platform, client, tmp_path) -> None:
    commune = make_commune(platform, cameras=1)
    rid, _, _ = upload_lost(platform, client, commune, (1,))
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    out = _extract(client, csrf, [rid], trim={"recording_id": rid, "start_s": 1.0, "end_s": 5.0})
    assert out["media_kind"] == "trimmed"
    _, folder = _download(client, out, tmp_path)
    rec = json.loads((folder / "manifest.json").read_text("utf-8"))["recordings"][0]
    trim = rec["trim"]
    assert [s["index"] for s in trim["source_segments"]] == [0, 2] and trim["lost_segments"] == [1]
    assert [s["index"] for s in rec["media"][0]["derived_from"]] == [0, 2]
    assert trim["kept"]["start_s"] == 0.0 and 4.9 <= trim["kept"]["end_s"] < 5.1
    # The trimmed file shows the gap where segment 1 was lost: nothing was made up to fill it.
    with av.open(str(folder / rec["media"][0]["file"])) as container:
        video = container.streams.video[0]
        times = sorted(float(p.pts * video.time_base) for p in container.demux(video) if p.pts is not None)
    assert max(b - a for a, b in pairwise(times)) > 1.9
    code, output = _verify(folder, *_pinned(platform))
    assert code == 0, output
    assert "segments [1] lost at the camera" in " ".join(output.split())

    # A range entirely inside the lost segment: refused, saying why.
    r = client.post(
        "/api/v1/extractions",
        headers=_h(csrf),
        json={
            "recording_ids": [rid],
            "recipient_name": "OPJ Martin",
            "recipient_kind": "judicial_police",
            "procedure_type": "judicial",
            "reference": "PV 2026/2",
            "trim": {"recording_id": rid, "start_s": 2.2, "end_s": 3.8},
        },
    )
    assert r.status_code == 422 and "within segment(s) [1] lost at the camera" in r.json()["detail"], r.text


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # the anonymisation is the slow part
def test_a_training_extraction_anonymises_the_stored_segments_and_verifies(platform, client, tmp_path) -> None:
    if pkg._redactor() is None:
        pytest.skip("no redaction engine on this installation")
    commune = make_commune(platform, cameras=1)
    rid, _, _ = upload_lost(platform, client, commune, (0,), duration_s=4)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    out = _extract(client, csrf, [rid], recipient_kind="trainer", procedure_type="training")
    assert out["media_kind"] == "redacted"
    _, folder = _download(client, out, tmp_path)
    rec = json.loads((folder / "manifest.json").read_text("utf-8"))["recordings"][0]
    assert [m["file"] for m in rec["media"]] == [f"media/{rid}/00001-redacted.mp4"]
    assert rec["media"][0]["derived_from"] == [{"index": 1, "sha256": rec["segments"][1]["sha256"]}]
    assert [x["index"] for x in rec["lost_segments"]] == [0]
    code, output = _verify(folder, *_pinned(platform))
    assert code == 0, output


# --- 3. scrub, retention, erasure -------------------------------------------------------------------------


def test_scrub_skips_the_lost_segments_and_retention_and_erasure_delete_everything(platform, client) -> None:
    commune = make_commune(platform, cameras=1)
    kept, _, _ = upload_lost(platform, client, commune, (1,), duration_s=6)
    erased, _, _ = upload_lost(platform, client, commune, (0, 2), duration_s=6)
    with platform.session() as db:
        result = scrub.scrub(platform, db)
        assert result.ok, result.problems
        assert (result.recordings, result.segments, result.lost) == (2, 3, 3)
        assert not db.scalars(select(JournalEntry).where(JournalEntry.event == "vault.corruption")).all()

    # Erasure for a person's request: the recording goes, its blobs too, with a certificate.
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(
        "/api/v1/rights/requests",
        headers=_h(csrf),
        json={"kind": "erasure", "person_description": "veste rouge", "contact": "dupont@example.org"},
    )
    assert r.status_code == 201, r.text
    r = client.post(
        f"/api/v1/rights/requests/{r.json()['id']}/erasure",
        headers=_h(csrf),
        json={"recording_ids": [erased], "justifications": {erased: JUSTIFIED}},
    )
    assert r.status_code == 201, r.text
    r = approve_erasure(platform, client, commune, r.json()["id"])  # four eyes
    assert r.status_code == 200, r.text
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    blobs = platform.settings.vault_dir / "blobs" / commune.slug
    assert not (blobs / erased).exists()

    # Retention, once its period is over: deleted with a certificate, no blob left, nothing reported missing.
    with platform.session() as db:
        due = db.get(Recording, kept).retention_until + timedelta(seconds=1)
        swept = retention.sweep(platform, db, now=due)
        assert kept in swept.deleted and swept.blobs_removed == 2
        for rid in (kept, erased):
            rec = db.get(Recording, rid)
            assert rec.state == "deleted" and rec.wrapped_key is None
            assert db.scalar(select(DeletionCertificate).where(DeletionCertificate.recording_id == rid))
            assert integrity.lost_segments(rec) == []
    assert not (blobs / kept).exists()
    with platform.session() as db:
        assert scrub.scrub(platform, db).ok


def test_vault_scrub_command_says_lost_segments_are_not_corruption(platform, client, settings, monkeypatch) -> None:
    from typer.testing import CliRunner

    from temoin.cli import app as cli_app

    commune = make_commune(platform, cameras=1)
    upload_lost(platform, client, commune, (1,), duration_s=4)
    monkeypatch.setenv("TEMOIN_HOME", str(settings.home))
    monkeypatch.setenv("TEMOIN_DATABASE_URL", settings.database_url)
    result = CliRunner().invoke(cli_app, ["vault", "scrub"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1 recordings, 1 segments" in result.output
    assert "1 segment(s) lost at the camera" in result.output and "no corruption" in result.output


# --- 4. rights access copies ---------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # face detection is the slow part
def test_an_access_copy_is_made_of_the_stored_segments(platform, client) -> None:
    from tests.extraction_helpers import _wait

    commune = make_commune(platform, cameras=1)
    rid, _, _ = upload_lost(platform, client, commune, (1,), duration_s=6)
    csrf = sign_in(platform, client, commune.users[Role.CHIEF])
    r = client.post(
        "/api/v1/rights/requests",
        headers=_h(csrf),
        json={"kind": "access", "person_description": "veste rouge", "contact": "dupont@example.org"},
    )
    req = r.json()
    r = client.post(f"/api/v1/rights/requests/{req['id']}/copies", headers=_h(csrf), json={"recording_id": rid})
    assert r.status_code == 202, r.text
    copy = _wait(client, r.json()["id"])
    assert copy["state"] == "tracks_ready", copy
    # A still from the second stored segment (3 s into the copy's timeline of segments 0 and 2).
    still = client.get(f"/api/v1/rights/copies/{copy['id']}/still", params={"at": 3.0})
    assert still.status_code == 200 and still.headers["content-type"] == "image/jpeg", still.text
    assert float(still.headers["X-Frame-Time"]) == pytest.approx(3.0, abs=0.2)
    r = client.post(
        f"/api/v1/rights/copies/{copy['id']}/redact", headers=_h(csrf), json={"keep_tracks": [], "add_regions": []}
    )
    assert r.status_code == 202, r.text
    copy = _wait(client, copy["id"])
    assert copy["state"] == "to_review", copy
    video = client.get(f"/api/v1/rights/copies/{copy['id']}/video")
    assert video.status_code == 200
    import io

    with av.open(io.BytesIO(video.content)) as container:
        assert 3.5 < container.duration / 1_000_000 < 4.5  # the two stored segments, the lost one left out
    page = client.get(f"/rights/copies/{copy['id']}")
    assert page.status_code == 200
    with platform.session() as db:
        started = db.scalars(select(JournalEntry.body).where(JournalEntry.event == "rights.copy.started")).one()
    assert '"lost_segments":[1]' in started


def test_a_loss_declared_with_a_query_string_is_refused_and_can_be_sent_again_plainly(platform, client):
    """The camera's signed completion is kept as the proof of a loss: one that could not be kept whole (a query
    string the declaration does not hold) is refused, nothing is stored, and the plain request then works."""
    commune = make_commune(platform)
    cam = commune.cameras[0]
    signed, segments = sample_recording(
        cam[1], camera_id=cam[0], agent_id=agent_number(commune), started_at=utcnow() - timedelta(minutes=10)
    )
    vc = vault_client(platform, client, cam)
    rid = signed.manifest.recording_id
    vc.send_manifest(signed)
    for index, data in enumerate(segments):
        if index != 1:
            vc.upload_segment(rid, index, data)
    r = vc.http.post(f"/api/v1/ingest/recordings/{rid}/complete?note=x", json={"lost_segments": [1]})
    assert r.status_code == 422 and "query string" in r.json()["detail"], r.text
    with platform.session() as db:
        assert db.get(Recording, rid).state == "receiving"  # nothing was concluded
    receipt = vc.complete(rid, lost=[1])
    assert receipt.receipt.lost_segments == [1]
