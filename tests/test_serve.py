"""`temoin serve` as an operator starts it (docs/security.md, "Web and transport"): over TLS with HSTS, files private
to the service's user, refused while the data folder is open to others, a loud warning for plain HTTP beyond this
machine, and an access log without query strings. A real process, a real TLS handshake."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from temoin.web.hardening import transport_warning

pytestmark = pytest.mark.slow


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMOIN_")}
    env.update(TEMOIN_HOME=str(home), TEMOIN_INSECURE_COOKIES="1", PYTHONUNBUFFERED="1")
    return env


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _certificate(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_serve_over_tls_with_hsts_private_files_and_no_query_string_in_the_log(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path)
    home, log = tmp_path / "home", tmp_path / "serve.log"
    port = _free_port()
    with log.open("wb") as out:
        # An operator's shell with the usual umask: the server must not follow it.
        proc = subprocess.Popen(
            [
                "/bin/sh",
                "-c",
                f'umask 022 && exec "{sys.executable}" -m temoin serve --port {port} '
                f'--certfile "{cert}" --keyfile "{key}"',
            ],
            env=_env(home),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(verify=str(cert), timeout=2) as c:
            while True:
                assert proc.poll() is None, log.read_text()[-3000:]
                try:
                    r = c.get(f"https://127.0.0.1:{port}/api/v1/platform?grant=SECRET-GRANT-42")
                    break
                except httpx.HTTPError:
                    assert time.monotonic() < deadline, log.read_text()[-3000:]
                    time.sleep(0.2)
            assert r.status_code == 200
            assert r.headers["strict-transport-security"].startswith("max-age=")
            assert "script-src 'self'" in r.headers["content-security-policy"]
        with pytest.raises(httpx.HTTPError):  # plain HTTP is not served on the TLS port
            httpx.get(f"http://127.0.0.1:{port}/api/v1/platform", timeout=2)
        assert (home.stat().st_mode & 0o777) == 0o700
        assert (home / "temoin.db").stat().st_mode & 0o077 == 0
        created = [p for p in home.rglob("*") if p.is_file() and p.stat().st_mode & 0o077]
        assert created == []
    finally:
        proc.terminate()
        proc.wait(15)
    text = log.read_text()
    assert "GET /api/v1/platform" in text  # the access log is on...
    assert "SECRET-GRANT-42" not in text  # ...without the query string
    assert "WARNING" not in text


def test_serve_refuses_a_data_folder_others_can_read(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home.chmod(0o755)
    done = subprocess.run(
        [sys.executable, "-m", "temoin", "serve", "--port", str(_free_port())],
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert f"chmod 700 {home}" in " ".join(done.stderr.split()), done.stderr
    home.chmod(0o700)


def test_plain_http_beyond_this_machine_is_warned_about_loudly() -> None:
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.5"):
        assert transport_warning(host, tls=False) is None
    assert transport_warning("0.0.0.0", tls=True) is None  # noqa: S104 - the warning about all interfaces is what is tested
    for host in ("0.0.0.0", "192.168.1.10", "::", "temoin.example.fr"):  # noqa: S104 - the warning about all interfaces is what is tested
        warning = transport_warning(host, tls=False)
        assert warning and "--certfile" in warning and "reverse proxy" in warning


def test_half_a_tls_configuration_is_refused(tmp_path: Path) -> None:
    cert, _ = _certificate(tmp_path)
    done = subprocess.run(
        [sys.executable, "-m", "temoin", "serve", "--certfile", str(cert)],
        env=_env(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "--keyfile" in done.stderr
