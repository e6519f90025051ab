"""The review of recordings: search on a map, then a recording's page (playback with the GPS track once a
consultation is opened with a motive, tags, holds, extraction)."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.evidence.manifest import Trigger
from temoin.identity.devices import camera_names
from temoin.law.access import Motive, Permission, allows, motives_for, place_motives_for
from temoin.law.legal_time import PARIS
from temoin.platform import Platform
from temoin.vault import catalogue, holds
from temoin.vault.integrity import integrity_of, lost_segments
from temoin.vault.models import Hold
from temoin.vault.tracks import Track, parse_area, tracks_of
from temoin.web.deps import Principal, get_db, get_platform
from temoin.web.i18n import gettext, label, lang_of, when
from temoin.web.pages import PageRequire
from temoin.web.templating import page

pages = APIRouter(include_in_schema=False)


# Suggested categories for one-click tagging (any other word may be typed in).
CATEGORIES = (
    "violence",
    "outrage",
    "arrest",
    "refusal_to_comply",
    "road_accident",
    "public_disorder",
    "rescue",
    "complaint_filed",
    "training",
)
TRACK_POINTS_ON_LIST = 120  # per result, enough to draw it on the search map
TRACK_POINTS_ON_PAGE = 5000  # the recording page: fixes for the marker that follows the video


def _paris_time(text: str) -> datetime | None:
    """A datetime-local field's value, in Europe/Paris: the reviewers' clock."""
    if not text.strip():
        return None
    moment = datetime.fromisoformat(text.strip())
    return moment.replace(tzinfo=PARIS) if moment.tzinfo is None else moment


def _choices(db: Session, who: Principal) -> dict:
    base = catalogue.visible(who.user).subquery()
    names = camera_names(db, db.scalars(select(base.c.device_id).distinct()))
    return {
        "agents": sorted(a for a in db.scalars(select(base.c.agent_ref).distinct()) if a),
        "cameras": sorted(names.items(), key=lambda c: (c[1], c[0])),  # (id, display name)
        "triggers": [t.value for t in Trigger],
        "states": list(catalogue.HoldState.ALL),
        "categories": CATEGORIES,
    }


@pages.get("/recordings")
def recordings(
    request: Request,
    start: str = "",
    end: str = "",
    agent: str = "",
    camera: str = "",
    trigger: str = "",
    category: str = "",
    state: str = "",
    area: str = "",
    motive_code: str = "",
    motive_text: str = "",
    who: Principal = Depends(PageRequire(Permission.RECORDINGS_LIST)),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> HTMLResponse:
    lang = lang_of(request)
    form = {
        "start": start,
        "end": end,
        "agent": agent,
        "camera": camera,
        "trigger": trigger,
        "category": category,
        "state": state,
        "area": area,
        "motive_code": motive_code,
        "motive_text": motive_text,
    }
    errors = []
    try:
        since, until = _paris_time(start), _paris_time(end)
    except ValueError:
        since = until = None
        errors.append(gettext(lang, "Unreadable date or time: use the picker."))
    try:
        polygon = parse_area(area)
    except ValueError:
        polygon = None
        errors.append(
            gettext(
                lang, "Unreadable area: draw it on the map, or type at least three lat,lon points separated by ';'."
            )
        )
    motive = None
    if motive_code or motive_text.strip():
        try:
            motive = Motive(code=motive_code, text=motive_text)
        except ValidationError:
            errors.append(gettext(lang, "Choose a motive from the list and give a few words of detail."))
    found: list = []
    if not errors:
        try:  # not a mapping: the search form again, the refusal said in the visitor's language
            found = catalogue.search(
                p,
                db,
                who.user,
                catalogue.SearchQuery(
                    start=since,
                    end=until,
                    agent=agent or None,
                    camera=camera or None,
                    trigger=trigger or None,
                    category=category.strip() or None,
                    state=state if state in catalogue.HoldState.ALL else None,
                    area=polygon,
                    limit=200,
                    motive=motive,
                ),
            )
        except catalogue.PlaceMotiveRequired:
            errors.append(
                gettext(
                    lang,
                    "A search by area shows where recordings were made: give the motive "
                    "(with a few words); it is written to the journal.",
                )
            )
        except catalogue.Forbidden:
            errors.append(gettext(lang, "This motive is not open to your role."))
    held = (
        {
            rid
            for rid in db.scalars(
                select(Hold.recording_id).where(Hold.recording_id.in_([r.id for r in found]), Hold.lifted_at.is_(None))
            )
        }
        if found
        else set()
    )
    # The places (R241-10) are drawn only for a search given a motive, which journaled them.
    tracks = tracks_of(db, found) if motive is not None else {}
    cameras = camera_names(db, [r.device_id for r in found])
    mapped = [
        {
            "id": r.id,
            "agent": r.agent_ref,
            "camera": cameras[r.device_id],
            "started": when(lang, r.started_at),
            "points": tracks[r.id].simplified(TRACK_POINTS_ON_LIST) if r.id in tracks else [],
        }
        for r in found
    ]
    place_motives = [(m.value, label(lang, "motive", m.value)) for m in sorted(place_motives_for(who.role))]
    return page(
        request,
        "recordings.html",
        who=who,
        recordings=found,
        held=held,
        form=form,
        errors=errors,
        searched=any(form.values()),
        area=[list(p) for p in polygon] if polygon else None,
        mapped=mapped,
        choices=_choices(db, who),
        can_hold=allows(who.role, Permission.RECORDINGS_HOLD),
        camera_names=cameras,
        place_motives=place_motives,
        places_shown=motive is not None,
        procedures=[p.value for p in holds.ProcedureType],
    )


def _recording_page(
    request: Request, who: Principal, p: Platform, db: Session, recording_id: str, status: int = 200, **extra
) -> HTMLResponse:
    try:
        rec = catalogue.get_visible(p, db, who.user, recording_id)
    except catalogue.NotFound:
        return not_found(request, who)
    lang = lang_of(request)
    motives = [(m.value, label(lang, "motive", m.value)) for m in sorted(motives_for(who.role))]
    # The place (R241-10) is shown with the content, once a consultation is opened with a motive (journaled).
    grant = extra.pop("grant", None)
    track = catalogue.track_under_grant(db, who.user, rec, grant) if grant else Track()
    step = max(1, len(track.points) // TRACK_POINTS_ON_PAGE + (len(track.points) % TRACK_POINTS_ON_PAGE > 0))
    lost = lost_segments(rec)  # lost at the camera: a gap the player skips, said on the page
    play = {
        "recording": rec.id,
        "start": rec.started_at.timestamp(),
        "segments": [
            {"index": s.index, "start": s.started_at.timestamp(), "duration": s.duration_s, "lost": not s.complete}
            for s in rec.segments
        ],
        "track": [[t, lat, lon] for t, (lat, lon) in list(zip(track.times, track.points))[::step]],
    }
    from temoin.vault.limitation import active_limitations
    from temoin.vault.models import RecordingNote

    notes = list(
        db.scalars(
            select(RecordingNote)
            .where(RecordingNote.recording_id == rec.id)
            .order_by(RecordingNote.written_at, RecordingNote.id)
        )
    )
    extra.setdefault("limits", active_limitations(db, [rec.id]))
    from temoin.axis.vault import media_notes

    return page(
        request,
        "recording.html",
        status=status,
        who=who,
        rec=rec,
        motives=motives,
        play=play,
        notes=notes,
        lost=lost,
        camera_name=camera_names(db, [rec.device_id])[rec.device_id],
        integrity=integrity_of(p, db, rec),
        axis_media=media_notes(rec),
        holds=holds.holds_of(db, rec.id),
        categories=sorted(set(CATEGORIES) | set(rec.categories or [])),
        procedures=[p.value for p in holds.ProcedureType],
        can_view=allows(who.role, Permission.RECORDINGS_VIEW),
        can_tag=allows(who.role, Permission.RECORDINGS_TAG),
        can_hold=allows(who.role, Permission.RECORDINGS_HOLD),
        can_extract=allows(who.role, Permission.RECORDINGS_EXTRACT),
        **extra,
    )


def not_found(request: Request, who: Principal) -> HTMLResponse:
    lang = lang_of(request)
    return page(
        request,
        "error.html",
        status=404,
        who=who,
        title=gettext(lang, "Not found"),
        error=gettext(lang, "No recording by that name that you may see."),
    )


@pages.get("/recordings/{recording_id}")
def recording(
    recording_id: str,
    request: Request,
    who: Principal = Depends(PageRequire(Permission.RECORDINGS_LIST)),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> HTMLResponse:
    return _recording_page(request, who, p, db, recording_id)


@pages.post("/recordings/{recording_id}/consult")
def consult(
    recording_id: str,
    request: Request,
    motive_code: str = Form(""),
    motive_text: str = Form(""),
    who: Principal = Depends(PageRequire(Permission.RECORDINGS_VIEW)),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> HTMLResponse:
    lang = lang_of(request)

    def refused(status: int, error: str) -> HTMLResponse:  # the recording's page again, the refusal said in words
        return _recording_page(
            request,
            who,
            p,
            db,
            recording_id,
            status=status,
            error=error,
            motive_code=motive_code,
            motive_text=motive_text,
        )

    try:  # not a mapping: the refusal said in the visitor's language
        motive = Motive(code=motive_code, text=motive_text)
        grant = catalogue.open_consultation(p, db, who.user, recording_id, motive)
    except ValidationError:
        return refused(422, gettext(lang, "Choose a motive from the list and give a few words of detail."))
    except catalogue.Limited:
        return refused(
            403,
            gettext(
                lang,
                "This recording is frozen by a limitation request (loi 78-17 art. "
                "107): it is only kept, neither consulted nor extracted, until the "
                "limitation is lifted.",
            ),
        )
    except catalogue.RedactedOnly:
        return refused(
            403,
            gettext(
                lang,
                "For training only anonymised pictures and sound may be shown "
                "(R241-13): the original is not displayed. Make a training "
                "extraction (recipient: trainer).",
            ),
        )
    except catalogue.Forbidden:  # the role may view content (guard above), so the motive is not open to it
        return refused(403, gettext(lang, "This motive is not open to your role."))
    except catalogue.NotFound:
        return not_found(request, who)
    rec = catalogue.get_visible(p, db, who.user, recording_id)
    lost = {x.index for x in lost_segments(rec)}
    from temoin.axis.vault import is_axis

    play = "&play=1" if is_axis(rec) else ""  # an Axis camera may have encrypted its clips for the vault
    urls = [
        None if s.index in lost else f"/api/v1/recordings/{rec.id}/segments/{s.index}?grant={grant}{play}"
        for s in rec.segments
    ]  # by segment index; a lost one has none
    return _recording_page(request, who, p, db, recording_id, segment_urls=urls, grant=grant)
