"""The verdict of verifying an extraction package (`package_verify.verify_package`): the problems found, what
was checked, what only warrants a warning or a note, and which pinned key signed it."""

from __future__ import annotations

from dataclasses import dataclass, field

from temoin.evidence.keys import PlatformKey


@dataclass
class Report:
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    extraction_id: str | None = None
    notes: list[str] = field(default_factory=list)  # neither checked nor a warning (e.g. "not timestamped")
    signer: PlatformKey | None = None  # the pinned key that signed the package
    # recording id -> segments lost at the camera, as the vault's signed receipt declares them (not in the package)
    lost: dict[str, list[int]] = field(default_factory=dict)
    unpinned: str | None = None  # why the signer is not trusted (what to compare), when it is not

    @property
    def damaged(self) -> bool:
        return bool(self.problems)

    @property
    def ok(self) -> bool:
        """Intact and signed by a pinned key."""
        return not self.problems and self.signer is not None
