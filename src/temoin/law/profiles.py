"""Legal profiles: the retention period and related rules are data, loaded from JSON files.

A tenant names its profile; nothing in the code hard-codes "one month".
"""

from __future__ import annotations

import calendar
import json
from datetime import UTC, date, datetime, time, timedelta
from functools import cache
from importlib import resources
from typing import Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from temoin import errors
from temoin.law.legal_time import PARIS

DEFAULT_PROFILE = "fr-police-municipale"


class RetentionRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    months: int = Field(ge=0)
    days: int = Field(default=0, ge=0)
    # The period runs from the (local) day of recording, as R241-13 says.
    start: Literal["day_of_recording"] = Field(default="day_of_recording", alias="from")
    timezone: str = PARIS.key

    def describe(self) -> str:
        parts = []
        if self.months:
            parts.append(f"{self.months} month{'s' if self.months > 1 else ''}")
        if self.days:
            parts.append(f"{self.days} day{'s' if self.days > 1 else ''}")
        return " ".join(parts) + f" from the day of recording ({self.timezone})"

    def deadline(self, recorded_at: datetime) -> datetime:
        """When a recording made at `recorded_at` must be deleted, in UTC.

        The recording is kept for the whole anniversary day: a recording made on 15 March
        (local time) under a one-month rule is deleted at midnight ending 15 April.
        Months that lack the day clamp to their last day (31 January -> 28/29 February).
        """
        tz = ZoneInfo(self.timezone)
        local_day = recorded_at.astimezone(tz).date()
        last_day = add_months(local_day, self.months) + timedelta(days=self.days)
        end = datetime.combine(last_day + timedelta(days=1), time(0, 0), tzinfo=tz)
        return end.astimezone(UTC)


def add_months(day: date, months: int) -> date:
    month_index = day.month - 1 + months
    year, month = day.year + month_index // 12, month_index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


class LegalProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    title: str
    retention: RetentionRule
    journal_retention_years: int = Field(ge=1)
    live_backup_recording: bool
    pre_event_buffer_s: int = Field(ge=0, le=120)
    live_transmission_allowed: bool
    # Cameras may be used only on the authorised communes' territory (R241-8 II): a tenant needs it to check that.
    territory_required: bool = False
    references: list[str] = []

    def journal_cutoff(self, now: datetime) -> datetime:
        """Journal entries older than this may be pruned (behind a signed checkpoint)."""
        try:
            return now.replace(year=now.year - self.journal_retention_years)
        except ValueError:  # 29 February
            return now.replace(year=now.year - self.journal_retention_years, day=28)


class UnknownProfile(errors.InvalidInput, KeyError):
    def __str__(self) -> str:
        return f"unknown legal profile {self.args[0]!r}; known profiles: {', '.join(sorted(all_profiles()))}"


@cache
def all_profiles() -> dict[str, LegalProfile]:
    found: dict[str, LegalProfile] = {}
    for entry in resources.files("temoin.law").joinpath("profiles").iterdir():
        if entry.name.endswith(".json"):
            profile = LegalProfile.model_validate(json.loads(entry.read_text("utf-8")))
            found[profile.id] = profile
    return found


def get_profile(profile_id: str) -> LegalProfile:
    try:
        return all_profiles()[profile_id]
    except KeyError:
        raise UnknownProfile(profile_id) from None
