"""Errors of the identity domain (no HTTP status: the web layer maps their kinds, temoin.errors)."""

from __future__ import annotations

from temoin import errors


class IdentityError(errors.InvalidInput, ValueError):
    pass


class Throttled(errors.TooManyRequests, IdentityError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after} s")
        self.retry_after = self.retry_after_s = retry_after


class SignInFailed(errors.Unauthenticated, IdentityError):
    """A wrong name, password or code (which one is not said)."""


class IdentityConflict(errors.Conflict, IdentityError):
    """The accounts as they are forbid it: a name taken, one's own account, the current password wrong."""


class NotYours(errors.Forbidden, IdentityError):
    """The acting user may not grant or manage this role (duties apart: identity.grants)."""
