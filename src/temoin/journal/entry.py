"""What a journal entry says (R241-14; loi 78-17 art. 101): who, when, what, which recordings and
cameras, the motive, the recipients.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field

from temoin.evidence.canonical import canonical_bytes

GENESIS = "0" * 64
PLATFORM_CHAIN = "_platform"


class Action(StrEnum):
    COLLECTION = "collection"  # a recording entered the vault
    CONSULTATION = "consultation"  # playback, download, viewing metadata of content
    MODIFICATION = "modification"  # metadata, holds
    COMMUNICATION = "communication"  # extraction, transmission, live viewing
    ERASURE = "erasure"  # deletion
    ADMINISTRATION = "administration"  # users, devices, tenants
    SECURITY = "security"  # refused access, quarantine, failed sign-in


class Actor(BaseModel):
    kind: Literal["user", "device", "system"]
    id: str
    name: str
    function: str

    @classmethod
    def system(cls, component: str) -> Actor:
        return cls(kind="system", id=component, name=f"Témoin {component}", function="system")


class EntryDraft(BaseModel):
    """What a caller asks to journal; the journal adds chain, sequence, time and hashes."""

    action: Action
    event: str = Field(max_length=64)
    actor: Actor
    recordings: list[str] = []
    cameras: list[str] = []
    motive: dict[str, str] | None = None
    recipients: list[str] = []
    details: dict[str, Any] = {}


def entry_body(draft: EntryDraft, *, chain: str, seq: int, prev: str, at: datetime, tenant: str | None) -> bytes:
    body = {
        "v": 1,
        "chain": chain,
        "seq": seq,
        "prev": prev,
        "at": at.isoformat(),
        "tenant": tenant,
        "action": draft.action.value,
        "event": draft.event,
        "actor": draft.actor.model_dump(),
        "recordings": draft.recordings,
        "cameras": draft.cameras,
        "motive": draft.motive,
        "recipients": draft.recipients,
        "details": draft.details,
    }
    return canonical_bytes(body)


def entry_hash(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
