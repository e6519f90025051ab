"""An extraction package's files as the verifier reads them (`package_verify`), whether a folder or its zip:
their names, their bytes (a zip member that cannot be read back raises `MemberDamaged`, naming it and what is
wrong) and their SHA-256. Nothing is checked here but the zip's layout (unsafe paths, files outside the package
folder)."""

from __future__ import annotations

import hashlib
import zipfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO

from temoin import errors

SUMS, SIGNATURE, MANIFEST, KEY_FILE = "SHA256SUMS", "SHA256SUMS.sig", "manifest.json", "platform-public-key.pem"
TIMESTAMP = "SHA256SUMS.tsr"
KEYS_FILE = "platform-keys.json"
_CHUNK = 1024 * 1024


class PackageUnreadable(errors.InvalidInput):
    pass


class MemberDamaged(errors.InvalidInput):
    """A zip member that cannot be read back: the message says which and what is wrong."""


def _member_problem(name: str, exc: Exception) -> str:
    text = str(exc)
    if "CRC" in text:
        what = "its bytes do not match the CRC-32 the zip recorded (altered or corrupted after zipping)"
    elif isinstance(exc, zlib.error):
        what = f"its compressed data cannot be decompressed ({text}): altered or corrupted"
    elif isinstance(exc, EOFError):
        what = "its data is cut short (truncated zip)"
    else:
        what = f"{text}"
    return f"damaged zip member: {name}: {what}"


class PackageFiles:
    """Files of a package, by their path inside it, whether a folder or a zip."""

    def names(self) -> set[str]:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes] | _Member:
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        with self.open(name) as fh:
            return fh.read()


class _Folder(PackageFiles):
    def __init__(self, root: Path) -> None:
        if not (root / SUMS).exists():
            inner = [d for d in root.iterdir() if d.is_dir() and (d / SUMS).exists()]
            if len(inner) == 1:  # the folder the zip was unpacked into
                root = inner[0]
        self.root = root

    def names(self) -> set[str]:
        return {p.relative_to(self.root).as_posix() for p in self.root.rglob("*") if p.is_file() or p.is_symlink()}

    def open(self, name: str) -> IO[bytes]:
        return (self.root / name).open("rb")


class _Zip(PackageFiles):
    def __init__(self, path: Path, problems: list[str]) -> None:
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
            raise PackageUnreadable(
                f"the zip itself is damaged: {path.name} cannot be opened as a zip (its central "
                f"directory is unreadable: {exc}); ask for a new copy of the package"
            ) from None
        infos = [i for i in self.zf.infolist() if not i.is_dir()]
        for info in infos:
            pure = PurePosixPath(info.filename)
            if pure.is_absolute() or ".." in pure.parts:
                problems.append(f"unsafe path in the zip: {info.filename!r} (refused)")
        roots = sorted((i.filename[: -len(SUMS)] for i in infos if i.filename.rsplit("/", 1)[-1] == SUMS), key=len)
        self.prefix = roots[0] if roots else ""
        self.members = {i.filename[len(self.prefix) :]: i for i in infos if i.filename.startswith(self.prefix)}
        for info in infos:
            if not info.filename.startswith(self.prefix):
                problems.append(f"extra file outside the package folder: {info.filename}")

    def names(self) -> set[str]:
        return set(self.members)

    def open(self, name: str) -> _Member:
        try:
            return _Member(self.zf.open(self.members[name]), name)
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, ValueError) as exc:
            raise MemberDamaged(_member_problem(name, exc)) from None


class _Member:
    """A zip member's reader whose read errors name the member."""

    def __init__(self, fh: IO[bytes], name: str) -> None:
        self._fh, self._name = fh, name

    def read(self, n: int = -1) -> bytes:
        try:
            return self._fh.read(n)
        except (zipfile.BadZipFile, zlib.error, EOFError, ValueError) as exc:
            raise MemberDamaged(_member_problem(self._name, exc)) from None

    def __enter__(self) -> _Member:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


@contextmanager
def open_package(path: Path, problems: list[str]) -> Iterator[PackageFiles]:
    """The package at `path`, a folder or a zip; problems of the zip's layout (unsafe paths, files outside the
    package folder) are added to `problems`."""
    if path.is_dir():
        yield _Folder(path)
    elif path.is_file():
        package = _Zip(path, problems)
        try:
            yield package
        finally:
            package.zf.close()
    else:
        raise PackageUnreadable(f"{path}: no such folder or zip")


def sha256_of(package: PackageFiles, name: str) -> str:
    hasher = hashlib.sha256()
    with package.open(name) as fh:
        while chunk := fh.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()
