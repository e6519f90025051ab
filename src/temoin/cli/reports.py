"""`temoin report`: the annual report to the prefect, monthly statistics, the public notice, the record of
processing and the impact assessment draft."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from temoin.cli.context import EXIT_USAGE, console, err, fail, open_platform

report_app = typer.Typer(
    help="Reports: annual report (R241-17), monthly statistics, public notice (R241-15), "
    "record of processing, impact assessment (AIPD).",
    no_args_is_help=True,
)


COMMUNE_HELP = "in an EPCI: the figures of one commune (INSEE code)"


def _tenant(p, db, slug: str):
    """The tenant a report is about; an unknown one is a command that cannot run as given (exit 2)."""
    try:
        return p.tenant(db, slug)
    except LookupError as exc:
        raise fail(exc.args[0], EXIT_USAGE) from None


def _scope(t, commune: str | None):
    from temoin.reports import annual

    try:
        return annual.scope_for(t, None, commune)
    except annual.ReportScopeError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _table(rows: list[tuple[str, str, str]], title: str) -> Table:
    table = Table("section", "item", "value", title=title, title_justify="left")
    for section, item, value in rows:
        table.add_row(section, item, value)
    return table


@report_app.command("annual")
def annual_cmd(
    tenant: str,
    year: int = typer.Argument(..., min=2000, max=2100),
    pdf: Path | None = typer.Option(None, "--pdf", help="write the PDF here"),
    csv: Path | None = typer.Option(None, "--csv", help="write the CSV here"),
    commune: str | None = typer.Option(None, "--commune", help=COMMUNE_HELP),
) -> None:
    """The annual report of TENANT for YEAR; printed, and written as PDF and/or CSV."""
    from temoin.reports import annual
    from temoin.reports.pdf import annual_pdf

    p = open_platform()
    with p.session() as db, console.status(f"computing the {year} report…"):
        t = _tenant(p, db, tenant)
        communes = _scope(t, commune)
        report = annual.annual_report(db, t, year, p.keyring.trusted, communes=communes)
        rows = annual.report_rows(report)
        if pdf:
            pdf.write_bytes(annual_pdf(report))
        if csv:
            csv.write_text(annual.to_csv(annual.report_rows(report, csv=True)), encoding="utf-8")
    console.print(_table(rows, f"{t.name} — rapport annuel {year}"))
    for path in (pdf, csv):
        if path:
            console.print(f"written: {path}")


@report_app.command("monthly")
def monthly_cmd(
    tenant: str,
    month: str = typer.Argument(..., help="YYYY-MM"),
    csv: Path | None = typer.Option(None, "--csv", help="write the CSV here"),
    commune: str | None = typer.Option(None, "--commune", help=COMMUNE_HELP),
) -> None:
    """Monthly statistics of TENANT for MONTH (YYYY-MM)."""
    from temoin.reports import annual, monthly

    try:
        year, m = monthly.parse_month(month)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    p = open_platform()
    with p.session() as db:
        t = _tenant(p, db, tenant)
        communes = _scope(t, commune)
        f = monthly.monthly(db, t, year, m, communes=communes)
        if csv:
            csv.write_text(monthly.monthly_csv(t, f, communes), encoding="utf-8")
    console.print(_table([*annual.scope_rows(communes), *annual.period_rows(f)], f"{t.name} — {month}"))


@report_app.command("notice")
def notice_cmd(
    tenant: str,
    pdf: Path = typer.Option(..., "--pdf", help="write the PDF here"),
    controller: str | None = None,
    dpo_contact: str | None = None,
    rights_address: str | None = None,
) -> None:
    """The public information notice (R241-15) of TENANT as PDF."""
    from temoin.reports.notice import NoticeInputs, notice_pdf

    p = open_platform()
    with p.session() as db:
        t = _tenant(p, db, tenant)
        pdf.write_bytes(notice_pdf(t, NoticeInputs(controller, dpo_contact, rights_address)))
    console.print(f"written: {pdf}")


def _paper(tenant: str, out: Path, which: str) -> None:
    from temoin.reports import paperwork

    p = open_platform()
    with p.session() as db:
        t = _tenant(p, db, tenant)
        paper = paperwork.processing_record(db, t) if which == "record" else paperwork.aipd(db, t)
        data = paperwork.to_pdf(paper)
    try:
        out.write_bytes(data)
    except OSError as exc:
        err.print(f"[red]cannot write {out}: {exc.strerror or exc}[/red]")
        raise typer.Exit(1) from None
    console.print(f"written: {out} ({paper.title})")


@report_app.command("processing-record")
def processing_record_cmd(tenant: str, out: Path = typer.Option(..., "--out", help="write the PDF here")) -> None:
    """The record of processing activities of TENANT (loi 78-17 art. 100, RGPD art. 30) as PDF, in French."""
    _paper(tenant, out, "record")


@report_app.command("aipd")
def aipd_cmd(tenant: str, out: Path = typer.Option(..., "--out", help="write the PDF here")) -> None:
    """A draft of the impact assessment (AIPD, loi 78-17 art. 90) of TENANT as PDF, to complete and sign."""
    _paper(tenant, out, "aipd")
