"""The platform's keys: the master key that wraps data keys, and the signing key of receipts,
journal checkpoints, device certificates and extraction packages.

The master key is read from TEMOIN_MASTER_KEY (base64, 32 bytes) or from a file
(TEMOIN_MASTER_KEY_FILE, default TEMOIN_HOME/keys/master.key). It is never stored in the database.

The signing key has a history (keys/platform-keys.json, public): `temoin keys rotate` makes a new key,
endorsed by the old one, and retires the old one with its validity. The retired private key is not kept:
nothing needs to be signed again by it (what it signed verifies with its public part and its validity), and a
key that no longer exists cannot sign a backdated receipt, checkpoint or package if the vault is later stolen
or the key was rotated because it leaked.

Private key files are 0600 in a 0700 folder, written through a unique temporary file with fsync of the file
and the folder; the platform refuses to start when one is readable by group or others.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin import errors, private_files
from temoin.evidence.canonical import b64e
from temoin.evidence.keys import KeySet, PlatformKey, endorsement_bytes, key_id
from temoin.evidence.signing import load_private_key_pem, private_key_pem, public_key_bytes
from temoin.private_files import private_folder
from temoin.settings import Settings

SIGNING_KEY_FILE, HISTORY_FILE, MASTER_KEY_FILE = "platform-signing.pem", "platform-keys.json", "master.key"
ROTATION_LOCK = ".rotation.lock"
_log = logging.getLogger(__name__)


class KeyError_(errors.Fault, RuntimeError):
    """A key is missing, malformed or exposed; the message says where and what to do."""


def write_private(path: Path, data: bytes, *, exclusive: bool = False) -> None:
    """Write `data` to `path`, mode 0600, crash-safe (private_files.write_private), in its folder made private."""
    private_folder(path.parent)
    private_files.write_private(path, data, exclusive=exclusive)


def check_private(path: Path) -> None:
    """Refuse a private key file that group or others may read or write."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyError_(
            f"{path} is a private key but its mode is {mode:04o} (group or others have access): "
            f"only the service's user may read it; run `chmod 600 {path}` and start again"
        )


def _now() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _rotation_lock(folder: Path, *, exclusive: bool) -> Iterator[None]:
    """A rotation (exclusive) against stamping and signing a statement (shared, any number of processes): the
    statement is then wholly before the rotation (old key, a time before its end) or wholly after it. Each holder
    opens the file anew: flock belongs to the open file, so threads sharing one would release each other's."""
    try:
        fd = os.open(folder / ROTATION_LOCK, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        try:
            fd = os.open(folder / ROTATION_LOCK, os.O_RDONLY)
        except OSError:  # a read-only keys folder without the file: nobody rotates there
            yield
            return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Signer:
    """One view of the current signing key: the key, its id and the history naming it, taken together by
    `Keyring.signing`. A statement names `key_id` and is signed by `sign` of the same Signer, so the id it names
    is always the key that signed it, whatever rotates meanwhile."""

    key: Ed25519PrivateKey
    history: KeySet = field(default_factory=KeySet)

    @property
    def public_key(self) -> bytes:
        return public_key_bytes(self.key)

    @property
    def key_id(self) -> str:
        return key_id(self.public_key)

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.public_key).hexdigest()

    @property
    def since(self) -> datetime | None:
        """When this key became current (None: since the beginning, or no history)."""
        known = self.history.by_raw(self.public_key)
        return known.valid_from if known is not None else None

    @property
    def trusted(self) -> KeySet:
        return self.history if self.history else KeySet.of_raw(self.public_key, "the platform's signing key")

    def public_key_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, message: bytes) -> str:
        return b64e(self.key.sign(message))


@dataclass(frozen=True)
class _Keys:
    """One consistent view of the signing keys: the private key and the history naming it current."""

    signing_key: Ed25519PrivateKey
    history: KeySet


def _stamp(folder: Path) -> tuple | None:
    """What changes when either key file is replaced (each write is a new inode): two stat calls."""
    try:
        return tuple(
            (s.st_ino, s.st_mtime_ns, s.st_size)
            for s in (os.stat(folder / SIGNING_KEY_FILE), os.stat(folder / HISTORY_FILE))
        )
    except OSError:
        return None


class Keyring:
    """The master key and the platform's signing keys.

    A running server follows `temoin keys rotate` made by another process: before each use of the signing key
    (signing, its id, the published history) the key files' inode, mtime and size are compared with those
    last read, and on a change both are read again. Each server process does this on its own, so several
    processes switch at their next signature, without a signal or a restart. The check never writes: a
    half-done rotation (new private key, old history) keeps the keys already loaded and is read again at the
    use after the history is written; a crash in between is repaired at the next start (`_history`)."""

    def __init__(
        self,
        master_key: bytes,
        signing_key: Ed25519PrivateKey,
        history: KeySet | None = None,
        keys_dir: Path | None = None,
    ) -> None:
        self.master_key = master_key
        self._keys = _Keys(signing_key, history or KeySet())
        self._dir = keys_dir  # None: fixed keys, never read again
        self._stamp = _stamp(keys_dir) if keys_dir is not None else None
        self._lock = threading.Lock()

    def _current(self) -> _Keys:
        if self._dir is not None:
            stamp = _stamp(self._dir)
            if stamp is not None and stamp != self._stamp:
                self._reload(stamp)
        return self._keys

    def _reload(self, stamp: tuple) -> None:
        assert self._dir is not None
        with self._lock:
            if stamp == self._stamp:
                return  # another thread read them meanwhile
            try:
                keys = _read_keys(self._dir)
            except (OSError, KeyError_) as exc:
                _log.warning(
                    "platform keys in %s changed but cannot be used (%s): still signing with %s",
                    self._dir,
                    exc,
                    key_id(public_key_bytes(self._keys.signing_key)),
                )
                keys = None
            self._stamp = stamp  # read again only once a file changes again (the rotation's second write)
            if keys is None:
                _log.info(
                    "platform keys in %s are between the two writes of a rotation: still signing with %s",
                    self._dir,
                    key_id(public_key_bytes(self._keys.signing_key)),
                )
                return
            before = public_key_bytes(self._keys.signing_key)
            self._keys = keys
            if public_key_bytes(keys.signing_key) != before:
                _log.warning(
                    "platform signing key rotated: now signing with %s (was %s)",
                    key_id(public_key_bytes(keys.signing_key)),
                    key_id(before),
                )

    @property
    def signing_key(self) -> Ed25519PrivateKey:
        return self._current().signing_key

    @property
    def history(self) -> KeySet:
        """Every platform signing key, the current one last."""
        return self._current().history

    @property
    def master_key_id(self) -> str:
        # Identifies which master key wrapped a data key, without revealing it.
        return hashlib.sha256(b"temoin-master-key-id" + self.master_key).hexdigest()[:16]

    @property
    def public_key(self) -> bytes:
        return public_key_bytes(self.signing_key)

    @property
    def public_key_id(self) -> str:
        return hashlib.sha256(self.public_key).hexdigest()[:16]

    @property
    def fingerprint(self) -> str:
        """The full SHA-256 fingerprint of the current public key: what recipients compare."""
        return hashlib.sha256(self.public_key).hexdigest()

    @property
    def trusted(self) -> KeySet:
        """The platform's keys as verifiers see them: current and retired, each with its validity."""
        keys = self._current()
        return (
            keys.history
            if keys.history
            else KeySet.of_raw(public_key_bytes(keys.signing_key), "the platform's signing key")
        )

    @contextmanager
    def signing(self) -> Iterator[Signer]:
        """The current key, its id and history, taken at once, for a statement naming the key and stamped with the
        time inside the block: a rotation waits for the block to end, so the statement names the key that signs it
        and that key is valid at that time, whoever rotates, in whatever process. Every platform signature is made
        through it (receipts, certificates, journal checkpoints, deletion certificates, extraction packages)."""
        if self._dir is None:
            keys = self._keys
            yield Signer(keys.signing_key, keys.history)
            return
        with _rotation_lock(self._dir, exclusive=False):
            keys = self._current()
            yield Signer(keys.signing_key, keys.history)

    def public_key_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.signing_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @classmethod
    def load(cls, settings: Settings, create: bool = False) -> Keyring:
        stamp = _stamp(settings.keys_dir)  # before reading: a rotation meanwhile is seen at the first use
        signing_key = _signing_key(settings, create)
        keyring = cls(
            master_key=_master_key(settings, create),
            signing_key=signing_key,
            history=_history(settings, signing_key),
            keys_dir=settings.keys_dir,
        )
        keyring._stamp = stamp
        return keyring


def _read_keys(folder: Path) -> _Keys | None:
    """The signing key and its history as they are on disk now, or None when the history does not name that key
    current (a rotation between its two writes). Reads only."""
    path = folder / SIGNING_KEY_FILE
    check_private(path)
    try:
        signing_key = load_private_key_pem(path.read_bytes())
        history = KeySet.from_json(orjson.loads((folder / HISTORY_FILE).read_bytes()), str(folder / HISTORY_FILE))
    except ValueError as exc:  # orjson's decode error is a ValueError
        raise KeyError_(f"{folder}: {exc}") from None
    known = history.by_raw(public_key_bytes(signing_key))
    return _Keys(signing_key, history) if known is not None and known.current else None


def _master_key(settings: Settings, create: bool) -> bytes:
    if settings.master_key_env:
        try:
            key = base64.b64decode(settings.master_key_env, validate=True)
        except ValueError:
            raise KeyError_("TEMOIN_MASTER_KEY is not valid base64; it must encode 32 random bytes") from None
        if len(key) != 32:
            raise KeyError_("TEMOIN_MASTER_KEY must encode exactly 32 bytes (AES-256)")
        return key
    path = settings.master_key_file or settings.keys_dir / MASTER_KEY_FILE
    if not path.exists():
        if not create:
            raise KeyError_(
                f"no master key at {path}: run `temoin init`, or set TEMOIN_MASTER_KEY / "
                "TEMOIN_MASTER_KEY_FILE to the key this vault was created with"
            )
        try:
            write_private(path, base64.b64encode(os.urandom(32)) + b"\n", exclusive=True)
        except FileExistsError:
            pass  # another process created it first: use that one
    check_private(path)
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except ValueError:
        key = b""
    if len(key) != 32:
        raise KeyError_(f"{path} must hold 32 bytes, base64-encoded")
    return key


def _signing_key(settings: Settings, create: bool) -> Ed25519PrivateKey:
    path = settings.keys_dir / SIGNING_KEY_FILE
    if not path.exists():
        if not create:
            raise KeyError_(f"no platform signing key at {path}: run `temoin init`")
        key = Ed25519PrivateKey.generate()
        try:
            write_private(path, private_key_pem(key), exclusive=True)
            _write_history(settings, KeySet((PlatformKey(public_key_bytes(key), valid_from=_now()),)))
        except FileExistsError:
            pass
    check_private(path)
    try:
        return load_private_key_pem(path.read_bytes())
    except ValueError as exc:
        raise KeyError_(f"{path} is not an Ed25519 private key (PEM): {exc}") from None


def _write_history(settings: Settings, history: KeySet) -> None:
    write_private(settings.keys_dir / HISTORY_FILE, orjson.dumps(history.as_json(), option=orjson.OPT_INDENT_2) + b"\n")


def _history(settings: Settings, signing_key: Ed25519PrivateKey) -> KeySet:
    """The key history, made consistent with the signing key on disk.

    No history (a platform from before key history): the current key, valid since the beginning. A signing
    key the history does not know (a rotation interrupted between its two writes): it becomes current from
    the time its file was written, and the key before it retires then."""
    path = settings.keys_dir / HISTORY_FILE
    current = public_key_bytes(signing_key)
    if path.exists():
        try:
            history = KeySet.from_json(orjson.loads(path.read_bytes()), str(path))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise KeyError_(f"{path} is not a readable key history ({exc}); restore it from a backup") from None
    else:
        history = KeySet()
    known = history.by_raw(current)
    if known is not None and known.current:
        return history
    if known is not None:
        raise KeyError_(
            f"the platform signing key {known.id} was retired ({known.validity()}) but is the one "
            f"in {settings.keys_dir / SIGNING_KEY_FILE}: restore the current key from a backup, or "
            "run `temoin keys rotate` to make a new one"
        )
    since = datetime.fromtimestamp((settings.keys_dir / SIGNING_KEY_FILE).stat().st_mtime, UTC)
    keys = [replace(k, valid_until=since) if k.current else k for k in history.keys]
    history = KeySet(tuple(keys) + (PlatformKey(current, valid_from=since if keys else None),), history.sources)
    try:
        _write_history(settings, history)
    except OSError:
        pass  # a read-only keys folder: the same history is rebuilt next time
    return history


def rotate(settings: Settings) -> tuple[PlatformKey, PlatformKey]:
    """Make a new platform signing key; the old one signs its introduction, then retires. Returns (old, new).

    The new private key is written first: a crash before the history is updated is repaired at the next
    start (see _history); the old private key is destroyed by the replacement. Statements stamped and signed
    under `Keyring.signing` (receipts) wait for the rotation's lock: none falls between its two writes."""
    with _rotation_lock(settings.keys_dir, exclusive=True):
        keyring = Keyring.load(settings)
        old = keyring.history.current
        assert old is not None
        new_key, now = Ed25519PrivateKey.generate(), _now()
        raw = public_key_bytes(new_key)
        endorsement = Signer(keyring.signing_key).sign(endorsement_bytes(PlatformKey(raw).id, raw, now))
        new = PlatformKey(raw, valid_from=now, endorsed_by=old.id, endorsement=endorsement)
        retired = replace(old, valid_until=now)
        history = KeySet(tuple(retired if k.public_key == old.public_key else k for k in keyring.history) + (new,))
        write_private(settings.keys_dir / SIGNING_KEY_FILE, private_key_pem(new_key))
        _write_history(settings, history)
    return retired, new
