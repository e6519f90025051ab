"""Passwords (argon2id), TOTP second factor, opaque tokens."""

from __future__ import annotations

import hashlib
import os
import secrets
import threading
import time
from functools import cache

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from temoin import errors

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters (RFC 9106: 64 MiB, t=3, p=4)
# Each hash holds 64 MiB while it runs: at most two at a time, so that a burst of sign-ins (many addresses, many
# usernames: the throttle counts per account and per address) cannot take the server's memory (the thread pool
# alone would run 40 at once, 2.5 GiB). The others wait their turn, a few tens of milliseconds each.
_hashing = threading.BoundedSemaphore(2)

MIN_PASSWORD_LENGTH = 12


class WeakPassword(errors.InvalidInput, ValueError):
    pass


def hash_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise WeakPassword(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    with _hashing:
        return _hasher.hash(password)


def check_password(stored: str, password: str) -> bool:
    try:
        with _hashing:
            return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


@cache
def _dummy_hash() -> str:
    # Made on first use, not at import: argon2 takes 64 MiB while hashing, which every process would pay.
    with _hashing:
        return _hasher.hash("temoin-dummy-password-for-timing")


def burn_time(password: str) -> None:
    """Spend the same time when the user does not exist (no user enumeration by timing)."""
    check_password(_dummy_hash(), password)


def random_password() -> str:
    return secrets.token_urlsafe(15)


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _totp_key(master_key: bytes) -> bytes:
    return hashlib.sha256(b"temoin-totp-secret-v1" + master_key).digest()


def seal_totp_secret(master_key: bytes, secret: str, username: str) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(_totp_key(master_key)).encrypt(nonce, secret.encode(), username.encode())


def open_totp_secret(master_key: bytes, sealed: bytes, username: str) -> str:
    return AESGCM(_totp_key(master_key)).decrypt(sealed[:12], sealed[12:], username.encode()).decode()


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, username: str, issuer: str = "Témoin") -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=username, issuer_name=issuer)


def totp_step_if_valid(secret: str, code: str, last_step: int, now: float | None = None) -> int | None:
    """Return the time step the code belongs to, if valid and newer than the last one used.

    One step of tolerance each way for clock skew; a code already used cannot be used again.
    """
    now = time.time() if now is None else now
    totp = pyotp.TOTP(secret)
    code = code.strip().replace(" ", "")
    if not (code.isascii() and code.isdigit()):  # a wrong code; compare_digest raises on non-ASCII text
        return None
    for delta in (0, -1, 1):
        step = int(now // totp.interval) + delta
        if step > last_step and secrets.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def current_totp(secret: str) -> str:
    return pyotp.TOTP(secret).now()
