"""After an erasure at a person's request: the request moves on (no longer "reçue"), and its erasure certificate is a
PDF carrying the platform's signed deletion certificates and the signing key's fingerprint, for those who manage
the register only, each issue journaled with the PDF's SHA-256."""

from __future__ import annotations

import hashlib
import html
import re
from datetime import timedelta

from temoin.evidence.canonical import b64d
from temoin.law.access import Role
from temoin.vault.models import DeletionCertificate
from tests.helpers import approve_erasure, make_commune, pdf_text, sign_in
from tests.rights_helpers import _create, _entries, _h, _scene


def test_the_erasure_moves_the_request_on_and_its_certificate_is_a_signed_pdf(platform, client):
    commune, t0, avenue, _quay, _later = _scene(platform, client)
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    req = _create(
        client,
        csrf,
        kind="erasure",
        facts_start=(t0 - timedelta(minutes=10)).isoformat(),
        facts_end=(t0 + timedelta(minutes=10)).isoformat(),
    )
    assert req["status"] == "received"
    cert_url = f"/api/v1/rights/requests/{req['id']}/erasure-certificate.pdf"
    r = client.get(cert_url)  # nothing erased yet: no certificate, said plainly
    assert r.status_code == 404 and "erased nothing yet" in r.json()["detail"]
    assert "erasure-certificate" not in client.get(f"/rights/{req['id']}").text
    r = client.post(f"/api/v1/rights/requests/{req['id']}/erasure", headers=_h(csrf), json={"recording_ids": [avenue]})
    assert r.status_code == 201, r.text
    r = approve_erasure(platform, client, commune, r.json()["id"])
    assert r.status_code == 200, r.text
    # The request is no longer "received": the erasure was done, the answer to the person comes next.
    assert r.json()["status"] == "in_progress"
    moved = _entries(platform, "rights.request.status")
    assert moved[-1]["details"]["from"] == "received" and moved[-1]["details"]["to"] == "in_progress"

    # The request page links the certificate; the PDF prints the signed certificate and the key's fingerprint.
    csrf = sign_in(platform, client, commune.users[Role.DPO])
    page = html.unescape(client.get(f"/rights/{req['id']}").text)
    assert f'href="{cert_url}"' in page and "Certificat d'effacement (PDF signé)" in page
    r = client.get(cert_url)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert f"certificat-effacement-{req['id']}.pdf" in r.headers["content-disposition"]
    text = pdf_text(r.content)
    with platform.session() as db:
        (cert,) = db.query(DeletionCertificate).filter(DeletionCertificate.recording_id == avenue).all()
        body, signature = cert.body, cert.signature
    assert f"Certificat d'effacement — demande n° {req['id']}" in text and avenue in text
    assert platform.keyring.fingerprint in text
    assert hashlib.sha256(body.encode()).hexdigest() in text
    # The certificate printed whole, and its signature: what is printed verifies under the platform's key.
    printed = re.sub(r"\s", "", text.split("Certificat : ")[1].split("Signature Ed25519")[0])
    assert printed == body.replace(" ", "")
    printed_sig = re.sub(r"\s", "", text.split("Signature Ed25519 (base64) : ")[1].split("Vérification")[0])
    assert printed_sig == signature
    assert platform.keyring.trusted.verify(b64d(signature), body.encode())
    assert "person_description" not in text and "veste rouge" not in text and "dupont@example.org" not in text
    # Each issue is journaled with the PDF's fingerprint.
    (issued,) = _entries(platform, "rights.erasure.certificate_issued")
    assert issued["details"]["sha256"] == hashlib.sha256(r.content).hexdigest()
    assert issued["recordings"] == [avenue] and issued["actor"]["id"] == commune.users[Role.DPO]

    # Role-checked: an agent may not; another tenant's register does not see it (refused and journaled there).
    sign_in(platform, client, commune.users[Role.AGENT])
    assert client.get(cert_url).status_code == 403
    other = make_commune(platform, "autre-ville", cameras=0)
    sign_in(platform, client, other.users[Role.DPO])
    assert client.get(cert_url).status_code == 404
    assert len(_entries(platform, "rights.erasure.certificate_issued")) == 1
