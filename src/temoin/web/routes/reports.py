"""Reports: the annual report to the prefect, the public information notice, monthly statistics."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.evidence.keys import KeySet
from temoin.law.access import Permission, allows
from temoin.reports import annual, monthly, notice, paperwork
from temoin.web import problems
from temoin.web.deps import Principal, get_db, require
from temoin.web.i18n import gettext, lang_of
from temoin.web.pages import PageRequire
from temoin.web.templating import page

router = APIRouter(prefix="/api/v1/reports", tags=["reports"])
pages = APIRouter(include_in_schema=False)

YEAR = Path(ge=2000, le=2100)
MONTH = Path(pattern=r"^(19|2\d)\d{2}-(0[1-9]|1[0-2])$", description="YYYY-MM (years 1900-2999)")
COMMUNE = Query(
    None,
    max_length=16,
    description="in an EPCI: one commune's figures (INSEE code); a user limited "
    "to some communes always gets theirs only",
)


def _scope(who: Principal, commune: str | None) -> annual.Communes:
    return annual.scope_for(who.tenant, who.user, commune)


def _suffix(communes: annual.Communes) -> str:
    return f"-{'-'.join(communes)}" if communes else ""


def _inputs(controller: str | None, dpo_contact: str | None, rights_address: str | None) -> notice.NoticeInputs:
    return notice.NoticeInputs(
        controller=(controller or "").strip()[:300] or None,
        dpo_contact=(dpo_contact or "").strip()[:300] or None,
        rights_address=(rights_address or "").strip()[:500] or None,
    )


def _platform_keys(request: Request) -> KeySet:
    return request.app.state.platform.keyring.trusted


def _file(data: bytes | str, media_type: str, filename: str) -> Response:
    return Response(
        data,
        media_type=media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"},
    )


@router.get("/annual/{year}.pdf", summary="The annual report as PDF, to sign and send to the prefect")
def annual_as_pdf(
    year: int = YEAR,
    commune: str | None = COMMUNE,
    who: Principal = require(Permission.REPORTS_READ),
    db: Session = Depends(get_db),
    keys: KeySet = Depends(_platform_keys),
) -> Response:
    communes = _scope(who, commune)
    report = annual.annual_report(db, who.tenant, year, keys, communes=communes)
    from temoin.reports.pdf import annual_pdf  # fpdf2 loaded by the first PDF, not at start

    return _file(
        annual_pdf(report), "application/pdf", f"rapport-annuel-{who.tenant.slug}{_suffix(communes)}-{year}.pdf"
    )


@router.get("/annual/{year}.csv", summary="The annual report as CSV (section, item, value; ISO dates, dot decimals)")
def annual_as_csv(
    year: int = YEAR,
    commune: str | None = COMMUNE,
    who: Principal = require(Permission.REPORTS_READ),
    db: Session = Depends(get_db),
    keys: KeySet = Depends(_platform_keys),
) -> Response:
    communes = _scope(who, commune)
    report = annual.annual_report(db, who.tenant, year, keys, communes=communes)
    return _file(
        annual.to_csv(annual.report_rows(report, csv=True)),
        "text/csv; charset=utf-8",
        f"rapport-annuel-{who.tenant.slug}{_suffix(communes)}-{year}.csv",
    )


@router.get("/annual/{year}", summary="The annual report to the prefect (R241-17), as figures")
def annual_json(
    year: int = YEAR,
    commune: str | None = COMMUNE,
    who: Principal = require(Permission.REPORTS_READ),
    db: Session = Depends(get_db),
    keys: KeySet = Depends(_platform_keys),
) -> dict:
    communes = _scope(who, commune)
    report = annual.annual_report(db, who.tenant, year, keys, communes=communes)
    return {
        "tenant": report.tenant_slug,
        "year": year,
        "communes": list(communes) if communes else None,
        "authorised_cameras": report.authorised_cameras,
        "cameras_in_service": report.cameras_in_service,
        "authorised_agents": report.authorised_agents,
        "designated_agents": report.designated_agents,
        "figures": report.figures.__dict__ | {"period": None},
        "territory": {
            "territory_set": report.territory.territory_set,
            "unchecked": report.territory.unchecked,
            "outside": [o.__dict__ for o in report.territory.outside],
        },
    }


@router.get("/monthly/{month}.csv", summary="Monthly statistics as CSV")
def monthly_as_csv(
    month: str = MONTH,
    commune: str | None = COMMUNE,
    who: Principal = require(Permission.REPORTS_READ),
    db: Session = Depends(get_db),
) -> Response:
    communes = _scope(who, commune)
    year, m = monthly.parse_month(month)
    f = monthly.monthly(db, who.tenant, year, m, communes=communes)
    return _file(
        monthly.monthly_csv(who.tenant, f, communes),
        "text/csv; charset=utf-8",
        f"statistiques-{who.tenant.slug}{_suffix(communes)}-{month}.csv",
    )


@router.get("/monthly/{month}", summary="Monthly statistics")
def monthly_json(
    month: str = MONTH,
    commune: str | None = COMMUNE,
    who: Principal = require(Permission.REPORTS_READ),
    db: Session = Depends(get_db),
) -> dict:
    communes = _scope(who, commune)
    year, m = monthly.parse_month(month)
    return monthly.summary(monthly.monthly(db, who.tenant, year, m, communes=communes)) | {
        "communes": list(communes) if communes else None
    }


@router.get("/notice.pdf", summary="The public information notice (R241-15) as PDF")
def notice_as_pdf(
    controller: str | None = Query(None, max_length=300, description="the controller, e.g. 'Le maire de X'"),
    dpo_contact: str | None = Query(None, max_length=300),
    rights_address: str | None = Query(None, max_length=500, description="where people write to exercise their rights"),
    who: Principal = require(Permission.REPORTS_READ),
) -> Response:
    return _file(
        notice.notice_pdf(who.tenant, _inputs(controller, dpo_contact, rights_address)),
        "application/pdf",
        f"information-du-public-{who.tenant.slug}.pdf",
    )


@router.get("/notice", summary="The public information notice (R241-15) as sections")
def notice_json(
    controller: str | None = Query(None, max_length=300),
    dpo_contact: str | None = Query(None, max_length=300),
    rights_address: str | None = Query(None, max_length=500),
    who: Principal = require(Permission.REPORTS_READ),
) -> dict:
    title, sections = notice.notice_sections(who.tenant, _inputs(controller, dpo_contact, rights_address))
    return {"title": title, "sections": [{"heading": h, "text": t} for h, t in sections]}


@router.get("/processing-record.pdf", summary="The record of processing activities (loi 78-17 art. 100) as PDF")
def processing_record_as_pdf(
    who: Principal = require(Permission.PAPERWORK_READ), db: Session = Depends(get_db)
) -> Response:
    return _file(
        paperwork.processing_record_pdf(db, who.tenant),
        "application/pdf",
        f"registre-des-traitements-{who.tenant.slug}.pdf",
    )


@router.get("/processing-record", summary="The record of processing activities as sections")
def processing_record_json(who: Principal = require(Permission.PAPERWORK_READ), db: Session = Depends(get_db)) -> dict:
    paper = paperwork.processing_record(db, who.tenant)
    return {"title": paper.title, "sections": [{"heading": h, "text": t} for h, t in paper.sections]}


@router.get("/aipd.pdf", summary="A draft of the data protection impact assessment (AIPD) as PDF")
def aipd_as_pdf(who: Principal = require(Permission.PAPERWORK_READ), db: Session = Depends(get_db)) -> Response:
    return _file(paperwork.aipd_pdf(db, who.tenant), "application/pdf", f"aipd-{who.tenant.slug}.pdf")


@router.get("/aipd", summary="A draft of the data protection impact assessment (AIPD) as sections")
def aipd_json(who: Principal = require(Permission.PAPERWORK_READ), db: Session = Depends(get_db)) -> dict:
    paper = paperwork.aipd(db, who.tenant)
    return {"title": paper.title, "sections": [{"heading": h, "text": t} for h, t in paper.sections]}


# --- pages ----------------------------------------------------------------------------------------------


@pages.get("/reports")
def reports_page(
    request: Request,
    year: int | None = Query(None, ge=2000, le=2100),
    month: str | None = Query(None, pattern=r"^\d{4}-(0[1-9]|1[0-2])$"),
    controller: str | None = Query(None, max_length=300),
    dpo_contact: str | None = Query(None, max_length=300),
    rights_address: str | None = Query(None, max_length=500),
    commune: str | None = COMMUNE,
    who: Principal = Depends(PageRequire(Permission.REPORTS_READ)),
    db: Session = Depends(get_db),
    keys: KeySet = Depends(_platform_keys),
) -> HTMLResponse:
    today = utcnow().astimezone(annual.PARIS).date()
    year = year or today.year
    month = month or f"{today.year:04d}-{today.month:02d}"
    try:
        communes = annual.scope_for(who.tenant, who.user, commune)
    except annual.ReportScopeError as exc:  # not a mapping: the error page of the reports
        return page(
            request,
            "error.html",
            who=who,
            status=problems.status_of(exc)[0],
            title=gettext(lang_of(request), "Reports"),
            error=str(exc),
        )
    report = annual.annual_report(db, who.tenant, year, keys, communes=communes)
    y, m = monthly.parse_month(month)
    month_rows = [
        *annual.scope_rows(communes),
        *annual.period_rows(monthly.monthly(db, who.tenant, y, m, communes=communes)),
    ]
    inputs = _inputs(controller, dpo_contact, rights_address)
    title, sections = notice.notice_sections(who.tenant, inputs)
    return page(
        request,
        "reports.html",
        who=who,
        year=year,
        month=month,
        annual_rows=annual.report_rows(report),
        month_rows=month_rows,
        notice_title=title,
        notice_sections=sections,
        inputs=inputs,
        commune=commune,
        q=f"?commune={communes[0]}" if communes and len(communes) == 1 else "",
        choices=[c for c in (who.tenant.communes or []) if who.user.communes is None or c in who.user.communes]
        if who.tenant.kind == "epci"
        else [],
        paperwork=allows(who.role, Permission.PAPERWORK_READ),
    )
