"""A tenant's own settings: what differs from one commune to the next and is not law (that is the profile)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, field_validator

TILE_PLACEHOLDERS = ("{z}", "{x}", "{y}")  # in any order: IGN's WMTS names TILECOL before TILEROW


class TenantSettings(BaseModel):
    model_config = {"extra": "forbid"}

    # Basemap of the CSU's map: an https:// raster tile URL template ({z}, {x}, {y}) for production; None draws
    # the embedded vector basemap (territory outline and streets), which needs no network.
    tile_url: str | None = Field(default=None, max_length=500)
    tile_attribution: str | None = Field(default=None, max_length=300)
    # Fixed CCTV cameras shown beside a live feed: those within this radius of the agent.
    cctv_radius_m: float = Field(default=300.0, gt=0, le=5000)
    # Aim the PTZ cameras in range at the agent as soon as a live alert comes in (else: one click).
    ptz_auto_aim: bool = False
    # An alert nobody acknowledged within this many seconds escalates (repeated sound, highlight).
    alert_escalation_s: float = Field(default=10.0, gt=0, le=300)
    # Citizens' rights requests: answer within this many months (RGPD art. 12: one month, extendable by
    # two; French practice and the CNIL: two months).
    rights_deadline_months: int = Field(default=2, ge=1, le=3)
    # Walking and driving speeds for the reinforcements' arrival estimate.
    patrol_speed_m_s: float = Field(default=1.4, gt=0, le=50)
    # The public notice (R241-15): who is responsible, the DPO's contact, where people write to use their rights.
    notice_controller: str | None = Field(default=None, max_length=300)  # "Le maire de Port-Témoin"
    dpo_contact: str | None = Field(default=None, max_length=300)
    rights_address: str | None = Field(default=None, max_length=500)
    # Duties apart (identity.grants): the mayor grants the roles that see content; this lets the chief grant the
    # field roles (agents, designated agents, CSU operators) too.
    chief_grants_field_roles: bool = False
    # The commune's CCTV network: the only addresses the platform connects to for its cameras (ONVIF, streams),
    # as CIDR ranges ("10.20.0.0/16,192.168.5.0/24"). None declared: no connection (supervision/outbound.py).
    cctv_networks: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("tile_url")
    @classmethod
    def _tile_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or info.field_name in (info.context or {}).get("stored", ()):
            return value  # as stored: checked when it was set (a row may predate these rules; it must still read)
        if value.lower().startswith("http://"):
            raise ValueError(
                "an http:// tile URL is refused: the pages' Content-Security-Policy loads images over "
                "HTTPS only, so the map would stay blank; use the provider's https:// address"
            )
        if not value.lower().startswith("https://"):
            raise ValueError("write the tile URL as an https:// template holding {z}, {x} and {y}")
        for placeholder in TILE_PLACEHOLDERS:
            count = value.count(placeholder)
            if count != 1:
                found = f"lacks {placeholder}" if count == 0 else f"holds {placeholder} {count} times"
                raise ValueError(
                    f"the tile URL {found}: write each of {{z}}, {{x}} and {{y}} exactly once (in any order)"
                )
        return value

    @field_validator("cctv_networks", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        import ipaddress

        if isinstance(value, str):  # from the command line: comma-separated
            value = [v for v in (x.strip() for x in value.split(",")) if v]
        if not isinstance(value, list):
            return value
        out = []
        for item in value:
            try:
                out.append(str(ipaddress.ip_network(str(item).strip(), strict=False)))
            except ValueError:
                raise ValueError(f"{item!r} is not an address range: write CIDR ranges such as 10.20.0.0/16") from None
        return out


def settings_of(tenant: Any) -> TenantSettings:
    """The tenant's settings, defaults filled in (a row written before a setting existed keeps working)."""
    stored = getattr(tenant, "settings", None) or {}
    return TenantSettings.model_validate(stored, context={"stored": set(stored)})


def parse_assignments(pairs: list[str]) -> dict[str, str | None]:
    """`KEY=VALUE` pairs from a command line; an empty value puts the setting back to its default."""
    out: dict[str, str | None] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{pair!r}: write KEY=VALUE (known keys: {', '.join(TenantSettings.model_fields)})")
        out[key.strip()] = value.strip() or None
    return out
