"""PDF documents (fpdf2): the annual report and the public notice. A Unicode font (DejaVu) when the system
has one; otherwise the core fonts, with text brought down to Latin-1."""

from __future__ import annotations

import unicodedata
from datetime import datetime
from pathlib import Path

from fpdf import FPDF

from temoin.reports.annual import AnnualReport, report_rows
from temoin.texts import when

FONT_DIRS = (Path("/usr/share/fonts/truetype/dejavu"), Path("/usr/share/fonts/dejavu"))


def _dejavu() -> tuple[Path, Path] | None:
    for folder in FONT_DIRS:
        regular, bold = folder / "DejaVuSans.ttf", folder / "DejaVuSans-Bold.ttf"
        if regular.exists() and bold.exists():
            return regular, bold
    return None


def latin1(text: str) -> str:
    """What the core fonts can print: accents kept, anything else approximated."""
    out = []
    for ch in text:
        try:
            ch.encode("latin-1")
            out.append(ch)
        except UnicodeEncodeError:
            plain = unicodedata.normalize("NFKD", ch).encode("latin-1", "ignore").decode("latin-1")
            out.append(
                plain
                or {
                    "’": "'",
                    "‘": "'",
                    "“": '"',
                    "”": '"',
                    "…": "...",
                    "–": "-",
                    "—": "-",
                    "≤": "<=",
                    "≥": ">=",
                    "œ": "oe",
                    "Œ": "OE",
                    "€": "EUR",
                }.get(ch, "?")
            )
    return "".join(out)


class Document(FPDF):
    def __init__(self, title: str, footer: str) -> None:
        super().__init__(format="A4")
        self._footer_text = footer
        fonts = _dejavu()
        if fonts:
            self.add_font("DejaVu", "", str(fonts[0]))
            self.add_font("DejaVu", "B", str(fonts[1]))
            self.family_name, self._clean = "DejaVu", (lambda s: s)
        else:
            self.family_name, self._clean = "Helvetica", latin1
        self.set_title(self._clean(title))
        self.set_creator("Témoin" if fonts else "Temoin")
        self.set_auto_page_break(True, margin=18)
        self.add_page()

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(self.family_name, "", 8)
        self.set_text_color(110)
        self.cell(0, 6, self._clean(f"{self._footer_text} — page {self.page_no()}"), align="C")
        self.set_text_color(0)

    def heading(self, text: str, size: int = 15) -> None:
        self.set_font(self.family_name, "B", size)
        self.multi_cell(0, size * 0.5, self._clean(text), new_x="LMARGIN", new_y="NEXT")
        self.ln(2)

    def paragraph(self, text: str, size: int = 10) -> None:
        self.set_font(self.family_name, "", size)
        self.multi_cell(0, 5, self._clean(text), new_x="LMARGIN", new_y="NEXT")
        self.ln(1.5)

    def rows(self, rows: list[tuple[str, str, str]]) -> None:
        """(section, item, value) rows: one small table per section."""
        section = None
        width = self.epw
        for sec, item, value in rows:
            if sec != section:
                section = sec
                self.ln(2)
                if self.will_page_break(16):
                    self.add_page()
                self.set_font(self.family_name, "B", 11)
                self.multi_cell(0, 6, self._clean(sec), new_x="LMARGIN", new_y="NEXT")
            self.set_font(self.family_name, "", 9.5)
            y = self.get_y()
            self.multi_cell(width * 0.72, 5.2, self._clean(item), border="B", new_x="RIGHT", new_y="TOP")
            h = self.get_y() - y if self.get_y() > y else 5.2
            self.set_xy(self.l_margin + width * 0.72, y)
            self.multi_cell(width * 0.28, 5.2, self._clean(value), border="B", align="R", new_x="LMARGIN", new_y="NEXT")
            self.set_y(max(self.get_y(), y + h))

    def bytes(self) -> bytes:
        return bytes(self.output())


def annual_pdf(report: AnnualReport) -> bytes:
    generated = when("fr", report.generated_at, seconds=False)
    doc = Document(
        f"Rapport annuel {report.year} — caméras individuelles — {report.tenant_name}",
        f"{report.tenant_name} · rapport annuel {report.year} (CSI R241-17) · établi le {generated}",
    )
    doc.heading(f"Rapport annuel {report.year} au préfet")
    doc.paragraph(
        f"Emploi des caméras individuelles des agents de police municipale — {report.tenant_name}. "
        "Article R241-17 du code de la sécurité intérieure : nombre de caméras, nombre d'agents "
        "autorisés, nombre de procédures judiciaires, administratives et disciplinaires pour lesquelles "
        "des enregistrements ont été consultés ou extraits."
    )
    doc.rows(report_rows(report))
    doc.ln(4)
    doc.heading("Appréciation des effets sur les relations avec la population", 12)
    doc.paragraph("(À compléter et signer par le maire ou le président de l'EPCI.)")
    doc.ln(14)
    doc.paragraph("Fait à ____________________, le ____________________      Signature :")
    return doc.bytes()


def text_pdf(title: str, sections: list[tuple[str, str]], footer: str) -> bytes:
    """A simple document: a title and (heading, paragraph) sections."""
    doc = Document(title, footer)
    doc.heading(title)
    for heading, body in sections:
        if heading:
            if doc.will_page_break(20):  # a heading stays with the start of its text
                doc.add_page()
            doc.heading(heading, 11)
        for para in body.split("\n\n"):
            doc.paragraph(para)
    return doc.bytes()


def generated_on(now: datetime) -> str:
    return when("fr", now, time=False)
