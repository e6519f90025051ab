"""The information of the public (CSI R241-15): the texts, the number of cameras, how they work, the
controller, the purposes, the retention, how to exercise one's rights, and the right to complain to the CNIL.

Built from the tenant (name, legal profile, authorised cameras) and its settings (rights deadline, the
controller's name, the DPO's contact, the address for requests: `temoin admin tenant settings`); the caller may
override the last three for one notice.
"""

from __future__ import annotations

from dataclasses import dataclass

from temoin.identity.models import Tenant
from temoin.identity.tenant_settings import settings_of
from temoin.law.profiles import get_profile


@dataclass
class NoticeInputs:
    controller: str | None = None  # e.g. "Le maire de Port-Témoin"
    dpo_contact: str | None = None  # e.g. "dpo@port-temoin.fr"
    rights_address: str | None = None  # where to write: "Mairie, 1 place de la République, ..."


def _months_fr(months: int, days: int = 0) -> str:
    parts = []
    if months:
        parts.append(f"{months} mois")
    if days:
        parts.append(f"{days} jour{'s' if days > 1 else ''}")
    return " et ".join(parts) or "0 jour"


def notice_sections(tenant: Tenant, inputs: NoticeInputs) -> tuple[str, list[tuple[str, str]]]:
    profile = get_profile(tenant.profile)
    settings = settings_of(tenant)
    deadline = settings.rights_deadline_months
    inputs = NoticeInputs(
        controller=inputs.controller or settings.notice_controller,
        dpo_contact=inputs.dpo_contact or settings.dpo_contact,
        rights_address=inputs.rights_address or settings.rights_address,
    )
    controller = inputs.controller or (
        f"Le président de {tenant.name}" if tenant.kind == "epci" else f"Le maire de {tenant.name}"
    )
    write_to = inputs.rights_address or f"la mairie de {tenant.name}, à l'attention du maire"
    dpo = (
        f"Délégué à la protection des données : {inputs.dpo_contact}."
        if inputs.dpo_contact
        else "Délégué à la protection des données : contact disponible auprès de la mairie."
    )
    references = ", ".join(profile.references) if profile.references else "code de la sécurité intérieure"
    title = f"Caméras individuelles de la police municipale — {tenant.name}"
    plural = "s" if tenant.authorised_cameras > 1 else ""
    sections = [
        (
            "Textes applicables",
            f"{profile.title}. Références : {references} ; loi n° 78-17 du 6 janvier 1978 relative à l'informatique, "
            "aux fichiers et aux libertés (articles 87 et suivants).",
        ),
        ("Responsable du traitement", f"{controller}. {dpo}"),
        (
            "Équipement",
            f"Le préfet a autorisé l'emploi de {tenant.authorised_cameras} caméra{plural} individuelle{plural} "
            "par les agents de police municipale, sur le territoire de la commune"
            f"{' et des communes de l' + chr(39) + 'EPCI' if tenant.kind == 'epci' else ''}.",
        ),
        (
            "Fonctionnement",
            "Les caméras sont portées de façon apparente. L'enregistrement n'est pas permanent : il est déclenché "
            "par l'agent lorsqu'un incident se produit ou est susceptible de se produire, eu égard aux "
            "circonstances de l'intervention ou au comportement des personnes concernées. Un signal visuel "
            "spécifique (voyant rouge) et un signal sonore indiquent que la caméra enregistre. Les personnes "
            "filmées en sont informées, sauf si les circonstances l'interdisent. Sont enregistrés les images, le "
            "son, la date et l'heure, l'identifiant de l'agent porteur et le lieu de l'enregistrement."
            + (
                " En cas de danger pour la sécurité des agents ou des personnes, les images peuvent être transmises "
                "en temps réel au poste de commandement du service."
                if profile.live_transmission_allowed
                else ""
            ),
        ),
        (
            "Finalités",
            "Prévenir les incidents au cours des interventions des agents de police municipale ; constater les "
            "infractions et poursuivre leurs auteurs par la collecte de preuves ; former et sensibiliser les "
            "agents (à partir d'images anonymisées).",
        ),
        (
            "Durée de conservation",
            f"Les enregistrements sont conservés {_months_fr(profile.retention.months, profile.retention.days)} à "
            "compter du jour de l'enregistrement, puis effacés automatiquement, sauf lorsqu'ils sont utilisés dans "
            "le cadre d'une procédure judiciaire, administrative ou disciplinaire. Chaque consultation, extraction "
            f"et effacement est tracé dans un journal conservé {profile.journal_retention_years} ans.",
        ),
        (
            "Vos droits",
            "Vous pouvez demander l'accès aux enregistrements qui vous concernent, leur effacement, la limitation "
            f"de leur traitement ou leur rectification, en écrivant à {write_to}. Décrivez la date, l'heure et le "
            "lieu, et comment vous reconnaître (vêtements, par exemple). Les autres personnes filmées sont masquées "
            f"sur la copie remise. Une réponse vous est apportée dans un délai de {deadline} mois.\n\n"
            "Ces droits peuvent faire l'objet de restrictions pour éviter de gêner une enquête ou une procédure, ou "
            "pour protéger la sécurité publique (articles 107 et 108 de la loi du 6 janvier 1978). Vous pouvez "
            "alors les exercer par l'intermédiaire de la CNIL (droit d'accès indirect).",
        ),
        (
            "Réclamation",
            "Vous pouvez adresser une réclamation à la Commission nationale de l'informatique et des libertés "
            "(CNIL, 3 place de Fontenoy, TSA 80715, 75334 Paris Cedex 07, www.cnil.fr).",
        ),
    ]
    return title, sections


def notice_pdf(tenant: Tenant, inputs: NoticeInputs) -> bytes:
    from temoin.db import utcnow
    from temoin.reports.pdf import generated_on, text_pdf

    title, sections = notice_sections(tenant, inputs)
    return text_pdf(title, sections, f"Information du public (CSI R241-15) · {tenant.name} · {generated_on(utcnow())}")
