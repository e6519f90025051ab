"""The controller's paperwork: the record of processing activities (loi 78-17 art. 100) and the AIPD draft
(art. 90), as PDF in French from the tenant's figures and settings; only the mayor and the DPO may have them;
the command line writes them too."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from typer.testing import CliRunner

from temoin.cli import app as cli_app
from temoin.identity.models import Tenant
from temoin.identity.service import update_settings
from temoin.law.access import Role
from temoin.law.profiles import get_profile
from temoin.reports.paperwork import retention_max_days
from tests.helpers import make_commune, pdf_text, sign_in

runner = CliRunner()
MAY_READ = {Role.MAYOR, Role.DPO}


def _set_dpo(platform, slug: str, contact: str) -> None:
    with platform.session() as db:
        update_settings(platform, db, platform.tenant(db, slug), {"dpo_contact": contact})
        db.commit()


def test_retention_in_days_follows_the_profile() -> None:
    assert retention_max_days(get_profile("fr-police-municipale")) == 31
    assert retention_max_days(get_profile("fr-police-municipale-2019")) == 184


def test_processing_record_carries_the_tenants_figures(platform, client):
    commune = make_commune(platform, cameras=3, authorised=7)
    _set_dpo(platform, commune.slug, "dpo@port-temoin.fr")
    sign_in(platform, client, commune.users[Role.MAYOR])
    r = client.get("/api/v1/reports/processing-record.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert "registre-des-traitements-port-temoin.pdf" in r.headers["content-disposition"]
    text = pdf_text(r.content)
    assert "Registre des activités de traitement" in text and "Port-Temoin" in text
    assert "7 caméras autorisées par le préfet, 3 en service" in text
    assert "31 jours au plus" in text and "Journal : 3 ans" in text
    assert "dpo@port-temoin.fr" in text and "Le maire de Port-Temoin" in text
    assert "R241-10" in text and "R241-12" in text and "Transferts hors de l'Union européenne Aucun" in text

    # The figures are the tenant's of the moment: another profile, another contact, another authorisation.
    with platform.session() as db:
        db.execute(
            update(Tenant)
            .where(Tenant.slug == commune.slug)
            .values(profile="fr-police-municipale-2019", authorised_cameras=9)
        )
        db.commit()
    _set_dpo(platform, commune.slug, "rgpd@mairie.example")
    sections = client.get("/api/v1/reports/processing-record").json()["sections"]
    text = " ".join(s["text"] for s in sections)
    assert "184 jours au plus" in text and "9 caméras" in text and "rgpd@mairie.example" in text
    assert "dpo@port-temoin.fr" not in text


def test_aipd_draft_carries_the_tenants_figures(platform, client):
    commune = make_commune(platform, cameras=2, authorised=5)
    sign_in(platform, client, commune.users[Role.DPO])
    r = client.get("/api/v1/reports/aipd.pdf")
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    text = pdf_text(r.content)
    assert "Analyse d'impact relative à la protection des données" in text
    assert "5 caméras autorisées par le préfet (2 en service)" in text and "31 jours au plus" in text
    for part in (
        "Description du traitement",
        "Nécessité et proportionnalité",
        "Risques pour les droits",
        "Mesures de sécurité",
        "Avis et validation",
    ):
        assert part in text
    # No DPO contact in the settings: the draft says what to fill in, and where.
    assert "(à compléter) : réglage dpo_contact" in text
    _set_dpo(platform, commune.slug, "dpo@port-temoin.fr")
    text = " ".join(s["text"] for s in client.get("/api/v1/reports/aipd").json()["sections"])
    assert "dpo@port-temoin.fr" in text and "réglage dpo_contact" not in text


def test_only_the_mayor_and_the_dpo_have_the_paperwork(platform, client):
    commune = make_commune(platform, cameras=0)
    paths = (
        "/api/v1/reports/processing-record.pdf",
        "/api/v1/reports/processing-record",
        "/api/v1/reports/aipd.pdf",
        "/api/v1/reports/aipd",
    )
    for path in paths:
        assert client.get(path).status_code == 401
    for role in Role:
        sign_in(platform, client, commune.users[role])
        expected = 200 if role in MAY_READ else 403
        assert [client.get(path).status_code for path in paths] == [expected] * 4, role
        page = client.get("/reports")
        if role in MAY_READ:  # the reports page links to them for those who may have them
            assert "/api/v1/reports/processing-record.pdf" in page.text and "/api/v1/reports/aipd.pdf" in page.text
        elif page.status_code == 200:  # the chief reads reports, not the controller's paperwork
            assert "processing-record" not in page.text and "aipd" not in page.text


@pytest.mark.parametrize(
    "command, title", [("processing-record", "Registre des activités de traitement"), ("aipd", "Analyse d'impact")]
)
def test_the_command_line_writes_the_pdf(platform, settings, tmp_path, command, title):
    commune = make_commune(platform, cameras=1, authorised=4)
    env = {"TEMOIN_HOME": str(settings.home), "TEMOIN_DATABASE_URL": settings.database_url, "COLUMNS": "200"}
    out = tmp_path / "paper.pdf"
    result = runner.invoke(cli_app, ["report", command, commune.slug, "--out", str(out)], env=env)
    assert result.exit_code == 0, result.output
    text = pdf_text(out.read_bytes())
    assert title in text and "4 caméras" in text and "31 jours au plus" in text
    result = runner.invoke(cli_app, ["report", command, "nowhere", "--out", str(out)], env=env)
    assert result.exit_code == 2 and "no tenant 'nowhere'" in result.output
