"""What the domain packages use of the assembled platform, as a protocol they can import from below.

`temoin.platform.Platform` (the composition root, at the top) satisfies it; callers keep passing that object.
The domain packages type their `p` with `Context` (or `temoin.vault.context.VaultContext`, which adds the blob
store), so none of them imports the platform, which imports them.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from temoin.evidence.timestamp import Timestamper
from temoin.journal.entry import EntryDraft
from temoin.journal.service import Journal
from temoin.journal.witness import SyslogWitness
from temoin.keyring import Keyring
from temoin.settings import Settings


class TenantRef(Protocol):
    """The tenant whose chain a journal entry goes to (an `identity.models.Tenant`)."""

    @property
    def id(self) -> int: ...

    @property
    def slug(self) -> str: ...


class Context(Protocol):
    settings: Settings
    sessions: sessionmaker
    keyring: Keyring
    journal: Journal
    timestamper: Timestamper | None
    witness: SyslogWitness | None

    def session(self) -> AbstractContextManager[Session]: ...

    def record(self, db: Session, draft: EntryDraft, tenant: TenantRef | None) -> None:
        """Append a journal entry to the tenant's chain (the platform's with None), in `db`'s transaction."""
        ...


__all__ = ["Context", "TenantRef"]
