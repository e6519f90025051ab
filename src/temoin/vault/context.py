"""The platform as the vault and the packages above it see it: the domain context plus the blob store."""

from __future__ import annotations

from typing import Protocol

from temoin.context import Context
from temoin.vault.storage import BlobStore


class VaultContext(Context, Protocol):
    store: BlobStore
