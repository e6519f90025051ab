"""Browsers a user has already signed in from (password and TOTP): a signed cookie, kept 180 days. A known
device is throttled on its own failures only, so a stranger's failed guesses, on the account or from a shared
address, never keep its user out. A password change or reset makes every earlier device a stranger again."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from datetime import datetime, timedelta

from temoin.context import Context
from temoin.identity.models import User

COOKIE = "temoin_device"
LIFETIME = timedelta(days=180)


def _key(master_key: bytes) -> bytes:
    return hashlib.sha256(b"temoin-known-device-v1" + master_key).digest()


def _mac(p: Context, body: str) -> str:
    digest = hmac.new(_key(p.keyring.master_key), body.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def issue(p: Context, user: User) -> str:
    body = f"{user.id}.{secrets.token_hex(8)}.{int(time.time())}"
    return f"{body}.{_mac(p, body)}"


def device_of(p: Context, user: User, cookie: str | None) -> str | None:
    """The device id the cookie names, if it is a valid, unexpired cookie of this user; else None."""
    if not cookie or cookie.count(".") != 3:
        return None
    body, _, mac = cookie.rpartition(".")
    if not hmac.compare_digest(mac, _mac(p, body)):
        return None
    user_id, device, issued = body.split(".")
    try:
        at = datetime.fromtimestamp(int(issued)).astimezone()
    except (ValueError, OverflowError, OSError):
        return None
    if user_id != str(user.id) or at + LIFETIME < datetime.now().astimezone():
        return None
    if user.password_changed_at is not None and at < user.password_changed_at.replace(microsecond=0):
        return None
    return device
