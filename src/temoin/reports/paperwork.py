"""The commune's paperwork for the processing: the record of processing activities (registre des activités de
traitement: loi 78-17 art. 100 for criminal-law processing, RGPD art. 30) and a draft of the data protection
impact assessment (AIPD: loi 78-17 art. 90, RGPD art. 35), in French.

Both are built from what the platform knows: the tenant (name, kind, communes, territory, cameras authorised by
the prefect), its legal profile (retention, journal, live backups, pre-event buffer), its settings (controller,
DPO contact, address for rights, answer deadline) and today's figures (cameras in service, agents by role).
What only the controller can say (the assessment of risks, the DPO's opinion, the signature) is left to write.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from temoin.db import utcnow
from temoin.geo.territory import _polygons
from temoin.identity.devices import active_cameras
from temoin.identity.models import Tenant, User
from temoin.identity.tenant_settings import settings_of
from temoin.law.access import Role
from temoin.law.profiles import LegalProfile, add_months, get_profile

TO_COMPLETE = "(à compléter)"


@dataclass(frozen=True)
class Facts:
    """What the documents say about one tenant, gathered once."""

    tenant_name: str
    epci: bool
    communes: list[str]
    territory_zones: int
    authorised_cameras: int
    cameras_in_service: int
    agents: int
    designated_agents: int
    controller: str
    dpo_contact: str | None
    rights_address: str
    rights_deadline_months: int
    profile: LegalProfile
    retention_max_days: int


@dataclass(frozen=True)
class Paper:
    title: str
    sections: list[tuple[str, str]]
    footer: str


def retention_max_days(profile: LegalProfile) -> int:
    """The longest a recording is kept, in whole days from the day of recording (the anniversary day included):
    31 for one month, 184 for six."""
    rule, first = profile.retention, date(2024, 1, 1)  # a leap year and the next three cover every case
    return max(
        (add_months(day, rule.months) + timedelta(days=rule.days) - day).days
        for day in (first + timedelta(days=i) for i in range(4 * 366))
    )


def facts(db: Session, tenant: Tenant) -> Facts:
    settings = settings_of(tenant)
    profile = get_profile(tenant.profile)
    roles = dict(
        db.execute(
            select(User.role, func.count())
            .where(User.tenant_id == tenant.id, User.active.is_(True))
            .group_by(User.role)
        ).all()
    )
    epci = tenant.kind == "epci"
    controller = settings.notice_controller or (
        f"Le président de {tenant.name}" if epci else f"Le maire de {tenant.name}"
    )
    return Facts(
        tenant_name=tenant.name,
        epci=epci,
        communes=[str(c) for c in tenant.communes or []],
        territory_zones=len(_polygons(tenant.territory)) if tenant.territory else 0,
        authorised_cameras=tenant.authorised_cameras,
        cameras_in_service=active_cameras(db, tenant),
        agents=int(roles.get(Role.AGENT.value, 0)),
        designated_agents=int(roles.get(Role.DESIGNATED_AGENT.value, 0)),
        controller=controller,
        dpo_contact=settings.dpo_contact,
        rights_address=settings.rights_address or f"la mairie de {tenant.name}, à l'attention du maire",
        rights_deadline_months=settings.rights_deadline_months,
        profile=profile,
        retention_max_days=retention_max_days(profile),
    )


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'s' if n > 1 else ''}"


def _retention(f: Facts) -> str:
    r = f.profile.retention
    period = " et ".join(
        p for p in (f"{r.months} mois" if r.months else "", _plural(r.days, "jour") if r.days else "") if p
    )
    return (
        f"{period} à compter du jour de l'enregistrement, soit {f.retention_max_days} jours au plus, puis "
        "effacement automatique"
    )


def _territory(f: Facts) -> str:
    where = (
        f"les communes membres de l'EPCI ({', '.join(f.communes) or TO_COMPLETE})"
        if f.epci
        else f"la commune de {f.tenant_name}"
    )
    zones = (
        f"le territoire autorisé est enregistré dans la plateforme ({_plural(f.territory_zones, 'zone')}) ; "
        "un enregistrement fait en dehors est signalé"
        if f.territory_zones
        else "le territoire autorisé n'est pas encore enregistré dans la plateforme (à importer)"
    )
    return f"Usage limité au territoire de {where} (CSI R241-8 II) : {zones}."


def _dpo(f: Facts) -> str:
    return f.dpo_contact or f"{TO_COMPLETE} : réglage dpo_contact de la commune"


def _references(f: Facts) -> str:
    refs = ", ".join(f.profile.references) if f.profile.references else "code de la sécurité intérieure"
    return f"{f.profile.title}. Références : {refs}"


RECIPIENTS = (
    "Le maire (ou le président de l'EPCI), le responsable du service de police municipale et les agents "
    "individuellement désignés et habilités (CSI R241-12), chacun pour le besoin de ses missions ; "
    "l'agent porteur pour ses propres enregistrements, pour l'un des motifs de l'article R241-11. "
    "Destinataires des extractions : officiers et agents de police judiciaire, services d'inspection de "
    "l'État, autorité disciplinaire, formateurs (images anonymisées, CSI R241-13). Transmission en direct : "
    "le poste de commandement du service (centre de supervision urbaine) lorsque la sécurité des agents ou "
    "des personnes est menacée (CSI R241-11)."
)

SECURITY = (
    "Caméras délivrées par le service seulement, chacune enrôlée avec une clé Ed25519 ; chaque requête et chaque "
    "manifeste d'enregistrement sont signés, une signature invalide met le dépôt en quarantaine.",
    "Enregistrements chiffrés sur la caméra et dans le coffre (AES-256-GCM, une clé par enregistrement, "
    "elle-même chiffrée par une clé maîtresse qui n'est jamais en base) ; chaque segment est haché et chaîné, "
    "l'intégrité est vérifiée au dépôt et peut être contrôlée à tout moment.",
    "Les enregistrements quittent la caméra dès leur dépôt au coffre ; la copie locale n'est effacée qu'au vu d'un "
    "reçu signé par la plateforme.",
    "Accès par rôle, refusé par défaut ; mot de passe (argon2id) et second facteur (TOTP) ; toute consultation "
    "exige un motif ; l'administrateur technique n'a pas accès aux images.",
    "Journal de chaque collecte, modification, consultation, communication et effacement (CSI R241-14), chaîné "
    "par hachage dans deux supports et scellé ; conservé trois ans.",
    "Effacement automatique à l'échéance de conservation (clé de l'enregistrement détruite, copies dérivées "
    "comprises), avec un certificat d'effacement signé ; conservation prolongée seulement sous une procédure.",
    "Copies remises aux personnes : les autres personnes filmées sont masquées (visages floutés, voix altérées).",
    "Aucune reconnaissance faciale : la détection des visages ne sert qu'à les masquer.",
)


def processing_record(db: Session, tenant: Tenant) -> Paper:
    """The entry of the record of processing activities for the body-worn cameras."""
    f = facts(db, tenant)
    p = f.profile
    live = (
        "Le flux transmis en direct peut être enregistré par le serveur (profil juridique) et suit la même durée."
        if p.live_backup_recording
        else "Le flux transmis en direct n'est pas enregistré par le serveur."
    )
    sections = [
        (
            "Responsable du traitement",
            f"{f.controller} — {f.tenant_name}{' (EPCI)' if f.epci else ''}. Adresse pour l'exercice des droits : "
            f"{f.rights_address}.",
        ),
        ("Délégué à la protection des données", f"Contact : {_dpo(f)}."),
        (
            "Base légale",
            f"{_references(f)} ; loi n° 78-17 du 6 janvier 1978, titre III (articles 87 et suivants ; registre : "
            "article 100), transposant la directive (UE) 2016/680. Autorisation préfectorale d'emploi de "
            f"{_plural(f.authorised_cameras, 'caméra')} (CSI R241-8).",
        ),
        (
            "Finalités (CSI L241-2, R241-8)",
            "Prévenir les incidents au cours des interventions des agents de police municipale ; constater les "
            "infractions et poursuivre leurs auteurs par la collecte de preuves ; former et sensibiliser les agents "
            "(à partir d'images anonymisées).",
        ),
        (
            "Catégories de personnes concernées",
            f"Les agents de police municipale porteurs de caméras ({_plural(f.agents, 'agent')} porteur"
            f"{'s' if f.agents > 1 else ''} enregistré{'s' if f.agents > 1 else ''}) ; les personnes filmées lors des "
            "interventions (personnes mises en cause, victimes, témoins, passants) ; les personnels qui consultent "
            "les enregistrements (journal).",
        ),
        (
            "Catégories de données (CSI R241-10)",
            "Les images et les sons captés par les caméras ; le jour et les plages horaires d'enregistrement ; "
            "l'identification de l'agent porteur ; le lieu de collecte (position GPS). Le journal des opérations : "
            "identifiant, nom et fonction de la personne, date, heure, motif, destinataires, enregistrements et "
            "caméra concernés (CSI R241-14). Aucune donnée n'est tirée des images par reconnaissance faciale.",
        ),
        (
            "Destinataires (CSI R241-12)",
            f"{RECIPIENTS} À ce jour : {_plural(f.designated_agents, 'agent')} individuellement "
            f"désigné{'s' if f.designated_agents > 1 else ''}.",
        ),
        (
            "Durées de conservation (CSI R241-11, R241-13, R241-14)",
            f"Enregistrements : {_retention(f)} ; sauf utilisation dans une procédure judiciaire, administrative ou "
            "disciplinaire (conservation sous les règles de la procédure). Les enregistrements sont transférés sur "
            f"le support sécurisé dès le retour de l'agent au service (CSI R241-11). {live} Journal : "
            f"{_plural(p.journal_retention_years, 'an')}. Demandes des personnes : réponse dans un délai de "
            f"{f.rights_deadline_months} mois.",
        ),
        (
            "Équipement et territoire",
            f"{_plural(f.authorised_cameras, 'caméra')} autorisée{'s' if f.authorised_cameras > 1 else ''} par le "
            f"préfet, {f.cameras_in_service} en service. {_territory(f)}",
        ),
        (
            "Transferts hors de l'Union européenne",
            "Aucun. Les données sont hébergées par la commune ou son "
            "prestataire, sans transfert hors de l'Union européenne.",
        ),
        ("Profilage et décision automatisée", "Aucun."),
        ("Mesures de sécurité techniques et organisationnelles", "\n\n".join(f"- {m}" for m in SECURITY)),
    ]
    return Paper(
        f"Registre des activités de traitement — caméras individuelles de la police municipale — {f.tenant_name}",
        sections,
        f"{f.tenant_name} · registre des traitements (loi 78-17 art. 100) · {_today()}",
    )


def aipd(db: Session, tenant: Tenant) -> Paper:
    """A draft of the impact assessment: the description and the measures filled in, the risks laid out with
    the measures that answer them; their gravity and likelihood, the DPO's opinion and the decision left to the
    controller."""
    f = facts(db, tenant)
    p = f.profile
    risks = (
        (
            "Accès illégitime aux images (consultation par une personne non habilitée, curiosité, fuite)",
            "atteinte à la vie privée des personnes filmées, y compris des témoins et passants",
            "accès par rôle refusé par défaut, second facteur, motif obligatoire, journal de chaque consultation, "
            "chiffrement au repos, aucune copie laissée sur les caméras",
        ),
        (
            "Modification non désirée des images (altération d'une preuve)",
            "une procédure fondée sur une image fausse ; perte de confiance",
            "segments hachés et chaînés, manifestes signés par la caméra, reçus signés, contrôle d'intégrité "
            "à la demande, extractions signées vérifiables par tout destinataire",
        ),
        (
            "Disparition des images (perte avant l'échéance, ou effacement contesté)",
            "preuve perdue ; soupçon d'effacement volontaire",
            "copie locale conservée jusqu'au reçu du coffre, conservation sous procédure, certificat d'effacement "
            "signé, journal scellé qui rend visible toute suppression",
        ),
        (
            "Conservation excessive ou usage détourné (surveillance des agents ou de la population)",
            "atteinte disproportionnée aux libertés",
            f"enregistrement non permanent, effacement automatique après {f.retention_max_days} jours au plus, "
            "finalités et motifs limités, transmission en direct seulement en cas de menace, usage limité au "
            "territoire autorisé, rapport annuel au préfet",
        ),
    )
    risk_text = "\n\n".join(
        f"- Risque : {r}. Impact : {i}. Mesures : {m}. Gravité et vraisemblance résiduelles : {TO_COMPLETE}."
        for r, i, m in risks
    )
    sections = [
        (
            "Objet",
            "Projet d'analyse d'impact relative à la protection des données (AIPD) pour l'emploi de caméras "
            "individuelles par les agents de police municipale (loi 78-17 art. 90 ; RGPD art. 35). Établi par la "
            "plateforme à partir de la configuration de la commune ; à compléter, soumettre au délégué à la protection "
            "des données et valider par le responsable du traitement.",
        ),
        (
            "1. Description du traitement",
            f"Responsable : {f.controller} — {f.tenant_name}. Délégué à la protection des données : {_dpo(f)}. "
            f"{_plural(f.authorised_cameras, 'caméra')} autorisée{'s' if f.authorised_cameras > 1 else ''} par le "
            f"préfet ({f.cameras_in_service} en service), portées par {_plural(f.agents, 'agent')}. {_territory(f)} "
            "L'agent déclenche l'enregistrement lorsqu'un incident se produit ou est susceptible de se produire ; "
            "la caméra enregistre images, son, date, heure, identité du porteur et lieu ; les enregistrements sont "
            "déposés dans un coffre chiffré au retour au service, consultés par les personnes habilitées pour un "
            f"motif, extraits pour une procédure, puis effacés. Pré-enregistrement : {p.pre_event_buffer_s} s, image "
            "seule.",
        ),
        (
            "2. Nécessité et proportionnalité",
            f"Base légale : {_references(f)}. Finalités déterminées : prévention des incidents, constat des "
            "infractions et collecte de preuves, formation (images anonymisées). Minimisation : enregistrement non "
            "permanent, déclenché et signalé (voyant rouge, signal sonore), personnes informées sauf circonstances "
            "contraires, motif du déclenchement conservé ; transmission en direct seulement en cas de menace"
            f"{'' if p.live_transmission_allowed else ' (non autorisée par ce profil)'}. Conservation : "
            f"{_retention(f)}. Information du public (CSI R241-15) : affiche générée par la plateforme. Droits des "
            f"personnes (loi 78-17 art. 104 à 108) : demande à {f.rights_address}, réponse sous "
            f"{f.rights_deadline_months} mois, copie où les autres personnes sont masquées, accès indirect par la CNIL "
            "en cas de restriction. Destinataires limités (CSI R241-12). Aucun transfert hors de l'Union européenne.",
        ),
        ("3. Risques pour les droits et libertés, et mesures", risk_text),
        ("4. Mesures de sécurité", "\n\n".join(f"- {m}" for m in SECURITY)),
        (
            "5. Avis et validation",
            f"Avis du délégué à la protection des données : {TO_COMPLETE}\n\n"
            f"Décision du responsable du traitement : {TO_COMPLETE}\n\n"
            "Fait à ____________________, le ____________________      Signature :",
        ),
    ]
    return Paper(
        f"Analyse d'impact relative à la protection des données (projet) — caméras individuelles — {f.tenant_name}",
        sections,
        f"{f.tenant_name} · AIPD, projet (loi 78-17 art. 90) · {_today()}",
    )


def _today() -> str:
    from temoin.reports.pdf import generated_on

    return f"établi le {generated_on(utcnow())}"


def to_pdf(paper: Paper) -> bytes:
    from temoin.reports.pdf import text_pdf

    return text_pdf(paper.title, paper.sections, paper.footer)


def processing_record_pdf(db: Session, tenant: Tenant) -> bytes:
    return to_pdf(processing_record(db, tenant))


def aipd_pdf(db: Session, tenant: Tenant) -> bytes:
    return to_pdf(aipd(db, tenant))
