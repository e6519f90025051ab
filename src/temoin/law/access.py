"""Who may do what (CSI R241-12 need-to-know), and the motives that must accompany access.

This module is the single source of truth for entitlements: the web layer asks it, the
route-by-role test enumerates it. Anything not granted here is denied.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, field_validator


class Role(StrEnum):
    MAYOR = "mayor"  # maire / président d'EPCI: controller of the processing
    CHIEF = "chief"  # responsable du service de police municipale
    DESIGNATED_AGENT = "designated_agent"  # agent individuellement désigné et habilité
    AGENT = "agent"  # porteur de caméra
    CSU_OPERATOR = "csu_operator"  # opérateur du centre de supervision urbaine
    DPO = "dpo"  # délégué à la protection des données / droits des personnes
    TECH_ADMIN = "tech_admin"  # administrateur technique: never sees content
    AUDITOR = "auditor"  # reads and verifies the journal


class Permission(StrEnum):
    RECORDINGS_LIST = "recordings.list"  # metadata only
    RECORDINGS_VIEW = "recordings.view"  # content: playback, download
    RECORDINGS_TAG = "recordings.tag"
    RECORDINGS_HOLD = "recordings.hold"
    JOURNAL_READ = "journal.read"
    ADMIN_USERS = "admin.users"  # accounts, within the roles one may grant (identity.grants)
    ADMIN_DEVICES = "admin.devices"
    DEVICES_ASSIGN = "devices.assign"  # check cameras out to agents for a shift, and in
    VAULT_OPERATE = "vault.operate"  # retention sweep, scrub: no content
    LIVE_VIEW = "live.view"  # live feeds of cameras and CCTV, alerts, acknowledgement
    LIVE_DISPATCH = "live.dispatch"  # send reinforcements to an agent's position
    PTZ_CONTROL = "ptz.control"  # aim the PTZ CCTV cameras
    CCTV_MANAGE = "cctv.manage"  # the registry of fixed CCTV cameras (no content)
    RECORDINGS_EXTRACT = "recordings.extract"  # packages for a procedure, for a named recipient
    RECORDINGS_REDACT = "recordings.redact"  # review faces and produce redacted copies
    RIGHTS_MANAGE = "rights.manage"  # citizens' requests register: access, erasure, limitation
    REPORTS_READ = "reports.read"  # annual report, public notice, monthly statistics (no content)
    PAPERWORK_READ = "paperwork.read"  # the controller's record of processing and impact assessment (no content)


GRANTS: dict[Role, frozenset[Permission]] = {
    Role.MAYOR: frozenset(
        {
            Permission.RECORDINGS_LIST,
            Permission.RECORDINGS_VIEW,
            Permission.RECORDINGS_TAG,
            Permission.RECORDINGS_HOLD,
            Permission.JOURNAL_READ,
            Permission.LIVE_VIEW,
            Permission.RECORDINGS_EXTRACT,
            Permission.RIGHTS_MANAGE,
            Permission.REPORTS_READ,
            Permission.PAPERWORK_READ,
            Permission.ADMIN_USERS,
        }
    ),
    Role.CHIEF: frozenset(
        {
            Permission.RECORDINGS_LIST,
            Permission.RECORDINGS_VIEW,
            Permission.RECORDINGS_TAG,
            Permission.RECORDINGS_HOLD,
            Permission.LIVE_VIEW,
            Permission.DEVICES_ASSIGN,
            Permission.LIVE_DISPATCH,
            Permission.PTZ_CONTROL,
            Permission.CCTV_MANAGE,
            Permission.RECORDINGS_EXTRACT,
            Permission.RECORDINGS_REDACT,
            Permission.RIGHTS_MANAGE,
            Permission.REPORTS_READ,
            Permission.ADMIN_USERS,
        }
    ),
    Role.DESIGNATED_AGENT: frozenset(
        {
            Permission.RECORDINGS_LIST,
            Permission.RECORDINGS_VIEW,
            Permission.RECORDINGS_TAG,
            Permission.RECORDINGS_REDACT,
        }
    ),
    # The wearing agent: own recordings only, and only with an R241-11 motive (see below).
    Role.AGENT: frozenset({Permission.RECORDINGS_LIST, Permission.RECORDINGS_VIEW}),
    Role.CSU_OPERATOR: frozenset({Permission.LIVE_VIEW, Permission.LIVE_DISPATCH, Permission.PTZ_CONTROL}),
    Role.DPO: frozenset(
        {Permission.RECORDINGS_LIST, Permission.RIGHTS_MANAGE, Permission.REPORTS_READ, Permission.PAPERWORK_READ}
    ),
    Role.TECH_ADMIN: frozenset(
        {
            Permission.ADMIN_USERS,
            Permission.ADMIN_DEVICES,
            Permission.VAULT_OPERATE,
            Permission.DEVICES_ASSIGN,
            Permission.CCTV_MANAGE,
        }
    ),
    Role.AUDITOR: frozenset({Permission.JOURNAL_READ}),
}

# Roles that see only what they themselves recorded.
OWN_RECORDINGS_ONLY = frozenset({Role.AGENT})


def allows(role: Role, permission: Permission) -> bool:
    return permission in GRANTS.get(role, frozenset())


def can_see_content(role: Role) -> bool:
    return allows(role, Permission.RECORDINGS_VIEW) or allows(role, Permission.LIVE_VIEW)


class MotiveCode(StrEnum):
    # R241-12: the entitled staff.
    JUDICIAL_PROCEDURE = "judicial_procedure"
    ADMINISTRATIVE_PROCEDURE = "administrative_procedure"
    DISCIPLINARY_PROCEDURE = "disciplinary_procedure"
    INCIDENT_REVIEW = "incident_review"
    COMPLAINT = "complaint"
    RIGHTS_REQUEST = "rights_request"
    TRAINING = "training"
    # R241-11: the four reasons a wearing agent may see their own recording.
    IDENTIFY_OFFENDERS = "identify_offenders"
    PREVENT_PUBLIC_ORDER_BREACH = "prevent_public_order_breach"
    RESCUE_PERSONS = "rescue_persons"
    REPORT_FACTS = "report_facts"


AGENT_MOTIVES = frozenset(
    {
        MotiveCode.IDENTIFY_OFFENDERS,
        MotiveCode.PREVENT_PUBLIC_ORDER_BREACH,
        MotiveCode.RESCUE_PERSONS,
        MotiveCode.REPORT_FACTS,
    }
)
STAFF_MOTIVES = frozenset(MotiveCode) - AGENT_MOTIVES
# R241-13: recordings used for training are anonymised, image and sound. Under these motives the originals are
# never shown; only an anonymised rendition may be (the training extraction makes one).
REDACTED_ONLY_MOTIVES = frozenset({MotiveCode.TRAINING})


def motives_for(role: Role) -> frozenset[MotiveCode]:
    if role in OWN_RECORDINGS_ONLY:
        return AGENT_MOTIVES
    if allows(role, Permission.RECORDINGS_VIEW):
        return STAFF_MOTIVES | AGENT_MOTIVES
    return frozenset()


class Motive(BaseModel):
    """A motive from the list, plus free text that says what exactly (both required)."""

    code: MotiveCode
    text: str = Field(min_length=3, max_length=1000)

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        value = value.strip()
        if len(value) < 3:
            raise ValueError("the motive needs a few words saying what the access is for")
        return value


def place_motives_for(role: Role) -> frozenset[MotiveCode]:
    """Motives under which a role may see where recordings were made (GPS tracks, search by area): the place is
    recorded data (R241-10), so the same motives as a consultation; a rights officer who does not view content
    may still look for a person's recordings by place, for their request."""
    motives = motives_for(role) - REDACTED_ONLY_MOTIVES
    if allows(role, Permission.RIGHTS_MANAGE):
        motives |= {MotiveCode.RIGHTS_REQUEST}
    return motives
