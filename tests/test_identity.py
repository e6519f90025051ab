"""Passwords and second factors as the platform stores and checks them."""

from __future__ import annotations

import pytest

from temoin.identity import secrets as sec


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


def test_totp_secrets_are_sealed_with_the_master_key():
    import os

    master = os.urandom(32)
    sealed = sec.seal_totp_secret(master, "JBSWY3DPEHPK3PXP", "alice")
    assert b"JBSWY3DPEHPK3PXP" not in sealed
    assert sec.open_totp_secret(master, sealed, "alice") == "JBSWY3DPEHPK3PXP"
    with pytest.raises(Exception):  # noqa: B017 - any failure will do: the point is that it does not open
        sec.open_totp_secret(master, sealed, "mallory")  # bound to its user
