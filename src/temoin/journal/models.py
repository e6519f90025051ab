"""Journal tables: entries (hash-chained per tenant), chain heads, signed checkpoints."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from temoin.db import Base, UTCDateTime


class JournalEntry(Base):
    __tablename__ = "journal_entries"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    chain: Mapped[str] = mapped_column(String(64))  # tenant slug, or "_platform"
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    tenant_id: Mapped[int | None] = mapped_column(ForeignKey("tenants.id"), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(64))
    # The canonical JSON body is the record; the columns above are indexes derived from it
    # and verification checks that they agree.
    body: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("chain", "seq"),
        Index("ix_journal_entries_tenant_at", "tenant_id", "at"),
    )


class JournalHead(Base):
    """The last entry of each chain; locked while appending so entries are strictly sequential."""

    __tablename__ = "journal_heads"

    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


class JournalCheckpoint(Base):
    """A platform-signed statement of a chain's state; pruning leaves one behind."""

    __tablename__ = "journal_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chain: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # seal | prune
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(128))
    # RFC 3161 token (base64 DER TimeStampResp) over SHA-256 of `body`, when a TSA was configured and answered.
    timestamp_token: Mapped[str | None] = mapped_column(Text, nullable=True)


class JournalWitnessProgress(Base):
    """How far each chain's checkpoints have reached a witness (the outbox is everything after
    `sent_id`). Checkpoints of one chain are created one at a time, so their ids follow their order."""

    __tablename__ = "journal_witness_progress"

    destination: Mapped[str] = mapped_column(String(255), primary_key=True)
    chain: Mapped[str] = mapped_column(String(64), primary_key=True)
    sent_id: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[datetime] = mapped_column(UTCDateTime)
