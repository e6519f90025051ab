"""The chain of custody of an extraction: every journal entry about its recordings, then the extraction
itself, as data (in manifest.json) and as a PDF for the recipient's file (fpdf2).

Times are shown in Europe/Paris, as the procedure's paperwork uses them; the data keeps UTC.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from temoin.journal.models import JournalEntry
from temoin.law.legal_time import PARIS
from temoin.texts import label

FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
FONT_FILE = FONT_DIR / "DejaVuSans.ttf"


@dataclass(frozen=True)
class CustodyEntry:
    """One journal entry about the extracted recordings, as the recipient needs it."""

    seq: int
    at: datetime
    action: str
    event: str
    actor: dict[str, str]
    recordings: list[str]
    motive: dict[str, str] | None
    recipients: list[str]
    details: dict[str, Any]
    hash: str | None  # None for the extraction being built (journaled once the package exists)

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at.isoformat(),
            "action": self.action,
            "event": self.event,
            "actor": self.actor,
            "recordings": self.recordings,
            "motive": self.motive,
            "recipients": self.recipients,
            "details": self.details,
            "hash": self.hash,
        }


def journal_entries(db: Session, tenant_id: int, recording_ids: list[str]) -> list[CustodyEntry]:
    """Every entry of the tenant's chain that names one of these recordings, in journal order."""
    wanted = set(recording_ids)
    # The body is the record; a LIKE narrows the scan, the parsed body decides.
    needles = [JournalEntry.body.contains(f'"{rid}"') for rid in recording_ids]
    rows = db.execute(
        select(JournalEntry.seq, JournalEntry.at, JournalEntry.body, JournalEntry.hash)
        .where(JournalEntry.tenant_id == tenant_id, or_(*needles))
        .order_by(JournalEntry.seq)
    ).all()
    out = []
    for row in rows:
        body = orjson.loads(row.body)
        if not wanted & set(body.get("recordings") or []):
            continue
        out.append(
            CustodyEntry(
                seq=row.seq,
                at=row.at,
                action=body["action"],
                event=body["event"],
                actor=body["actor"],
                recordings=body["recordings"],
                motive=body.get("motive"),
                recipients=body.get("recipients") or [],
                details=body.get("details") or {},
                hash=row.hash,
            )
        )
    return out


def paris(at: datetime) -> str:
    return at.astimezone(PARIS).strftime("%d/%m/%Y %H:%M:%S %Z")


def _ascii(text: str) -> str:
    """For fpdf2's core fonts (Latin-1 only) when no Unicode font is installed."""
    return unicodedata.normalize("NFKD", text).encode("latin-1", "ignore").decode("latin-1")


def _summary(entry: CustodyEntry) -> str:
    d = entry.details
    parts: list[str] = []
    if entry.motive:
        code = entry.motive.get("code", "")
        parts.append(f"motif / motive: {label('fr', 'motive', code)} — {entry.motive.get('text', '')}")
    if entry.recipients:
        parts.append("destinataire / recipient: " + ", ".join(entry.recipients))
    for key in (
        "procedure",
        "procedure_type",
        "reference",
        "reason",
        "extraction_id",
        "package_sha256",
        "trigger",
        "manifest_sha256",
        "bytes",
        "before",
        "after",
    ):
        if key in d and d[key] not in (None, "", []):
            kind = {"procedure_type": "procedure", "trigger": "trigger", "recipient_kind": "recipient"}.get(key)
            parts.append(f"{key}: {label('fr', kind, str(d[key])) if kind else d[key]}")
    return "; ".join(str(p) for p in parts)


def _pdf(footer_text: str, unicode_font: bool) -> Any:  # an fpdf2 FPDF subclass, defined here
    """The document, with fpdf2 imported now: a server that never packages does not load it (about 20 MiB)."""
    from fpdf import FPDF

    class _Pdf(FPDF):
        def __init__(self, footer_text: str, unicode_font: bool) -> None:
            super().__init__(orientation="P", unit="mm", format="A4")
            self.footer_text, self.unicode_font = footer_text, unicode_font
            if unicode_font:
                self.add_font("DejaVu", fname=str(FONT_FILE))
            self.set_auto_page_break(auto=True, margin=15)
            self.set_margins(15, 15, 15)

        def font(self, size: float) -> None:
            self.set_font("DejaVu" if self.unicode_font else "Helvetica", size=size)

        def text_of(self, text: str) -> str:
            return text if self.unicode_font else _ascii(text)

        def line_of(self, text: str, size: float = 9, height: float = 4.6) -> None:
            self.font(size)
            self.multi_cell(0, height, self.text_of(text), new_x="LMARGIN", new_y="NEXT")

        def footer(self) -> None:
            self.set_y(-12)
            self.font(7)
            self.cell(0, 5, self.text_of(f"{self.footer_text} — page {self.page_no()}/{{nb}}"), align="C")

    return _Pdf(footer_text, unicode_font)


def _camera(rec: dict[str, Any]) -> str:
    """The name people use for the camera, with its technical id (packages made before names carry the id)."""
    name = rec.get("camera_name")
    return f"{name} ({rec['camera_id']})" if name and name != rec["camera_id"] else rec["camera_id"]


def render_pdf(
    *,
    extraction: dict[str, Any],
    recordings: list[dict[str, Any]],
    entries: list[CustodyEntry],
    this_extraction: CustodyEntry,
    compress: bool = True,
) -> bytes:
    """The chain-of-custody document: who recorded, when it was ingested, every access, this extraction.

    `extraction` and `recordings` are the package manifest's own sections, so the PDF never says anything
    the signed manifest does not."""
    pdf = _pdf(f"Témoin — extraction {extraction['extraction_id']}", FONT_FILE.exists())
    pdf.compress = compress
    pdf.set_title(f"Chaîne de possession / Chain of custody — {extraction['extraction_id']}")
    pdf.set_author("Témoin")
    pdf.alias_nb_pages()
    pdf.add_page()
    pdf.line_of("Chaîne de possession / Chain of custody", 16, 8)
    pdf.ln(2)
    by = extraction["extracted_by"]
    for heading, value in (
        ("Extraction", extraction["extraction_id"]),
        ("Service / Tenant", f"{extraction['tenant']['name']} ({extraction['tenant']['slug']})"),
        (
            "Destinataire / Recipient",
            f"{extraction['recipient']['name']} ({label('fr', 'recipient', extraction['recipient']['kind'])})",
        ),
        (
            "Procédure / Procedure",
            f"{label('fr', 'procedure', extraction['procedure']['type'])} — {extraction['procedure']['reference']}",
        ),
        ("Extrait par / Extracted by", f"{by['name']} ({by['id']}, {by['function']})"),
        ("Date", paris(datetime.fromisoformat(extraction["created_at"]))),
        ("Médias / Media", extraction["media_kind"]),
        ("Clé de la plateforme / Platform key", extraction["platform_key"]["sha256_fingerprint"]),
    ):
        pdf.line_of(f"{heading} : {value}", 10, 5.2)
    for note in extraction.get("notes", []):
        pdf.line_of(note, 8, 4.2)
    for rec in recordings:
        pdf.ln(3)
        pdf.line_of(f"Enregistrement / Recording {rec['id']}", 12, 6.5)
        informed = (
            "oui / yes"
            if rec["persons_informed"]
            else f"non / no ({label('fr', 'reason', str(rec['not_informed_reason']))})"
        )
        pdf.line_of(
            f"Caméra / Camera {_camera(rec)} — agent {rec['agent']} — "
            f"{paris(datetime.fromisoformat(rec['started_at']))} → {paris(datetime.fromisoformat(rec['ended_at']))}"
            f" — déclenchement / trigger {label('fr', 'trigger', rec['trigger'])}"
            f" — personnes informées / persons informed: {informed}",
            9,
        )
        if rec.get("vault_manifest"):  # Axis Body Worn: the camera signs nothing, the vault hashed on arrival
            pdf.line_of(
                f"Reçu par le système Axis Body Worn, sans signature de la caméra : empreintes prises par le "
                f"coffre à l'arrivée / received through the Axis Body Worn system, no device signature: "
                f"hashes taken by the vault on arrival, document SHA-256 {rec['vault_manifest']['sha256']}; "
                f"chaîne / chain head {rec['chain_head']}",
                8,
                4.2,
            )
        else:
            pdf.line_of(
                f"Manifeste signé par la caméra / device-signed manifest SHA-256 "
                f"{rec['device_manifest']['sha256']}; chaîne / chain head {rec['chain_head']}",
                8,
                4.2,
            )
        for lost in rec.get("lost_segments") or []:
            pdf.line_of(
                f"Segment {lost['index']} perdu à la caméra / lost at the camera : "
                f"{paris(datetime.fromisoformat(lost['started_at']))} → "
                f"{paris(datetime.fromisoformat(lost['ended_at']))}",
                8.5,
                4.4,
            )
        mine = [e for e in entries if rec["id"] in e.recordings] + [this_extraction]
        for entry in mine:
            # What each journal event means (the catalogue's sentences), French first; the code ties the line
            # to manifest.json's entry.
            fr, en = label("fr", "event", entry.event), label("en", "event", entry.event)
            who = entry.actor
            ref = f"journal n° {entry.seq}, {entry.hash[:16]}…" if entry.hash else "journal: extraction.created"
            pdf.ln(1)
            pdf.line_of(f"{paris(entry.at)} — {fr} / {en} ({entry.event})", 9.5, 5)
            pdf.line_of(f"par / by {who.get('name')} ({who.get('id')}, {who.get('function')}) — {ref}", 8.5, 4.4)
            summary = _summary(entry)
            if summary:
                pdf.line_of(summary, 8, 4.2)
    return bytes(pdf.output())
