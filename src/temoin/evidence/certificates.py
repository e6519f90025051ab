"""Device certificates: the platform's signed statement that a public key was a given camera's, and when.

A package carries, for each recording, the certificate of the device key that signed it, issued when the
package is built by the key that signs the package: a recipient who pinned that key learns which camera the
key belonged to and its validity, revocation included (a revoked key's certificate ends at the revocation).
A device key shipped without such a certificate, or used outside its validity, is not the camera's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from temoin.evidence.canonical import b64d, b64e, canonical_bytes
from temoin.evidence.keys import KeySet, PlatformKey, fingerprint

CERTIFICATE_SCHEMA: Final = "temoin.device-certificate/1"


class DeviceCertificate(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    schema_: Literal["temoin.device-certificate/1"] = Field(default=CERTIFICATE_SCHEMA, alias="schema")
    tenant: str
    camera_id: str
    serial: str
    public_key: str = Field(description="base64 raw Ed25519 public key of the camera")
    sha256_fingerprint: str
    valid_from: AwareDatetime | None = Field(description="None: the camera's first key, valid from its start")
    valid_until: AwareDatetime | None = Field(description="the revocation time; None while in force")
    revoked: bool
    issued_at: AwareDatetime
    platform_key_id: str

    def signing_bytes(self) -> bytes:
        return canonical_bytes(self.model_dump(mode="json", by_alias=True))

    @property
    def raw_key(self) -> bytes:
        return b64d(self.public_key)

    def valid_at(self, at: datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= at) and (
            self.valid_until is None or at <= self.valid_until
        )

    def validity(self) -> str:
        start = self.valid_from.isoformat() if self.valid_from else "its first enrolment"
        end = (
            f"{'revoked at' if self.revoked else 'until'} {self.valid_until.isoformat()}"
            if self.valid_until
            else "(in force)"
        )
        return f"from {start} {end}"


class SignedCertificate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    certificate: DeviceCertificate
    signature: str

    def signer(self, keys: KeySet) -> PlatformKey | None:
        """The key of `keys` that signed this certificate, valid when it was issued."""
        try:
            signature = b64d(self.signature)
        except ValueError:
            return None
        c = self.certificate
        return keys.signer(signature, c.signing_bytes(), key_id=c.platform_key_id, at=c.issued_at)


def issue(
    sign,
    platform_key_id: str,
    *,
    tenant: str,
    camera_id: str,
    serial: str,
    public_key: bytes,
    valid_from: datetime | None,
    valid_until: datetime | None,
    revoked: bool,
    issued_at: datetime,
) -> SignedCertificate:
    """A certificate signed now by `sign` (the keyring's: bytes -> base64 signature)."""
    cert = DeviceCertificate(
        tenant=tenant,
        camera_id=camera_id,
        serial=serial,
        public_key=b64e(public_key),
        sha256_fingerprint=fingerprint(public_key),
        valid_from=valid_from,
        valid_until=valid_until,
        revoked=revoked,
        issued_at=issued_at,
        platform_key_id=platform_key_id,
    )
    return SignedCertificate(certificate=cert, signature=sign(cert.signing_bytes()))
