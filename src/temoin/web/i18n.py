"""The web pages speak French first, English too. The choice is a cookie, else Accept-Language."""

from __future__ import annotations

from fastapi import Request

LANGS = ("fr", "en")

TEXTS: dict[str, dict[str, str]] = {
    "sign_in": {"fr": "Connexion", "en": "Sign in"},
    "username": {"fr": "Identifiant", "en": "Username"},
    "password": {"fr": "Mot de passe", "en": "Password"},
    "continue": {"fr": "Continuer", "en": "Continue"},
    "totp_title": {"fr": "Second facteur", "en": "Second factor"},
    "totp_help": {"fr": "Saisissez le code à 6 chiffres de votre application d'authentification.",
                  "en": "Enter the 6-digit code from your authenticator app."},
    "code": {"fr": "Code", "en": "Code"},
    "sign_out": {"fr": "Déconnexion", "en": "Sign out"},
    "recordings": {"fr": "Enregistrements", "en": "Recordings"},
    "journal": {"fr": "Journal", "en": "Journal"},
    "no_recordings": {"fr": "Aucun enregistrement visible.", "en": "No recording you may see."},
    "started": {"fr": "Début", "en": "Start"},
    "ended": {"fr": "Fin", "en": "End"},
    "agent": {"fr": "Agent", "en": "Agent"},
    "camera": {"fr": "Caméra", "en": "Camera"},
    "trigger": {"fr": "Déclenchement", "en": "Trigger"},
    "informed": {"fr": "Personnes informées", "en": "People informed"},
    "retention_until": {"fr": "Suppression le", "en": "Deleted on"},
    "on_hold": {"fr": "Conservé (procédure)", "en": "On hold (procedure)"},
    "flags": {"fr": "Signalements", "en": "Flags"},
    "outside_territory": {"fr": "hors territoire autorisé", "en": "outside the authorised territory"},
    "clock_drift": {"fr": "dérive d'horloge > 2 s", "en": "clock drift > 2 s"},
    "integrity": {"fr": "Intégrité", "en": "Integrity"},
    "integrity_ok": {"fr": "Vérifiée à la réception (signature de la caméra, chaîne des segments)",
                     "en": "Verified on receipt (camera signature, segment chain)"},
    "motive": {"fr": "Motif de la consultation", "en": "Motive of the consultation"},
    "motive_text": {"fr": "Précisez (obligatoire)", "en": "Details (required)"},
    "motive_help": {"fr": "Toute consultation est tracée au journal avec son motif (R241-14).",
                    "en": "Every consultation is written to the journal with its motive (R241-14)."},
    "watch": {"fr": "Consulter", "en": "Watch"},
    "yes": {"fr": "oui", "en": "yes"},
    "no": {"fr": "non", "en": "no"},
    "verify": {"fr": "Vérifier l'intégrité du journal", "en": "Verify the journal's integrity"},
    "journal_ok": {"fr": "Journal intègre", "en": "Journal intact"},
    "journal_bad": {"fr": "Journal altéré", "en": "Journal altered"},
    "entries": {"fr": "entrées", "en": "entries"},
    "when": {"fr": "Date", "en": "When"},
    "who": {"fr": "Qui", "en": "Who"},
    "action": {"fr": "Action", "en": "Action"},
    "event": {"fr": "Événement", "en": "Event"},
    "details": {"fr": "Détails", "en": "Details"},
    "forbidden": {"fr": "Accès refusé", "en": "Access denied"},
    "language": {"fr": "English", "en": "Français"},
    "bad_password": {"fr": "Identifiant ou mot de passe incorrect.", "en": "Unknown user or wrong password."},
    "throttled": {"fr": "Trop de tentatives échouées : réessayez dans {n} s.",
                  "en": "Too many failed sign-ins: try again in {n} s."},
    "bad_code": {"fr": "Code incorrect ou déjà utilisé : saisissez le code actuel de votre application.",
                 "en": "Wrong or already used code: type the current code of your authenticator."},
    "password_first": {"fr": "Connectez-vous d'abord avec votre mot de passe.",
                       "en": "Sign in with your password first."},
    "trigger.incident": {"fr": "incident en cours ou probable", "en": "incident happening or likely"},
    "trigger.person_request": {"fr": "à la demande de la personne filmée", "en": "asked by the person filmed"},
    "trigger.flagrant_offence": {"fr": "flagrant délit", "en": "flagrant offence"},
    "trigger.automatic": {"fr": "automatique (arme armée)", "en": "automatic (weapon armed)"},
    "trigger.live_request": {"fr": "demande de direct", "en": "live request"},
    "reason.circumstances": {"fr": "les circonstances l'interdisaient", "en": "circumstances prevented it"},
    "reason.flagrant_offence": {"fr": "flagrant délit", "en": "flagrant offence"},
    "reason.other": {"fr": "autre raison", "en": "other reason"},
    "home": {"fr": "Accueil", "en": "Home"},
    "no_pages": {"fr": "Votre fonction n'a pas de page ici : elle travaille par l'API.",
                 "en": "Your role has no page here: it works through the API."},
    "api_docs": {"fr": "Documentation de l'API", "en": "API documentation"},
    "not_found": {"fr": "Introuvable", "en": "Not found"},
    "no_such_recording": {"fr": "Aucun enregistrement de ce nom ne vous est accessible.",
                          "en": "No recording by that name that you may see."},
    "motive_refused": {"fr": "Ce motif n'est pas ouvert à votre fonction.",
                       "en": "This motive is not open to your role."},
    "motive_invalid": {"fr": "Choisissez un motif de la liste et précisez-le en quelques mots.",
                       "en": "Choose a motive from the list and give a few words of detail."},
}


def lang_of(request: Request) -> str:
    chosen = request.cookies.get("lang")
    if chosen in LANGS:
        return chosen
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "fr"


def translator(lang: str):  # noqa: ANN201
    def t(key: str, default: str | None = None) -> str:
        entry = TEXTS.get(key)
        if entry is None:
            return key if default is None else default
        return entry.get(lang, entry["fr"])
    return t
