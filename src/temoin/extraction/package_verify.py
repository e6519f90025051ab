"""Offline verification of an extraction package (a folder or its zip): no database, no network.

One function per check, run in order (CHECKS); each failure is named in one line:
1. SHA256SUMS against every file: missing, extra (not covered), altered; a damaged zip member is named.
2. SHA256SUMS.sig, an Ed25519 signature of SHA256SUMS: with the included platform-public-key.pem (the package
   is consistent), then with the keys the caller pinned (--key, --fingerprint, a trust store): a package is
   intact only when a pinned key, valid when the package was made, signed it. A package re-signed with
   another key and shipped with it is consistent but not pinned: its verdict says which fingerprint to compare.
3. Each recording: the camera key's certificate (signed by a platform key the pinned signer vouches for, the
   recording signed within its validity), the device signature of its manifest envelope, the segment hash
   chain up to the signed head, the vault's signed receipt (by the platform key it names, valid when it was
   signed), and that each media file is what the manifest says it is.
4. The manifest's internal consistency (ids, files, kinds).
5. SHA256SUMS.tsr, the RFC 3161 timestamp of SHA256SUMS when the platform had a TSA: its imprint, and with the
   TSA's CA bundle given by the caller, its signature and chain (docs/timestamping.md).
"""

from __future__ import annotations

import hashlib
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from temoin import errors
from temoin.evidence.canonical import b64d
from temoin.evidence.certificates import SignedCertificate
from temoin.evidence.chain import chain_links
from temoin.evidence.keys import KeySet, PlatformKey, fingerprint as raw_fingerprint, raw_of_pem
from temoin.evidence.manifest import SignedManifest, SignedReceipt
from temoin.evidence.timestamp import TimestampError, inspect_token, verify_token

SUMS, SIGNATURE, MANIFEST, KEY_FILE = "SHA256SUMS", "SHA256SUMS.sig", "manifest.json", "platform-public-key.pem"
TIMESTAMP = "SHA256SUMS.tsr"
KEYS_FILE = "platform-keys.json"
SCHEMA = "temoin.extraction/1"
_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")
_CHUNK = 1024 * 1024


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


class _Package:
    """Files of a package, by their path inside it, whether a folder or a zip."""

    def names(self) -> set[str]:
        raise NotImplementedError

    def open(self, name: str) -> IO[bytes] | _Member:
        raise NotImplementedError

    def read(self, name: str) -> bytes:
        with self.open(name) as fh:
            return fh.read()


class _Folder(_Package):
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


class _Zip(_Package):
    def __init__(self, path: Path, report: Report) -> None:
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
                report.problems.append(f"unsafe path in the zip: {info.filename!r} (refused)")
        roots = sorted((i.filename[: -len(SUMS)] for i in infos if i.filename.rsplit("/", 1)[-1] == SUMS), key=len)
        self.prefix = roots[0] if roots else ""
        self.members = {i.filename[len(self.prefix) :]: i for i in infos if i.filename.startswith(self.prefix)}
        for info in infos:
            if not info.filename.startswith(self.prefix):
                report.problems.append(f"extra file outside the package folder: {info.filename}")

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
def _opened(path: Path, report: Report) -> Iterator[_Package]:
    if path.is_dir():
        yield _Folder(path)
    elif path.is_file():
        package = _Zip(path, report)
        try:
            yield package
        finally:
            package.zf.close()
    else:
        raise PackageUnreadable(f"{path}: no such folder or zip")


def _hash(package: _Package, name: str) -> str:
    hasher = hashlib.sha256()
    with package.open(name) as fh:
        while chunk := fh.read(_CHUNK):
            hasher.update(chunk)
    return hasher.hexdigest()


def _public_key(pem: bytes) -> bytes:
    return raw_of_pem(pem)


def fingerprint(key: Ed25519PublicKey | bytes) -> str:
    from temoin.evidence.signing import public_key_bytes

    return raw_fingerprint(key if isinstance(key, bytes) else public_key_bytes(key))


# --- the checks ---------------------------------------------------------------------------------------


class _Stop(Exception):
    """Nothing more can be checked (e.g. no SHA256SUMS)."""


@dataclass
class _Context:
    package: _Package
    report: Report
    pins: KeySet  # keys the caller pinned
    fingerprints: tuple[str, ...]  # full fingerprints the caller pinned
    names: set[str] = field(default_factory=set)
    sums: bytes = b""
    actual: dict[str, str] = field(default_factory=dict)  # name -> SHA-256 of what is in the package
    manifest: dict[str, Any] | None = None
    created_at: datetime | None = None
    # Platform keys receipts and certificates are checked with: the pinned signer and the key history it
    # vouches for; when nothing pinned signed, the package's own (for consistency only: the verdict says so).
    keys: KeySet = field(default_factory=KeySet)
    tsa_ca_pem: bytes | None = None  # the TSA's CA certificates, to check SHA256SUMS.tsr

    def read(self, name: str) -> bytes | None:
        """A small member's bytes, or None (with the problem reported) when the zip member is damaged."""
        try:
            return self.package.read(name)
        except MemberDamaged as exc:
            self.report.problems.append(str(exc))
            return None


def verify_package(
    path: Path,
    trusted: bytes | KeySet | None = None,
    *,
    fingerprints: tuple[str, ...] = (),
    tsa_ca_pem: bytes | None = None,
) -> Report:
    """Check a package. `trusted`: the pinned platform keys (a KeySet, or one PEM key as bytes);
    `fingerprints`: full SHA-256 fingerprints of pinned keys; `tsa_ca_pem`: the TSA's CA
    certificates, to check SHA256SUMS.tsr. Report.ok needs a pinned signer."""
    report = Report()
    if isinstance(trusted, bytes):
        try:
            trusted = KeySet.of_raw(_public_key(trusted), "--key")
        except ValueError as exc:
            report.problems.append(f"the trusted key given with --key is not an Ed25519 public key (PEM): {exc}")
            return report
    try:
        with _opened(path, report) as package:
            ctx = _Context(package, report, trusted or KeySet(), tuple(fingerprints), tsa_ca_pem=tsa_ca_pem)
            for check in CHECKS:
                check(ctx)
    except PackageUnreadable as exc:
        report.problems.append(str(exc))
    except _Stop:
        pass
    return report


def _check_sums(ctx: _Context) -> None:
    report, package = ctx.report, ctx.package
    ctx.names = names = package.names()
    if SUMS not in names:
        report.problems.append(f"missing: {SUMS} (the list of every file's SHA-256): nothing can be verified")
        raise _Stop
    sums = ctx.read(SUMS)
    if sums is None:
        raise _Stop
    ctx.sums = sums
    listed: dict[str, str] = {}
    for n, line in enumerate(sums.decode("utf-8", "replace").splitlines(), 1):
        match = _LINE.match(line)
        if not match:
            report.problems.append(f"{SUMS} line {n} is malformed: {line[:80]!r}")
            continue
        listed[match.group(2)] = match.group(1)
    for name, expected in sorted(listed.items()):
        if name not in names:
            report.problems.append(f"missing: {name} (listed in {SUMS})")
            continue
        try:
            digest = _hash(package, name)
        except MemberDamaged as exc:
            report.problems.append(str(exc))
            continue
        ctx.actual[name] = digest
        if digest != expected:
            report.problems.append(f"altered: {name}: its SHA-256 is {digest}, {SUMS} says {expected}")
    for name in sorted(names - set(listed) - {SUMS, SIGNATURE, TIMESTAMP}):
        report.problems.append(f"extra file not covered by {SUMS}: {name}")
    report.checked.append(f"{len(ctx.actual)} files hashed against {SUMS}")


def _read_manifest(ctx: _Context) -> None:
    if MANIFEST not in ctx.actual:
        return  # missing or damaged: already reported
    raw = ctx.read(MANIFEST)
    try:
        manifest = orjson.loads(raw or b"")
    except orjson.JSONDecodeError as exc:
        ctx.report.problems.append(f"manifest.json is not valid JSON: {exc}")
        return
    if not isinstance(manifest, dict):
        ctx.report.problems.append("manifest.json is not a JSON object")
        return
    ctx.manifest = manifest
    try:
        ctx.created_at = datetime.fromisoformat(manifest["created_at"])
    except (KeyError, TypeError, ValueError):
        ctx.report.problems.append("manifest.json: created_at is missing or not a date")


def _included_keys(ctx: _Context) -> tuple[bytes | None, KeySet]:
    """The package's own platform key (PEM) and key history: consistent with it, vouched for by nobody yet."""
    report, included, history = ctx.report, None, KeySet()
    if KEY_FILE not in ctx.names:
        report.problems.append(f"missing: {KEY_FILE} (the platform's public key)")
    elif (pem := ctx.read(KEY_FILE)) is not None:
        try:
            included = _public_key(pem)
        except ValueError as exc:
            report.problems.append(f"{KEY_FILE} is not an Ed25519 public key (PEM): {exc}")
    if KEYS_FILE in ctx.actual and (raw := ctx.read(KEYS_FILE)) is not None:
        try:
            history = KeySet.from_json(orjson.loads(raw), KEYS_FILE)
        except (orjson.JSONDecodeError, ValueError) as exc:
            report.problems.append(f"{KEYS_FILE} is not the platform's key list: {exc}")
    return included, history


def _check_signature(ctx: _Context) -> None:
    report = ctx.report
    included, history = _included_keys(ctx)
    own = (KeySet.of_raw(included, KEY_FILE) if included else KeySet()).merged(history)
    ctx.keys = history.merged(own)
    if SIGNATURE not in ctx.names:
        report.problems.append(f"missing: {SIGNATURE} (the platform's signature of {SUMS})")
        report.unpinned = "the package carries no signature: nothing says who made it"
        return
    signature = ctx.read(SIGNATURE)
    if signature is None:
        return
    if included is not None:
        if KeySet.of_raw(included, KEY_FILE).verify(signature, ctx.sums):
            report.checked.append(f"{SIGNATURE} verifies with the included {KEY_FILE}")
        else:
            report.problems.append(
                f"signature: {SIGNATURE} is not a valid signature of {SUMS} by {KEY_FILE}: "
                f"{SUMS} was changed after signing, or the signature is forged"
            )
    # A fingerprint pins whichever included key has it.
    pinned = ctx.pins.merged(k for k in own if k.fingerprint in ctx.fingerprints)
    signer = pinned.signer(signature, ctx.sums, at=ctx.created_at)
    if signer is not None:
        report.signer = signer
        report.checked.append(
            f"{SIGNATURE} is signed by the pinned platform key {signer.id} (SHA-256 fingerprint {signer.fingerprint})"
        )
        # The pinned key vouches for the history it signed: receipts and certificates by retired keys verify.
        ctx.keys = pinned.with_validity_from(history).merged(history)
        return
    actual = own.signer(signature, ctx.sums)
    named = (
        f"the key with SHA-256 fingerprint {actual.fingerprint}"
        if actual
        else "no key this package names (its signature verifies with none of them)"
    )
    stale = pinned.signer(signature, ctx.sums)
    if stale is not None:
        report.unpinned = (
            f"the package is signed by the pinned key {stale.fingerprint}, but that key was "
            f"{stale.validity()} and the package says it was made at "
            f"{ctx.created_at.isoformat() if ctx.created_at else '?'}: it was not made by the "
            "platform while the key was its own"
        )
    elif pinned or ctx.fingerprints:
        given = sorted({k.fingerprint for k in pinned} | set(ctx.fingerprints))
        report.unpinned = (
            f"the package is signed by {named}, which is none of the pinned keys "
            f"({', '.join(given)}): it was not signed by that platform, or it was re-signed "
            "after being changed; do not rely on it"
        )
    else:
        report.unpinned = (
            f"the package is signed by {named}, which is not pinned: anyone can re-sign a "
            "modified package with a key of their own and ship it. Compare this fingerprint with "
            "the one the service publishes (https://<service>/.well-known/temoin/keys.pem, its "
            "annual report), then run again with --key FILE, --fingerprint HEX or a trust store"
        )


def _check_timestamp(ctx: _Context) -> None:
    """SHA256SUMS.tsr sits outside SHA256SUMS (it stamps it), so it can be removed unnoticed: a caller who gives
    --tsa-ca expects a timestamp, and its absence is then a problem."""
    report, tsa_ca_pem = ctx.report, ctx.tsa_ca_pem
    if TIMESTAMP not in ctx.names:
        if tsa_ca_pem is not None:
            report.problems.append(
                f"not timestamped: no {TIMESTAMP}, though --tsa-ca asks for a timestamp (the "
                "platform had no timestamp authority or it failed at extraction, or the token "
                "was removed)"
            )
        else:
            report.notes.append(f"not timestamped (no {TIMESTAMP}): the package's time rests on the platform's word")
        return
    token = ctx.read(TIMESTAMP)
    if token is None:
        return
    try:
        if tsa_ca_pem is None:
            claimed = inspect_token(token, ctx.sums)  # the imprint can be checked without the TSA's CA
            report.warnings.append(
                f"timestamp present but not checked: give --tsa-ca (the TSA's CA certificates, "
                f"PEM); {TIMESTAMP} matches {SUMS} and claims {claimed.describe()}"
            )
            return
        info = verify_token(token, ctx.sums, tsa_ca_pem)
    except TimestampError as exc:
        report.problems.append(f"timestamp: {TIMESTAMP}: {exc.message}")
        return
    report.checked.append(f"{TIMESTAMP}: {SUMS} timestamped {info.describe()}; chain trusted by the --tsa-ca bundle")


def _check_manifest(ctx: _Context) -> None:
    if ctx.manifest is not None:
        _check_contents(ctx.manifest, ctx.actual, ctx.keys, ctx.report)


# The checks, in order.
CHECKS: tuple[Callable[[_Context], None], ...] = (
    _check_sums,
    _read_manifest,
    _check_signature,
    _check_timestamp,
    _check_manifest,
)


def _check_contents(m: dict[str, Any], actual: dict[str, str], keys: KeySet, report: Report) -> None:
    if m.get("schema") != SCHEMA:
        report.problems.append(f"manifest.json: schema is {m.get('schema')!r}, expected {SCHEMA!r}")
        return
    report.extraction_id = m.get("extraction_id")
    recordings = m.get("recordings") or []
    if not recordings:
        report.problems.append("manifest.json lists no recording")
    described: set[str] = set()
    for rec in recordings:
        rid = rec.get("id", "?")
        try:
            described |= _check_recording(rec, actual, keys, m.get("tenant", {}).get("slug"), report)
        except (KeyError, TypeError, ValueError) as exc:
            report.problems.append(f"manifest.json: recording {rid}: missing or malformed field ({exc!r})")
    for name in sorted(n for n in actual if n.startswith("media/") and n not in described):
        report.problems.append(f"manifest.json: {name} is in the package but described by no recording")
    kinds = {media.get("kind") for rec in recordings for media in rec.get("media") or []}
    if kinds and m.get("media_kind") not in kinds:
        report.problems.append(f"manifest.json: media_kind {m.get('media_kind')!r} but the files are {sorted(kinds)}")
    if m.get("custody", {}).get("entries") is None:
        report.problems.append("manifest.json: the custody section is missing")
    report.checked.append(f"{len(recordings)} recordings checked against their device-signed manifests")


def _check_recording(
    rec: dict[str, Any], actual: dict[str, str], keys: KeySet, tenant: str | None, report: Report
) -> set[str]:
    rid = rec["id"]
    where = f"recording {rid}"
    if rec.get("provenance") == AXIS_PROVENANCE:
        return _check_axis_recording(rec, actual, keys, where, report)
    try:
        envelope = SignedManifest.model_validate_json(rec["device_manifest"]["envelope"])
    except ValidationError as exc:
        first = exc.errors()[0]
        report.problems.append(
            f"{where}: the device manifest is malformed or its segment chain is broken "
            f"({'.'.join(str(x) for x in first['loc'])}: {first['msg']})"
        )
        return {media["file"] for media in rec.get("media") or []}
    manifest = envelope.manifest
    device_key = b64d(rec["device"]["public_key"])
    _check_device_key(rec, device_key, envelope, keys, tenant, where, report)
    if not envelope.verify(device_key):
        report.problems.append(f"{where}: the device signature of its manifest is invalid (altered or forged)")
    if manifest.recording_id != rid or manifest.camera_id != rec["camera_id"]:
        report.problems.append(
            f"{where}: the device manifest is for {manifest.recording_id} from camera "
            f"{manifest.camera_id}, not {rid} from {rec['camera_id']}"
        )
    if envelope.digest() != rec["device_manifest"]["sha256"]:
        report.problems.append(f"{where}: device_manifest.sha256 does not match the envelope")
    signed = {s.index: s for s in manifest.segments}
    links = chain_links(rid, (bytes.fromhex(s.sha256) for s in manifest.segments))
    if links[-1].hex() != manifest.chain_head or rec["chain_head"] != manifest.chain_head:
        report.problems.append(f"{where}: the segment hash chain does not end at the signed head")
    listed = [(s["index"], s["sha256"], s["chain"]) for s in rec["segments"]]
    if listed != [(s.index, s.sha256, s.chain) for s in manifest.segments]:
        report.problems.append(f"{where}: the segments listed in manifest.json differ from the device-signed ones")
    if [(f.lat, f.lon) for f in manifest.gps_track] != [(f["lat"], f["lon"]) for f in rec.get("gps_track") or []]:
        report.problems.append(f"{where}: the GPS track differs from the device-signed one")
    receipt = _check_receipt(rec, envelope, keys, where, report)
    lost = _check_lost(rec, receipt, signed, where, report)
    return _check_media(rec, actual, signed, lost, where, report)


def _check_media(
    rec: dict[str, Any], actual: dict[str, str], signed: dict[int, Any], lost: list[int], where: str, report: Report
) -> set[str]:
    """Each media file against manifest.json, and each original against the proven hash of its segment."""
    files: set[str] = set()
    kinds: set[str] = set()
    for media in rec.get("media") or []:
        name, kind = media["file"], media["kind"]
        files.add(name)
        kinds.add(kind)
        if name not in actual:
            report.problems.append(f"{where}: {name} is described in manifest.json but not in the package")
            continue
        if actual[name] != media["sha256"]:
            report.problems.append(f"{where}: {name} hashes to {actual[name]}, manifest.json says {media['sha256']}")
        if kind == "original":
            seg = signed.get(media.get("segment"))
            if seg is None:
                report.problems.append(f"{where}: {name} names segment {media.get('segment')}, not in the manifest")
            elif actual[name] != seg.sha256:
                report.problems.append(
                    f"{where}: {name} is not the camera's original: its SHA-256 differs from "
                    f"the device-signed hash of segment {seg.index}"
                )
        elif kind in ("trimmed", "redacted"):
            for src in media.get("derived_from") or []:
                seg = signed.get(src.get("index"))
                if seg is None or seg.sha256 != src.get("sha256"):
                    report.problems.append(
                        f"{where}: {name} claims to derive from segment {src.get('index')} "
                        "with a hash the device never signed"
                    )
                elif seg.index in lost:
                    report.problems.append(
                        f"{where}: {name} claims to derive from segment {seg.index}, which the "
                        "vault's signed receipt declares lost at the camera"
                    )
            if not media.get("derived_from"):
                report.problems.append(f"{where}: {name} ({kind}) does not say which original segments it comes from")
        else:
            report.problems.append(f"{where}: {name} has an unknown kind {kind!r}")
    if kinds == {"original"}:
        have = {media.get("segment") for media in rec["media"]}
        missing = sorted(set(signed) - have - set(lost))  # a lost one is declared in the signed receipt, not dropped
        if missing:
            report.problems.append(
                f"{where}: original segments {missing} are missing"
                + (f" (the vault's signed receipt declares only {lost} lost at the camera)" if lost else "")
            )
    if not set((rec.get("trim") or {}).get("lost_segments") or []) <= set(lost):
        report.problems.append(f"{where}: the trim names lost segments the vault's signed receipt does not declare")
    if "trimmed" in kinds and not rec.get("trim"):
        report.problems.append(f"{where}: a trimmed file but no trim section saying what range was kept")
    if "redacted" in kinds and not rec.get("redaction"):
        report.problems.append(f"{where}: a redacted file but no redaction section")
    return files


AXIS_PROVENANCE = "axis-body-worn"


@dataclass(frozen=True)
class _ProvenSegment:
    index: int
    sha256: str
    started_at: datetime
    duration_s: float


def _check_axis_recording(
    rec: dict[str, Any], actual: dict[str, str], keys: KeySet, where: str, report: Report
) -> set[str]:
    """A recording received through the Axis Body Worn system: its cameras sign nothing for the vault, so the proof
    is the vault's manifest document (SHA-256 of every object on arrival), stated by its signed receipt."""
    rid = rec["id"]
    document = rec["vault_manifest"]["document"]
    digest = hashlib.sha256(document.encode()).hexdigest()
    if digest != rec["vault_manifest"]["sha256"]:
        report.problems.append(f"{where}: the vault's manifest document does not hash to vault_manifest.sha256")
    m = orjson.loads(document)["manifest"]
    proven = {
        s["index"]: _ProvenSegment(
            s["index"], s["sha256"], datetime.fromisoformat(s["started_at"]), float(s["duration_s"])
        )
        for s in m["segments"]
    }
    links = chain_links(rid, (bytes.fromhex(s["sha256"]) for s in m["segments"]))
    if not links or links[-1].hex() != m["chain_head"] or rec["chain_head"] != m["chain_head"]:
        report.problems.append(f"{where}: the segment hash chain does not end at the head of the vault's document")
    listed = [(s["index"], s["sha256"], s["chain"]) for s in rec["segments"]]
    if listed != [(s["index"], s["sha256"], link.hex()) for s, link in zip(m["segments"], links, strict=False)]:
        report.problems.append(f"{where}: the segments listed in manifest.json differ from the vault's document")
    if [(f["lat"], f["lon"]) for f in m.get("gps_track") or []] != [
        (f["lat"], f["lon"]) for f in rec.get("gps_track") or []
    ]:
        report.problems.append(f"{where}: the GPS track differs from the vault's document")
    good = False
    try:
        receipt = SignedReceipt.model_validate(rec.get("receipt") or {})
        r = receipt.receipt
        good = keys.get(r.platform_key_id) is not None and keys.verify(
            b64d(receipt.signature), r.signing_bytes(), key_id=r.platform_key_id, at=r.stored_at
        )
        if good and (r.recording_id != rid or r.manifest_sha256 != digest or r.chain_head != m["chain_head"]):
            report.problems.append(f"{where}: the vault's receipt does not state this manifest document")
    except (ValidationError, ValueError):
        pass
    if not good:
        report.problems.append(
            f"{where}: the vault's receipt is missing, malformed or not signed by a platform key "
            "valid when it was issued"
        )
    if rec.get("lost_segments"):
        report.problems.append(f"{where}: lost segments are listed, but the vault's receipt declares none")
    report.notes.append(
        f"{where}: received through the Axis Body Worn system: no device signature; its integrity "
        "is proven from the SHA-256 the vault took of every object on arrival, in its signed receipt"
    )
    return _check_media(rec, actual, proven, [], where, report)


def _check_device_key(
    rec: dict[str, Any],
    device_key: bytes,
    envelope: SignedManifest,
    keys: KeySet,
    tenant: str | None,
    where: str,
    report: Report,
) -> None:
    """The camera key must be certified by a platform key, for this camera, when the manifest was signed."""
    print_ = raw_fingerprint(device_key)
    raw = rec["device"].get("certificate")
    if not raw:
        report.problems.append(
            f"{where}: the camera key {print_} comes with no certificate from the platform: "
            f"nothing says it is camera {rec['camera_id']}'s key"
        )
        return
    try:
        signed = SignedCertificate.model_validate(raw)
    except ValidationError:
        report.problems.append(f"{where}: the certificate of the camera key is malformed")
        return
    cert = signed.certificate
    if signed.signer(keys) is None:
        report.problems.append(
            f"{where}: the certificate of the camera key {print_} is not signed by a platform key "
            f"valid when it was issued ({cert.platform_key_id}): the key is not vouched for"
        )
        return
    if cert.raw_key != device_key:
        report.problems.append(
            f"{where}: the camera key {print_} is not the one its certificate names "
            f"({cert.sha256_fingerprint}): the key was replaced"
        )
    if cert.camera_id != rec["camera_id"] or (tenant is not None and cert.tenant != tenant):
        report.problems.append(
            f"{where}: the camera key is certified for camera {cert.camera_id} of {cert.tenant}, "
            f"not {rec['camera_id']} of {tenant}"
        )
    signed_at = envelope.manifest.ended_at  # the camera signs its manifest when the recording ends
    if not cert.valid_at(signed_at):
        report.problems.append(
            f"{where}: the camera key was valid {cert.validity()}, but the recording was signed "
            f"at {signed_at.isoformat()}: outside its validity"
            + (" (after its revocation)" if cert.revoked and cert.valid_until and signed_at > cert.valid_until else "")
        )


def _check_lost(
    rec: dict[str, Any], receipt: SignedReceipt | None, signed: dict[int, Any], where: str, report: Report
) -> list[int]:
    """The segments lost at the camera: only those the vault's receipt, verified, declares (manifest.json must
    agree). They are stated, not silently missing; the device-signed chain still covers them."""
    lost = sorted(receipt.receipt.lost_segments) if receipt is not None else []
    listed = rec.get("lost_segments") or []
    if sorted(x.get("index") for x in listed) != lost:
        report.problems.append(
            f"{where}: manifest.json lists lost segments {sorted(x.get('index') for x in listed)}"
            f", the vault's signed receipt declares {lost}"
        )
    for x in listed:
        seg = signed.get(x.get("index"))
        if seg is not None and (
            x.get("sha256", seg.sha256) != seg.sha256 or datetime.fromisoformat(x["started_at"]) != seg.started_at
        ):
            report.problems.append(
                f"{where}: lost segment {seg.index} is described in manifest.json with a hash or "
                "a time the device never signed"
            )
    if lost:
        report.lost[rec["id"]] = lost
        ranges = ", ".join(
            f"{i}: {signed[i].started_at.isoformat()} + {signed[i].duration_s:g} s" for i in lost if i in signed
        )
        report.notes.append(
            f"{where}: segments {lost} lost at the camera before hand-over ({ranges}), declared in "
            "the vault's signed receipt: not in this package; the device-signed chain still covers "
            "them, and every other segment is checked"
        )
    return lost


def _check_receipt(
    rec: dict[str, Any], envelope: SignedManifest, keys: KeySet, where: str, report: Report
) -> SignedReceipt | None:
    """The vault's receipt; returned only when it is signed by a platform key valid then and matches."""
    if not rec.get("receipt"):
        report.problems.append(f"{where}: the vault's receipt is missing")
        return None
    try:
        receipt = SignedReceipt.model_validate(rec["receipt"])
    except ValidationError:
        report.problems.append(f"{where}: the vault's receipt is malformed")
        return None
    r = receipt.receipt
    try:
        signature = b64d(receipt.signature)
    except ValueError:
        signature = b""
    good = True
    if keys.get(r.platform_key_id) is None:
        report.problems.append(
            f"{where}: the vault's receipt names platform key {r.platform_key_id}, which the "
            "package's platform keys do not list"
        )
        good = False
    elif not keys.verify(signature, r.signing_bytes(), key_id=r.platform_key_id, at=r.stored_at):
        report.problems.append(
            f"{where}: the vault's receipt is not signed by platform key {r.platform_key_id} while it was valid"
        )
        good = False
    if not receipt.matches(envelope.manifest):
        report.problems.append(f"{where}: the vault's receipt does not match the device-signed manifest")
        good = False
    return receipt if good else None
