"""The registry of fixed CCTV cameras: import from CSV or GeoJSON, all or nothing, upsert by id, journaled.

CSV: UTF-8 (a BOM is accepted), comma-separated (a semicolon-separated file, as French spreadsheets export, is
recognised by its header), one camera per row, with this header (the order is free; the optional columns may be
left out):

    id,name,lat,lon,height_m,heading_deg,fov_deg,range_m,ptz,max_zoom,stream_url,onvif_url,onvif_username,onvif_password

GeoJSON: a FeatureCollection of Point features ([lon, lat]) whose properties carry the same names (lat and lon come
from the geometry). A feature may give "stream_path" (e.g. "cctv-01") instead of "stream_url": the caller then
passes the stream server's base URL (the demo does, at run time).

Required: id, name, lat, lon, heading_deg, fov_deg, stream_url. Defaults: height_m 6, range_m 150, ptz false,
max_zoom 20. ptz reads true/false, yes/no, oui/non, 1/0.

Credentials: an empty onvif_password leaves the stored password as it is (a list exported without secrets can be
imported again) as long as onvif_url and onvif_username stay the same: a stored password is bound to the address
it was given for, and a row that changes either must give the password again (else the next aim would send a
digest of it to the new address). An empty onvif_username removes both. The password is sealed with AES-256-GCM
under a key derived from the platform's master key, bound to its tenant and camera; it is never logged, journaled
or returned.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from temoin import errors
from temoin.context import Context
from temoin.db import utcnow
from temoin.identity.models import Tenant
from temoin.journal.entry import Action, Actor, EntryDraft
from temoin.supervision.models import CctvCamera, CctvRegistryVersion

COLUMNS = (
    "id",
    "name",
    "lat",
    "lon",
    "height_m",
    "heading_deg",
    "fov_deg",
    "range_m",
    "ptz",
    "max_zoom",
    "stream_url",
    "onvif_url",
    "onvif_username",
    "onvif_password",
)
REQUIRED = ("id", "name", "lat", "lon", "heading_deg", "fov_deg", "stream_url")
MAX_CAMERAS = 50_000  # per file: a metropolis has a few thousand
MAX_FILE_BYTES = 20 * 1024 * 1024
MAX_ERRORS_SHOWN = 20
_TRUE = {"true", "yes", "oui", "1", "y", "o", "vrai"}
_FALSE = {"false", "no", "non", "0", "n", "faux"}
_NUMBERS = {"lat", "lon", "height_m", "heading_deg", "fov_deg", "range_m", "max_zoom"}
_DECIMAL_COMMA = re.compile(r"^\s*-?\d+,\d+\s*$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")


class RegistryError(errors.InvalidInput, ValueError):
    """The file was refused; nothing was imported. `problems` names each row or feature and field."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or []
        shown = self.problems[:MAX_ERRORS_SHOWN]
        more = len(self.problems) - len(shown)
        text = message + ("".join(f"\n  - {p}" for p in shown)) + (f"\n  ... and {more} more" if more > 0 else "")
        super().__init__(text)

    @property
    def extra(self) -> dict[str, object]:
        return {"problems": self.problems}


class UnknownCamera(errors.NotFound, LookupError):
    pass


def _url(value: str, schemes: tuple[str, ...], field: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in schemes or not parts.hostname:
        raise ValueError(f"{field} must be a {' or '.join(s + '://' for s in schemes)} URL with a host")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError(f"{field} has a port that is not a number") from None
    return value


class CameraRow(BaseModel):
    """One camera of an imported file, validated."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=64)
    name: str = Field(min_length=1, max_length=200)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    height_m: float = Field(default=6.0, ge=0, le=500)
    heading_deg: float = Field(ge=0, le=360)
    fov_deg: float = Field(gt=0, le=360)
    range_m: float = Field(default=150.0, gt=0, le=5000)
    ptz: bool = False
    max_zoom: float = Field(default=20.0, ge=1, le=1000)
    stream_url: str = Field(min_length=1, max_length=500)
    onvif_url: str | None = Field(default=None, max_length=500)
    onvif_username: str | None = Field(default=None, max_length=128)
    onvif_password: str | None = Field(default=None, max_length=256, repr=False)

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _ID.match(value):
            raise ValueError("letters, digits, '.', '_' and '-' only, starting with a letter or digit")
        return value

    @field_validator("ptz", mode="before")
    @classmethod
    def _flag(cls, value: Any) -> Any:
        if isinstance(value, str):
            low = value.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE or low == "":
                return False
            raise ValueError("write true or false")
        return value

    @field_validator("stream_url")
    @classmethod
    def _stream(cls, value: str) -> str:
        return _url(value, ("rtsp", "rtsps", "http", "https"), "stream_url")

    @field_validator("onvif_url")
    @classmethod
    def _onvif(cls, value: str | None) -> str | None:
        return _url(value, ("http", "https"), "onvif_url") if value else None

    @field_validator("onvif_username", "onvif_password", mode="before")
    @classmethod
    def _blank_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _heading(self) -> CameraRow:
        self.heading_deg %= 360.0
        return self


def _clean(raw: dict[str, Any]) -> dict[str, Any]:
    # Empty cells mean "the default": drop them so that pydantic applies it (or says the field is required).
    return {k: v for k, v in raw.items() if not (v is None or (isinstance(v, str) and not v.strip()))}


def _problems(where: str, exc: ValidationError) -> list[str]:
    out = []
    for e in exc.errors():
        field = ".".join(str(x) for x in e["loc"]) or "(row)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "missing":
            msg = "is required"
        elif e["type"] == "extra_forbidden":
            msg = f"is not a known column (known: {', '.join(COLUMNS)})"
        shown = (
            ""
            if e["type"] in ("missing", "extra_forbidden") or field == "onvif_password"
            else f" (got {str(e.get('input'))[:60]!r})"
        )
        out.append(f"{where}, field {field}: {msg}{shown}")
    return out


def _validate(items: Iterable[tuple[str, dict[str, Any] | str]]) -> list[CameraRow]:
    """Validate every item (a raw row, or a problem already found in its structure), then all or nothing."""
    rows: list[CameraRow] = []
    problems: list[str] = []
    seen: dict[str, str] = {}
    for where, raw in items:
        if isinstance(raw, str):
            problems.append(f"{where}: {raw}")
            continue
        try:
            row = CameraRow.model_validate(_clean(raw))
        except ValidationError as exc:
            problems += _problems(where, exc)
            continue
        if row.id in seen:
            problems.append(f"{where}, field id: {row.id!r} already given at {seen[row.id]}")
            continue
        seen[row.id] = where
        rows.append(row)
        if len(rows) > MAX_CAMERAS:
            raise RegistryError(f"more than {MAX_CAMERAS} cameras in one file: split it")
    if problems:
        raise RegistryError(f"the file was refused, nothing was imported; fix {len(problems)} problem(s):", problems)
    if not rows:
        raise RegistryError("the file lists no camera")
    return rows


def parse_csv(text: str) -> list[CameraRow]:
    """Rows of a CSV registry file, validated (RegistryError names each bad row and field)."""
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    header = [h.strip() for h in (reader.fieldnames or [])]
    if not header:
        raise RegistryError("the file is empty: the first line must be the header " + ",".join(COLUMNS))
    unknown = [h for h in header if h not in COLUMNS]
    missing = [c for c in REQUIRED if c not in header]
    if unknown or missing:
        raise RegistryError(
            "the CSV header is wrong, nothing was imported:",
            (
                [f"header: unknown column {h!r}" for h in unknown]
                + [f"header: missing column {c!r}" for c in missing]
                + [f"the header is: {','.join(COLUMNS)}"]
            ),
        )
    reader.fieldnames = header

    def items() -> Iterable[tuple[str, dict[str, Any] | str]]:
        for n, raw in enumerate(reader, start=2):  # line 1 is the header
            if None in raw:
                yield f"line {n}", f"more cells than the header has columns ({len(header)})"
            elif any((v or "").strip() for v in raw.values()):
                if delimiter == ";":  # such files write decimals with a comma: 43,5561
                    raw = {
                        k: (v.replace(",", ".") if k in _NUMBERS and v and _DECIMAL_COMMA.match(v) else v)
                        for k, v in raw.items()
                    }
                yield f"line {n}", raw

    return _validate(items())


def parse_geojson(doc: dict[str, Any] | str, *, stream_base: str | None = None) -> list[CameraRow]:
    """Rows of a GeoJSON registry file (Point features), validated. A feature with "stream_path" instead of
    "stream_url" gets stream_base + "/" + stream_path (stream_base is required then)."""
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except json.JSONDecodeError as exc:
            raise RegistryError(f"not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg})") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection" or not isinstance(doc.get("features"), list):
        raise RegistryError('a GeoJSON registry is a {"type": "FeatureCollection", "features": [...]} of Points')

    def items() -> Iterable[tuple[str, dict[str, Any] | str]]:
        for n, feature in enumerate(doc["features"]):
            props = feature.get("properties") if isinstance(feature, dict) else None
            props = dict(props) if isinstance(props, dict) else {}
            where = f"feature {n}" + (f" ({props['id']})" if isinstance(props.get("id"), str) else "")
            geometry = feature.get("geometry") if isinstance(feature, dict) else None
            coords = geometry.get("coordinates") if isinstance(geometry, dict) else None
            if (
                not isinstance(geometry, dict)
                or geometry.get("type") != "Point"
                or not isinstance(coords, list)
                or len(coords) < 2
            ):
                yield where, "field geometry: a Point with [lon, lat] coordinates is required"
                continue
            props.pop("onvif", None)  # the demo's marker for a simulated ONVIF service (see demo/cctv)
            path = props.pop("stream_path", None)
            if path and not props.get("stream_url"):
                if not stream_base:
                    yield (
                        where,
                        (
                            "field stream_url: is required (a stream_path needs the stream server's base URL: "
                            "`temoin cctv import --stream-base rtsp://HOST:PORT`)"
                        ),
                    )
                    continue
                props["stream_url"] = stream_base.rstrip("/") + "/" + str(path).lstrip("/")
            props.pop("lat", None)
            props.pop("lon", None)
            if feature.get("id") is not None and "id" not in props:
                props["id"] = str(feature["id"])
            yield where, {**props, "lon": coords[0], "lat": coords[1]}

    return _validate(items())


def parse_file(name: str, data: bytes, *, stream_base: str | None = None) -> tuple[list[CameraRow], str]:
    """Rows of a registry file and its format ("csv" or "geojson"), chosen by its name."""
    if len(data) > MAX_FILE_BYTES:
        raise RegistryError(f"the file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RegistryError(f"the file is not UTF-8 text (byte {exc.start}): save it as UTF-8") from None
    if name.lower().endswith((".geojson", ".json")):
        return parse_geojson(text, stream_base=stream_base), "geojson"
    if name.lower().endswith((".csv", ".txt")):
        return parse_csv(text), "csv"
    raise RegistryError(f"{name}: give a .csv or a .geojson file")


# --- credentials ------------------------------------------------------------------------------------------


def _credentials_key(master_key: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"temoin-cctv-credentials-v1").derive(master_key)


def _aad(tenant_id: int, camera_id: str) -> bytes:
    return f"temoin-cctv-password\x00{tenant_id}\x00{camera_id}".encode()


def seal_password(master_key: bytes, tenant_id: int, camera_id: str, password: str) -> bytes:
    """The password sealed for one camera of one tenant (moved to another row, it does not open)."""
    nonce = os.urandom(12)
    return nonce + AESGCM(_credentials_key(master_key)).encrypt(nonce, password.encode(), _aad(tenant_id, camera_id))


def open_password(master_key: bytes, tenant_id: int, camera_id: str, sealed: bytes) -> str:
    try:
        return (
            AESGCM(_credentials_key(master_key)).decrypt(sealed[:12], sealed[12:], _aad(tenant_id, camera_id)).decode()
        )
    except InvalidTag:
        raise RegistryError(
            f"the stored ONVIF password of {camera_id} does not open with this master key: "
            "import the camera's credentials again"
        ) from None


def camera_password(p: Context, cam: CctvCamera) -> str | None:
    if cam.onvif_password_sealed is None:
        return None
    return open_password(p.keyring.master_key, cam.tenant_id, cam.id, cam.onvif_password_sealed)


# --- the registry -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImportResult:
    created: int
    updated: int
    ptz: int

    @property
    def total(self) -> int:
        return self.created + self.updated

    def as_dict(self) -> dict[str, int]:
        return {"created": self.created, "updated": self.updated, "total": self.total, "ptz": self.ptz}


def bump_version(db: Session, tenant_id: int) -> int:
    """Mark the tenant's registry as changed (same transaction as the change): spatial indexes rebuild."""
    row = db.get(CctvRegistryVersion, tenant_id, with_for_update=True)
    if row is None:
        row = CctvRegistryVersion(tenant_id=tenant_id, version=0)
        db.add(row)
    row.version += 1
    row.changed_at = utcnow()
    return row.version


def registry_version(db: Session, tenant_id: int) -> int:
    # Always a read (not the session's identity map): another transaction or process may have bumped it.
    version = db.scalar(select(CctvRegistryVersion.version).where(CctvRegistryVersion.tenant_id == tenant_id))
    return version or 0


def import_rows(
    p: Context, db: Session, tenant: Tenant, rows: list[CameraRow], *, actor: Actor, source: str
) -> ImportResult:
    """Upsert the cameras by id, in one transaction with the journal entry (committed here)."""
    existing = {c.id: c for c in db.scalars(select(CctvCamera).where(CctvCamera.tenant_id == tenant.id))}
    moved = [
        row.id
        for row in rows
        if (cam := existing.get(row.id)) is not None
        and cam.onvif_password_sealed is not None
        and row.onvif_username is not None
        and row.onvif_password is None
        and (row.onvif_url != cam.onvif_url or row.onvif_username != cam.onvif_username)
    ]
    if moved:
        raise RegistryError(
            "the file was refused, nothing was imported: a stored ONVIF password is kept only for "
            "the address and user it was given for; give onvif_password again for each camera "
            "whose onvif_url or onvif_username changes:",
            [f"camera {cid}: onvif_url or onvif_username changed, onvif_password is empty" for cid in moved],
        )
    created = updated = 0
    now = utcnow()
    for row in rows:
        cam = existing.get(row.id)
        if cam is None:
            cam = CctvCamera(tenant_id=tenant.id, id=row.id, created_at=now)
            db.add(cam)
            created += 1
        else:
            updated += 1
        for name in (
            "name",
            "lat",
            "lon",
            "height_m",
            "heading_deg",
            "fov_deg",
            "range_m",
            "ptz",
            "max_zoom",
            "stream_url",
            "onvif_url",
            "onvif_username",
        ):
            setattr(cam, name, getattr(row, name))
        if row.onvif_username is None:
            cam.onvif_password_sealed = None
        elif row.onvif_password is not None:
            cam.onvif_password_sealed = seal_password(p.keyring.master_key, tenant.id, row.id, row.onvif_password)
        cam.active = True
        cam.updated_at = now
    result = ImportResult(created, updated, sum(1 for r in rows if r.ptz))
    version = bump_version(db, tenant.id)
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="cctv.imported",
            actor=actor,
            details={**result.as_dict(), "source": source, "registry_version": version},
        ),
        tenant,
    )
    db.commit()
    return result


def withdraw(
    p: Context, db: Session, tenant: Tenant, camera_id: str, *, actor: Actor, reason: str | None = None
) -> CctvCamera:
    """Take a camera out of service (removed from the street, broken): off the map, the nearby list and the video
    wall. Its row stays, since the journal names it; importing it again puts it back. Committed here."""
    cam = camera_of(db, tenant.id, camera_id)
    if cam is None:
        raise UnknownCamera(f"no CCTV camera {camera_id} in your commune's registry")
    cam.active = False
    cam.updated_at = utcnow()
    version = bump_version(db, tenant.id)
    p.record(
        db,
        EntryDraft(
            action=Action.ADMINISTRATION,
            event="cctv.withdrawn",
            actor=actor,
            cameras=[cam.id],
            details={
                "camera_id": cam.id,
                "name": cam.name,
                "reason": (reason or "").strip() or None,
                "registry_version": version,
            },
        ),
        tenant,
    )
    db.commit()
    return cam


def import_file(
    p: Context, db: Session, tenant: Tenant, name: str, data: bytes, *, actor: Actor, stream_base: str | None = None
) -> ImportResult:
    rows, kind = parse_file(name, data, stream_base=stream_base)
    return import_rows(p, db, tenant, rows, actor=actor, source=kind)


def cameras_of(db: Session, tenant_id: int, *, active_only: bool = True) -> list[CctvCamera]:
    stmt = select(CctvCamera).where(CctvCamera.tenant_id == tenant_id)
    if active_only:
        stmt = stmt.where(CctvCamera.active.is_(True))
    return list(db.scalars(stmt.order_by(CctvCamera.id)))


def camera_of(db: Session, tenant_id: int, camera_id: str) -> CctvCamera | None:
    """The tenant's camera by id; another tenant's camera is unreachable by construction (composite key)."""
    cam = db.get(CctvCamera, (tenant_id, camera_id))
    return cam if cam is not None and cam.active else None


def public_view(cam: CctvCamera) -> dict[str, Any]:
    """What the CSU's map may show: no URL (they may carry credentials), no password."""
    return {
        "id": cam.id,
        "name": cam.name,
        "ptz": cam.ptz,
        "heading_deg": cam.heading_deg,
        "fov_deg": cam.fov_deg,
        "range_m": cam.range_m,
        "height_m": cam.height_m,
        "max_zoom": cam.max_zoom,
        "onvif": bool(cam.onvif_url),
    }


def feature_collection(cameras: Iterable[CctvCamera]) -> dict[str, Any]:
    return {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "id": c.id,
                "geometry": {"type": "Point", "coordinates": [c.lon, c.lat]},
                "properties": public_view(c),
            }
            for c in cameras
        ],
    }
