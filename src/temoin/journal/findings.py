"""What a journal verification finds: the problems it names and each sink's report on a chain."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class Problem:
    sink: str  # "database", "file", "both"
    chain: str
    seq: int | None
    kind: str  # altered | deleted | inserted | reordered | mismatch | checkpoint | unsealed | interrupted
    message: str

    def __str__(self) -> str:
        return f"[{self.chain}] {self.sink}: {self.message}"


@dataclass
class ChainReport:
    chain: str
    sink: str
    entries: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    last_hash: str | None = None
    problems: list[Problem] = field(default_factory=list)
    # Hashes at the sequence numbers that signed checkpoints vouch for.
    vouched: dict[int, str] = field(default_factory=dict, repr=False)
    # The sink's chained checkpoints by number, as stored (compared with the witness's).
    checkpoint_bodies: dict[int, bytes] = field(default_factory=dict, repr=False)
    last_seal: Checkpoint | None = None
    unsealed: int = 0  # entries after the last seal
    unsealed_since: datetime | None = None  # time of the oldest of them


@dataclass(frozen=True)
class Checkpoint:
    kind: str
    seq: int
    hash: str
    at: str
    n: int | None = None
    witnessed: bool = False  # known from the witness's log, not from this sink

    @property
    def name(self) -> str:
        return f"the witness's signed checkpoint {self.n}" if self.witnessed else "a signed checkpoint"
