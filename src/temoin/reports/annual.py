"""The annual report from the mayor to the prefect (CSI R241-17), and the figures shared with the monthly
statistics: cameras, agents who wore one, recordings and hours, procedures that needed an extraction or a hold,
live sessions, citizens' requests, deletions on time.

Aggregates are computed in SQL; the journal rows of the period are read once, and only the consultations
and extractions among them are parsed.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Float, and_, case, cast, func, or_, select
from sqlalchemy.orm import QueryableAttribute, Session
from sqlalchemy.sql import ColumnElement

from temoin import errors
from temoin.db import utcnow
from temoin.evidence.keys import KeySet
from temoin.extraction.models import Extraction
from temoin.identity.devices import camera_names
from temoin.identity.models import Device, ShiftAssignment, Tenant, User
from temoin.journal.models import JournalEntry
from temoin.law.access import Role
from temoin.law.legal_time import PARIS
from temoin.law.profiles import add_months, get_profile
from temoin.live.models import LiveSession
from temoin.rights.models import RequestStatus, RightsRequest
from temoin.texts import label, number, when
from temoin.vault.models import Hold, Recording, RecordingState

# The retention sweep runs hourly: a deletion within a day of the deadline is on time.
ON_TIME_GRACE = timedelta(days=1)
PROCEDURE_TYPES = ("judicial", "administrative", "disciplinary")
# Recordings that happened (kept or deleted since); an upload that failed verification is not one.
MADE = (RecordingState.STORED.value, RecordingState.DELETED.value)


class ReportScopeError(errors.TemoinError, ValueError):
    """Figures asked for a commune the tenant does not serve, or that the user may not read."""


class CommuneNotServed(errors.InvalidInput, ReportScopeError):
    pass


class CommuneNotYours(errors.Forbidden, ReportScopeError):
    """Also for a commune not served, asked by a user limited to some communes (deny by default)."""


Communes = tuple[str, ...] | None  # None: the whole tenant


def scope_for(tenant: Tenant, user: User | None, commune: str | None) -> Communes:
    """Which communes' figures a report covers. In an EPCI, `commune` (INSEE code) narrows it to one commune; a
    user limited to some communes gets theirs only (deny by default). `user` None: the server's operator at the
    command line (the whole tenant, or `commune`)."""
    commune = (commune or "").strip() or None
    limited = None if user is None or user.communes is None else tuple(sorted(user.communes))
    if commune is None:
        return limited
    served = [str(c) for c in tenant.communes or []] if tenant.kind == "epci" else []
    if commune not in served:
        refused = CommuneNotServed if limited is None else CommuneNotYours
        raise refused(
            f"{tenant.name} serves {'the communes ' + ', '.join(served) if served else 'one commune'}"
            f", not {commune}: give one of its communes' INSEE codes, or none for the whole "
            "service"
        )
    if limited is not None and commune not in limited:
        raise CommuneNotYours(f"you read the figures of {', '.join(limited)} only, not {commune}")
    return (commune,)


def _of(communes: Communes) -> ColumnElement:
    """Recordings of these communes (every recording when None)."""
    return Recording.commune.in_(communes) if communes is not None else Recording.id.is_not(None)


@dataclass(frozen=True)
class Period:
    start: datetime  # UTC, inclusive
    end: datetime  # UTC, exclusive
    label: str
    first_day: date
    last_day: date

    @classmethod
    def local(cls, first: date, next_first: date, label: str) -> Period:
        start = datetime.combine(first, time(0), tzinfo=PARIS).astimezone(ZoneInfo("UTC"))
        end = datetime.combine(next_first, time(0), tzinfo=PARIS).astimezone(ZoneInfo("UTC"))
        return cls(start, end, label, first, next_first - timedelta(days=1))

    @classmethod
    def year(cls, year: int) -> Period:
        return cls.local(date(year, 1, 1), date(year + 1, 1, 1), str(year))

    @classmethod
    def month(cls, year: int, month: int) -> Period:
        first = date(year, month, 1)
        return cls.local(first, add_months(first, 1), f"{year:04d}-{month:02d}")


@dataclass
class Figures:
    """What happened in a period. The annual report adds the tenant's standing figures."""

    period: Period
    recordings: int = 0
    seconds: float = 0.0
    hours: float = 0.0
    cameras_used: int = 0
    agents_recorded: int = 0
    recordings_by_trigger: dict[str, int] = field(default_factory=dict)
    recordings_by_month: dict[str, int] = field(default_factory=dict)
    consultations: int = 0
    consultations_by_motive: dict[str, int] = field(default_factory=dict)
    extractions: int = 0
    extractions_by_procedure: dict[str, int] = field(default_factory=dict)
    extractions_by_recipient: dict[str, int] = field(default_factory=dict)
    procedures: dict[str, int] = field(default_factory=dict)  # distinct procedures by type
    holds_placed: int = 0
    live_sessions: int = 0
    live_acknowledged: int = 0
    live_viewings: int = 0
    rights_requests: int = 0
    rights_by_kind: dict[str, int] = field(default_factory=dict)
    rights_by_outcome: dict[str, int] = field(default_factory=dict)
    rights_answered_on_time: int = 0
    rights_overdue: int = 0
    deletions: int = 0
    deletions_on_time: int = 0
    deletions_late: int = 0
    deletions_early: int = 0  # citizens' erasure requests
    deletions_overdue_pending: int = 0  # due in the period, not deleted, no hold


@dataclass
class AnnualReport:
    tenant_name: str
    tenant_slug: str
    profile_title: str
    year: int
    generated_at: datetime
    authorised_cameras: int
    cameras_in_service: int
    authorised_agents: int  # agents who wore a camera during the year (shift assignments overlapping it)
    designated_agents: int  # individually designated to consult (R241-12)
    figures: Figures
    territory: TerritoryUse
    # (label, full SHA-256 fingerprint) of the platform keys that could sign during the year: what recipients
    # of extractions pin (`temoin verify --fingerprint`).
    platform_keys: tuple[tuple[str, str], ...] = ()
    communes: Communes = None  # the report of some communes of an EPCI; None: the whole service


@dataclass
class OutsideRecording:
    id: str
    started_at: datetime
    agent: str
    camera: str


@dataclass
class TerritoryUse:
    """Use of the cameras against the authorised territory (R241-8 II) in the year."""

    territory_set: bool  # the tenant has its territory now
    outside: list[OutsideRecording] = field(default_factory=list)  # made (at least partly) outside it
    unchecked: int = 0  # arrived while no territory was set: the place could not be checked


def territory_use(db: Session, tenant: Tenant, period: Period, communes: Communes = None) -> TerritoryUse:
    from temoin.vault.field_checks import Flag

    in_period = and_(
        Recording.tenant_id == tenant.id,
        Recording.started_at >= period.start,
        Recording.started_at < period.end,
        Recording.state.in_(MADE),
        _of(communes),
    )
    use = TerritoryUse(territory_set=bool(tenant.territory))
    rows = db.execute(
        select(Recording.id, Recording.started_at, Recording.agent_ref, Recording.device_id)
        .where(in_period, Recording.outside_territory.is_(True))
        .order_by(Recording.started_at, Recording.id)
    ).all()
    names = camera_names(db, [camera for *_, camera in rows])  # the name people use, not the technical id
    use.outside = [OutsideRecording(rid, started, agent, names[camera]) for rid, started, agent, camera in rows]
    use.unchecked = sum(
        1 for flags in db.scalars(select(Recording.flags).where(in_period)) if Flag.TERRITORY_UNKNOWN in (flags or [])
    )
    return use


_Column = ColumnElement[Any] | QueryableAttribute[Any]  # an expression or a mapped attribute


def _seconds(db: Session, a: _Column, b: _Column) -> ColumnElement:
    if db.get_bind().dialect.name == "sqlite":
        return (func.julianday(b) - func.julianday(a)) * 86400.0
    return func.extract("epoch", b - a)


def _count_by(db: Session, column: _Column, *where: ColumnElement) -> dict[str, int]:
    return {str(k): int(v) for k, v in db.execute(select(column, func.count()).where(*where).group_by(column))}


def figures(db: Session, tenant: Tenant, period: Period, *, months: bool = False, communes: Communes = None) -> Figures:
    """`communes`: only what concerns these communes of an EPCI (their recordings, the journal entries about
    them, the holds and extractions of them, the live sessions started there, their citizens' requests)."""
    f = Figures(period)
    t0, t1 = period.start, period.end
    in_period = and_(
        Recording.tenant_id == tenant.id,
        Recording.started_at >= t0,
        Recording.started_at < t1,
        Recording.state.in_(MADE),
        _of(communes),
    )
    row = db.execute(
        select(
            func.count(),
            func.coalesce(func.sum(cast(_seconds(db, Recording.started_at, Recording.ended_at), Float)), 0.0),
            func.count(func.distinct(Recording.device_id)),
            func.count(func.distinct(Recording.agent_ref)),
        ).where(in_period)
    ).one()
    f.recordings, f.seconds = int(row[0]), round(float(row[1]), 1)
    f.hours = round(f.seconds / 3600.0, 2)
    f.cameras_used, f.agents_recorded = int(row[2]), int(row[3])
    f.recordings_by_trigger = _count_by(db, Recording.trigger, in_period)
    if months:
        first = period.first_day
        while first <= period.last_day:
            m = Period.month(first.year, first.month)
            f.recordings_by_month[m.label] = int(
                db.scalar(
                    select(func.count()).where(
                        Recording.tenant_id == tenant.id,
                        Recording.started_at >= m.start,
                        Recording.started_at < m.end,
                        Recording.state.in_(MADE),
                        _of(communes),
                    )
                )
                or 0
            )
            first = add_months(first, 1)

    live_here = _live_sessions_in(db, tenant, period, communes)
    _journal(db, tenant, period, f, communes, live_here)
    f.procedures = _procedures(db, tenant, period, communes)

    held_here = Hold.recording_id.in_(select(Recording.id).where(Recording.tenant_id == tenant.id, _of(communes)))
    f.holds_placed = int(
        db.scalar(
            select(func.count()).where(
                Hold.tenant_id == tenant.id,
                Hold.placed_at >= t0,
                Hold.placed_at < t1,
                held_here if communes is not None else Hold.id.is_not(None),
            )
        )
        or 0
    )
    live = db.execute(
        select(func.count(), func.count(LiveSession.acknowledged_at)).where(
            LiveSession.tenant_id == tenant.id,
            LiveSession.requested_at >= t0,
            LiveSession.requested_at < t1,
            LiveSession.id.in_(live_here) if live_here is not None else LiveSession.id.is_not(None),
        )
    ).one()
    f.live_sessions, f.live_acknowledged = int(live[0]), int(live[1])

    asked = and_(
        RightsRequest.tenant_id == tenant.id,
        RightsRequest.received_on >= period.first_day,
        RightsRequest.received_on <= period.last_day,
        RightsRequest.commune.in_(communes) if communes is not None else RightsRequest.id.is_not(None),
    )
    f.rights_by_kind = _count_by(db, RightsRequest.kind, asked)
    f.rights_by_outcome = _count_by(db, RightsRequest.status, asked)
    f.rights_requests = sum(f.rights_by_kind.values())
    closed = db.execute(
        select(RightsRequest.closed_at, RightsRequest.deadline).where(asked, RightsRequest.closed_at.is_not(None))
    ).all()
    f.rights_answered_on_time = sum(1 for c, d in closed if c is not None and c.astimezone(PARIS).date() <= d)
    today = utcnow().astimezone(PARIS).date()
    f.rights_overdue = int(
        db.scalar(
            select(func.count()).where(
                asked,
                RightsRequest.status.in_([RequestStatus.RECEIVED.value, RequestStatus.IN_PROGRESS.value]),
                RightsRequest.deadline < today,
            )
        )
        or 0
    )

    deleted = and_(
        Recording.tenant_id == tenant.id, Recording.deleted_at >= t0, Recording.deleted_at < t1, _of(communes)
    )
    early = func.coalesce(Recording.state_reason, "") == "rights_erasure"
    on_time = _seconds(db, Recording.retention_until, Recording.deleted_at) <= ON_TIME_GRACE.total_seconds()
    row = db.execute(
        select(
            func.count(),
            func.sum(case((early, 1), else_=0)),
            func.sum(case((and_(~early, on_time), 1), else_=0)),
        ).where(deleted)
    ).one()
    f.deletions, f.deletions_early, f.deletions_on_time = int(row[0]), int(row[1] or 0), int(row[2] or 0)
    f.deletions_late = f.deletions - f.deletions_early - f.deletions_on_time
    overdue_until = min(t1, utcnow()) - ON_TIME_GRACE
    held = select(Hold.id).where(Hold.recording_id == Recording.id, Hold.lifted_at.is_(None)).exists()
    f.deletions_overdue_pending = int(
        db.scalar(
            select(func.count()).where(
                Recording.tenant_id == tenant.id,
                Recording.state == RecordingState.STORED.value,
                Recording.retention_until >= t0,
                Recording.retention_until < overdue_until,
                ~held,
                _of(communes),
            )
        )
        or 0
    )
    return f


def _live_sessions_in(db: Session, tenant: Tenant, period: Period, communes: Communes) -> set[str] | None:
    """The period's live sessions whose last position lies in these communes (None: every session)."""
    if communes is None:
        return None
    from temoin.geo.communes import commune_at

    here = set()
    for sid, position in db.execute(
        select(LiveSession.id, LiveSession.position).where(
            LiveSession.tenant_id == tenant.id,
            LiveSession.requested_at >= period.start,
            LiveSession.requested_at < period.end,
        )
    ):
        try:
            code = commune_at(tenant.territory, float(position["lat"]), float(position["lon"])) if position else None
        except (KeyError, TypeError, ValueError):
            code = None
        if code in communes:
            here.add(sid)
    return here


def _journal(
    db: Session,
    tenant: Tenant,
    period: Period,
    f: Figures,
    communes: Communes = None,
    live_here: set[str] | None = None,
) -> None:
    """One pass over the period's consultations, communications and holds in the journal. With `communes`, an
    entry counts when it names a recording of them (an extraction of several communes counts in each), a live
    viewing when its session was started there."""
    consulted, extracted, viewed = "recording.consulted", "extraction.created", "live.viewing_started"
    rows = db.execute(
        select(JournalEntry.event, JournalEntry.body).where(
            JournalEntry.tenant_id == tenant.id,
            JournalEntry.at >= period.start,
            JournalEntry.at < period.end,
            JournalEntry.event.in_((consulted, extracted, viewed)),
        )
    ).all()
    motives: Counter[str] = Counter()
    by_procedure: Counter[str] = Counter()
    by_recipient: Counter[str] = Counter()
    of_communes: set[str] = set()
    if communes is not None:
        of_communes = set(db.scalars(select(Recording.id).where(Recording.tenant_id == tenant.id, _of(communes))))
    for event, body in rows:
        if communes is not None:
            entry = orjson.loads(body)
            if event == viewed:
                if (entry.get("details") or {}).get("live_session") not in (live_here or set()):
                    continue
            elif not of_communes.intersection(entry.get("recordings") or []):
                continue
        if event == consulted:
            entry = orjson.loads(body)
            motive = entry.get("motive") or {}
            motives[motive.get("code", "unknown")] += 1
        elif event == extracted:
            details = orjson.loads(body).get("details") or {}
            kind = str(details.get("procedure_type") or "other")
            by_procedure[kind] += 1
            by_recipient[str(details.get("recipient_kind") or "other")] += 1
        else:
            f.live_viewings += 1
    f.consultations, f.consultations_by_motive = sum(motives.values()), dict(sorted(motives.items()))
    f.extractions, f.extractions_by_procedure = sum(by_procedure.values()), dict(sorted(by_procedure.items()))
    f.extractions_by_recipient = dict(sorted(by_recipient.items()))


def _procedures(db: Session, tenant: Tenant, period: Period, communes: Communes = None) -> dict[str, int]:
    """Distinct procedures by type that needed an extraction or a hold in the period, from the rows that name
    them (procedure type and reference; the reference compared without case or extra spaces). A consultation's
    motive text is free and is not matched: a procedure counts once it is recorded by an extraction or a hold."""
    found: dict[str, set[str]] = {kind: set() for kind in PROCEDURE_TYPES}
    extractions = select(Extraction.procedure_type, Extraction.reference, Extraction.recording_ids).where(
        Extraction.tenant_id == tenant.id, Extraction.created_at >= period.start, Extraction.created_at < period.end
    )
    holds = select(Hold.procedure_type, Hold.reference, Hold.recording_id).where(
        Hold.tenant_id == tenant.id, Hold.placed_at >= period.start, Hold.placed_at < period.end
    )
    of_communes: set[str] | None = None
    if communes is not None:
        of_communes = set(db.scalars(select(Recording.id).where(Recording.tenant_id == tenant.id, _of(communes))))
    for kind, reference, recordings in [*db.execute(extractions), *db.execute(holds)]:
        recordings = recordings if isinstance(recordings, list) else [recordings]
        if of_communes is not None and not of_communes.intersection(recordings or []):
            continue
        if kind in found:
            found[kind].add(" ".join(str(reference).lower().split()))
    return {kind: len(refs) for kind, refs in found.items()}


def agents_who_wore_a_camera(db: Session, tenant: Tenant, period: Period) -> int:
    """Agents who had a camera checked out to them at some time in the period (not today's roster)."""
    return int(
        db.scalar(
            select(func.count(func.distinct(ShiftAssignment.user_id))).where(
                ShiftAssignment.tenant_id == tenant.id,
                ShiftAssignment.checked_out_at < period.end,
                or_(ShiftAssignment.checked_in_at.is_(None), ShiftAssignment.checked_in_at >= period.start),
            )
        )
        or 0
    )


def _keys_of_period(keys: KeySet, period: Period) -> tuple[tuple[str, str], ...]:
    out = []
    for k in keys:
        if (k.valid_from is None or k.valid_from < period.end) and (
            k.valid_until is None or k.valid_until >= period.start
        ):
            state = "en vigueur" if k.valid_until is None else f"retirée le {when('fr', k.valid_until, seconds=False)}"
            out.append((f"Empreinte SHA-256 de la clé {k.id} ({state})", k.fingerprint))
    return tuple(out)


def annual_report(
    db: Session, tenant: Tenant, year: int, keys: KeySet | None = None, *, communes: Communes = None
) -> AnnualReport:
    """`communes` (from `scope_for`): the report of some communes of an EPCI. Cameras and the agents who wore
    them are the EPCI's, shared by its communes; designated agents count those who may see these communes."""
    period = Period.year(year)
    active_in_year = and_(
        Device.tenant_id == tenant.id,
        Device.enrolled_at < period.end,
        or_(Device.revoked_at.is_(None), Device.revoked_at >= period.start),
    )
    users = _count_by(db, User.role, User.tenant_id == tenant.id, User.active.is_(True))
    if communes is not None:
        users = dict(
            Counter(
                role
                for role, theirs in db.execute(
                    select(User.role, User.communes).where(User.tenant_id == tenant.id, User.active.is_(True))
                )
                if theirs is None or set(theirs) & set(communes)
            )
        )
    return AnnualReport(
        tenant_name=tenant.name,
        tenant_slug=tenant.slug,
        profile_title=get_profile(tenant.profile).title,
        year=year,
        generated_at=utcnow(),
        authorised_cameras=tenant.authorised_cameras,
        cameras_in_service=int(db.scalar(select(func.count()).where(active_in_year)) or 0),
        authorised_agents=agents_who_wore_a_camera(db, tenant, period),
        designated_agents=users.get(Role.DESIGNATED_AGENT.value, 0),
        figures=figures(db, tenant, period, months=True, communes=communes),
        platform_keys=_keys_of_period(keys or KeySet(), period),
        territory=territory_use(db, tenant, period, communes),
        communes=communes,
    )


# --- presentation: the same rows feed the CSV, the PDF and the page ------------------------------------


def period_rows(f: Figures, *, csv: bool = False) -> list[tuple[str, str, str]]:
    """(section, item, value) of a period's figures, in French (the report goes to the prefect). Numbers in the
    French way (1,02 h) for the PDF and the page; `csv` keeps dot decimals for spreadsheets and scripts."""
    rows = [
        ("Enregistrements", "Nombre d'enregistrements", str(f.recordings)),
        ("Enregistrements", "Heures enregistrées", f"{f.hours:.2f}" if csv else f"{number('fr', f.hours)} h"),
        ("Enregistrements", "Caméras ayant enregistré", str(f.cameras_used)),
        ("Enregistrements", "Agents ayant porté une caméra", str(f.agents_recorded)),
    ]
    rows += [
        ("Enregistrements par déclenchement", label("fr", "trigger", trigger), str(n))
        for trigger, n in sorted(f.recordings_by_trigger.items())
    ]
    rows += [("Enregistrements par mois", month, str(n)) for month, n in f.recordings_by_month.items()]
    procedures = "Procédures ayant nécessité une extraction ou une conservation"
    rows += [(procedures, label("fr", "report_procedure", k), str(f.procedures.get(k, 0))) for k in PROCEDURE_TYPES]
    rows.append(("Consultations", "Nombre de consultations", str(f.consultations)))
    rows += [
        ("Consultations par motif", label("fr", "motive", code), str(n))
        for code, n in f.consultations_by_motive.items()
    ]
    rows.append(("Extractions", "Nombre d'extractions", str(f.extractions)))
    rows += [
        ("Extractions par type de procédure", label("fr", "report_procedure", k), str(n))
        for k, n in f.extractions_by_procedure.items()
    ]
    rows += [
        ("Extractions par destinataire", label("fr", "recipient", k), str(n))
        for k, n in f.extractions_by_recipient.items()
    ]
    rows += [
        ("Conservations pour procédure", "Mises sous conservation", str(f.holds_placed)),
        ("Transmission en direct", "Déclenchements", str(f.live_sessions)),
        ("Transmission en direct", "Réceptions confirmées par le CSU", str(f.live_acknowledged)),
        ("Transmission en direct", "Visionnages en direct", str(f.live_viewings)),
        ("Droits des personnes", "Demandes reçues", str(f.rights_requests)),
    ]
    rows += [
        ("Droits des personnes par type", label("fr", "report_kind", k), str(n))
        for k, n in sorted(f.rights_by_kind.items())
    ]
    rows += [
        ("Droits des personnes par issue", label("fr", "report_status", k), str(n))
        for k, n in sorted(f.rights_by_outcome.items())
    ]
    rows += [
        ("Droits des personnes", "Répondues dans le délai", str(f.rights_answered_on_time)),
        ("Droits des personnes", "En retard, sans réponse", str(f.rights_overdue)),
        ("Effacements", "Enregistrements effacés", str(f.deletions)),
        ("Effacements", "À l'échéance de conservation (dans le délai)", str(f.deletions_on_time)),
        ("Effacements", "Après l'échéance (en retard)", str(f.deletions_late)),
        ("Effacements", "Anticipés (demande d'effacement)", str(f.deletions_early)),
        ("Effacements", "Échus, non effacés, sans conservation", str(f.deletions_overdue_pending)),
    ]
    return rows


def scope_rows(communes: Communes) -> list[tuple[str, str, str]]:
    if communes is None:
        return []
    return [
        ("Service", "Communes de l'EPCI couvertes (code INSEE)", ", ".join(communes)),
        ("Service", "Caméras et agents", "ceux de l'EPCI, partagés par ses communes"),
    ]


def report_rows(r: AnnualReport, *, csv: bool = False) -> list[tuple[str, str, str]]:
    return [
        ("Service", "Commune ou EPCI", r.tenant_name),
        *scope_rows(r.communes),
        ("Service", "Cadre juridique", r.profile_title),
        ("Service", "Année", str(r.year)),
        ("Caméras", "Caméras autorisées par le préfet (R241-8)", str(r.authorised_cameras)),
        ("Caméras", "Caméras en service dans l'année", str(r.cameras_in_service)),
        ("Agents", "Agents ayant porté une caméra dans l'année (affectations)", str(r.authorised_agents)),
        ("Agents", "Agents individuellement désignés et habilités (R241-12)", str(r.designated_agents)),
        *[("Clés de signature de la plateforme", label, fp) for label, fp in r.platform_keys],
        *period_rows(r.figures, csv=csv),
        *territory_rows(r.territory, csv=csv),
    ]


def _at(moment: datetime, csv: bool) -> str:
    return moment.astimezone(PARIS).isoformat(timespec="minutes") if csv else when("fr", moment, seconds=False)


def territory_rows(use: TerritoryUse | None, *, csv: bool = False) -> list[tuple[str, str, str]]:
    if use is None:
        return []
    section = "Territoire (R241-8 II)"
    rows = [
        (
            section,
            "Territoire autorisé défini",
            "oui"
            if use.territory_set
            else "non : l'usage des caméras hors du territoire des communes autorisées ne peut pas être contrôlé",
        ),
        (section, "Enregistrements faits hors du territoire autorisé", str(len(use.outside))),
        (section, "Enregistrements sans contrôle du territoire (territoire inconnu)", str(use.unchecked)),
    ]
    rows += [
        ("Enregistrements hors territoire", o.id, f"{_at(o.started_at, csv)}, agent {o.agent}, caméra {o.camera}")
        for o in use.outside
    ]
    return rows


# The CSV says how its values are written: for spreadsheets and scripts, unlike the PDF and the page.
CSV_VALUE = "value (ISO 8601 dates, dot decimals)"


def to_csv(rows: list[tuple[str, str, str]]) -> str:
    """Rows made with csv=True: ISO dates and dot decimals, for spreadsheets and scripts (the PDF and the page
    show them the French way)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("section", "item", CSV_VALUE))
    writer.writerows(rows)
    return buf.getvalue()
