"""Offline verification of an extraction package (a folder or its zip): no database, no network.

What is checked, each failure named in one line:
1. SHA256SUMS against every file: missing, extra (not covered), altered.
2. SHA256SUMS.sig, an Ed25519 signature of SHA256SUMS, with the included platform-public-key.pem, and with
   the trusted key given by the caller (a package re-signed with another key is caught only then: without a
   trusted key, a warning says so).
3. Each recording: the device signature of its manifest envelope, the segment hash chain up to the signed
   head, the vault's signed receipt, and that each media file is what the manifest says it is (an original
   segment hashes to its device-signed hash; a trimmed or redacted file names device-signed segments).
4. The manifest's internal consistency (ids, files, kinds).
5. SHA256SUMS.tsr, the RFC 3161 timestamp of SHA256SUMS when the platform had a TSA: its imprint, and with the
   TSA's CA bundle given by the caller, its signature and chain (docs/timestamping.md).
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, BinaryIO

import orjson
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import ValidationError

from temoin.evidence.canonical import b64d
from temoin.evidence.chain import chain_links
from temoin.evidence.manifest import SignedManifest, SignedReceipt
from temoin.evidence.timestamp import TimestampError, inspect_token, verify_token

SUMS, SIGNATURE, MANIFEST, KEY_FILE = "SHA256SUMS", "SHA256SUMS.sig", "manifest.json", "platform-public-key.pem"
TIMESTAMP = "SHA256SUMS.tsr"
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

    @property
    def ok(self) -> bool:
        return not self.problems


class PackageUnreadable(Exception):
    pass


class _Package:
    """Files of a package, by their path inside it, whether a folder or a zip."""

    def names(self) -> set[str]: ...
    def open(self, name: str) -> BinaryIO: ...

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

    def open(self, name: str) -> BinaryIO:
        return (self.root / name).open("rb")


class _Zip(_Package):
    def __init__(self, path: Path, report: Report) -> None:
        try:
            self.zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise PackageUnreadable(f"{path} is not a readable zip: {exc}") from None
        infos = [i for i in self.zf.infolist() if not i.is_dir()]
        for info in infos:
            pure = PurePosixPath(info.filename)
            if pure.is_absolute() or ".." in pure.parts:
                report.problems.append(f"unsafe path in the zip: {info.filename!r} (refused)")
        roots = sorted((i.filename[: -len(SUMS)] for i in infos if i.filename.rsplit("/", 1)[-1] == SUMS),
                       key=len)
        self.prefix = roots[0] if roots else ""
        self.members = {i.filename[len(self.prefix):]: i for i in infos if i.filename.startswith(self.prefix)}
        for info in infos:
            if not info.filename.startswith(self.prefix):
                report.problems.append(f"extra file outside the package folder: {info.filename}")

    def names(self) -> set[str]:
        return set(self.members)

    def open(self, name: str) -> BinaryIO:
        return self.zf.open(self.members[name])


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


def _public_key(pem: bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def fingerprint(key: Ed25519PublicKey) -> str:
    return hashlib.sha256(_raw(key)).hexdigest()


def verify_package(path: Path, trusted_key_pem: bytes | None = None, tsa_ca_pem: bytes | None = None) -> Report:
    report = Report()
    try:
        with _opened(path, report) as package:
            _verify(package, trusted_key_pem, report, tsa_ca_pem)
    except PackageUnreadable as exc:
        report.problems.append(str(exc))
    return report


def _verify(package: _Package, trusted_pem: bytes | None, report: Report, tsa_ca_pem: bytes | None = None) -> None:
    names = package.names()
    if SUMS not in names:
        report.problems.append(f"missing: {SUMS} (the list of every file's SHA-256): nothing can be verified")
        return
    sums_bytes = package.read(SUMS)
    actual = _check_sums(package, names, sums_bytes, report)
    platform_key = _check_signature(package, names, sums_bytes, trusted_pem, report)
    _check_timestamp(package, names, sums_bytes, tsa_ca_pem, report)
    if MANIFEST in names:
        try:
            manifest = orjson.loads(package.read(MANIFEST))
        except orjson.JSONDecodeError as exc:
            report.problems.append(f"manifest.json is not valid JSON: {exc}")
            return
        _check_manifest(manifest, actual, platform_key, report)


def _check_sums(package: _Package, names: set[str], sums_bytes: bytes, report: Report) -> dict[str, str]:
    listed: dict[str, str] = {}
    for n, line in enumerate(sums_bytes.decode("utf-8", "replace").splitlines(), 1):
        match = _LINE.match(line)
        if not match:
            report.problems.append(f"{SUMS} line {n} is malformed: {line[:80]!r}")
            continue
        listed[match.group(2)] = match.group(1)
    actual: dict[str, str] = {}
    for name, expected in sorted(listed.items()):
        if name not in names:
            report.problems.append(f"missing: {name} (listed in {SUMS})")
            continue
        try:
            digest = _hash(package, name)
        except zipfile.BadZipFile as exc:  # the zip's own CRC caught a change
            report.problems.append(f"altered: {name} ({exc})")
            continue
        actual[name] = digest
        if digest != expected:
            report.problems.append(f"altered: {name}: its SHA-256 is {digest}, {SUMS} says {expected}")
    for name in sorted(names - set(listed) - {SUMS, SIGNATURE, TIMESTAMP}):
        report.problems.append(f"extra file not covered by {SUMS}: {name}")
    report.checked.append(f"{len(actual)} files hashed against {SUMS}")
    return actual


def _check_signature(package: _Package, names: set[str], sums_bytes: bytes, trusted_pem: bytes | None,
                     report: Report) -> Ed25519PublicKey | None:
    trusted = None
    if trusted_pem is not None:
        try:
            trusted = _public_key(trusted_pem)
        except ValueError as exc:
            report.problems.append(f"the trusted key given with --key is not an Ed25519 public key (PEM): {exc}")
    included = None
    if KEY_FILE not in names:
        report.problems.append(f"missing: {KEY_FILE} (the platform's public key)")
    else:
        try:
            included = _public_key(package.read(KEY_FILE))
        except ValueError as exc:
            report.problems.append(f"{KEY_FILE} is not an Ed25519 public key (PEM): {exc}")
    if SIGNATURE not in names:
        report.problems.append(f"missing: {SIGNATURE} (the platform's signature of {SUMS})")
        return trusted or included
    signature = package.read(SIGNATURE)
    if included is not None:
        try:
            included.verify(signature, sums_bytes)
            report.checked.append(f"{SIGNATURE} verifies with the included {KEY_FILE}")
        except InvalidSignature:
            report.problems.append(f"signature: {SIGNATURE} is not a valid signature of {SUMS} by {KEY_FILE}: "
                                   f"{SUMS} was changed after signing, or the signature is forged")
    if trusted is not None:
        if included is not None and _raw(included) != _raw(trusted):
            report.problems.append(f"{KEY_FILE} (fingerprint {fingerprint(included)[:16]}) is not the trusted key "
                                   f"given with --key (fingerprint {fingerprint(trusted)[:16]}): this package was "
                                   "not signed by that platform")
        try:
            trusted.verify(signature, sums_bytes)
            report.checked.append(f"{SIGNATURE} verifies with the trusted key ({fingerprint(trusted)[:16]})")
        except InvalidSignature:
            report.problems.append(f"signature: {SIGNATURE} does not verify with the trusted key given with --key")
    elif included is not None:
        report.warnings.append(
            f"the included {KEY_FILE} (SHA-256 fingerprint {fingerprint(included)}) is not pinned: anyone can "
            "re-sign a modified package with a key of their own; compare the fingerprint with the one the "
            "service publishes, or run again with --key FILE")
    return trusted or included


def _check_timestamp(package: _Package, names: set[str], sums_bytes: bytes, tsa_ca_pem: bytes | None,
                     report: Report) -> None:
    """SHA256SUMS.tsr sits outside SHA256SUMS (it stamps it), so it can be removed unnoticed: a caller who gives
    --tsa-ca expects a timestamp, and its absence is then a problem."""
    if TIMESTAMP not in names:
        if tsa_ca_pem is not None:
            report.problems.append(f"not timestamped: no {TIMESTAMP}, though --tsa-ca asks for a timestamp (the "
                                   "platform had no timestamp authority or it failed at extraction, or the token "
                                   "was removed)")
        else:
            report.notes.append(f"not timestamped (no {TIMESTAMP}): the package's time rests on the platform's word")
        return
    token = package.read(TIMESTAMP)
    try:
        if tsa_ca_pem is None:
            claimed = inspect_token(token, sums_bytes)  # the imprint can be checked without the TSA's CA
            report.warnings.append(f"timestamp present but not checked: give --tsa-ca (the TSA's CA certificates, "
                                   f"PEM); {TIMESTAMP} matches {SUMS} and claims {claimed.describe()}")
            return
        info = verify_token(token, sums_bytes, tsa_ca_pem)
    except TimestampError as exc:
        report.problems.append(f"timestamp: {TIMESTAMP}: {exc.message}")
        return
    report.checked.append(f"{TIMESTAMP}: {SUMS} timestamped {info.describe()}; chain trusted by the --tsa-ca bundle")


def _check_manifest(m: dict[str, Any], actual: dict[str, str], platform_key: Ed25519PublicKey | None,
                    report: Report) -> None:
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
            described |= _check_recording(rec, actual, platform_key, report)
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


def _check_recording(rec: dict[str, Any], actual: dict[str, str], platform_key: Ed25519PublicKey | None,
                     report: Report) -> set[str]:
    rid = rec["id"]
    where = f"recording {rid}"
    try:
        envelope = SignedManifest.model_validate_json(rec["device_manifest"]["envelope"])
    except ValidationError as exc:
        first = exc.errors()[0]
        report.problems.append(f"{where}: the device manifest is malformed or its segment chain is broken "
                               f"({'.'.join(str(x) for x in first['loc'])}: {first['msg']})")
        return {media["file"] for media in rec.get("media") or []}
    manifest = envelope.manifest
    device_key = b64d(rec["device"]["public_key"])
    if not envelope.verify(device_key):
        report.problems.append(f"{where}: the device signature of its manifest is invalid (altered or forged)")
    if manifest.recording_id != rid or manifest.camera_id != rec["camera_id"]:
        report.problems.append(f"{where}: the device manifest is for {manifest.recording_id} from camera "
                               f"{manifest.camera_id}, not {rid} from {rec['camera_id']}")
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
    _check_receipt(rec, envelope, platform_key, where, report)
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
                report.problems.append(f"{where}: {name} is not the camera's original: its SHA-256 differs from "
                                       f"the device-signed hash of segment {seg.index}")
        elif kind in ("trimmed", "redacted"):
            for src in media.get("derived_from") or []:
                seg = signed.get(src.get("index"))
                if seg is None or seg.sha256 != src.get("sha256"):
                    report.problems.append(f"{where}: {name} claims to derive from segment {src.get('index')} "
                                           "with a hash the device never signed")
            if not media.get("derived_from"):
                report.problems.append(f"{where}: {name} ({kind}) does not say which original segments it comes from")
        else:
            report.problems.append(f"{where}: {name} has an unknown kind {kind!r}")
    if kinds == {"original"}:
        have = sorted(media.get("segment") for media in rec["media"])
        if have != sorted(signed):
            report.problems.append(f"{where}: original segments {sorted(set(signed) - set(have))} are missing")
    if "trimmed" in kinds and not rec.get("trim"):
        report.problems.append(f"{where}: a trimmed file but no trim section saying what range was kept")
    if "redacted" in kinds and not rec.get("redaction"):
        report.problems.append(f"{where}: a redacted file but no redaction section")
    return files


def _check_receipt(rec: dict[str, Any], envelope: SignedManifest, platform_key: Ed25519PublicKey | None,
                   where: str, report: Report) -> None:
    if not rec.get("receipt"):
        report.problems.append(f"{where}: the vault's receipt is missing")
        return
    try:
        receipt = SignedReceipt.model_validate(rec["receipt"])
    except ValidationError:
        report.problems.append(f"{where}: the vault's receipt is malformed")
        return
    if platform_key is not None and not receipt.verify(_raw(platform_key)):
        report.problems.append(f"{where}: the vault's receipt is not signed by the platform key")
    if not receipt.matches(envelope.manifest):
        report.problems.append(f"{where}: the vault's receipt does not match the device-signed manifest")
