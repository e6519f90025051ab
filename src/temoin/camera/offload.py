"""Offload: the camera hands its recordings to the vault, resumably, and keeps the signed receipt.

Used by the camera agent when docked, by the demo's simulated cameras and by the tests: the same
code path as a real camera, over real HTTP.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import AsyncGenerator, Callable, Generator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from temoin import errors
from temoin.camera.platform_keys import PlatformTrust
from temoin.evidence.canonical import b64d, b64e
from temoin.evidence.chain import chain_links
from temoin.evidence.manifest import (
    GpsFix,
    NotInformedReason,
    RecordingManifest,
    SegmentEntry,
    SignedManifest,
    SignedReceipt,
    Trigger,
)
from temoin.evidence.signing import public_key_bytes

AUTH_SCHEME = "Temoin-Device"
UNSIGNED_PAYLOAD = "unsigned-payload"
# Segment uploads stream several GiB: they sign UNSIGNED_PAYLOAD, their bytes being bound by the segment's
# SHA-256 in the signed manifest, which the vault checks (identity.devices, web.deps.STREAMED_DEVICE_ROUTES).
SEGMENT_UPLOAD = re.compile(r"/api/v1/ingest/recordings/[^/]+/segments/\d+")
Progress = Callable[[int], None]
PIECE_BYTES = 16 * 1024 * 1024  # each piece is fsynced before it is acknowledged


def error_detail(response: httpx.Response) -> str:
    """What the platform said went wrong: its JSON `detail`, or the start of the body."""
    try:
        return str(response.json().get("detail"))
    except ValueError:
        return response.text[:300]


class OffloadError(errors.UpstreamFault, RuntimeError):
    pass


class ReceiptError(OffloadError):
    """The vault answered with a receipt that does not prove the recording arrived (forged, or for
    another recording): an incident, unlike a network failure. The camera keeps its copy."""


class RecordingDeleted(errors.Gone, OffloadError):
    """410 Gone: the vault deleted the recording (retention, erasure) before its upload ended.

    `certificate` is the platform-signed deletion certificate ({"id", "body", "signature"}) as sent;
    the device store checks it with the platform keys it trusts before deleting anything."""

    def __init__(self, message: str, certificate: dict) -> None:
        super().__init__(message)
        self.certificate = certificate


@dataclass(frozen=True)
class SegmentFile:
    data: bytes
    started_at: datetime
    duration_s: float


def build_manifest(
    *,
    recording_id: str,
    camera_id: str,
    agent_id: str,
    segments: Sequence[SegmentFile] | None = None,
    entries: Sequence[SegmentEntry] | None = None,
    trigger: Trigger,
    trigger_detail: str | None = None,
    persons_informed: bool,
    not_informed_reason: NotInformedReason | None = None,
    not_informed_detail: str | None = None,
    gps_track: Sequence[GpsFix] = (),
    pre_event_buffer_s: float = 0,
    clock_offset_ms: int | None = None,
    outside_territory: bool = False,
    ended_at: datetime | None = None,
) -> RecordingManifest:
    """The manifest of a recording, from its segments' bytes or from entries already computed.

    Give `segments` (the bytes are hashed and chained here) or `entries` (the device store's
    checkpointed entries: nothing is read or decrypted again; the manifest's validator still
    checks that their chain links follow from their hashes). Exactly one of the two.
    """
    if (segments is None) == (entries is None):
        raise ValueError("give either the segments' bytes or their precomputed entries")
    if segments is not None:
        digests = [hashlib.sha256(s.data).digest() for s in segments]
        links = chain_links(recording_id, digests)
        entries = [
            SegmentEntry(
                index=i,
                size=len(s.data),
                sha256=d.hex(),
                chain=link.hex(),
                started_at=s.started_at,
                duration_s=s.duration_s,
            )
            for i, (s, d, link) in enumerate(zip(segments, digests, links))
        ]
    entries = list(entries or [])
    if not entries:
        raise ValueError("a recording has at least one segment")
    last = entries[-1]
    return RecordingManifest(
        recording_id=recording_id,
        camera_id=camera_id,
        agent_id=agent_id,
        started_at=entries[0].started_at,
        ended_at=ended_at or last.started_at + timedelta(seconds=last.duration_s),
        trigger=trigger,
        trigger_detail=trigger_detail,
        persons_informed=persons_informed,
        not_informed_reason=not_informed_reason,
        not_informed_detail=not_informed_detail,
        gps_track=list(gps_track),
        pre_event_buffer_s=pre_event_buffer_s,
        clock_offset_ms=clock_offset_ms,
        outside_territory=outside_territory,
        segments=entries,
    )


class DeviceAuth(httpx.Auth):
    """Signs every request with the camera's Ed25519 key (no shared secret ever travels), over its method, path
    with query, time, a nonce and the body's SHA-256 (`Content-Digest`, RFC 9530)."""

    def __init__(self, device_id: str, key: Ed25519PrivateKey, clock_skew_s: float = 0.0) -> None:
        """`clock_skew_s`: how far the device's clock is ahead of the platform's, once measured;
        the signed timestamp is corrected by it so that a drifting camera can still reach the vault."""
        self.device_id, self.key, self.clock_skew_s = device_id, key, clock_skew_s

    @staticmethod
    def streamed(request: httpx.Request) -> bool:
        return request.method == "PUT" and SEGMENT_UPLOAD.fullmatch(request.url.path) is not None

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if not self.streamed(request):
            request.read()  # the digest needs the whole body; a segment's is never read here
        yield from self.auth_flow(request)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self.streamed(request):
            await request.aread()
        for signed in self.auth_flow(request):
            yield signed

    def auth_flow(self, request: httpx.Request):
        path = request.url.raw_path.decode()
        ts, nonce = int(time.time() - self.clock_skew_s), secrets.token_hex(16)
        if self.streamed(request):
            content, marker = UNSIGNED_PAYLOAD, f' content="{UNSIGNED_PAYLOAD}",'
            request.headers.pop("Content-Digest", None)
        else:
            content, marker = f"sha-256=:{b64e(hashlib.sha256(request.content).digest())}:", ""
            request.headers["Content-Digest"] = content
        signature = b64e(self.key.sign(f"{request.method.upper()}\n{path}\n{ts}\n{nonce}\n{content}".encode()))
        request.headers["Authorization"] = (
            f'{AUTH_SCHEME} id="{self.device_id}", ts="{ts}", nonce="{nonce}",{marker} sig="{signature}"'
        )
        yield request


def enrol(base_url: str, code: str, serial: str, key: Ed25519PrivateKey, **client_kw) -> dict:
    """Register this camera's public key with a one-time code from an administrator."""
    proof = b64e(key.sign(f"temoin-enrol\n{code.strip().upper()}\n{serial}".encode()))
    response = httpx.post(
        f"{base_url}/api/v1/devices/enrol",
        json={"code": code, "serial": serial, "public_key": b64e(public_key_bytes(key)), "proof": proof},
        **client_kw,
    )
    if response.status_code != 201:
        raise OffloadError(f"enrolment refused ({response.status_code}): {response.json().get('detail')}")
    return response.json()


class VaultClient:
    def __init__(
        self,
        base_url: str,
        device_id: str,
        key: Ed25519PrivateKey,
        platform_keys: bytes | PlatformTrust,
        timeout: float = 30.0,
        http: httpx.Client | None = None,
    ) -> None:
        """`platform_keys`: the camera's trusted platform keys (following rotations), or one pinned key (raw).
        `http` lets a caller bring its own client (tests pass an in-process one)."""
        self.platform_keys = platform_keys if isinstance(platform_keys, PlatformTrust) else PlatformTrust(platform_keys)
        self.http = http or httpx.Client(base_url=base_url, timeout=timeout)
        self.http.auth = DeviceAuth(device_id, key)

    def close(self) -> None:
        self.http.close()

    def _check(self, response: httpx.Response, *ok: int) -> httpx.Response:
        if response.status_code not in ok:
            try:
                body = response.json()
                detail = body.get("detail")
            except (ValueError, AttributeError):
                body, detail = {}, response.text[:200]
            if response.status_code == 410 and isinstance(body.get("deletion_certificate"), dict):
                raise RecordingDeleted(str(detail), body["deletion_certificate"])
            raise OffloadError(
                f"{response.request.method} {response.request.url.path}: {response.status_code} {detail}"
            )
        return response

    def send_manifest(self, signed: SignedManifest) -> dict:
        body = signed.model_dump_json(by_alias=True).encode()
        return self._check(
            self.http.post("/api/v1/ingest/recordings", content=body, headers={"Content-Type": "application/json"}), 201
        ).json()

    def received(self, recording_id: str, index: int) -> int:
        response = self._check(self.http.head(f"/api/v1/ingest/recordings/{recording_id}/segments/{index}"), 200)
        return int(response.headers["Upload-Offset"])

    def upload_segment(
        self,
        recording_id: str,
        index: int,
        data: bytes,
        start: int = 0,
        piece: int = PIECE_BYTES,
        progress: Progress | None = None,
    ) -> None:
        """Send from `start` to the end in pieces; each piece is a resumable Content-Range PUT.

        `progress(n)` is called with the number of bytes each accepted piece moved the vault on.
        """
        url = f"/api/v1/ingest/recordings/{recording_id}/segments/{index}"
        while start < len(data):
            end = min(start + piece, len(data))
            response = self.http.put(
                url,
                content=data[start:end],
                headers={
                    "Content-Range": f"bytes {start}-{end - 1}/{len(data)}",
                    "Content-Type": "application/octet-stream",
                },
            )
            if response.status_code == 409 and "Upload-Offset" in response.headers:
                held = int(response.headers["Upload-Offset"])  # the vault knows better: resume there
                if progress is not None and held > start:
                    progress(held - start)
                start = held
                if start >= len(data):
                    return
                continue
            self._check(response, 200)
            held = int(response.headers["Upload-Offset"])
            if progress is not None and held > start:
                progress(held - start)
            start = held

    def complete(self, recording_id: str, lost: Sequence[int] = ()) -> SignedReceipt:
        """Close the upload; `lost`: segments damaged on the camera, declared so that the rest is stored."""
        body = {"lost_segments": list(lost)} if lost else None
        response = self._check(self.http.post(f"/api/v1/ingest/recordings/{recording_id}/complete", json=body), 200)
        return SignedReceipt.model_validate(response.json())

    def offload(
        self,
        signed: SignedManifest,
        segments: Sequence[bytes],
        progress: Progress | None = None,
        lost: Sequence[int] = (),
    ) -> SignedReceipt:
        """The whole hand-over, resuming whatever the vault already holds. Returns a verified receipt.

        `progress(n)` hears of every byte the vault holds, including those it already had. `lost`: the
        segments damaged on the camera; they are not sent and the receipt must name them.
        """
        status = self.send_manifest(signed)
        for seg in status["segments"]:
            if progress is not None and seg["received"]:
                progress(seg["received"])
            if not seg["complete"] and seg["index"] not in lost:
                self.upload_segment(
                    signed.manifest.recording_id,
                    seg["index"],
                    segments[seg["index"]],
                    start=seg["received"],
                    progress=progress,
                )
        receipt = self.complete(signed.manifest.recording_id, lost)
        checked = self.platform_keys.check_receipt(receipt)
        if isinstance(checked, str):
            raise ReceiptError(
                f"the vault's receipt signature is invalid ({checked}): keep the recording on the camera"
            )
        if not receipt.matches(signed.manifest) or not set(receipt.receipt.lost_segments) <= set(lost):
            raise ReceiptError("the receipt does not describe the recording sent: keep it on the camera")
        return receipt


def platform_key(base_url: str, **client_kw) -> bytes:
    return b64d(httpx.get(f"{base_url}/api/v1/platform", **client_kw).json()["public_key"])
