"""The web pages speak French first, English too. The choice is a cookie, else Accept-Language."""

from __future__ import annotations

from fastapi import Request

LANGS = ("fr", "en")

TEXTS: dict[str, dict[str, str]] = {
    "sign_in": {"fr": "Connexion", "en": "Sign in"},
    "username": {"fr": "Identifiant", "en": "Username"},
    "password": {"fr": "Mot de passe", "en": "Password"},
    "username_help": {"fr": "Si votre identifiant existe dans plusieurs communes : identifiant@commune.",
                      "en": "If your username exists in several communes: username@commune."},
    "continue": {"fr": "Continuer", "en": "Continue"},
    "totp_title": {"fr": "Second facteur", "en": "Second factor"},
    "totp_help": {"fr": "Saisissez le code à 6 chiffres de votre application d'authentification.",
                  "en": "Enter the 6-digit code from your authenticator app."},
    "code": {"fr": "Code", "en": "Code"},
    "sign_out": {"fr": "Déconnexion", "en": "Sign out"},
    "recordings": {"fr": "Enregistrements", "en": "Recordings"},
    "journal": {"fr": "Journal", "en": "Journal"},
    "nav_live": {"fr": "Supervision", "en": "Live supervision"},
    "nav_rights": {"fr": "Droits des personnes", "en": "Citizens' rights"},
    "nav_reports": {"fr": "Rapports", "en": "Reports"},
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
    "training_redacted_only": {
        "fr": "Pour la formation, seules des images anonymisées (visages et voix) peuvent être montrées (R241-13) : "
              "l'original n'est pas affiché. Faites une extraction pour la formation (destinataire : formateur).",
        "en": "For training only anonymised pictures and sound may be shown (R241-13): the original is not "
              "displayed. Make a training extraction (recipient: trainer)."},
    "motive_invalid": {"fr": "Choisissez un motif de la liste et précisez-le en quelques mots.",
                       "en": "Choose a motive from the list and give a few words of detail."},
    # --- review: search, map, playback, tags, holds, extraction ---
    "search": {"fr": "Rechercher", "en": "Search"},
    "search_title": {"fr": "Recherche", "en": "Search"},
    "reset": {"fr": "Réinitialiser", "en": "Reset"},
    "from": {"fr": "Du (heure de Paris)", "en": "From (Paris time)"},
    "to": {"fr": "Au (heure de Paris)", "en": "To (Paris time)"},
    "any": {"fr": "Tous", "en": "Any"},
    "category": {"fr": "Catégorie", "en": "Category"},
    "categories": {"fr": "Catégories", "en": "Categories"},
    "state": {"fr": "État", "en": "State"},
    "state.on_hold": {"fr": "conservé pour une procédure", "en": "on hold for a procedure"},
    "state.not_on_hold": {"fr": "sous la règle de conservation", "en": "under the retention rule"},
    "state.expiring": {"fr": "supprimé sous 7 jours", "en": "deleted within 7 days"},
    "area": {"fr": "Zone (lat,lon;lat,lon;…)", "en": "Area (lat,lon;lat,lon;…)"},
    "area_help": {"fr": "Dessinez une zone sur la carte : les enregistrements dont le trajet GPS y passe.",
                  "en": "Draw an area on the map: the recordings whose GPS track passes through it."},
    "draw_rectangle": {"fr": "Dessiner un rectangle", "en": "Draw a rectangle"},
    "draw_polygon": {"fr": "Dessiner un polygone", "en": "Draw a polygon"},
    "finish_polygon": {"fr": "Terminer le polygone", "en": "Finish the polygon"},
    "clear_area": {"fr": "Effacer la zone", "en": "Clear the area"},
    "drawing_rectangle": {"fr": "Cliquez-glissez sur la carte pour tracer le rectangle.",
                          "en": "Click and drag on the map to draw the rectangle."},
    "drawing_polygon": {"fr": "Cliquez pour chaque sommet, double-cliquez ou « Terminer » pour fermer.",
                        "en": "Click each corner; double-click or “Finish” to close."},
    "map": {"fr": "Carte", "en": "Map"},
    "results": {"fr": "Résultats", "en": "Results"},
    "n_results": {"fr": "{n} enregistrement(s)", "en": "{n} recording(s)"},
    "no_match": {"fr": "Aucun enregistrement ne correspond à ces critères.", "en": "No recording matches."},
    "bad_time": {"fr": "Date ou heure illisible : utilisez le sélecteur (JJ/MM/AAAA hh:mm).",
                 "en": "Unreadable date or time: use the picker."},
    "bad_area": {"fr": "Zone illisible : dessinez-la sur la carte, ou écrivez au moins trois points lat,lon "
                       "séparés par « ; ».",
                 "en": "Unreadable area: draw it on the map, or type at least three lat,lon points separated "
                       "by ';'."},
    "place_motive": {"fr": "Motif pour voir les lieux", "en": "Motive to see the places"},
    "place_motive_help": {"fr": "Le lieu d'un enregistrement est une donnée enregistrée (R241-10) : une recherche par "
                                "zone, et les trajets sur la carte, demandent un motif, tracé au journal.",
                          "en": "Where a recording was made is recorded data (R241-10): a search by area, and the "
                                "tracks on the map, need a motive, written to the journal."},
    "place_motive_required": {"fr": "Une recherche par zone montre où les enregistrements ont été faits : donnez "
                                    "le motif (et précisez-le), il est tracé au journal.",
                              "en": "A search by area shows where recordings were made: give the motive (with a "
                                    "few words); it is written to the journal."},
    "places_hidden": {"fr": "Les trajets ne sont pas affichés : donnez un motif pour voir les lieux.",
                      "en": "Tracks are not shown: give a motive to see the places."},
    "track_after_motive": {"fr": "Le trajet GPS s'affiche avec la vidéo, une fois le motif donné.",
                           "en": "The GPS track is shown with the video, once the motive is given."},
    "declared_time": {"fr": "Heure déclarée par la caméra", "en": "Time declared by the camera"},
    "declared_agent": {"fr": "Agent déclaré par la caméra", "en": "Agent declared by the camera"},
    "flag.time_in_future": {"fr": "heure improbable (futur)", "en": "implausible time (future)"},
    "flag.time_beyond_retention": {"fr": "arrivé après sa durée de conservation",
                                   "en": "arrived after its retention period"},
    "flag.agent_not_on_shift": {"fr": "agent déclaré ≠ agent affecté", "en": "declared agent ≠ assigned agent"},
    "flag.no_shift": {"fr": "caméra affectée à personne", "en": "camera assigned to nobody"},
    "flag.territory_unknown": {"fr": "territoire inconnu", "en": "territory unknown"},
    "recording_limited": {"fr": "Cet enregistrement est gelé par une demande de limitation (loi 78-17, art. 107) : "
                                "il est seulement conservé, ni consulté ni extrait, jusqu'à la levée de la limitation.",
                          "en": "This recording is frozen by a limitation request (loi 78-17 art. 107): it is only "
                                "kept, neither consulted nor extracted, until the limitation is lifted."},
    "limited": {"fr": "Limitation (demande de droits)", "en": "Limitation (rights request)"},
    "rectifications": {"fr": "Rectifications", "en": "Rectifications"},
    "select": {"fr": "Sélectionner", "en": "Select"},
    "select_all": {"fr": "Tout sélectionner", "en": "Select all"},
    "open": {"fr": "Ouvrir", "en": "Open"},
    "holds": {"fr": "Conservation pour une procédure", "en": "Holds for a procedure"},
    "bulk_hold": {"fr": "Conserver la sélection pour une procédure (un incident)",
                  "en": "Put the selection on hold for a procedure (one incident)"},
    "bulk_hold_help": {"fr": "Tous les enregistrements cochés, ou aucun : chaque mise sous conservation est "
                             "tracée au journal.",
                       "en": "All the ticked recordings, or none: each hold is written to the journal."},
    "none_selected": {"fr": "Cochez au moins un enregistrement.", "en": "Tick at least one recording."},
    "procedure": {"fr": "Type de procédure", "en": "Procedure"},
    "procedure.judicial": {"fr": "judiciaire", "en": "judicial"},
    "procedure.administrative": {"fr": "administrative", "en": "administrative"},
    "procedure.disciplinary": {"fr": "disciplinaire", "en": "disciplinary"},
    "procedure.training": {"fr": "formation (images anonymisées)", "en": "training (anonymised)"},
    "reference": {"fr": "Référence de la procédure", "en": "Procedure reference"},
    "place_hold": {"fr": "Placer sous conservation", "en": "Place on hold"},
    "lift_hold": {"fr": "Lever la conservation", "en": "Lift the hold"},
    "lift_reason": {"fr": "Motif de la levée", "en": "Reason for lifting"},
    "lift_help": {"fr": "Lever la conservation rend l'enregistrement à sa règle de conservation : "
                        "s'il a dépassé sa date, il sera supprimé au prochain passage.",
                  "en": "Lifting hands the recording back to its retention rule: past its date, it is "
                        "deleted by the next sweep."},
    "no_hold": {"fr": "Aucune conservation en cours : la règle de conservation s'applique.",
                "en": "No hold: the retention rule applies."},
    "hold_active": {"fr": "Conservé", "en": "On hold"},
    "hold_lifted": {"fr": "Levée le", "en": "Lifted on"},
    "placed_on": {"fr": "placée le", "en": "placed on"},
    "holds_placed": {"fr": "{n} enregistrement(s) placé(s) sous conservation.", "en": "{n} recording(s) put on hold."},
    "hold_placed": {"fr": "Placé sous conservation.", "en": "Placed on hold."},
    "hold_lifted_done": {"fr": "Conservation levée : la règle de conservation s'applique de nouveau.",
                         "en": "Hold lifted: the retention rule applies again."},
    "tags_help": {"fr": "Un clic ajoute ou retire une catégorie (tracé au journal).",
                  "en": "One click adds or removes a category (written to the journal)."},
    "add_category": {"fr": "Autre catégorie", "en": "Other category"},
    "add": {"fr": "Ajouter", "en": "Add"},
    "saved": {"fr": "Enregistré.", "en": "Saved."},
    "failed": {"fr": "Échec", "en": "Failed"},
    "integrity_receipt": {"fr": "Vérifiée à la réception (signature de la caméra, chaîne et empreinte de chaque "
                                "segment)", "en": "Verified on receipt (camera signature, chain and hash of "
                                                  "each segment)"},
    "signature": {"fr": "Signature de la caméra", "en": "Camera signature"},
    "signature_ok": {"fr": "valide", "en": "valid"},
    "signature_bad": {"fr": "INVALIDE", "en": "INVALID"},
    "chain": {"fr": "Chaîne des segments", "en": "Segment chain"},
    "chain_ok": {"fr": "intègre", "en": "intact"},
    "chain_bad": {"fr": "ROMPUE", "en": "BROKEN"},
    "checked_at": {"fr": "contrôlé le", "en": "checked on"},
    "full_check": {"fr": "Relecture de la copie stockée", "en": "Re-read of the stored copy"},
    "full_check_none": {"fr": "aucune relecture enregistrée pour cet enregistrement (le contrôle périodique "
                              "n'a signalé aucune anomalie)",
                        "en": "no re-read recorded for this recording (the periodic scrub reported no problem)"},
    "full_check_ok": {"fr": "conforme", "en": "intact"},
    "full_check_bad": {"fr": "ANOMALIE", "en": "PROBLEM"},
    "verify_now": {"fr": "Relire et recontrôler maintenant", "en": "Re-read and check now"},
    # Segments lost at the camera (damaged there before hand-over): a stated gap, not corruption.
    "integrity_lost": {"fr": "Intègre, sauf les segments {indexes} perdus à la caméra (déclarés par la caméra, "
                             "nommés dans le reçu signé du coffre)",
                       "en": "Intact except lost segments {indexes} declared by the camera (named in the vault's "
                             "signed receipt)"},
    "integrity_undeclared": {"fr": "ANOMALIE : segments {indexes} absents du coffre sans que le reçu signé les "
                                   "déclare perdus",
                             "en": "PROBLEM: segments {indexes} are not in the vault and the signed receipt does not "
                                   "declare them lost"},
    "lost_title": {"fr": "Segments perdus à la caméra", "en": "Segments lost at the camera"},
    "lost_help": {"fr": "Endommagés sur la caméra avant le transfert, ces segments ne sont jamais parvenus au "
                        "coffre : la lecture les saute. Leurs empreintes signées par la caméra restent dans la "
                        "chaîne ; les autres segments sont intacts et vérifiés.",
                  "en": "Damaged on the camera before hand-over, these segments never reached the vault: playback "
                        "skips them. Their camera-signed hashes stay in the chain; the other segments are intact "
                        "and verified."},
    "lost_segment": {"fr": "Segment {index} perdu à la caméra", "en": "Segment {index} lost at the camera"},
    "lost_skipped": {"fr": "Segment {index} perdu à la caméra ({range}) : lecture reprise au segment suivant.",
                     "en": "Segment {index} lost at the camera ({range}): playback goes on with the next segment."},
    "full_check_lost": {"fr": "segments perdus à la caméra, non relus", "en": "segments lost at the camera, not re-read"},
    "track": {"fr": "Trajet GPS", "en": "GPS track"},
    "no_track": {"fr": "Pas de position GPS dans cet enregistrement.", "en": "No GPS position in this recording."},
    "track_help": {"fr": "Le repère suit la vidéo ; cliquez sur le trajet pour y aller dans la vidéo.",
                   "en": "The marker follows the video; click the track to seek the video there."},
    "video_time": {"fr": "Heure de l'image", "en": "Time of the picture"},
    "playback": {"fr": "Lecture", "en": "Playback"},
    "extract": {"fr": "Extraire", "en": "Extract"},
    "extract_title": {"fr": "Extraction pour une procédure", "en": "Extraction for a procedure"},
    "recipient_name": {"fr": "Destinataire (nom, service)", "en": "Recipient (name, unit)"},
    "recipient_kind": {"fr": "Qualité du destinataire", "en": "Recipient's capacity"},
    "recipient.judicial_police": {"fr": "officier ou agent de police judiciaire",
                                  "en": "judicial police officer or agent"},
    "recipient.state_inspection": {"fr": "service d'inspection de l'État", "en": "State inspection service"},
    "recipient.disciplinary_authority": {"fr": "autorité disciplinaire", "en": "disciplinary authority"},
    "recipient.trainer": {"fr": "formateur (images anonymisées)", "en": "trainer (anonymised)"},
    "trim": {"fr": "Seulement un extrait", "en": "Only an excerpt"},
    "trim_start": {"fr": "Début (s depuis le début)", "en": "Start (s from the beginning)"},
    "trim_end": {"fr": "Fin (s depuis le début)", "en": "End (s from the beginning)"},
    "use_current": {"fr": "Prendre l'instant de la vidéo", "en": "Use the video's time"},
    "extract_done": {"fr": "Paquet d'extraction créé :", "en": "Extraction package created:"},
    "download": {"fr": "Télécharger", "en": "Download"},
    "network_error": {"fr": "Le serveur ne répond pas : vérifiez la connexion et réessayez.",
                      "en": "The server does not answer: check the connection and try again."},
    "axis_provenance": {"fr": "Provenance", "en": "Provenance"},
    "axis_proof_ok": {"fr": "reçu par le système Axis Body Worn ; caméra sans signature : la preuve d'intégrité part "
                            "des empreintes SHA-256 prises par le coffre à l'arrivée (reçu signé)",
                      "en": "received through the Axis Body Worn system; the camera signs nothing: the integrity proof "
                            "starts at the SHA-256 hashes the vault took on arrival (signed receipt)"},
    "axis_proof_bad": {"fr": "reçu par le système Axis Body Worn : le relevé des empreintes à l'arrivée ne correspond "
                             "plus (altéré)",
                       "en": "received through the Axis Body Worn system: the record of hashes on arrival no longer "
                             "matches (altered)"},
    "category.violence": {"fr": "violences", "en": "violence"},
    "category.outrage": {"fr": "outrage", "en": "insulting an officer"},
    "category.arrest": {"fr": "interpellation", "en": "arrest"},
    "category.refusal_to_comply": {"fr": "refus d'obtempérer", "en": "refusal to comply"},
    "category.road_accident": {"fr": "accident de la route", "en": "road accident"},
    "category.public_disorder": {"fr": "trouble à l'ordre public", "en": "public disorder"},
    "category.rescue": {"fr": "secours à personne", "en": "rescue"},
    "category.complaint_filed": {"fr": "plainte déposée", "en": "complaint filed"},
    "category.training": {"fr": "formation", "en": "training"},
}


def lang_of(request: Request) -> str:
    asked = request.query_params.get("lang")  # ?lang=en: a link or a test picks the language
    if asked in LANGS:
        return asked
    chosen = request.cookies.get("lang")
    if chosen in LANGS:
        return chosen
    accept = request.headers.get("accept-language", "")
    return "en" if accept.lower().startswith("en") else "fr"


def translator(lang: str, own: dict[str, dict[str, str]] | None = None):  # noqa: ANN201
    """t(key): the text in `lang`, French when missing; a page's `own` texts come before the common ones."""
    def t(key: str, default: str | None = None) -> str:
        entry = (own or {}).get(key) or TEXTS.get(key)
        if entry is None:
            return key if default is None else default
        return entry.get(lang, entry["fr"])
    return t
