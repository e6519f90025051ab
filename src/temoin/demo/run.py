"""`temoin demo`: the platform with the demo commune, its users and cameras, and sample recordings
that went through the real enrolment and ingest paths over HTTP.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from datetime import timedelta

import httpx
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select

from temoin.camera import offload
from temoin.db import utcnow
from temoin.demo.commune import streets, territory
from temoin.demo.samples import sample_recording
from temoin.evidence.manifest import Trigger
from temoin.evidence.signing import load_private_key_pem, private_key_pem
from temoin.identity import devices, secrets as sec, service
from temoin.identity.models import Device, Tenant, User
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.settings import Settings
from temoin.web.app import create_app

TENANT = "port-temoin"
USERS: list[tuple[str, str, Role, str | None]] = [
    ("maire", "Claire Martin (maire)", Role.MAYOR, None),
    ("chef", "Karim Benali (chef de service)", Role.CHIEF, None),
    ("habilite", "Sophie Laurent (agent habilitée)", Role.DESIGNATED_AGENT, None),
    ("agent1", "Julien Moreau", Role.AGENT, "PM-0101"),
    ("agent2", "Inès Garcia", Role.AGENT, "PM-0102"),
    ("csu", "Marc Petit (opérateur CSU)", Role.CSU_OPERATOR, None),
    ("dpo", "Hélène Roux (DPO)", Role.DPO, None),
    ("admin", "Thomas Blanc (admin technique)", Role.TECH_ADMIN, None),
    ("auditeur", "Nadia Faure (auditrice)", Role.AUDITOR, None),
]
CAMERAS = 6


def ensure_tenant(p: Platform) -> dict[str, str]:
    """Create the demo tenant and users, or reset the demo users' passwords. Returns the passwords."""
    passwords: dict[str, str] = {}
    with p.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == TENANT))
        if tenant is None:
            tenant = service.create_tenant(p, db, slug=TENANT, name="Port-Témoin", profile="fr-police-municipale",
                                           authorised_cameras=CAMERAS + 2, territory=territory(), demo=True)
        if not tenant.demo:
            raise SystemExit(f"tenant {TENANT} exists and is not a demo tenant: refusing to touch it")
        for username, name, role, number in USERS:
            user = db.scalar(select(User).where(User.username == username))
            password = sec.random_password()
            if user is None:
                service.create_user(p, db, tenant, username=username, display_name=name, role=role,
                                    password=password, agent_number=number)
            elif user.tenant_id == tenant.id:
                user.password_hash = sec.hash_password(password)
            passwords[username] = password
        db.commit()
    return passwords


def ensure_cameras(p: Platform, base_url: str) -> list[tuple[str, Ed25519PrivateKey]]:
    """Enrol the demo cameras over HTTP with one-time codes, as a real camera would."""
    folder = p.settings.home / "demo-cameras"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    cameras = []
    for n in range(1, CAMERAS + 1):
        serial = f"PT-BWC-{n:03d}"
        key_file = folder / f"{serial}.pem"
        with p.session() as db:
            tenant = p.tenant(db, TENANT)
            device = db.scalar(select(Device).where(Device.tenant_id == tenant.id, Device.serial == serial,
                                                    Device.status == "active"))
            if device is not None and key_file.exists():
                cameras.append((device.id, load_private_key_pem(key_file.read_bytes())))
                continue
            if device is not None:
                devices.revoke(p, db, device, Actor.system("demo"))
            code = devices.create_enrolment_code(p, db, tenant, label=f"Caméra {n}", by=Actor.system("demo"))
        key = Ed25519PrivateKey.generate()
        key_file.write_bytes(private_key_pem(key))
        key_file.chmod(0o600)
        answer = offload.enrol(base_url, code, serial, key)
        cameras.append((answer["device_id"], key))
    return cameras


def upload_samples(p: Platform, base_url: str, cameras: list[tuple[str, Ed25519PrivateKey]], count: int,
                   console: Console) -> int:
    public_key = offload.platform_key(base_url)
    agents = [u[3] for u in USERS if u[3]]
    names = list(streets())
    done = 0
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("sample recordings: encode, sign, upload", total=count)
        for i in range(count):
            camera_id, key = cameras[i % len(cameras)]
            started = utcnow() - timedelta(days=i * 3, minutes=17 * i + 5)
            signed, segments = sample_recording(
                key, camera_id=camera_id, agent_id=agents[i % len(agents)], started_at=started, seed=i,
                street=names[i % len(names)], trigger=[Trigger.INCIDENT, Trigger.PERSON_REQUEST,
                                                       Trigger.FLAGRANT_OFFENCE, Trigger.AUTOMATIC][i % 4],
                persons_informed=i % 3 != 2)
            client = offload.VaultClient(base_url, camera_id, key, public_key)
            try:
                client.offload(signed, segments)
                done += 1
            finally:
                client.close()
            bar.advance(task)
    return done


def run_demo(host: str, port: int, recordings: int, console: Console) -> None:
    # Plain HTTP on a local address: cookies cannot be marked Secure there.
    settings = dataclasses.replace(Settings.from_env(), secure_cookies=False)
    p = Platform.open(settings, init=True)
    passwords = ensure_tenant(p)
    server = uvicorn.Server(uvicorn.Config(create_app(p), host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base_url = f"http://{host}:{port}"
    for _ in range(100):
        try:
            httpx.get(f"{base_url}/api/v1/platform", timeout=1)
            break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        raise SystemExit(f"the server did not start on {base_url}: is the port taken? try --port")
    cameras = ensure_cameras(p, base_url)
    uploaded = upload_samples(p, base_url, cameras, recordings, console)
    table = Table("user", "role", "password", title="Demo users (TOTP: `temoin admin user totp USER`)")
    for username, _, role, _ in USERS:
        table.add_row(username, role.value, passwords[username])
    console.print(table)
    console.print(f"{len(cameras)} cameras enrolled, {uploaded} signed recordings uploaded through the ingest API")
    console.print(f"[bold]Témoin demo running on {base_url}[/bold]  (API docs: {base_url}/docs)  Ctrl-C to stop")
    try:
        while thread.is_alive():
            thread.join(0.5)
    except KeyboardInterrupt:
        server.should_exit = True
        thread.join(5)
