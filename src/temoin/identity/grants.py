"""Duties apart: who may grant which role, and so create, reset or deactivate whose account.

The technical administrator keeps the platform running and never sees content: they manage technical accounts
only. The roles that see content or personal data (and the DPO and auditor, who oversee the others) are granted
by the mayor, the controller of the processing; a tenant may let its chief grant the field roles too
(tenant setting `chief_grants_field_roles`). The first mayor of a tenant is created on the server
(`temoin admin user create`), the bootstrap of this chain."""

from __future__ import annotations

from temoin.identity.errors import NotYours
from temoin.identity.tenant_settings import settings_of
from temoin.law.access import Role

TECHNICAL_ROLES = frozenset({Role.TECH_ADMIN})
FIELD_ROLES = frozenset({Role.DESIGNATED_AGENT, Role.AGENT, Role.CSU_OPERATOR})
MAYORS_ROLES = frozenset(Role) - TECHNICAL_ROLES


def grantable_roles(role: Role, tenant: object) -> frozenset[Role]:
    if role == Role.TECH_ADMIN:
        return TECHNICAL_ROLES
    if role == Role.MAYOR:
        return MAYORS_ROLES
    if role == Role.CHIEF and settings_of(tenant).chief_grants_field_roles:
        return FIELD_ROLES
    return frozenset()


def who_grants(role: Role) -> str:
    if role in TECHNICAL_ROLES:
        return "the technical administrator"
    if role in FIELD_ROLES:
        return "the mayor (or the chief, where the commune lets the chief grant field roles)"
    return "the mayor"


def check_may_manage(actor_role: Role, tenant: object, target_role: Role, what: str = "grant") -> None:
    """Raise NotYours unless `actor_role` may grant (and so manage accounts of) `target_role`."""
    if target_role not in grantable_roles(actor_role, tenant):
        raise NotYours(
            f"your role ({actor_role.value}) may not {what} the role {target_role.value}: duties apart, "
            f"it is granted by {who_grants(target_role)}"
        )
