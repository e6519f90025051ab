"""Every rule of the domain brief (shared/domain.md), numbered, with its legal reference.

This list is the index of docs/compliance.md: tests/test_compliance_map.py checks that each rule has a row
there, that each row names code and tests that exist (or says "not enforced:" and why), and that the rule
index in the document is the one printed by `python -m temoin.law.rules`.
Articles are from the Code de la sécurité intérieure (CSI) unless another text is named. "F" rules are the
field's complaints that the brief turns into requirements.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    id: str
    reference: str
    summary: str


RULES: tuple[Rule, ...] = (
    # The people and the tenancy
    Rule("R01", "loi 78-17 art. 87 s.; CSI L241-2", "Each commune's data is kept apart from every other commune's"),
    Rule(
        "R02",
        "CSI L241-2 (EPCI)",
        "An EPCI runs one CSU and one storage for several communes, each commune's data kept apart inside it",
    ),
    # Recording (the camera)
    Rule("R03", "CSI L241-2", "Recording is never permanent: it starts when an incident happens or is likely"),
    Rule(
        "R04",
        "CSI L241-2, R241-10",
        "What started the recording (incident, request of the filmed person, "
        "flagrant offence, automatic trigger) is kept with the footage",
    ),
    Rule("R05", "CSI R511-28", "A Taser-type weapon is recorded from the moment it is armed (automatic trigger)"),
    Rule(
        "R06",
        "CSI L241-2",
        "The filmed people are told that recording starts unless circumstances prevent it; "
        "the recording keeps whether they were told, and why not",
    ),
    Rule("R07", "CSI L241-2 (seed 003)", "A visible signal shows recording: a steady red light and a regular beep"),
    Rule(
        "R08",
        "CSI R241-10",
        "Recorded data: images, sound, day and time ranges, identity of the wearing agent, place of collection",
    ),
    Rule("R09", "CSI R241-10", "If the camera cannot store the agent or the place, the service proves them otherwise"),
    Rule("R10", "CSI R241-10 (CNIL sanction)", "Timestamps are right (the CNIL sanctioned wrong ones)"),
    Rule("R11", "CSI R241-10 (CNIL sanction)", "The agent identifier burned into the footage is the wearer's"),
    Rule("R12", "not in the texts (unsure)", "Pre-event buffer configurable from 0 to 120 s, default 30 s, video only"),
    Rule("R13", "CSI R241-9", "Cameras are issued by the service only"),
    Rule("R14", "CSI R241-8", "Cameras in the number authorised by the prefect"),
    Rule("R15", "CSI R241-8 II", "Cameras used only on the territory of the authorised communes"),
    Rule(
        "R16",
        "CSI L241-2, R241-9",
        "Purposes: prevent incidents, establish offences and collect evidence, train agents",
    ),
    Rule("R17", "CSI R241-13", "Recordings used for training are anonymised, image and sound"),
    # Live transmission
    Rule(
        "R18",
        "CSI L241-2, R241-11",
        "Live transmission only when the safety of agents, people or property is threatened",
    ),
    Rule(
        "R19",
        "CSI L241-2",
        "Live recipients: the service's command post (CSU) and the staff involved in the intervention",
    ),
    Rule(
        "R20",
        "La Grande-Motte pilot (seeds 000, 001)",
        "A dedicated button sends video and sound to the CSU at "
        "once; the CSU confirms reception and may send "
        "reinforcements",
    ),
    Rule(
        "R21",
        "La Grande-Motte pilot (seeds 000, 001)",
        "The agent is geolocated on the CSU's map and the fixed CCTV cameras around come up on its screens",
    ),
    Rule("R22", "La Grande-Motte pilot (announced)", "The PTZ cameras are oriented toward the incident"),
    Rule(
        "R23",
        "CSI R241-4 (national police; unsure for municipal)",
        "Live feeds are not recorded by the server unless a setting allows it, off by default",
    ),
    # Storage, retention, deletion
    Rule(
        "R24",
        "CSI R241-11 (CNIL sanction)",
        "Recordings go to secure storage as soon as the agent is back at the service; they do not stay on the camera",
    ),
    Rule(
        "R25", "CSI L241-2 (Conseil constitutionnel 2021-817 DC)", "Integrity of recordings guaranteed until deletion"
    ),
    Rule(
        "R26",
        "CSI L241-2 (Conseil constitutionnel 2021-817 DC)",
        "Traceability of consultations guaranteed until deletion",
    ),
    Rule(
        "R27",
        "CSI L241-2, R241-13",
        "Retention one month from the day of recording, then automatic deletion; "
        "the period is a property of a legal profile",
    ),
    Rule(
        "R28",
        "CSI L241-2, R241-13; loi 78-17 art. 106",
        "Deletion deletes every image made from the recording, not only the original",
    ),
    Rule("R29", "CSI R241-13", "Live backups are kept no longer than the recordings; no copy outlives a crash"),
    Rule(
        "R30",
        "CSI L241-2, R241-13",
        "A recording used in a judicial, administrative or disciplinary procedure is "
        "kept under that procedure's rules (a hold)",
    ),
    Rule(
        "R31",
        "seed 002 (former rules)",
        "Each extraction is recorded twice: by the police and on the storage device itself",
    ),
    # Access
    Rule(
        "R32",
        "CSI R241-12",
        "Access on need-to-know: mayor or EPCI president, chief of the service, individually designated agents",
    ),
    Rule("R33", "CSI R241-11", "The wearing agent sees their own recordings only, with one of the four motives"),
    Rule(
        "R34",
        "CSI R241-12",
        "Recipients of extractions: judicial police, State inspection services, the disciplinary authority, trainers",
    ),
    Rule("R35", "CSI R241-12, R241-14", "Every consultation requires a motive"),
    # The journal
    Rule(
        "R36",
        "CSI R241-14; loi 78-17 art. 101",
        "Every collection, modification, consultation, communication and erasure is logged",
    ),
    Rule(
        "R37",
        "CSI R241-14; loi 78-17 art. 101",
        "Each entry says who (identifier, name, function), date, time, motive, recipients, recordings and camera",
    ),
    Rule("R38", "CSI R241-14", "Every consultation and communication names the authenticated person who did it"),
    Rule("R39", "CSI R241-14", "The journal is kept three years"),
    # Rights of persons
    Rule(
        "R40",
        "loi 78-17 arts. 104 to 106; CSI R241-15",
        "Access, rectification, erasure and limitation are asked to the mayor directly",
    ),
    Rule(
        "R41",
        "loi 78-17 arts. 107, 108; CSI R241-15",
        "Rights may be restricted so as not to hinder a procedure "
        "or for public security; the person then goes through the "
        "CNIL",
    ),
    Rule("R42", "RGPD art. 12 (unsure)", "About two months to answer before the person may refer to the CNIL"),
    Rule("R43", "loi 78-17 art. 105", "Showing a person their images hides the other people in them (faces, voices)"),
    # Reports and paperwork
    Rule(
        "R44",
        "CSI R241-17",
        "Annual report to the prefect: cameras, authorised agents, procedures that needed a "
        "consultation or extraction, effect on relations with the public",
    ),
    Rule(
        "R45",
        "CSI R241-15",
        "Information of the public: texts, cameras, how they work, controller, purposes, "
        "retention, rights, complaint to the CNIL",
    ),
    Rule("R46", "loi 78-17 art. 100; RGPD art. 30", "Record of processing activities"),
    Rule("R47", "loi 78-17 art. 90; RGPD art. 35", "Data protection impact assessment (AIPD)"),
    # What the field complains about
    Rule(
        "F01",
        "field complaint",
        "Cameras not switched on or footage interrupted when it mattered: every gap is provable",
    ),
    Rule("F02", "field complaint", "Nobody tags the videos: footage is found later without relying on tags"),
    Rule("F03", "field complaint", "Batteries shorter than the shift"),
    Rule("F04", "field complaint", "Slow or impossible uploads: footage reaches the vault without weeks of delay"),
    Rule("F05", "field complaint", "Redaction by hand takes 5 to 10 hours per hour of video"),
    Rule("F06", "field complaint", "Live streams late or dropped over 4G"),
    Rule("F07", "field complaint", '"The video was deleted": every deletion and access is provable'),
)

BY_ID: dict[str, Rule] = {r.id: r for r in RULES}


def index_markdown() -> str:
    """The rule index as it stands in docs/compliance.md."""
    lines = ["| Id | Reference | Rule |", "| --- | --- | --- |"]
    lines += [f"| {r.id} | {r.reference} | {r.summary} |" for r in RULES]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(index_markdown(), end="")
