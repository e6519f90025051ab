"""The erasure certificate of a rights request, as a PDF for the person or the DPO: for each recording erased at
the request, the platform's signed deletion certificate (vault.retention) printed whole, with its Ed25519
signature, the signing key's id and SHA-256 fingerprint, and how to check it with openssl. Nothing about the
person (their description, contact) is printed: the request is named by its number only."""

from __future__ import annotations

import hashlib
from datetime import datetime

import orjson
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.errors import NotFound
from temoin.evidence.keys import KeySet
from temoin.identity.devices import camera_names
from temoin.identity.models import Tenant, User
from temoin.identity.service import actor_of
from temoin.journal.entry import Action, EntryDraft
from temoin.rights import register
from temoin.rights.models import RightsRequest
from temoin.texts import when
from temoin.vault.context import VaultContext
from temoin.vault.models import DeletionCertificate

VERIFY_HELP = (
    "Vérification : le certificat ci-dessus (JSON canonique, sur une seule ligne, sans retour final) "
    "est signé par la clé Ed25519 de la plateforme. Enregistrez-le dans certificat.json, la signature "
    "décodée de base64 dans signature.bin, la clé publique (/.well-known/temoin/keys.json, empreinte "
    "ci-dessus) dans cle.pem, puis : openssl pkeyutl -verify -pubin -inkey cle.pem -rawin "
    "-in certificat.json -sigfile signature.bin"
)


def certificates_of(db: Session, req: RightsRequest) -> list[DeletionCertificate]:
    """The deletion certificates of the recordings erased at this request, in the order they were erased."""
    ids = [e["certificate_id"] for e in (req.erased or [])]
    if not ids:
        raise NotFound(
            f"request {req.id} has erased nothing yet: its certificate exists once a second person "
            "has approved an erasure proposal"
        )
    rows = {c.id: c for c in db.scalars(select(DeletionCertificate).where(DeletionCertificate.id.in_(ids)))}
    return [rows[i] for i in ids if i in rows]


def _paris(iso: str) -> str:
    return when("fr", datetime.fromisoformat(iso))


def _camera(names: dict[str, str], camera_id: str) -> str:
    """The name people use for the camera, with the id the signed certificate names."""
    name = names.get(camera_id, camera_id)
    return f"{name} ({camera_id})" if name != camera_id else camera_id


def render(db: Session, req: RightsRequest, keys: KeySet, now: datetime) -> bytes:
    tenant = db.get_one(Tenant, req.tenant_id)
    certs = certificates_of(db, req)
    made = when("fr", now, seconds=False)
    from temoin.reports.pdf import Document  # fpdf2 loaded by the first certificate, not at start

    doc = Document(
        f"Certificat d'effacement — demande n° {req.id} — {tenant.name}",
        f"{tenant.name} · certificat d'effacement, demande n° {req.id} · établi le {made}",
    )
    doc.heading(f"Certificat d'effacement — demande n° {req.id}")
    doc.paragraph(
        f"{tenant.name}. À la demande d'effacement n° {req.id} (loi n° 78-17, article 106), "
        f"{len(certs)} enregistrement(s) ont été effacés avant la fin de leur durée de conservation : "
        "leur clé de chiffrement a été détruite, puis leurs fichiers et tout ce qui en avait été tiré "
        "(vignettes, copies, extraits) supprimés. L'effacement est définitif. Chaque effacement est "
        "attesté par un certificat signé par la plateforme, reproduit ci-dessous."
    )
    names = camera_names(db, [orjson.loads(c.body)["camera_id"] for c in certs])
    for cert in certs:
        body = orjson.loads(cert.body)
        key = keys.get(body.get("platform_key_id"))
        if doc.will_page_break(60):
            doc.add_page()
        doc.rows(
            [
                (
                    f"Enregistrement {body['recording_id']} (certificat n° {cert.id})",
                    "Caméra",
                    _camera(names, body["camera_id"]),
                ),
                (
                    f"Enregistrement {body['recording_id']} (certificat n° {cert.id})",
                    "Enregistré du … au …",
                    f"{_paris(body['started_at'])} — {_paris(body['ended_at'])}",
                ),
                (
                    f"Enregistrement {body['recording_id']} (certificat n° {cert.id})",
                    "Effacé le",
                    _paris(body["deleted_at"]),
                ),
                (
                    f"Enregistrement {body['recording_id']} (certificat n° {cert.id})",
                    "Éléments dérivés effacés",
                    str(len(body.get("derived") or [])),
                ),
                (
                    f"Enregistrement {body['recording_id']} (certificat n° {cert.id})",
                    "Clé de signature",
                    body.get("platform_key_id") or "—",
                ),
            ]
        )
        doc.paragraph(f"Empreinte SHA-256 de la clé : {key.fingerprint if key else 'clé inconnue de ce serveur'}", 8)
        doc.paragraph(f"SHA-256 du certificat : {hashlib.sha256(cert.body.encode()).hexdigest()}", 8)
        doc.paragraph(f"Certificat : {cert.body}", 7)
        doc.paragraph(f"Signature Ed25519 (base64) : {cert.signature}", 7)
    doc.ln(2)
    doc.paragraph(VERIFY_HELP, 8)
    return doc.bytes()


def issue(p: VaultContext, db: Session, user: User, request_id: int) -> tuple[RightsRequest, bytes]:
    """The certificate of a request the user may see, journaled with the PDF's SHA-256: a copy shown later can be
    matched to the one issued."""
    try:  # the register's own lookup: another commune's or tenant's request is refused and journaled there
        req = register.get_request(p, db, user, request_id)
    except register.RequestNotFound as exc:
        raise NotFound(str(exc)) from None
    pdf = render(db, req, p.keyring.trusted, utcnow())
    certs = certificates_of(db, req)
    p.record(
        db,
        EntryDraft(
            action=Action.CONSULTATION,
            event="rights.erasure.certificate_issued",
            actor=actor_of(user),
            recordings=[c.recording_id for c in certs],
            details={
                "request_id": req.id,
                "certificates": [c.id for c in certs],
                "sha256": hashlib.sha256(pdf).hexdigest(),
            },
        ),
        db.get_one(Tenant, req.tenant_id),
    )
    db.commit()
    return req, pdf
