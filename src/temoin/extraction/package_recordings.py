"""The checks of each recording in an extraction package (`package_verify`, check 3 and the manifest's
consistency, check 4), against what the package's files hash to and the platform keys the pinned signer vouches
for: the camera key's certificate, the device signature of its manifest, the segment hash chain, the vault's
signed receipt and the segments it declares lost, and each media file (an original against its device-signed
hash, a trimmed or redacted file against the segments it derives from). A recording received through the Axis
Body Worn system is proven by the vault's manifest document and its signed receipt instead."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from temoin.evidence.canonical import b64d
from temoin.evidence.certificates import SignedCertificate
from temoin.evidence.chain import chain_links
from temoin.evidence.device_requests import camera_declared_lost
from temoin.evidence.keys import KeySet, fingerprint as raw_fingerprint
from temoin.evidence.manifest import SignedManifest, SignedReceipt
from temoin.extraction.package_report import Report

SCHEMA = "temoin.extraction/1"


def check_contents(m: dict[str, Any], actual: dict[str, str], keys: KeySet, report: Report) -> None:
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
    _check_declared(rec, lost, device_key, where, report)
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


def _check_declared(rec: dict[str, Any], lost: list[int], device_key: bytes, where: str, report: Report) -> None:
    """The loss the receipt declares, against the camera's own signed declaration (evidence.device_requests):
    the platform cannot call lost a segment the camera did not."""
    if not lost:
        return
    declaration = rec.get("lost_declaration")
    if declaration is None:
        report.notes.append(
            f"{where}: the camera's signed declaration of its lost segments is not in this package (the vault "
            "kept none before this was recorded): the loss rests on the vault's receipt alone"
        )
        return
    said = camera_declared_lost(declaration, device_key, rec["id"])
    if isinstance(said, str):
        report.problems.append(f"{where}: {said}")
    elif not set(lost) <= set(said):
        report.problems.append(
            f"{where}: the vault's receipt declares segments {sorted(set(lost) - set(said))} lost at the camera, "
            f"but the camera's signed declaration names only {said}: the platform declared them lost, not the camera"
        )
    else:
        report.checked.append(f"{where}: the camera itself declared segments {said} lost, signed with its key")


def _check_lost(
    rec: dict[str, Any], receipt: SignedReceipt | None, signed: dict[int, Any], where: str, report: Report
) -> list[int]:
    """The segments lost at the camera: only those the vault's receipt, verified, declares (manifest.json must
    agree). They are stated, not silently missing; the device-signed chain still covers them."""
    lost = sorted(receipt.receipt.lost_segments) if receipt is not None else []
    listed = rec.get("lost_segments") or []
    # What the camera signed bounds what the vault may call lost: the vault never declares a segment the camera
    # did not sign, nor all of them (nothing would be stored); a receipt that does was not made by its ingest.
    unsigned = sorted(set(lost) - set(signed))
    if unsigned:
        report.problems.append(
            f"{where}: the vault's receipt declares segments {unsigned} lost at the camera, but the camera signed "
            f"only segments 0 to {len(signed) - 1}: a lost declaration the camera's manifest contradicts"
        )
    elif lost and set(lost) == set(signed):
        report.problems.append(
            f"{where}: the vault's receipt declares every segment the camera signed lost: the vault never stores "
            "such a recording, so the receipt was not made by its ingest"
        )
    if len(set(lost)) != len(lost):
        report.problems.append(f"{where}: the vault's receipt declares a lost segment twice ({lost})")
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
