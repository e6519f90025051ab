"""RFC 3161 trusted timestamps: a timestamp authority (TSA) signs the SHA-256 of some bytes together with its
own time, and anyone holding the TSA's CA certificates can check that token later, offline.

The protocol is rfc3161-client's (request building, reply parsing, the CMS signature and the certificate chain);
certificates are `cryptography`'s. A token here is the TSA's whole DER `TimeStampResp`, byte for byte as the TSA
sent it: what `openssl ts -reply` writes and `openssl ts -verify -in FILE` reads.

Only small things are stamped (a package's SHA256SUMS, a journal seal's body): the imprint is SHA-256 of the
bytes given, computed by rfc3161-client.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING
from urllib.parse import urlsplit, urlunsplit

from cryptography import x509

from temoin import errors

if TYPE_CHECKING:  # both loaded when a token is first asked for or read (10 MiB a server without a TSA never needs)
    import httpx
    from rfc3161_client import TimeStampResponse

log = logging.getLogger("temoin.timestamp")

QUERY_TYPE, REPLY_TYPE = "application/timestamp-query", "application/timestamp-reply"
MAX_REPLY_BYTES = 256 * 1024  # a reply is a few kilobytes: a TSA certificate chain at most
_DIGESTS = {
    "2.16.840.1.101.3.4.2.1": hashlib.sha256,
    "2.16.840.1.101.3.4.2.2": hashlib.sha384,
    "2.16.840.1.101.3.4.2.3": hashlib.sha512,
}


class Failure(StrEnum):
    """What went wrong, for callers that act on it (the message says it to people)."""

    UNREACHABLE = "unreachable"  # no connection to the TSA
    TIMEOUT = "timeout"  # no complete answer in time
    REFUSED = "refused"  # an HTTP error (credentials, server error)
    MALFORMED = "malformed"  # not an RFC 3161 reply / token
    REJECTED = "rejected"  # the TSA answered, with a status other than granted
    NONCE = "nonce"  # the reply answers another request
    IMPRINT = "imprint"  # the token is for other data
    NOT_TIMESTAMPING = "not_timestamping"  # signed with a certificate not meant for timestamps
    UNTRUSTED = "untrusted"  # the signature does not chain up to the CA bundle
    BAD_BUNDLE = "bad_bundle"  # the CA bundle given is not PEM certificates
    CONFIG = "config"  # the TSA settings are unusable


class TimestampError(errors.UpstreamFault):
    def __init__(self, failure: Failure, message: str) -> None:
        super().__init__(message)
        self.failure = failure


@dataclass(frozen=True)
class TimestampInfo:
    """What a token says: the TSA's time, who signed it (its certificate's subject), its serial and policy."""

    time: datetime
    tsa: str
    serial: int
    policy: str

    def describe(self) -> str:
        return (
            f"{self.time.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC by {self.tsa} (serial {self.serial}, "
            f"policy {self.policy})"
        )

    def as_dict(self) -> dict[str, str | int]:
        return {
            "time": self.time.astimezone(UTC).isoformat(),
            "tsa": self.tsa,
            "serial": self.serial,
            "policy": self.policy,
        }


def safe_url(url: str) -> str:
    """The URL without credentials, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))


# --- asking a TSA -----------------------------------------------------------------------------------------


def request_token(
    url: str,
    data: bytes,
    *,
    timeout: float = 10.0,
    auth: tuple[str, str] | None = None,
    ca_bundle_pem: bytes | None = None,
    http: httpx.Client | None = None,
) -> bytes:
    """Ask the TSA at `url` for a token over SHA-256(data); returns the DER TimeStampResp.

    The reply is checked before it is returned: granted, answering this request (nonce), for these bytes
    (imprint), and with `ca_bundle_pem`, signed by a timestamping certificate the bundle vouches for. The whole
    exchange takes at most about `timeout` seconds. Raises TimestampError saying what failed."""
    from rfc3161_client import HashAlgorithm, TimestampRequestBuilder

    request = (
        TimestampRequestBuilder()
        .data(data)
        .hash_algorithm(HashAlgorithm.SHA256)
        .nonce(nonce=True)
        .cert_request(cert_request=True)
        .build()
    )
    where = safe_url(url)
    body = _post(url, where, request.as_bytes(), timeout, auth, http)
    malformed = f"the timestamp authority at {where} answered something that is not an RFC 3161 reply"
    response = _parse(body, malformed)
    _granted(response, f"the timestamp authority at {where} rejected the request", malformed)
    if response.tst_info.nonce != request.nonce:
        raise TimestampError(
            Failure.NONCE,
            f"the reply from {where} does not answer this request (its nonce "
            "differs): a replayed or misrouted reply; it was not kept",
        )
    _check_imprint(response, data)
    if ca_bundle_pem is not None:
        verify_token(body, data, ca_bundle_pem, nonce=request.nonce)
    return body


def _post(
    url: str, where: str, query: bytes, timeout: float, auth: tuple[str, str] | None, http: httpx.Client | None
) -> bytes:
    import httpx

    deadline = time.monotonic() + timeout
    client = http or httpx.Client(timeout=httpx.Timeout(timeout), follow_redirects=False)
    try:
        with client.stream(
            "POST", url, content=query, auth=auth, headers={"Content-Type": QUERY_TYPE, "Accept": REPLY_TYPE}
        ) as reply:
            if reply.status_code in (401, 403):
                raise TimestampError(
                    Failure.REFUSED,
                    f"the timestamp authority at {where} refused the credentials "
                    f"(HTTP {reply.status_code}): check TEMOIN_TSA_USERNAME and "
                    "TEMOIN_TSA_PASSWORD",
                )
            if reply.status_code != 200:
                raise TimestampError(
                    Failure.REFUSED,
                    f"the timestamp authority at {where} answered HTTP {reply.status_code} instead of a timestamp",
                )
            chunks, size = [], 0
            for chunk in reply.iter_bytes():
                size += len(chunk)
                if size > MAX_REPLY_BYTES:
                    raise TimestampError(
                        Failure.MALFORMED,
                        f"the timestamp authority at {where} sent more than "
                        f"{MAX_REPLY_BYTES} bytes: not a timestamp reply",
                    )
                if time.monotonic() > deadline:  # a server trickling bytes must not hold us past the timeout
                    raise httpx.ReadTimeout("deadline")
                chunks.append(chunk)
            return b"".join(chunks)
    except httpx.TimeoutException:
        raise TimestampError(
            Failure.TIMEOUT, f"the timestamp authority at {where} did not answer within {timeout:g} s"
        ) from None
    except httpx.HTTPError as exc:  # connection refused, DNS, TLS...
        raise TimestampError(
            Failure.UNREACHABLE, f"cannot reach the timestamp authority at {where}: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        if http is None:
            client.close()


# --- reading and checking a token -------------------------------------------------------------------------


def _parse(token: bytes, message: str) -> TimeStampResponse:
    from rfc3161_client import decode_timestamp_response

    try:
        response = decode_timestamp_response(token)
        response.status  # noqa: B018 - parsed lazily: read now, to fail here
    except ValueError as exc:
        raise TimestampError(Failure.MALFORMED, f"{message} ({_short(exc)})") from None
    return response


def _granted(response: TimeStampResponse, refusal: str, message: str) -> None:
    """A granted reply, every field it must have readable (the parser reads the token's parts lazily)."""
    from rfc3161_client import PKIStatus

    if response.status != PKIStatus.GRANTED:
        raise TimestampError(Failure.REJECTED, f"{refusal}: {_status(response)}")
    try:
        tst, signed = response.tst_info, response.signed_data
        tst.message_imprint.message, tst.gen_time, tst.serial_number, tst.policy, tst.nonce  # noqa: B018 - parsed lazily: read now, to fail here
        signed.signer_infos, signed.certificates  # noqa: B018 - parsed lazily: read now, to fail here
    except ValueError as exc:
        raise TimestampError(Failure.MALFORMED, f"{message} ({_short(exc)})") from None


def _status(response: TimeStampResponse) -> str:
    from rfc3161_client import PKIStatus

    try:
        name = PKIStatus(response.status).name.lower()
    except ValueError:
        name = str(response.status)
    text = "; ".join(response.status_string)
    return f"status {name}" + (f" ({text})" if text else "")


def _short(exc: Exception) -> str:
    text = str(exc)
    return text if len(text) <= 200 else text[:200] + "…"


def _check_imprint(response: TimeStampResponse, data: bytes) -> None:
    imprint = response.tst_info.message_imprint
    digest = _DIGESTS.get(imprint.hash_algorithm.dotted_string)
    if digest is None:
        raise TimestampError(
            Failure.MALFORMED,
            f"the token's imprint uses an unsupported hash algorithm ({imprint.hash_algorithm.dotted_string})",
        )
    actual = digest(data).digest()
    if imprint.message != actual:
        raise TimestampError(
            Failure.IMPRINT,
            f"imprint mismatch: the timestamp is for other data (it stamps "
            f"{imprint.message.hex()}, the data hashes to {actual.hex()})",
        )


def _signer(response: TimeStampResponse, bundle: list[x509.Certificate]) -> x509.Certificate:
    """The TSA certificate that signed the token: the one its SignerInfo names, from the token or the bundle."""
    infos = list(response.signed_data.signer_infos)
    if len(infos) != 1:
        raise TimestampError(Failure.MALFORMED, f"the token has {len(infos)} signers; a timestamp has one")
    issuer, serial = infos[0].issuer, infos[0].serial_number
    try:
        embedded = [x509.load_der_x509_certificate(der) for der in response.signed_data.certificates]
    except ValueError as exc:
        raise TimestampError(Failure.MALFORMED, f"a certificate in the token is unreadable ({_short(exc)})") from None
    for cert in embedded + bundle:
        if cert.issuer == issuer and cert.serial_number == serial:
            return cert
    raise TimestampError(
        Failure.UNTRUSTED,
        f"the TSA certificate that signed the token (serial {serial:x}, issued "
        f"by {issuer.rfc4514_string()}) is neither in the token nor in the CA "
        "bundle: the token was altered, or add that certificate to the bundle",
    )


def _check_timestamping(cert: x509.Certificate) -> None:
    subject = cert.subject.rfc4514_string()
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        raise TimestampError(
            Failure.NOT_TIMESTAMPING, f"not a timestamping certificate: {subject} has no extendedKeyUsage"
        ) from None
    if x509.ExtendedKeyUsageOID.TIME_STAMPING not in eku.value or not eku.critical:
        raise TimestampError(
            Failure.NOT_TIMESTAMPING,
            f"not a timestamping certificate: {subject} lacks the "
            "critical extendedKeyUsage timeStamping (RFC 3161 2.3)",
        )


def load_bundle(ca_bundle_pem: bytes) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(ca_bundle_pem)
    except ValueError as exc:
        raise TimestampError(Failure.BAD_BUNDLE, f"the CA bundle is not PEM certificates ({_short(exc)})") from None
    return certs


def describe_token(token: bytes) -> TimestampInfo:
    """What a token claims, NOT checked (no CA bundle): for saying what is there before it is verified."""
    malformed = "the timestamp token is not an RFC 3161 reply (malformed or truncated)"
    response = _parse(token, malformed)
    _granted(response, "the timestamp token records a refusal", malformed)
    return _info(response, _signer_or_none(response))


def inspect_token(token: bytes, data: bytes) -> TimestampInfo:
    """What a token says, with its imprint checked against `data` but NOT its signature (no CA bundle)."""
    malformed = "the timestamp token is not an RFC 3161 reply (malformed or truncated)"
    response = _parse(token, malformed)
    _granted(response, "the timestamp token records a refusal", malformed)
    _check_imprint(response, data)
    return _info(response, _signer_or_none(response))


def _signer_or_none(response: TimeStampResponse) -> x509.Certificate | None:
    try:
        return _signer(response, [])
    except TimestampError:
        return None


def _info(response: TimeStampResponse, signer: x509.Certificate | None) -> TimestampInfo:
    tst = response.tst_info
    if signer is not None:
        tsa = signer.subject.rfc4514_string()
    else:
        name = getattr(tst.name, "value", None)
        tsa = name.rfc4514_string() if isinstance(name, x509.Name) else str(name or "an unnamed TSA")
    return TimestampInfo(time=tst.gen_time, tsa=tsa, serial=tst.serial_number, policy=tst.policy.dotted_string)


def verify_token(token: bytes, data: bytes, ca_bundle_pem: bytes, *, nonce: int | None = None) -> TimestampInfo:
    """Check that `token` is a granted RFC 3161 timestamp of `data`, signed by a timestamping certificate that
    chains up to a certificate of `ca_bundle_pem` (valid at the token's time). Returns what it says; raises
    TimestampError naming what failed: malformed, imprint mismatch, not a timestamping certificate, untrusted."""
    bundle = load_bundle(ca_bundle_pem)
    malformed = "the timestamp token is not an RFC 3161 reply (malformed or truncated)"
    response = _parse(token, malformed)
    _granted(response, "the timestamp token records a refusal", malformed)
    _check_imprint(response, data)
    signer = _signer(response, bundle)
    _check_timestamping(signer)
    from rfc3161_client import VerificationError, VerifierBuilder

    builder = VerifierBuilder(roots=list(bundle))  # the bundle's certificates are the trust anchors
    if nonce is not None:
        builder = builder.nonce(nonce)
    if not response.signed_data.certificates:
        builder = builder.tsa_certificate(signer)
    try:
        builder.build().verify_message(response, data)
    except (VerificationError, ValueError) as exc:
        # OpenSSL's reason ("unable to get local issuer certificate", "certificate has expired"...) says enough.
        reason = re.search(r'Verify error: ([^"]+)"', str(exc)) or re.search(r'reason: "([^"]+)"', str(exc))
        raise TimestampError(
            Failure.UNTRUSTED,
            "chain not trusted: the token's signature does not verify up to a "
            "certificate of the CA bundle (another TSA, or an altered token): "
            f"{reason.group(1) if reason else _short(exc)}",
        ) from None
    return _info(response, signer)


# --- the platform's client: settings, and what to do when the TSA is down -----------------------------------


@dataclass(frozen=True)
class Stamp:
    """The outcome of stamping: a token and what it says, or why there is none."""

    token: bytes | None
    info: TimestampInfo | None = None
    failure: str | None = None

    def as_dict(self) -> dict[str, object]:
        if self.token is None:
            return {"status": "not_timestamped", "reason": self.failure}
        return {"status": "timestamped", **(self.info.as_dict() if self.info else {})}


@dataclass
class Timestamper:
    """Asks the configured TSA for tokens and never raises: evidence is not held up by a TSA outage.

    After a failure, callers that allow it (`backoff=True`, the journal's periodic seals) do not ask again for
    `retry_after_s`, so an outage costs one timeout per period, not one per seal."""

    url: str = field(repr=False)  # may hold credentials: messages use `where`
    timeout_s: float = 10.0
    ca_bundle_pem: bytes | None = None
    auth: tuple[str, str] | None = field(default=None, repr=False)
    retry_after_s: float = 60.0
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _down: tuple[float, str] | None = field(default=None, init=False, repr=False)  # (monotonic, reason)

    def __post_init__(self) -> None:
        if urlsplit(self.url).scheme not in ("http", "https") or not urlsplit(self.url).hostname:
            raise TimestampError(Failure.CONFIG, f"TEMOIN_TSA_URL must be an http(s) URL, not {safe_url(self.url)!r}")
        if self.timeout_s <= 0:
            raise TimestampError(Failure.CONFIG, "TEMOIN_TSA_TIMEOUT_S must be a positive number of seconds")
        if self.ca_bundle_pem is not None:
            load_bundle(self.ca_bundle_pem)

    @property
    def where(self) -> str:
        return safe_url(self.url)

    def stamp(self, data: bytes, *, what: str, backoff: bool = False) -> Stamp:
        """A token over SHA-256(data), or a Stamp saying why not (logged as a warning). `what` names the
        stamped thing in the log."""
        with self._lock:
            down = self._down
        if backoff and down is not None and time.monotonic() - down[0] < self.retry_after_s:
            return Stamp(
                None,
                failure=f"timestamp authority {self.where} failed {time.monotonic() - down[0]:.0f} s "
                f"ago ({down[1]}); not asked again yet",
            )
        try:
            token = request_token(
                self.url, data, timeout=self.timeout_s, auth=self.auth, ca_bundle_pem=self.ca_bundle_pem
            )
        except TimestampError as exc:
            with self._lock:
                self._down = (time.monotonic(), exc.message)
            log.warning("%s not timestamped: %s", what, exc.message)
            return Stamp(None, failure=exc.message)
        with self._lock:
            self._down = None
        info = describe_token(token)
        return Stamp(token, info)
