"""A real RFC 3161 timestamp authority for the tests: OpenSSL's `openssl ts -reply` behind an HTTP endpoint on
127.0.0.1, with a throwaway CA and a TSA certificate (extendedKeyUsage timeStamping, critical) made with
`cryptography`. Fixtures are imported through tests/conftest.py.

The server can also misbehave on demand (`mode`): answer slowly, answer garbage, reject every request (an
OpenSSL TSA that only accepts SHA-512 imprints answers `rejection`/badAlg to a SHA-256 query), or replay the
first reply it gave (a genuine token, for another request).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

POLICY = "1.3.6.1.4.1.59999.1.1"  # an OID under a private arc: the throwaway TSA's policy


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Témoin tests"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


@dataclass(frozen=True)
class TestCA:
    """A self-signed root that can issue TSA certificates."""

    __test__ = False
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, cn: str = "Témoin test root CA") -> TestCA:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=365))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @property
    def pem(self) -> bytes:
        return _pem(self.cert)

    def issue_tsa(self, cn: str = "Témoin test TSA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.now(UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=90))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=True,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=False,
                    crl_sign=False,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False)
            .sign(self.key, hashes.SHA256())
        )
        return key, cert


_CONFIG = """\
[ tsa ]
default_tsa = tsa_config1

[ tsa_config1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
signer_key = $dir/tsa.key
signer_digest = sha256
# no `certs =`: the reply carries the TSA certificate only (certReq). OpenSSL writes a chain in the order given,
# not in DER's sorted SET OF order, which rfc3161-client's strict parser refuses.
default_policy = {policy}
digests = {digests}
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


@dataclass
class TestTSA:
    """A running TSA. `mode`: "ok", "slow" (sleeps `delay_s` before answering), "garbage", "reject", "replay"."""

    __test__ = False
    url: str
    ca: TestCA
    folder: Path
    mode: str = "ok"
    delay_s: float = 5.0
    requests: int = 0
    queries: list[bytes] = field(default_factory=list, repr=False)
    replies: list[bytes] = field(default_factory=list, repr=False)

    @property
    def ca_pem(self) -> bytes:
        return self.ca.pem

    def write_ca(self, path: Path) -> Path:
        path.write_bytes(self.ca_pem)
        return path


def _handler(tsa: TestTSA, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet
            pass

        def do_POST(self) -> None:  # http.server's name
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            tsa.requests += 1
            tsa.queries.append(body)
            if self.headers.get("Content-Type") != "application/timestamp-query":
                self._answer(415, b"expected application/timestamp-query", "text/plain")
                return
            if tsa.mode == "slow":
                time.sleep(tsa.delay_s)
            if tsa.mode == "garbage":
                self._answer(200, b"<html>maintenance</html>", "application/timestamp-reply")
                return
            if tsa.mode == "replay" and tsa.replies:
                self._answer(200, tsa.replies[0], "application/timestamp-reply")
                return
            with lock, tempfile.TemporaryDirectory(dir=tsa.folder) as work:
                query, reply = Path(work) / "q.tsq", Path(work) / "r.tsr"
                query.write_bytes(body)
                section = "reject" if tsa.mode == "reject" else "tsa_config1"
                run = subprocess.run(
                    [
                        "openssl",
                        "ts",
                        "-reply",
                        "-config",
                        str(tsa.folder / "tsa.cnf"),
                        "-section",
                        section,
                        "-queryfile",
                        str(query),
                        "-out",
                        str(reply),
                    ],
                    capture_output=True,
                    timeout=30,
                )
                if run.returncode != 0 or not reply.exists():
                    self._answer(500, run.stderr, "text/plain")
                    return
                tsa.replies.append(reply.read_bytes())
                self._answer(200, tsa.replies[-1], "application/timestamp-reply")

        def _answer(self, status: int, data: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (timeout tests)
                pass

    return Handler


def start_tsa(folder: Path, ca: TestCA | None = None) -> tuple[TestTSA, ThreadingHTTPServer, threading.Thread]:
    if shutil.which("openssl") is None:
        pytest.fail("openssl is required for the timestamp tests (apt-get install openssl)", pytrace=False)
    folder.mkdir(parents=True, exist_ok=True)
    ca = ca or TestCA.create()
    key, cert = ca.issue_tsa()
    (folder / "tsa.key").write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    (folder / "tsa.key").chmod(0o600)
    (folder / "tsa.pem").write_bytes(_pem(cert))
    (folder / "ca.pem").write_bytes(ca.pem)
    (folder / "serial").write_text("01\n")
    config = _CONFIG.format(dir=folder, policy=POLICY, digests="sha256, sha384, sha512")
    reject = _CONFIG.format(dir=folder, policy=POLICY, digests="sha512").replace("[ tsa_config1 ]", "[ reject ]")
    (folder / "tsa.cnf").write_text(config + "\n" + reject.split("\n\n", 1)[1])
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    tsa = TestTSA(url=f"http://127.0.0.1:{server.server_address[1]}/tsr", ca=ca, folder=folder)
    server.RequestHandlerClass = _handler(tsa, threading.Lock())
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-tsa", daemon=True)
    thread.start()
    return tsa, server, thread


@pytest.fixture
def tsa(tmp_path: Path) -> Iterator[TestTSA]:
    """A real OpenSSL TSA on 127.0.0.1, for one test."""
    tsa, server, thread = start_tsa(tmp_path / "tsa")
    try:
        yield tsa
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def closed_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def token_signed_by_a_non_tsa_certificate(tsa: TestTSA, token: bytes) -> bytes:
    """The forgery of someone who holds another certificate of the TSA's CA (a document-signing one, without
    the timeStamping extendedKeyUsage): `token`'s TSTInfo re-signed with it by `openssl cms`. OpenSSL's TSA
    refuses such a signer, so the TimeStampResp wrapper (status granted, then the token) is put around the CMS
    output here: two DER headers, in this test helper only."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Agent document signing"))
        .issuer_name(tsa.ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .sign(tsa.ca.key, hashes.SHA256())
    )
    with tempfile.TemporaryDirectory(dir=tsa.folder) as work:
        w = Path(work)
        (w / "r.tsr").write_bytes(token)
        (w / "doc.pem").write_bytes(_pem(cert))
        (w / "doc.key").write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        for args in (
            ["ts", "-reply", "-in", "r.tsr", "-token_out", "-out", "token.der"],
            ["cms", "-verify", "-noverify", "-inform", "DER", "-in", "token.der", "-out", "tstinfo.der"],
            [
                "cms",
                "-sign",
                "-binary",
                "-nodetach",
                "-econtent_type",
                "1.2.840.113549.1.9.16.1.4",
                "-in",
                "tstinfo.der",
                "-signer",
                "doc.pem",
                "-inkey",
                "doc.key",
                "-md",
                "sha256",
                "-nosmimecap",
                "-outform",
                "DER",
                "-out",
                "forged.der",
            ],
        ):
            subprocess.run(["openssl", *args], cwd=w, check=True, capture_output=True, timeout=30)
        content = (w / "forged.der").read_bytes()
    body = bytes.fromhex("3003020100") + content  # PKIStatusInfo { status granted }, then the token

    def length(n: int) -> bytes:
        return bytes([n]) if n < 0x80 else bytes([0x82]) + n.to_bytes(2, "big")

    return b"\x30" + length(len(body)) + body
