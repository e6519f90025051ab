"""The legal time the platform shows times and counts days in: pages, reports, paperwork, the cameras' burn-in."""

from __future__ import annotations

from zoneinfo import ZoneInfo

# Metropolitan France's legal time. Overseas communes have their own (America/Cayenne, Indian/Reunion, ...), but no
# tenant setting for a zone exists yet: every tenant is shown this one. A legal profile's retention carries its own
# zone name (law.profiles.RetentionRule.timezone), by default this one.
PARIS = ZoneInfo("Europe/Paris")
