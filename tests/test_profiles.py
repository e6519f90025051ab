"""Legal profiles: the retention period and related rules, and the deletion deadline they give.

R241-13: a recording is kept for the period counted from the (local, Europe/Paris) day of recording;
it is deleted at the midnight that ends the anniversary day, never a second before.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from temoin.law.profiles import DEFAULT_PROFILE, RetentionRule, UnknownProfile, all_profiles, get_profile

PARIS = ZoneInfo("Europe/Paris")
UTC = UTC
ONE_MONTH = RetentionRule(months=1)
SIX_MONTHS = RetentionRule(months=6)


def paris(*args: int) -> datetime:
    return datetime(*args, tzinfo=PARIS)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the profiles shipped ------------------------------------------------------------------------


def test_the_four_profiles_are_shipped():
    assert set(all_profiles()) == {
        "fr-police-municipale",
        "fr-police-municipale-2019",
        "fr-sapeurs-pompiers",
        "fr-police-nationale",
    }
    assert DEFAULT_PROFILE == "fr-police-municipale"


def test_police_municipale_keeps_one_month_journal_three_years_no_live_backup_30s_buffer():
    p = get_profile("fr-police-municipale")
    assert (p.retention.months, p.retention.days) == (1, 0)
    assert p.retention.timezone == "Europe/Paris" and p.retention.start == "day_of_recording"
    assert p.journal_retention_years == 3
    assert p.live_backup_recording is False
    assert p.pre_event_buffer_s == 30
    assert "1 month" in p.retention.describe()


@pytest.mark.parametrize("profile_id", ["fr-police-municipale-2019", "fr-sapeurs-pompiers"])
def test_six_month_profiles(profile_id):
    p = get_profile(profile_id)
    assert (p.retention.months, p.retention.days) == (6, 0)
    assert p.retention.timezone == "Europe/Paris"
    assert p.journal_retention_years == 3
    assert p.live_backup_recording is False
    assert "6 months" in p.retention.describe()


def test_police_nationale_profile():
    p = get_profile("fr-police-nationale")
    assert p.id == "fr-police-nationale"
    assert (p.retention.months, p.retention.days) == (1, 0)
    assert p.retention.timezone == "Europe/Paris"
    assert p.live_backup_recording is False


def test_every_profile_computes_its_deadline_in_paris():
    recorded = paris(2026, 3, 15, 10, 0)
    for p in all_profiles().values():
        deadline = p.retention.deadline(recorded)
        assert deadline.tzinfo is not None and deadline.utcoffset() == timedelta(0)
        local = deadline.astimezone(PARIS)
        assert (local.hour, local.minute, local.second) == (0, 0, 0)  # always a Paris midnight
        assert local.date() > recorded.date()


def test_unknown_profile_names_the_known_ones():
    with pytest.raises(UnknownProfile) as caught:
        get_profile("fr-gendarmerie-imaginaire")
    assert isinstance(caught.value, KeyError)
    message = str(caught.value)
    assert "fr-gendarmerie-imaginaire" in message
    for known in ("fr-police-municipale", "fr-police-municipale-2019", "fr-police-nationale", "fr-sapeurs-pompiers"):
        assert known in message


# --- the deadline ---------------------------------------------------------------------------------


def test_recording_is_kept_the_whole_anniversary_day():
    recorded = paris(2026, 3, 15, 10, 0)
    deadline = ONE_MONTH.deadline(recorded)
    assert deadline == paris(2026, 4, 16, 0, 0)
    assert deadline == utc(2026, 4, 15, 22, 0)  # CEST in April
    assert deadline.tzinfo == UTC
    # Still 15 April in Paris one microsecond before; deleted at the stroke of 16 April.
    assert (deadline - timedelta(microseconds=1)).astimezone(PARIS).date().isoformat() == "2026-04-15"


@pytest.mark.parametrize(
    "recorded", [paris(2026, 3, 15, 0, 0), paris(2026, 3, 15, 10, 0), paris(2026, 3, 15, 23, 59, 59)]
)
def test_the_time_of_day_does_not_matter_only_the_day(recorded):
    assert ONE_MONTH.deadline(recorded) == paris(2026, 4, 16)


def test_deadline_does_not_depend_on_the_timezone_the_time_is_given_in():
    local = paris(2026, 3, 15, 10, 0)
    assert ONE_MONTH.deadline(local.astimezone(UTC)) == ONE_MONTH.deadline(local)
    assert ONE_MONTH.deadline(local.astimezone(ZoneInfo("America/New_York"))) == paris(2026, 4, 16)


@pytest.mark.parametrize("year,last_february_day", [(2026, 28), (2027, 28), (2028, 29), (2100, 28), (2000, 29)])
def test_31_january_clamps_to_the_end_of_february(year, last_february_day):
    deadline = ONE_MONTH.deadline(paris(year, 1, 31, 12, 0))
    # Kept through the last day of February, deleted when 1 March begins in Paris (CET, UTC+1).
    assert deadline == paris(year, 3, 1)
    assert (deadline - timedelta(seconds=1)).astimezone(PARIS).day == last_february_day
    assert deadline == utc(year, 2, last_february_day, 23, 0)


def test_day_that_exists_in_the_next_month_is_not_clamped():
    assert ONE_MONTH.deadline(paris(2026, 1, 28, 9)) == paris(2026, 3, 1)  # 28 Feb kept, 1 Mar deleted
    assert ONE_MONTH.deadline(paris(2026, 1, 30, 9)) == paris(2026, 3, 1)  # clamps to 28 Feb as well
    assert ONE_MONTH.deadline(paris(2026, 2, 28, 9)) == paris(2026, 3, 29)


def test_six_months_clamp_and_cross_the_year():
    assert SIX_MONTHS.deadline(paris(2026, 8, 31, 9)) == paris(2027, 3, 1)  # 28 Feb 2027
    assert SIX_MONTHS.deadline(paris(2027, 8, 31, 9)) == paris(2028, 3, 1)  # 29 Feb 2028 (leap)
    assert SIX_MONTHS.deadline(paris(2026, 7, 31, 9)) == paris(2027, 2, 1)
    assert SIX_MONTHS.deadline(paris(2026, 12, 31, 9)) == paris(2027, 7, 1)
    assert ONE_MONTH.deadline(paris(2026, 12, 15, 9)) == paris(2027, 1, 16)


def test_months_and_days_add_up():
    rule = RetentionRule(months=1, days=10)
    assert rule.deadline(paris(2026, 1, 31, 9)) == paris(2026, 3, 11)  # 28 Feb + 10 days, kept through 10 Mar
    assert RetentionRule(months=0, days=1).deadline(paris(2026, 3, 15, 9)) == paris(2026, 3, 17)


def test_the_paris_day_counts_not_the_utc_day():
    # 23:30 UTC on 31 March 2026 is already 01:30 on 1 April in Paris (CEST).
    recorded = utc(2026, 3, 31, 23, 30)
    assert recorded.astimezone(PARIS).date().isoformat() == "2026-04-01"
    deadline = ONE_MONTH.deadline(recorded)
    assert deadline == paris(2026, 5, 2)  # 1 April + 1 month = 1 May, kept the whole day
    assert deadline == utc(2026, 5, 1, 22, 0)
    # Had the UTC day (31 March) been used, it would be deleted a day early, at 1 May 00:00 Paris.
    assert deadline != paris(2026, 5, 1)
    # In winter, 23:30 UTC is 00:30 the next day in Paris (CET).
    assert ONE_MONTH.deadline(utc(2026, 1, 14, 23, 30)) == paris(2026, 2, 16)
    # And 22:59 UTC on 14 January is still 14 January in Paris.
    assert ONE_MONTH.deadline(utc(2026, 1, 14, 22, 59)) == paris(2026, 2, 15)


def test_daylight_saving_transitions_give_the_right_utc_instant():
    # Spring forward: 29 March 2026 at 02:00 CET. Midnight starting 29 March is still CET (UTC+1).
    assert ONE_MONTH.deadline(paris(2026, 2, 27, 12)) == utc(2026, 3, 27, 23, 0)  # 28 Mar 00:00 CET
    assert ONE_MONTH.deadline(paris(2026, 2, 28, 12)) == utc(2026, 3, 28, 23, 0)  # 29 Mar 00:00 CET
    assert ONE_MONTH.deadline(paris(2026, 3, 1, 12)) == utc(2026, 4, 1, 22, 0)  # 2 Apr 00:00 CEST
    # The 23-hour day itself: kept through 29 March, deleted at 30 March 00:00 CEST (UTC+2).
    assert RetentionRule(months=0, days=1).deadline(paris(2026, 3, 28, 12)) == utc(2026, 3, 29, 22, 0)
    # Fall back: 25 October 2026 at 03:00 CEST. Midnight starting 25 October is still CEST (UTC+2).
    assert ONE_MONTH.deadline(paris(2026, 9, 24, 12)) == utc(2026, 10, 24, 22, 0)  # 25 Oct 00:00 CEST
    assert ONE_MONTH.deadline(paris(2026, 9, 25, 12)) == utc(2026, 10, 25, 23, 0)  # 26 Oct 00:00 CET
    # A recording made in the repeated hour of the fall-back night (either fold) is of 25 October.
    assert ONE_MONTH.deadline(utc(2026, 10, 25, 0, 30)) == paris(2026, 11, 26)  # 02:30 CEST
    assert ONE_MONTH.deadline(utc(2026, 10, 25, 1, 30)) == paris(2026, 11, 26)  # 02:30 CET
    # Six months across both transitions: recorded in summer, deleted in winter time.
    assert SIX_MONTHS.deadline(paris(2026, 7, 14, 22)) == utc(2027, 1, 14, 23, 0)
    assert SIX_MONTHS.deadline(paris(2026, 10, 1, 8)) == utc(2027, 4, 1, 22, 0)


def test_journal_cutoff_is_three_years_back():
    profile = get_profile("fr-police-municipale")
    assert profile.journal_cutoff(utc(2026, 6, 1, 12)) == utc(2023, 6, 1, 12)
    assert profile.journal_cutoff(utc(2028, 2, 29, 12)) == utc(2025, 2, 28, 12)
