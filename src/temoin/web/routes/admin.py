"""Administration within a tenant: users, camera enrolment codes, cameras. No content here."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin.evidence.canonical import b64d, b64e
from temoin.identity import devices, grants, lifecycle, service
from temoin.identity.models import Device, Tenant, User
from temoin.identity.service import actor_of
from temoin.law.access import Permission, Role
from temoin.platform import Platform
from temoin.web.deps import Principal, get_db, get_platform, require

router = APIRouter(prefix="/api/v1/admin", tags=["administration"])
devices_router = APIRouter(prefix="/api/v1/devices", tags=["cameras"])


class UserIn(BaseModel):
    username: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]{1,63}$")
    display_name: str = Field(min_length=1, max_length=200)
    role: Role
    agent_number: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    communes: list[str] | None = Field(
        default=None, max_length=500, description="EPCI: INSEE codes of the communes the user is limited to"
    )


class UserOut(BaseModel):
    username: str
    display_name: str
    role: str
    agent_number: str | None
    active: bool
    must_change_password: bool = False


class DeactivateIn(BaseModel):
    reason: str = Field(min_length=3, max_length=1000)


class NewUserOut(UserOut):
    password: str = Field(description="shown once: hand it to the user, who changes it")
    totp_uri: str = Field(description="shown once: the user scans it into an authenticator app")


class DeviceOut(BaseModel):
    id: str
    serial: str
    label: str
    status: str
    enrolled_at: datetime


class CodeIn(BaseModel):
    label: str = Field(min_length=1, max_length=200)


class EnrolIn(BaseModel):
    code: str = Field(max_length=32)
    serial: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
    public_key: str = Field(description="base64 raw Ed25519 public key (32 bytes)")
    proof: str = Field(description='base64 signature of "temoin-enrol\\n<code>\\n<serial>"')


class EnrolOut(BaseModel):
    device_id: str
    tenant: str
    platform_public_key: str


def _user_out(u: User) -> dict:
    return {
        "username": u.username,
        "display_name": u.display_name,
        "role": u.role,
        "agent_number": u.agent_number,
        "active": u.active,
        "must_change_password": u.must_change_password,
    }


@router.get("/users", response_model=list[UserOut], summary="Users of your tenant")
def list_users(who: Principal = require(Permission.ADMIN_USERS), db: Session = Depends(get_db)) -> list[UserOut]:
    return [
        UserOut(**_user_out(u))
        for u in db.scalars(select(User).where(User.tenant_id == who.tenant.id).order_by(User.username))
    ]


@router.post(
    "/users",
    response_model=NewUserOut,
    status_code=201,
    summary="Create a user, in a role you may grant (technical administrator: technical accounts; mayor: the others)",
)
def create_user(
    body: UserIn,
    who: Principal = require(Permission.ADMIN_USERS),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> NewUserOut:
    grants.check_may_manage(who.role, who.tenant, body.role, "grant")
    new = service.create_user(
        p,
        db,
        who.tenant,
        username=body.username,
        display_name=body.display_name,
        role=body.role,
        agent_number=body.agent_number,
        by=actor_of(who.user),
        communes=body.communes,
    )
    new.user.must_change_password = True  # the one-time password was seen by whoever created the account
    db.commit()
    return NewUserOut(**_user_out(new.user), password=new.password, totp_uri=new.totp_uri)


def _managed(who: Principal, db: Session, username: str) -> User:
    return lifecycle.user_of_tenant(db, who.tenant, username)


def _lifecycle_call(call):
    return call()


@router.post(
    "/users/{username}/reset",
    response_model=NewUserOut,
    summary="New one-time password and TOTP secret (shown once); sessions and tokens end at once",
)
def reset_user(
    username: str,
    who: Principal = require(Permission.ADMIN_USERS),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> NewUserOut:
    target = _managed(who, db, username)
    new = _lifecycle_call(lambda: lifecycle.reset_credentials(p, db, who.user, who.tenant, target))
    return NewUserOut(**_user_out(new.user), password=new.password, totp_uri=new.totp_uri)


@router.post(
    "/users/{username}/deactivate",
    response_model=UserOut,
    summary="Deactivate an account: its sessions and API tokens end at once",
)
def deactivate_user(
    username: str,
    body: DeactivateIn,
    who: Principal = require(Permission.ADMIN_USERS),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> UserOut:
    target = _managed(who, db, username)
    _lifecycle_call(lambda: lifecycle.set_active(p, db, who.user, who.tenant, target, False, body.reason))
    return UserOut(**_user_out(target))


@router.post("/users/{username}/reactivate", response_model=UserOut, summary="Reactivate an account")
def reactivate_user(
    username: str,
    who: Principal = require(Permission.ADMIN_USERS),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> UserOut:
    target = _managed(who, db, username)
    _lifecycle_call(lambda: lifecycle.set_active(p, db, who.user, who.tenant, target, True))
    return UserOut(**_user_out(target))


@router.get("/devices", response_model=list[DeviceOut], summary="Cameras of your tenant")
def list_devices(who: Principal = require(Permission.ADMIN_DEVICES), db: Session = Depends(get_db)) -> list[DeviceOut]:
    rows = db.scalars(select(Device).where(Device.tenant_id == who.tenant.id).order_by(Device.serial))
    return [
        DeviceOut(id=d.id, serial=d.serial, label=d.label, status=d.status, enrolled_at=d.enrolled_at) for d in rows
    ]


@router.post("/devices/codes", status_code=201, summary="A one-time enrolment code for a new camera")
def enrolment_code(
    body: CodeIn,
    who: Principal = require(Permission.ADMIN_DEVICES),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> dict:
    code = devices.create_enrolment_code(p, db, who.tenant, label=body.label, by=actor_of(who.user))
    return {"code": code, "valid_hours": 24}


@router.post("/devices/{device_id}/revoke", response_model=DeviceOut, summary="Revoke a camera")
def revoke(
    device_id: str,
    who: Principal = require(Permission.ADMIN_DEVICES),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> DeviceOut:
    device = db.get(Device, device_id)
    if device is None or device.tenant_id != who.tenant.id:
        raise HTTPException(404, f"no camera {device_id} in your tenant")
    devices.revoke(p, db, device, actor_of(who.user))
    return DeviceOut(
        id=device.id, serial=device.serial, label=device.label, status=device.status, enrolled_at=device.enrolled_at
    )


@devices_router.post(
    "/enrol", response_model=EnrolOut, status_code=201, summary="A camera registers its public key with a one-time code"
)
def enrol(body: EnrolIn, db: Session = Depends(get_db), p: Platform = Depends(get_platform)) -> EnrolOut:
    try:
        public_key = b64d(body.public_key)
    except ValueError as exc:  # the body itself, before any domain check: not base64
        raise HTTPException(
            400, f"public_key is not base64 ({exc}): send the camera's public key, base64-encoded"
        ) from None
    device = devices.enrol(p, db, code=body.code, serial=body.serial, public_key=public_key, proof=body.proof)
    return EnrolOut(
        device_id=device.id,
        tenant=db.get_one(Tenant, device.tenant_id).slug,
        platform_public_key=b64e(p.keyring.public_key),
    )
