"""Monthly statistics: recordings, hours, live sessions, extractions, rights requests, deletions on time."""

from __future__ import annotations

import re

from sqlalchemy.orm import Session

from temoin.identity.models import Tenant
from temoin.reports.annual import Communes, Figures, Period, figures, period_rows, scope_rows, to_csv

MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def parse_month(text: str) -> tuple[int, int]:
    found = MONTH.match(text.strip())
    if not found:
        raise ValueError(f"{text!r} is not a month: write it YYYY-MM (e.g. 2026-03)")
    return int(found.group(1)), int(found.group(2))


def monthly(db: Session, tenant: Tenant, year: int, month: int, *, communes: Communes = None) -> Figures:
    """`communes` (from `annual.scope_for`): the statistics of some communes of an EPCI."""
    return figures(db, tenant, Period.month(year, month), communes=communes)


def summary(f: Figures) -> dict:
    """The headline figures, as the API and the CLI show them."""
    return {
        "month": f.period.label,
        "recordings": f.recordings,
        "hours": f.hours,
        "seconds": f.seconds,
        "cameras_used": f.cameras_used,
        "live_sessions": f.live_sessions,
        "consultations": f.consultations,
        "extractions": f.extractions,
        "rights_requests": f.rights_requests,
        "deletions": f.deletions,
        "deletions_on_time": f.deletions_on_time,
        "deletions_late": f.deletions_late,
        "deletions_early": f.deletions_early,
        "deletions_overdue_pending": f.deletions_overdue_pending,
    }


def monthly_csv(tenant: Tenant, f: Figures, communes: Communes = None) -> str:
    return to_csv(
        [
            ("Service", "Commune ou EPCI", tenant.name),
            *scope_rows(communes),
            ("Service", "Mois", f.period.label),
            *period_rows(f, csv=True),
        ]
    )
