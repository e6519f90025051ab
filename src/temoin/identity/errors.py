"""Errors of the identity domain (no HTTP status: the web layer maps them)."""

from __future__ import annotations


class IdentityError(ValueError):
    pass


class Throttled(IdentityError):
    def __init__(self, retry_after: int) -> None:
        super().__init__(f"too many failed sign-ins: try again in {retry_after} s")
        self.retry_after = retry_after


class NotYours(IdentityError):
    """The acting user may not grant or manage this role (duties apart: identity.grants)."""
