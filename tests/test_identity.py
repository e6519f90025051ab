"""Passwords and second factors as the platform stores and checks them; a tenant's tile URL setting."""

from __future__ import annotations

import pytest

from temoin.identity import secrets as sec, service
from temoin.identity.service import IdentityError
from temoin.identity.tenant_settings import TenantSettings, settings_of
from tests.helpers import make_commune


@pytest.mark.real_argon2
def test_passwords_are_argon2id_at_a_recommended_cost():
    stored = sec.hash_password("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    params = dict(p.split("=") for p in stored.split("$")[3].split(","))
    assert int(params["m"]) >= 19 * 1024 and int(params["t"]) >= 2  # OWASP's argon2id minimum
    assert sec.check_password(stored, "correct horse battery staple")
    assert not sec.check_password(stored, "correct horse battery stapler")


def test_short_passwords_are_refused():
    with pytest.raises(sec.WeakPassword, match="12 characters"):
        sec.hash_password("short")


def test_totp_codes_are_used_once_and_tolerate_one_step_of_skew():
    secret = sec.new_totp_secret()
    import pyotp

    totp = pyotp.TOTP(secret)
    now = 1_800_000_000.0
    step = sec.totp_step_if_valid(secret, totp.at(now), last_step=0, now=now)
    assert step == int(now // 30)
    assert sec.totp_step_if_valid(secret, totp.at(now), last_step=step, now=now) is None  # replay
    assert sec.totp_step_if_valid(secret, totp.at(now - 30), last_step=0, now=now) is not None  # skew
    assert sec.totp_step_if_valid(secret, totp.at(now - 90), last_step=0, now=now) is None
    # Whatever is typed is a wrong code, not an error: letters, other scripts' digits, emoji.
    for typed in ("", "abcdef", "١٢٣٤٥٦", "12345é", "🔑" * 6, totp.at(now) + "x"):
        assert sec.totp_step_if_valid(secret, typed, last_step=0, now=now) is None, typed


def test_totp_secrets_are_sealed_with_the_master_key():
    import os

    master = os.urandom(32)
    sealed = sec.seal_totp_secret(master, "JBSWY3DPEHPK3PXP", "alice")
    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert sec.open_totp_secret(master, sealed, "alice") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(Exception):  # noqa: B017 - any failure will do: the point is that it does not open
        sec.open_totp_secret(master, sealed, "mallory")  # bound to its user


IGN = (
    "https://data.geopf.fr/wmts?SERVICE=WMTS&REQUEST=GetTile&VERSION=1.0.0&LAYER=GEOGRAPHICALGRIDSYSTEMS.PLANIGNV2"
    "&STYLE=normal&TILEMATRIXSET=PM&FORMAT=image/png&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}"
)


@pytest.mark.parametrize("url", [IGN, "https://tiles.example/{z}/{x}/{y}.png", "https://tiles.example/{x}/{y}/{z}"])
def test_a_tile_url_holds_z_x_and_y_in_any_order(url):
    assert TenantSettings.model_validate({"tile_url": url}).tile_url == url


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://tiles.example/{z}/{x}/{y}.png", "https://"),
        ("ftp://tiles.example/{z}/{x}/{y}.png", "https://"),
        ("https://tiles.example/{z}/{x}.png", "lacks {y}"),
        ("https://tiles.example/{z}/{x}/{y}/{x}.png", "holds {x} 2 times"),
    ],
)
def test_a_tile_url_over_http_or_without_each_placeholder_once_is_refused(url, said):
    with pytest.raises(ValueError, match="tile URL") as refused:
        TenantSettings.model_validate({"tile_url": url})
    assert said in str(refused.value)


def test_an_http_tile_url_is_refused_with_why_and_one_stored_before_the_rule_still_reads(platform):
    commune = make_commune(platform, cameras=0)
    with platform.session() as db:
        tenant = platform.tenant(db, commune.slug)
        with pytest.raises(IdentityError, match="Content-Security-Policy") as refused:
            service.update_settings(platform, db, tenant, {"tile_url": "http://tiles.example/{z}/{x}/{y}.png"})
        assert "nothing was changed" in str(refused.value) and settings_of(tenant).tile_url is None
        # Set before the rule: every page still reads the settings, another setting still changes, the URL
        # itself is refused when set again.
        old = "http://tiles.example/{z}/{x}/{y}.png"
        tenant.settings = {"tile_url": old}
        assert settings_of(tenant).tile_url == old
        assert service.update_settings(platform, db, tenant, {"cctv_radius_m": 500}).cctv_radius_m == 500
        with pytest.raises(IdentityError, match="https://"):
            service.update_settings(platform, db, tenant, {"tile_url": old})
        assert service.update_settings(platform, db, tenant, {"tile_url": IGN}).tile_url == IGN
