"""The second sink: an append-only file per chain and month, one line per entry.

Line format: `<sha256 hex> <canonical JSON body>\n`. The body holds its own sequence number and
the previous entry's hash, so the file verifies on its own, without the database.

Checkpoint lines: `<base64 signature> <canonical JSON body>[ <base64 RFC 3161 token>]\n`; the token, when
there is one, is a third field (a body always ends with `}`, a base64 token never does).

An append either lands whole or not at all: a short write is continued, and a failed one (disk
full...) is cut back to the line boundary it started from. A partial last line found anyway (power
lost mid-write) is an interrupted write, reported as such and removed only by `temoin journal repair`.

Every writer of a file, in any process, holds its exclusive `flock` (appends, the cut of a partial line, and the
rewrites of `temoin journal repair` and of pruning). A rewrite replaces the file (a new inode) while holding the
old one's lock, so a writer checks once locked that it still holds the file at that path, and opens it again if not.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from temoin import errors

MONTH_FILE = re.compile(r"^\d{4}-\d{2}\.jsonl$")
_TAIL_CHUNK = 64 * 1024


class JournalWriteError(errors.Fault, OSError):
    """A journal file could not be appended to; what is in the file is still whole."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(code or errno.EIO, message)
        self.message = message

    def __str__(self) -> str:
        return self.message


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


@dataclass(frozen=True)
class Interrupted:
    """The unfinished last line of a file: `length` bytes from byte `at` with no newline."""

    path: Path
    at: int
    length: int


def complete_end(path: Path) -> tuple[int, int]:
    """(size, end): `end` is just after the file's last newline; below `size` the rest is a partial line."""
    with path.open("rb") as fh:
        size = fh.seek(0, os.SEEK_END)
        if size == 0:
            return 0, 0
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return size, size
        pos = size
        while pos > 0:
            start = max(0, pos - _TAIL_CHUNK)
            fh.seek(start)
            chunk = fh.read(pos - start)
            cut = chunk.rfind(b"\n")
            if cut >= 0:
                return size, start + cut + 1
            pos = start
        return size, 0


def _open_locked(path: Path, flags: int) -> int:
    """A descriptor of the file now at `path` (created if missing), holding its exclusive lock. A rewrite replaced
    or removed the file while this one waited: the lock was on the old file, so open the new one."""
    while True:
        fd = os.open(path, flags | os.O_CREAT, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass  # removed meanwhile: created again at the next turn
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def _append(path: Path, data: bytes, what: str) -> None:
    """Append `data` (whole lines) and fsync, under an exclusive lock; all of it or none of it."""
    fd = _open_locked(path, os.O_RDWR | os.O_APPEND)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            _, end = complete_end(path)
            raise JournalWriteError(
                f"{path}: interrupted write at byte {end} (a partial line left by an earlier "
                f"crash); {what} not appended after it: run `temoin journal repair`"
            )
        view, written = memoryview(data), 0
        try:
            while written < len(data):
                n = os.write(fd, view[written:])
                if n == 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
                written += n
            os.fsync(fd)
        except OSError as exc:
            try:
                os.ftruncate(fd, size)  # back to the line boundary: no partial line left behind
                os.fsync(fd)
            except OSError as again:
                raise JournalWriteError(
                    f"{path}: {what} could not be written ({exc.strerror}) and the partial "
                    f"line could not be removed ({again.strerror}); once the disk is fixed, "
                    "run `temoin journal repair`",
                    exc.errno,
                ) from exc
            raise JournalWriteError(
                f"{path}: {what} could not be written ({exc.strerror}); nothing partial was "
                "left in the file. The database holds them: free space, then run "
                "`temoin journal repair` (the server does it at start-up)",
                exc.errno,
            ) from exc
    finally:
        os.close(fd)


class FileSink:
    def __init__(self, root: Path) -> None:
        self.root = root

    def chain_dir(self, chain: str) -> Path:
        return self.root / chain

    def append(self, chain: str, month: str, lines: list[tuple[str, bytes]]) -> None:
        """Append and fsync; an exclusive lock keeps concurrent processes from interleaving."""
        folder = self.chain_dir(chain)
        folder.mkdir(parents=True, exist_ok=True)
        data = b"".join(h.encode() + b" " + body + b"\n" for h, body in lines)
        _append(folder / f"{month}.jsonl", data, f"{len(lines)} journal entries")

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
        """The complete lines of every month file, in order; a partial last line is not an entry. Read without the
        appenders' lock: a line another process is writing meanwhile is partial when reached, and ends the file."""
        for path in self.files(chain):
            with path.open("rb") as fh:
                for lineno, raw in enumerate(fh, start=1):
                    if not raw.endswith(b"\n"):
                        break
                    digest, _, body = raw[:-1].partition(b" ")
                    yield FileLine(path, lineno, digest.decode("ascii", "replace"), body)

    def interrupted(self, chain: str) -> list[Interrupted]:
        """Partial last lines in the chain's month files and checkpoint file."""
        found = []
        paths = [*self.files(chain), self.checkpoints_path(chain)]
        for path in paths:
            if path.exists():
                size, end = complete_end(path)
                if end < size:
                    found.append(Interrupted(path, end, size - end))
        return found

    def cut_interrupted(self, found: Interrupted) -> None:
        """Remove a partial last line (`temoin journal repair` only, which journals it)."""
        fd = os.open(found.path, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if os.fstat(fd).st_size == found.at + found.length:
                os.ftruncate(fd, found.at)
                os.fsync(fd)
        finally:
            os.close(fd)

    def last_line(self, chain: str) -> FileLine | None:
        """The last complete line of the chain (None if there is none), read from the end of the last file."""
        for path in reversed(self.files(chain)):
            _, end = complete_end(path)
            if end == 0:
                continue
            with path.open("rb") as fh:
                pos, tail = end, b""
                while True:
                    start = max(0, pos - _TAIL_CHUNK)
                    fh.seek(start)
                    tail = fh.read(pos - start) + tail
                    cut = tail.rfind(b"\n", 0, len(tail) - 1)
                    if cut >= 0 or start == 0:
                        break
                    pos = start
            raw = tail[cut + 1 : -1]
            digest, _, body = raw.partition(b" ")
            return FileLine(path, 0, digest.decode("ascii", "replace"), body)
        return None

    def checkpoints_path(self, chain: str) -> Path:
        return self.chain_dir(chain) / "checkpoints.jsonl"

    def read_checkpoints(self, chain: str) -> list[tuple[bytes, str]]:
        """(body, signature) of each complete checkpoint line, in order."""
        return [(body, signature) for body, signature, _token in self.read_checkpoint_lines(chain)]

    def read_checkpoint_lines(self, chain: str) -> list[tuple[bytes, str, str | None]]:
        """(body, signature, timestamp token or None) of each complete checkpoint line, in order."""
        path = self.checkpoints_path(chain)
        if not path.exists():
            return []
        _, end = complete_end(path)
        with path.open("rb") as fh:
            data = fh.read(end)
        found = []
        for raw in data.splitlines():
            if raw.strip():
                signature, body, token = split_checkpoint_line(raw)
                found.append((body, signature, token))
        return found

    def append_checkpoint(self, chain: str, line: bytes) -> None:
        self.append_checkpoints(chain, [line])

    def append_checkpoints(self, chain: str, lines: list[bytes]) -> None:
        folder = self.chain_dir(chain)
        folder.mkdir(parents=True, exist_ok=True)
        _append(
            self.checkpoints_path(chain), b"".join(line + b"\n" for line in lines), f"{len(lines)} journal checkpoints"
        )

    def rewrite(self, path: Path, change: Callable[[bytes], list[bytes] | None]) -> bool:
        """Replace a month file atomically by `change(its content)` (its lines; None: leave the file as it is), read
        and replaced under the appenders' lock: an entry appended meanwhile, by this process or another (the running
        server), is in what `change` reads, never lost by the replacement. Used by pruning (behind a signed
        checkpoint) and by `temoin journal repair`'s gap fill. Returns whether the file changed."""
        fd = _open_locked(path, os.O_RDWR)
        try:
            size = os.fstat(fd).st_size
            lines = change(os.pread(fd, size, 0) if size else b"")
            if lines is None and size:
                return False
            if not lines:  # nothing left (or an empty file this call created): no file
                path.unlink(missing_ok=True)
                return bool(size)
            tmp = path.with_suffix(".tmp")
            with tmp.open("wb") as fh:
                fh.write(b"".join(line + b"\n" for line in lines))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
            folder = os.open(path.parent, os.O_RDONLY)
            try:
                os.fsync(folder)
            finally:
                os.close(folder)
            return True
        finally:
            os.close(fd)
