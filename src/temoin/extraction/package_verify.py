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

The package's files are read by `package_files`, each recording is checked by `package_recordings` (3 and 4),
and the verdict is a `package_report.Report`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from temoin.evidence.keys import KeySet, fingerprint as raw_fingerprint, raw_of_pem
from temoin.evidence.timestamp import TimestampError, inspect_token, verify_token
from temoin.extraction.package_files import (
    KEY_FILE,
    KEYS_FILE,
    MANIFEST,
    SIGNATURE,
    SUMS,
    TIMESTAMP,
    MemberDamaged,
    PackageFiles,
    PackageUnreadable,
    open_package,
    sha256_of,
)
from temoin.extraction.package_recordings import check_contents
from temoin.extraction.package_report import Report

_LINE = re.compile(r"^([0-9a-f]{64}) [ *](.+)$")


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
    package: PackageFiles
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
        with open_package(path, report.problems) as package:
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
            digest = sha256_of(package, name)
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
        check_contents(ctx.manifest, ctx.actual, ctx.keys, ctx.report)


# The checks, in order.
CHECKS: tuple[Callable[[_Context], None], ...] = (
    _check_sums,
    _read_manifest,
    _check_signature,
    _check_timestamp,
    _check_manifest,
)
