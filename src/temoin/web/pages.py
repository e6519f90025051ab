"""Web pages: sign-in with TOTP, the review of recordings (search on a map, playback with the GPS track, tags,
holds, extraction), the journal for the auditor."""

from __future__ import annotations

import re
from datetime import datetime
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.errors import Forbidden, Unauthenticated
from temoin.evidence.manifest import Trigger
from temoin.identity import service
from temoin.identity.devices import camera_names
from temoin.identity.models import Tenant
from temoin.identity.secrets import totp_uri
from temoin.journal.service import parse_body
from temoin.journal.verify import verify_all
from temoin.law.access import Motive, Permission, allows, motives_for, place_motives_for
from temoin.law.legal_time import PARIS
from temoin.platform import Platform
from temoin.vault import catalogue, holds
from temoin.vault.integrity import integrity_of, lost_segments
from temoin.vault.models import Hold
from temoin.vault.tracks import Track, parse_area, tracks_of
from temoin.web import problems
from temoin.web.deps import Guard, Principal, csrf_sent, current_principal, get_db, get_platform
from temoin.web.i18n import LANGS, gettext, label, lang_of, when
from temoin.web.routes.session import pages as account_pages, remember_device, second_factor, sign_in, sign_out
from temoin.web.templating import page

router = APIRouter(include_in_schema=False)
router.include_router(account_pages)  # /account: password, API tokens


class SignInRequired(Unauthenticated):
    """A page asked anonymously: the app sends the visitor to the sign-in page."""


class PasswordChangeRequired(Forbidden):
    """A page asked before the user chose their own password (created or reset by someone else)."""


class PageRequire(Guard):
    """Like Require, for pages: an anonymous visitor is sent to the sign-in page."""

    def __call__(
        self,
        request: Request,
        db: Session = Depends(get_db),
        csrf: str | None = Depends(csrf_sent),
    ) -> Principal:
        try:
            principal = current_principal(request, db, csrf)
        except HTTPException as exc:
            if exc.status_code == 401:
                raise SignInRequired() from None
            if exc.status_code == 403 and _must_change_password(request, db):
                raise PasswordChangeRequired() from None
            raise
        return self.check(principal)


def _must_change_password(request: Request, db: Session) -> bool:
    cookie = request.cookies.get(service.SESSION_COOKIE)
    found = service.session_for(db, cookie) if cookie else None
    return found is not None and found[0].second_factor_ok and found[1].must_change_password


def home_for(who: Principal) -> str:
    if allows(who.role, Permission.RECORDINGS_LIST):
        return "/recordings"
    if allows(who.role, Permission.JOURNAL_READ):
        return "/journal"
    if allows(who.role, Permission.LIVE_VIEW):
        return "/live"  # the CSU operator: the live dashboard (alerts, feeds, acknowledgement)
    return "/"  # no page for this role yet: a signed-in home with the header (sign-out) and the API docs


@router.get("/")
def root(request: Request, db: Session = Depends(get_db)) -> Response:
    try:
        who = current_principal(request, db, None)
    except HTTPException:
        return RedirectResponse("/login", 303)
    home = home_for(who)
    if home == "/":
        return page(request, "home.html", who=who)
    return RedirectResponse(home, 303)


@router.get("/lang/{code}")
def set_lang(code: str, request: Request) -> Response:
    back = request.headers.get("referer") or "/"
    response = RedirectResponse(back if back.startswith(str(request.base_url)) else "/", 303)
    if code in LANGS:
        response.set_cookie("lang", code, samesite="lax", max_age=365 * 86400)
    return response


_BACK_TO = re.compile(r"/[A-Za-z0-9_\-/]*")  # where a page sends one to sign in again: a path of this site only


def _back_to(next_: str) -> str:
    return next_ if _BACK_TO.fullmatch(next_) and not next_.startswith("//") else ""


def _totp_url(next_: str) -> str:
    return f"/login/totp?{urlencode({'next': next_})}" if next_ else "/login/totp"


@router.get("/login")
def login_form(request: Request, next_: str = Query("", alias="next")) -> HTMLResponse:
    return page(request, "login.html", next=_back_to(next_))


@router.post("/login")
def login(
    request: Request,
    username: str = Form(max_length=64),
    password: str = Form(max_length=256),
    next_: str = Form("", alias="next", max_length=200),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    next_ = _back_to(next_)
    response = RedirectResponse(_totp_url(next_), 303)
    try:
        sign_in(p, db, request, response, username, password)
    except service.IdentityError as exc:  # not a mapping: the form again, in the visitor's language
        lang = lang_of(request)
        if isinstance(exc, service.Throttled):
            error = gettext(lang, "Too many failed sign-ins: try again in {n} s.").format(n=exc.retry_after)
        else:
            error = gettext(lang, "Unknown user or wrong password.")
        return page(request, "login.html", status=problems.status_of(exc)[0], error=error, next=next_)
    return response


def totp_qr_svg(uri: str) -> Markup:
    """The otpauth URI as a QR code in inline SVG (paths only: no script, no style, allowed by the CSP)."""
    import segno

    svg = segno.make(uri, error="m").svg_inline(scale=5, border=4, dark="#000", light="#fff", omitsize=True)
    return Markup(svg)  # noqa: S704 - segno's SVG paths, made here from our own URI


def grouped(secret: str) -> str:
    """The secret by groups of 4 characters, easier to type into an authenticator app by hand."""
    return " ".join(secret[i : i + 4] for i in range(0, len(secret), 4))


def _enrolment(p: Platform, db: Session, request: Request) -> dict | None:
    """The authenticator to enrol, shown at the second step of a first sign-in only: the password was set by
    someone else (created or reset) and no code of this secret was ever accepted; from the first code on it is
    never shown again."""
    cookie = request.cookies.get(service.SESSION_COOKIE)
    found = service.session_for(db, cookie) if cookie else None
    if found is None:
        return None
    session, user = found
    if (
        session.second_factor_ok
        or not user.must_change_password
        or user.totp_last_step != 0
        or user.totp_secret is None
    ):
        return None
    secret = service.totp_secret_of(p, user)
    return {"qr": totp_qr_svg(totp_uri(secret, user.username)), "secret": grouped(secret)}


@router.get("/login/totp")
def totp_form(
    request: Request,
    next_: str = Query("", alias="next"),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> HTMLResponse:
    return page(request, "totp.html", next=_back_to(next_), enrolment=_enrolment(p, db, request))


@router.post("/login/totp")
def totp(
    request: Request,
    code: str = Form(max_length=12),
    next_: str = Form("", alias="next", max_length=200),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    next_ = _back_to(next_)
    cookie = request.cookies.get(service.SESSION_COOKIE)
    signed_in = cookie is not None and service.session_for(db, cookie) is not None
    try:
        user, session = second_factor(p, db, request, code)
    except (HTTPException, service.IdentityError) as exc:  # not a mapping: the form again, in the visitor's language
        lang = lang_of(request)
        return page(
            request,
            "totp.html",
            status=exc.status_code if isinstance(exc, HTTPException) else problems.status_of(exc)[0],
            error=gettext(lang, "Wrong or already used code: type the current code of your authenticator.")
            if signed_in
            else gettext(lang, "Sign in with your password first."),
            next=next_,
            enrolment=_enrolment(p, db, request),
        )
    home = (
        "/account"
        if user.must_change_password
        else next_ or home_for(Principal(user, db.get_one(Tenant, user.tenant_id), session))
    )
    response = RedirectResponse(home, 303)
    remember_device(p, request, response, user)
    return response


@router.post("/logout")
def logout(
    request: Request,
    who: Principal = Depends(current_principal),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    sign_out(p, db, request, who)
    response = RedirectResponse("/login", 303)
    response.delete_cookie(service.SESSION_COOKIE, path="/")
    return response


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


@router.get("/recordings")
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


@router.get("/recordings/{recording_id}")
def recording(
    recording_id: str,
    request: Request,
    who: Principal = Depends(PageRequire(Permission.RECORDINGS_LIST)),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> HTMLResponse:
    return _recording_page(request, who, p, db, recording_id)


@router.post("/recordings/{recording_id}/consult")
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
    try:  # not a mapping: the recording's page again, the refusal said in the visitor's language
        motive = Motive(code=motive_code, text=motive_text)
        grant = catalogue.open_consultation(p, db, who.user, recording_id, motive)
    except ValidationError:
        return _recording_page(
            request,
            who,
            p,
            db,
            recording_id,
            status=422,
            error=gettext(lang, "Choose a motive from the list and give a few words of detail."),
            motive_code=motive_code,
            motive_text=motive_text,
        )
    except catalogue.Limited:
        return _recording_page(
            request,
            who,
            p,
            db,
            recording_id,
            status=403,
            error=gettext(
                lang,
                "This recording is frozen by a limitation request (loi 78-17 art. "
                "107): it is only kept, neither consulted nor extracted, until the "
                "limitation is lifted.",
            ),
            motive_code=motive_code,
            motive_text=motive_text,
        )
    except catalogue.RedactedOnly:
        return _recording_page(
            request,
            who,
            p,
            db,
            recording_id,
            status=403,
            error=gettext(
                lang,
                "For training only anonymised pictures and sound may be shown "
                "(R241-13): the original is not displayed. Make a training "
                "extraction (recipient: trainer).",
            ),
            motive_code=motive_code,
            motive_text=motive_text,
        )
    except catalogue.Forbidden:  # the role may view content (guard above), so the motive is not open to it
        return _recording_page(
            request,
            who,
            p,
            db,
            recording_id,
            status=403,
            error=gettext(lang, "This motive is not open to your role."),
            motive_code=motive_code,
            motive_text=motive_text,
        )
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


JOURNAL_PAGE = 100


@router.get("/journal")
def journal(
    request: Request,
    verify: bool = False,
    start: str = "",
    end: str = "",
    event: str = "",
    actor: str = "",
    recording: str = "",
    before: int | None = Query(None, ge=1),
    who: Principal = Depends(PageRequire(Permission.JOURNAL_READ)),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> HTMLResponse:
    from datetime import date, time, timedelta

    from temoin.identity.models import User
    from temoin.vault import journal_reading as reading

    lang = lang_of(request)
    form = {"start": start, "end": end, "event": event, "actor": actor.strip(), "recording": recording.strip()}
    errors = []
    try:  # whole days in Paris time, both ends included
        since = datetime.combine(date.fromisoformat(start), time(), PARIS) if start.strip() else None
        until = datetime.combine(date.fromisoformat(end) + timedelta(days=1), time(), PARIS) if end.strip() else None
    except ValueError:
        since = until = None
        errors.append(gettext(lang, "Unreadable date: use the picker (day/month/year)."))
    where = reading.JournalFilter(
        since=since, until=until, event=event or None, actor=form["actor"] or None, recording=form["recording"] or None
    )
    found = [] if errors else reading.entries_for(db, who.user, who.tenant, JOURNAL_PAGE + 1, before, where)
    entries = [(e, parse_body(e.body)) for e in found[:JOURNAL_PAGE]]
    # Keyset paging: the next page starts below the last sequence shown; the filters stay in the URL.
    query = {k: v for k, v in form.items() if v}
    older = f"/journal?{urlencode({**query, 'before': entries[-1][0].seq})}" if len(found) > JOURNAL_PAGE else None
    newest = f"/journal?{urlencode(query)}" if before is not None else None
    can_verify = reading.may_verify(who.user)  # the whole chain: EPCI-wide users only
    result = (
        verify_all(db, p.journal.sink, p.keyring.trusted, chains=[who.tenant.slug]) if verify and can_verify else None
    )
    actors = sorted(db.scalars(select(User.username).where(User.tenant_id == who.tenant.id)))
    cameras = camera_names(db, {str(c) for _, body in entries for c in body.get("cameras") or []})
    return page(
        request,
        "journal.html",
        who=who,
        entries=entries,
        result=result,
        can_verify=can_verify,
        form=form,
        errors=errors,
        events=reading.event_kinds(db, who.tenant),
        actors=actors,
        older=older,
        newest=newest,
        filtered=bool(query),
        camera_names=cameras,
    )
