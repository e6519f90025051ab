"""What the vault checks of a camera's word at ingest (R241-10: day and time, wearing agent, place).

The manifest is device-signed and kept as received; these checks decide what the vault records beside it:

- time: the camera's times are corrected by its measured clock offset (camera minus platform). A recording that
  ends in the future, or starts so far in the past that its retention period is already over, is implausible: it
  is accepted (refusing it would lose evidence), flagged and journaled. One dated in the future was made before it
  arrived: its retention runs from its reception. One past its period is deleted by the next sweep as the law says
  when its clock offset was measured (the flag and the entry prove why), but kept a period from its reception when
  the camera's clock was never measured (a clock reset to 1970 must not have it deleted unseen);
- agent: the shift assignment says who wore the camera at that time. A declared agent other than the one the
  camera was checked out to is flagged and journaled (security), and the shift's agent is the one recorded;
- place: with no territory set for the tenant, nothing can be checked: the recording is flagged so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from temoin.evidence.manifest import RecordingManifest
from temoin.geo.territory import contains
from temoin.identity.devices import device_actor
from temoin.identity.models import Device, ShiftAssignment, Tenant, User
from temoin.journal.entry import Action, EntryDraft
from temoin.law.profiles import LegalProfile
from temoin.vault.context import VaultContext


class Flag(StrEnum):
    TIME_IN_FUTURE = "time_in_future"  # even corrected, the recording ends after its reception
    TIME_BEYOND_RETENTION = "time_beyond_retention"  # even corrected, its retention period was over on arrival
    AGENT_NOT_ON_SHIFT = "agent_not_on_shift"  # the camera was checked out to another agent at that time
    NO_SHIFT = "no_shift"  # the camera was checked out to nobody then: the agent is the camera's word only
    TERRITORY_UNKNOWN = "territory_unknown"  # the tenant has no territory: the place could not be checked
    CLIP_NOT_VIDEO = "clip_not_video"  # an Axis clip is no MP4 or Matroska file (encrypted without its key file?)


@dataclass(frozen=True)
class FieldCheck:
    started_at: datetime  # corrected by the clock offset
    ended_at: datetime
    declared_started_at: datetime  # as the camera's clock said
    agent_ref: str  # the agent recorded: the shift's when there is one
    agent_user_id: int | None
    declared_agent_ref: str
    outside_territory: bool
    retention_from: datetime
    flags: list[str] = field(default_factory=list)


def shift_at(db: Session, device_id: str, moment: datetime) -> ShiftAssignment | None:
    """The shift the camera was checked out for at `moment` (the latest, should two overlap)."""
    return db.scalar(
        select(ShiftAssignment)
        .where(
            ShiftAssignment.device_id == device_id,
            ShiftAssignment.checked_out_at <= moment,
            or_(ShiftAssignment.checked_in_at.is_(None), ShiftAssignment.checked_in_at >= moment),
        )
        .order_by(ShiftAssignment.checked_out_at.desc())
        .limit(1)
    )


def check(
    db: Session,
    tenant: Tenant,
    device: Device,
    manifest: RecordingManifest,
    profile: LegalProfile,
    now: datetime,
    future_tolerance_s: int,
) -> FieldCheck:
    return check_declared(
        db,
        tenant,
        device,
        Declared(
            started_at=manifest.started_at,
            ended_at=manifest.ended_at,
            clock_offset_ms=manifest.clock_offset_ms,
            agent_id=manifest.agent_id,
            fixes=[(fix.lat, fix.lon) for fix in manifest.gps_track],
            outside_territory=manifest.outside_territory,
        ),
        profile,
        now,
        future_tolerance_s,
    )


@dataclass(frozen=True)
class Declared:
    """What a camera said of a recording: a native camera's signed manifest, or an Axis recording's metadata."""

    started_at: datetime
    ended_at: datetime
    clock_offset_ms: int | None  # camera minus platform; None when never measured (always so for Axis)
    agent_id: str
    fixes: list[tuple[float, float]]  # (lat, lon)
    outside_territory: bool = False  # the camera's own word, when it says so


def check_declared(
    db: Session,
    tenant: Tenant,
    device: Device,
    declared: Declared,
    profile: LegalProfile,
    now: datetime,
    future_tolerance_s: int,
) -> FieldCheck:
    offset = timedelta(milliseconds=declared.clock_offset_ms or 0)
    started, ended = declared.started_at - offset, declared.ended_at - offset
    flags: list[str] = []
    retention_from = started
    if ended > now + timedelta(seconds=future_tolerance_s):
        flags.append(Flag.TIME_IN_FUTURE)
        retention_from = now  # it was recorded before it arrived: never kept longer than from today
    elif profile.retention.deadline(started) <= now:
        flags.append(Flag.TIME_BEYOND_RETENTION)
        if declared.clock_offset_ms is None:
            retention_from = now  # a clock never measured (reset to 1970?): no deletion on its word alone

    agent_ref = declared.agent_id
    shift = shift_at(db, device.id, started)
    worn_by = db.get(User, shift.user_id) if shift else None
    if worn_by is None:
        flags.append(Flag.NO_SHIFT)
        agent = db.scalar(select(User).where(User.tenant_id == tenant.id, User.agent_number == agent_ref))
        agent_user_id = agent.id if agent else None
    else:
        agent_user_id = worn_by.id
        if worn_by.agent_number != declared.agent_id:
            flags.append(Flag.AGENT_NOT_ON_SHIFT)
            agent_ref = worn_by.agent_number or worn_by.username

    if tenant.territory:
        outside = declared.outside_territory or any(
            not contains(tenant.territory, lat, lon) for lat, lon in declared.fixes
        )
    else:
        outside = declared.outside_territory  # only the camera's word
        flags.append(Flag.TERRITORY_UNKNOWN)
    return FieldCheck(
        started_at=started,
        ended_at=ended,
        declared_started_at=declared.started_at,
        agent_ref=agent_ref,
        agent_user_id=agent_user_id,
        declared_agent_ref=declared.agent_id,
        outside_territory=outside,
        retention_from=retention_from,
        flags=flags,
    )


def journal(
    p: VaultContext,
    db: Session,
    tenant: Tenant,
    device: Device,
    recording_id: str,
    found: FieldCheck,
    clock_offset_ms: int | None,
) -> None:
    """A security entry for each check that failed in a way someone must look at (the caller commits)."""
    actor = device_actor(device)
    time_flags = [f for f in found.flags if f in (Flag.TIME_IN_FUTURE, Flag.TIME_BEYOND_RETENTION)]
    if time_flags:
        p.record(
            db,
            EntryDraft(
                action=Action.SECURITY,
                event="ingest.time_implausible",
                actor=actor,
                recordings=[recording_id],
                cameras=[device.id],
                details={
                    "flag": time_flags[0],
                    "declared_started_at": found.declared_started_at.isoformat(),
                    "corrected_started_at": found.started_at.isoformat(),
                    "clock_offset_ms": clock_offset_ms,
                    "retention_from": found.retention_from.isoformat(),
                },
            ),
            tenant,
        )
    if Flag.AGENT_NOT_ON_SHIFT in found.flags:
        p.record(
            db,
            EntryDraft(
                action=Action.SECURITY,
                event="ingest.agent_not_on_shift",
                actor=actor,
                recordings=[recording_id],
                cameras=[device.id],
                details={
                    "declared_agent": found.declared_agent_ref,
                    "shift_agent": found.agent_ref,
                    "started_at": found.started_at.isoformat(),
                },
            ),
            tenant,
        )


def collected_details(
    flags: list[str] | None, declared_started_at: datetime | None, declared_agent_ref: str | None
) -> dict:
    """What the collection entry adds about the checks."""
    return {
        "flags": list(flags or []),
        "declared_started_at": declared_started_at.isoformat() if declared_started_at else None,
        "declared_agent": declared_agent_ref,
    }
