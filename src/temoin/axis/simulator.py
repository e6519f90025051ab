"""A simulated Axis Body Worn system (system controller + docking stations), written from the integration API.

It reads a connection file, authenticates, reads the capabilities (checking their ETag as the system does),
writes its System ID, users and cameras, then hands over recordings: container with Status Transferring, clips
(encrypted for Témoin's public key when WantEncryption), GNSS trail, bookmarks, Status Complete.
Used by the tests and the demo; a client of the HTTP API only, like the real system.
"""

from __future__ import annotations

import base64
import hashlib
import ssl
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import httpx
import orjson
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from temoin import errors
from temoin.axis import e2e
from temoin.law.legal_time import PARIS


class BodyWornError(errors.UpstreamFault, RuntimeError):
    def __init__(self, message: str, response: httpx.Response | None = None) -> None:
        super().__init__(message)
        self.response = response


@dataclass
class Clip:
    data: bytes
    started_at: datetime
    stopped_at: datetime


@dataclass
class Bookmark:
    at: datetime
    description: str = ""
    category_id: str | None = None
    category_name: str | None = None
    tags: str | None = None


@dataclass
class Recording:
    user_uuid: str
    serial: str
    triggered_at: datetime
    clips: list[Clip]
    track: list[tuple[float, float, datetime]] = field(default_factory=list)  # lat, lon, time
    bookmarks: list[Bookmark] = field(default_factory=list)
    trigger_on: str = "Button"

    @property
    def container(self) -> str:
        return f"{self.user_uuid}_{self.serial}_{self.triggered_at.strftime('%Y%m%dT%H%M%SZ')}"


def _epoch(at: datetime) -> str:
    return str(int(at.timestamp()))


def _iso(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _meta(kind: str, values: dict[str, str | None]) -> dict[str, str]:
    """Metadata headers as the system writes them: Title-Case keys, percent-encoded UTF-8 values."""
    return {f"X-{kind}-Meta-{k}": quote(v, safe="") for k, v in values.items() if v is not None}


def ssl_context(connection_file: dict) -> ssl.SSLContext | None:
    """Trust exactly the certificates the connection file gives (what the system controller does)."""
    certs = connection_file.get("HTTPSCertificate") or []
    if not certs:
        return None
    pem = "".join("-----BEGIN CERTIFICATE-----\n" + c + "\n-----END CERTIFICATE-----\n" for c in certs)
    ctx = ssl.create_default_context(cadata=pem)
    return ctx


class BodyWornSystem:
    def __init__(
        self,
        connection_file: dict,
        *,
        http: httpx.Client | None = None,
        system_id: str | None = None,
        name: str = "Body Worn system",
    ) -> None:
        self.cf = connection_file
        self.http = http or httpx.Client(verify=ssl_context(connection_file) or True, timeout=30)
        self.system_id = system_id or str(uuid.uuid4())
        self.name = name
        self.token: str | None = None
        self.storage_url: str | None = None

    # --- the API calls -------------------------------------------------------------------------------

    def authenticate(self) -> None:
        last: httpx.Response | None = None
        for uri in self.cf["AuthenticationTokenURI"]:
            last = self.http.get(
                uri, headers={"X-Auth-User": self.cf["BlobAPIUserName"], "X-Auth-Key": self.cf["BlobAPIKey"]}
            )
            if last.status_code == 200:
                self.token, self.storage_url = last.headers["X-Auth-Token"], last.headers["X-Storage-Url"]
                return
        raise BodyWornError(f"authentication refused ({last.status_code if last else 'no address'})", last)

    def _url(self, container: str, name: str | None = None) -> str:
        assert self.storage_url, "authenticate first"
        path = quote(container, safe="") + ("" if name is None else "/" + quote(name, safe="/"))
        return f"{self.storage_url}/{path}"

    def request(
        self,
        method: str,
        container: str,
        name: str | None = None,
        *,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
        expect: tuple[int, ...] = (),
    ) -> httpx.Response:
        all_headers = {"X-Auth-Token": self.token or "", **(headers or {})}
        response = self.http.request(method, self._url(container, name), content=body, headers=all_headers)
        if expect and response.status_code not in expect:
            raise BodyWornError(
                f"{method} {container}/{name or ''}: {response.status_code} {response.text.strip()}", response
            )
        return response

    def read_json(self, name: str) -> object:
        """System/<name>, checked against its ETag as the system controller does ('object corrupt')."""
        response = self.request("GET", "System", name, expect=(200,))
        if response.headers.get("Etag") != hashlib.md5(response.content, usedforsecurity=False).hexdigest():
            raise BodyWornError(f"System/{name}: object corrupt (ETag is not the MD5 of the body)", response)
        return orjson.loads(response.content)

    def capabilities(self) -> dict[str, bool]:
        doc = self.read_json("Capabilities.json")
        assert isinstance(doc, dict)
        return {k: bool(v) for group in doc.values() if isinstance(group, dict) for k, v in group.items()}

    def register_system(self) -> None:
        self.request("PUT", "System", expect=(201, 202))
        self.request(
            "PUT",
            "System",
            self.system_id,
            body=b"",
            expect=(201,),
            headers=_meta("Object", {"Connectionid": str(uuid.uuid4()), "Systemname": self.name}),
        )

    def register_user(self, user_uuid: str, name: str, user_id: str | None = None, active: bool = True) -> None:
        self.request("PUT", "Users", expect=(201, 202))
        self.request(
            "PUT",
            "Users",
            user_uuid,
            body=b"",
            expect=(201,),
            headers=_meta("Object", {"Active": str(active), "Name": name, "Userid": user_id}),
        )

    def register_device(self, serial: str, name: str, model: str = "W110", active: bool = True) -> httpx.Response:
        self.request("PUT", "Devices", expect=(201, 202))
        return self.request(
            "PUT",
            "Devices",
            serial,
            body=b"",
            headers=_meta("Object", {"Active": str(active), "Name": name, "Model": model}),
        )

    def upload(self, rec: Recording, *, complete: bool = True) -> str:
        """The whole hand-over of one recording. Returns the container name."""
        want_encryption = bool(self.cf.get("WantEncryption"))
        public_key: rsa.RSAPublicKey | None = None
        if want_encryption:
            key = serialization.load_pem_public_key(base64.b64decode(self.cf["PublicKey"]))
            if not isinstance(key, rsa.RSAPublicKey):
                raise ValueError(
                    "the connection file's PublicKey is not an RSA key: Axis end-to-end encryption "
                    "wraps content keys with RSA-OAEP; issue a new connection file"
                )
            public_key = key
        ctype = self.cf.get("ContainerType", "mkv")
        start, stop = rec.clips[0].started_at, rec.clips[-1].stopped_at
        location = f"{rec.track[0][0]:.6f}{rec.track[0][1]:+.6f}" if rec.track else None
        container_meta = {
            "Containername": rec.container,
            "Bwcserialnumber": rec.serial,
            "Scuserialnumber": "SCU-1",
            "Firmwareversion": "11.2.1",
            "Userid": rec.user_uuid,
            "Triggeron": rec.trigger_on,
            "Triggeroff": "Button",
            "Triggerontime": _epoch(rec.triggered_at),
            "Triggerontimeiso": _iso(rec.triggered_at),
            "Triggeronlocation": location,
            "Starttime": _epoch(start),
            "Starttimeiso": _iso(start),
            "Stoptime": _epoch(stop),
            "Stoptimeiso": _iso(stop),
            "Timezone": PARIS.key,
            "Bwcmodel": "W110",
            "Status": "Transferring",
        }
        self.request("PUT", rec.container, headers=_meta("Container", container_meta), expect=(201, 202))
        rid = str(abs(hash(rec.container)) % 100000)
        for clip in rec.clips:
            stem = f"{clip.started_at.strftime('%Y%m%d_%H%M%S')}_{rid}"
            body = clip.data
            if public_key is not None:
                body, key_file = e2e.encrypt(public_key, self.cf["PublicKeyId"], clip.data)
                self.request(
                    "PUT",
                    rec.container,
                    f"{stem}.key",
                    body=key_file,
                    expect=(201,),
                    headers=_meta("Object", {"Starttime": _epoch(clip.started_at), "Filetype": "key"}),
                )
            self.request(
                "PUT",
                rec.container,
                f"{stem}.{ctype}",
                body=body,
                expect=(201,),
                headers=_meta(
                    "Object",
                    {
                        "Starttime": _epoch(clip.started_at),
                        "Starttimeiso": _iso(clip.started_at),
                        "Stoptime": _epoch(clip.stopped_at),
                        "Stoptimeiso": _iso(clip.stopped_at),
                        "Containertype": ctype,
                    },
                ),
            )
        if rec.track:
            trail = orjson.dumps(
                {
                    "CoordinateEntries": [
                        {
                            "LocationWKT": f"POINT({lon:.6f} {lat:.6f})",
                            "SecondsFromStart": (t - start).total_seconds(),
                            "Timestamp": _iso(t),
                        }
                        for lat, lon, t in rec.track
                    ]
                }
            )
            stem = f"{start.strftime('%Y%m%d_%H%M%S')}_{rid}_{rec.serial}_gpstrail"
            if public_key is not None:
                trail, key_file = e2e.encrypt(public_key, self.cf["PublicKeyId"], trail)
                self.request(
                    "PUT",
                    rec.container,
                    f"{stem}.key",
                    body=key_file,
                    expect=(201,),
                    headers=_meta("Object", {"Starttime": _epoch(start), "Filetype": "key"}),
                )
            self.request(
                "PUT",
                rec.container,
                f"{stem}.json",
                body=trail,
                expect=(201,),
                headers=_meta("Object", {"Filetype": "json"}),
            )
        for n, mark in enumerate(rec.bookmarks):
            self.request(
                "PUT",
                rec.container,
                f"bookmark_{_epoch(mark.at)}_{n}",
                body=mark.description.encode(),
                expect=(201,),
                headers=_meta(
                    "Object",
                    {
                        "Categoryid": mark.category_id,
                        "Categoryname": mark.category_name,
                        "Tags": mark.tags,
                        "Starttime": _iso(mark.at),
                    },
                ),
            )
        if complete:
            self.complete(rec.container)
        return rec.container

    def complete(self, container: str) -> None:
        self.request("POST", container, headers=_meta("Container", {"Status": "Complete"}), expect=(204,))


def sample_recording(
    user_uuid: str,
    serial: str,
    *,
    started_at: datetime | None = None,
    duration_s: float = 4,
    clip_s: float = 2,
    place: tuple[float, float] = (43.5563, 4.0836),
    bookmarks: list[Bookmark] | None = None,
    seed: int = 0,
) -> Recording:
    """A recording with real H.264 clips from the synthetic scene, and a GNSS walk."""
    from temoin.camera.media import SyntheticScene, encode_recording

    started_at = (started_at or datetime.now(UTC) - timedelta(minutes=10)).replace(microsecond=0)
    encoded = encode_recording(
        SyntheticScene(seed=seed), started_at, duration_s, clip_s, agent_id=user_uuid[:8], camera_id=serial
    )
    clips = [
        Clip(
            s.data,
            s.started_at.replace(microsecond=0),
            s.started_at.replace(microsecond=0) + timedelta(seconds=max(1, round(s.duration_s))),
        )
        for s in encoded
    ]
    track = [
        (place[0] + i * 0.0001, place[1] + i * 0.0001, started_at + timedelta(seconds=i))
        for i in range(int(duration_s) + 1)
    ]
    return Recording(user_uuid, serial, started_at, clips, track, bookmarks or [])
