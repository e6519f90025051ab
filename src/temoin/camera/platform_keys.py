"""The platform keys a camera trusts, and how it follows a rotation of the platform's signing key.

At enrolment the camera pins the platform's key (`keys/platform.pub`); only what a trusted platform key signs
(a receipt, a deletion statement) lets it delete footage. After `temoin keys rotate`, the vault signs with a
key the camera has never seen. The camera then fetches the platform's published keys
(`/.well-known/temoin/keys.json`, public) and accepts a new key only through an unbroken chain of
endorsements from a key it already trusts: each key's introduction signed by the key it replaced
(`KeySet.follow_rotations`). The network is not trusted: a forged key list (a rogue vault, a man in the
middle) holds no endorsement a trusted key made, so it can make the camera accept nothing and delete nothing.

What the camera learnt is kept in `keys/platform-keys.json` (0600, atomic write; a new enrolment removes it).
Each followed rotation retires the key it replaced from the new key's start, a time that key signed: a
receipt stamped later by a retired key is refused.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import httpx
import orjson

from temoin import errors
from temoin.camera.files import atomic_write, private_dir, read_private
from temoin.evidence.canonical import b64d
from temoin.evidence.keys import KeySet, PlatformKey
from temoin.evidence.manifest import SignedReceipt

TRUST_FILE = "platform-keys.json"
KEYS_PATH = "/.well-known/temoin/keys.json"
MAX_KEYS_BYTES = 1 << 20  # a key list is a few kB; a bigger answer is not one
RETRY_S = 60.0  # a key id the camera could not follow to is looked up again after this

_log = logging.getLogger(__name__)

Fetch = Callable[[], KeySet]  # the platform's published keys; raises KeysUnavailable
OnFollow = Callable[[list[PlatformKey], str], None]  # keys newly trusted, where from


class KeysUnavailable(errors.UpstreamFault, RuntimeError):
    """The platform's published keys could not be fetched or read (offline, not a key list)."""


def fetch_published(base_url: str, timeout: float = 10.0) -> KeySet:
    """GET the platform's key list. The answer is only a candidate: `follow_rotations` decides what is trusted."""
    url = f"{base_url.rstrip('/')}{KEYS_PATH}"
    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        raise KeysUnavailable(f"{url} unreachable ({type(exc).__name__}: {exc})") from None
    if response.status_code != 200:
        raise KeysUnavailable(f"{url} answered {response.status_code}")
    if len(response.content) > MAX_KEYS_BYTES:
        raise KeysUnavailable(f"{url} answered {len(response.content)} bytes: not a key list")
    try:
        return KeySet.from_json(orjson.loads(response.content), url)
    except ValueError as exc:  # orjson's decode error is a ValueError
        raise KeysUnavailable(f"{url}: {exc}") from None


class PlatformTrust:
    """The platform keys one camera trusts: the key pinned at enrolment and those it followed since.

    `folder`: the camera's keys folder, where what was followed is kept (None: in memory only). `fetch`: how to
    get the platform's published keys (None: follow nothing; the pinned key alone). Instances sharing a folder
    see each other's follow-ups (the file is read at each check)."""

    def __init__(
        self, pinned: bytes, folder: Path | None = None, fetch: Fetch | None = None, on_follow: OnFollow | None = None
    ) -> None:
        self.pinned = KeySet.of_raw(pinned, "the platform key pinned at enrolment")
        self.folder, self.fetch, self.on_follow = folder, fetch, on_follow
        self._followed: KeySet | None = None  # in memory, when there is no folder
        self._refused: dict[str, tuple[float, str]] = {}  # key id -> when it was last looked up in vain, and why

    @classmethod
    def of(cls, key: bytes | PlatformTrust | None) -> PlatformTrust | None:
        """A trust from what callers hold: a trust as is, a raw pinned key (follows nothing), or None."""
        return key if isinstance(key, PlatformTrust) or key is None else cls(key)

    def keys(self) -> KeySet:
        """The trusted keys, oldest first. A kept set that does not start from the pinned key is ignored
        (left by another enrolment, or damaged): the pinned key alone, and rotations are followed again."""
        kept = self._followed
        if self.folder is not None:
            path = self.folder / TRUST_FILE
            try:
                kept = KeySet.from_json(orjson.loads(read_private(path)), str(path))
            except FileNotFoundError:
                kept = None
            except (OSError, ValueError) as exc:
                _log.warning("%s is unusable (%s): trusting the pinned platform key only", path, exc)
                kept = None
        if kept and kept.keys[0].public_key == self.pinned.keys[0].public_key:
            return kept
        return self.pinned

    def check(self, signature: str, message: bytes, *, key_id: str | None, at: datetime | None) -> PlatformKey | str:
        """The trusted key that signed `message` and was valid at `at` (the time the statement gives), or why
        none did. A statement naming a key the camera does not trust has the camera follow the platform's
        rotations first (one fetch per unknown key id and minute)."""
        try:
            raw = b64d(signature)
        except ValueError:
            return "its signature is not base64"
        if at is not None and at.tzinfo is None:
            return "its time has no time zone"
        keys = self.keys()
        # Any trusted key valid at `at` will do: the id a statement names is only a hint for finding the key.
        found = keys.signer(raw, message, at=at)
        if found is not None:
            return found
        named = keys.get(key_id)
        if named is not None:
            if not named.valid_at(at):
                return (
                    f"it names platform key {named.id}, which was not the platform's key at "
                    f"{at.isoformat() if at else 'that time'} ({named.validity()})"
                )
            return f"it names platform key {named.id} but that key did not make its signature"
        if key_id is None or self.fetch is None:
            return f"no platform key this camera trusts made it (it names {key_id or 'no key'})"
        why = self.follow(key_id)
        found = self.keys().signer(raw, message, at=at)
        if found is not None:
            return found
        return why or f"it names platform key {key_id}, and that key did not make its signature"

    def check_receipt(self, receipt: SignedReceipt) -> PlatformKey | str:
        """The trusted key that signed the vault's receipt, valid when it says the recording was stored."""
        return self.check(
            receipt.signature,
            receipt.receipt.signing_bytes(),
            key_id=receipt.receipt.platform_key_id,
            at=receipt.receipt.stored_at,
        )

    def follow(self, key_id: str) -> str | None:
        """Fetch the published keys and trust those endorsed by a chain from a trusted key. Returns None when
        `key_id` is trusted afterwards, else why not."""
        refused = self._refused.get(key_id)
        if refused is not None and time.monotonic() - refused[0] < RETRY_S:
            return refused[1]  # looked up less than a minute ago: the same answer, without asking again
        why = self._follow(key_id)
        if why is not None:
            self._refused[key_id] = (time.monotonic(), why)
        return why

    def _follow(self, key_id: str) -> str | None:
        assert self.fetch is not None
        try:
            published = self.fetch()
        except KeysUnavailable as exc:
            return (
                f"it names platform key {key_id}, unknown to this camera, and the platform's keys could not "
                f"be fetched ({exc}): try again when the platform is reachable"
            )
        source = published.sources[0] if published.sources else KEYS_PATH
        trusted = self.keys()
        followed = trusted.follow_rotations(published)
        learnt = [k for k in followed if trusted.by_raw(k.public_key) is None]
        if learnt:
            self._keep(followed)
            _log.info("platform key rotation followed: now trusting %s", ", ".join(k.id for k in learnt))
            if self.on_follow is not None:
                self.on_follow(learnt, source)
        if followed.get(key_id) is not None:
            return None
        offered = published.get(key_id)
        if offered is None:
            return f"it names platform key {key_id}, which the platform's published keys ({source}) do not list"
        claim = (
            f"its endorsement, claimed by {offered.endorsed_by}, does not verify"
            if offered.endorsed_by
            else "it claims no endorsement"
        )
        return (
            f"it names platform key {key_id}, which {source} lists without an unbroken chain of endorsements "
            f"from a key this camera trusts ({claim}): a forged key list, or a platform key replaced without "
            "rotation (then re-enrol the camera)"
        )

    def _keep(self, keys: KeySet) -> None:
        self._followed = keys
        if self.folder is not None:
            atomic_write(
                private_dir(self.folder) / TRUST_FILE, orjson.dumps(keys.as_json(), option=orjson.OPT_INDENT_2) + b"\n"
            )


def forget_followed(folder: Path) -> None:
    """A new enrolment starts from its own pinned key: what was followed from another one goes."""
    (folder / TRUST_FILE).unlink(missing_ok=True)
