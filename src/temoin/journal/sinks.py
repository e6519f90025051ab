"""The second sink: an append-only file per chain and month, one line per entry.

Line format: `<sha256 hex> <canonical JSON body>\n`. The body holds its own sequence number and
the previous entry's hash, so the file verifies on its own, without the database.

Checkpoint lines: `<base64 signature> <canonical JSON body>[ <base64 RFC 3161 token>]\n`; the token, when
there is one, is a third field (a body always ends with `}`, a base64 token never does).
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

MONTH_FILE = re.compile(r"^\d{4}-\d{2}\.jsonl$")


def checkpoint_line(signature: str, body: bytes, token: str | None = None) -> bytes:
    return signature.encode() + b" " + body + (b" " + token.encode() if token else b"")


def split_checkpoint_line(raw: bytes) -> tuple[str, bytes, str | None]:
    """(signature, body, token or None) of a checkpoint line, with or without a token."""
    signature, _, rest = raw.rstrip(b"\n").partition(b" ")
    token = None
    if rest and not rest.endswith(b"}"):
        rest, _, tail = rest.rpartition(b" ")
        token = tail.decode("ascii", "replace")
    return signature.decode("ascii", "replace"), rest, token


@dataclass(frozen=True)
class FileLine:
    path: Path
    lineno: int
    hash: str
    body: bytes


class FileSink:
    def __init__(self, root: Path) -> None:
        self.root = root

    def chain_dir(self, chain: str) -> Path:
        return self.root / chain

    def append(self, chain: str, month: str, lines: list[tuple[str, bytes]]) -> None:
        """Append and fsync; an exclusive lock keeps concurrent processes from interleaving."""
        folder = self.chain_dir(chain)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{month}.jsonl"
        data = b"".join(h.encode() + b" " + body + b"\n" for h, body in lines)
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)

    def files(self, chain: str) -> list[Path]:
        folder = self.chain_dir(chain)
        if not folder.is_dir():
            return []
        return sorted(p for p in folder.iterdir() if MONTH_FILE.match(p.name))

    def chains(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(p.name for p in self.root.iterdir() if p.is_dir())

    def read(self, chain: str) -> Iterator[FileLine]:
        for path in self.files(chain):
            with path.open("rb") as fh:
                for lineno, raw in enumerate(fh, start=1):
                    raw = raw.rstrip(b"\n")
                    digest, _, body = raw.partition(b" ")
                    yield FileLine(path, lineno, digest.decode("ascii", "replace"), body)

    def last_seq(self, chain: str) -> int:
        """Sequence number of the last line written (0 if none); read from the end of the last file."""
        import orjson

        for path in reversed(self.files(chain)):
            last = None
            with path.open("rb") as fh:
                for raw in fh:
                    if raw.strip():
                        last = raw
            if last is not None:
                try:
                    return int(orjson.loads(last.rstrip(b"\n").partition(b" ")[2])["seq"])
                except (ValueError, KeyError):
                    return -1
        return 0

    def checkpoints_path(self, chain: str) -> Path:
        return self.chain_dir(chain) / "checkpoints.jsonl"

    def append_checkpoint(self, chain: str, line: bytes) -> None:
        folder = self.chain_dir(chain)
        folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.checkpoints_path(chain), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            os.write(fd, line + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)

    def rewrite(self, path: Path, lines: list[bytes]) -> None:
        """Replace a month file atomically (used only by pruning, behind a signed checkpoint)."""
        if not lines:
            path.unlink(missing_ok=True)
            return
        tmp = path.with_suffix(".tmp")
        with tmp.open("wb") as fh:
            fh.write(b"".join(line + b"\n" for line in lines))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
