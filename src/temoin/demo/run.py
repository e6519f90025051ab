"""`temoin demo`: the platform with the demo commune, its users and cameras, sample recordings that
went through the real enrolment and ingest paths over HTTP, and a fleet of simulated cameras
(`fleet.py`: each the real camera agent) checked out to the demo agents, patrolling, recording
and docking to offload at the end of their shifts. Every few minutes one of them presses its live
button: the CSU operator (`csu`) gets the alert on /live, watches, acknowledges, and the camera
reports that the acknowledgement reached it. `TEMOIN_DEMO_LIVE_EVERY_S` sets how often (default
180 s, the first press within a minute of the start; 0 for never).
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select

from temoin.camera import offload
from temoin.camera.runner import CameraHome
from temoin.db import utcnow
from temoin.demo.cctv.network import CctvNetwork
from temoin.demo.commune import streets, territory
from temoin.demo.fleet import Fleet, FleetSettings
from temoin.demo.samples import sample_recording
from temoin.demo.server import BackgroundServer
from temoin.evidence.manifest import Trigger
from temoin.identity import devices, secrets as sec, service, shifts
from temoin.identity.models import Device, ShiftAssignment, Tenant, User
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
    ("agent3", "Mathieu Lefèvre", Role.AGENT, "PM-0103"),
    ("agent4", "Camille Dubois", Role.AGENT, "PM-0104"),
    ("agent5", "Yanis Haddad", Role.AGENT, "PM-0105"),
    ("agent6", "Léa Fontaine", Role.AGENT, "PM-0106"),
    ("agent7", "Hugo Mercier", Role.AGENT, "PM-0107"),
    ("agent8", "Aïcha Diallo", Role.AGENT, "PM-0108"),
    ("csu", "Marc Petit (opérateur CSU)", Role.CSU_OPERATOR, None),
    ("dpo", "Hélène Roux (DPO)", Role.DPO, None),
    ("admin", "Thomas Blanc (admin technique)", Role.TECH_ADMIN, None),
    ("auditeur", "Nadia Faure (auditrice)", Role.AUDITOR, None),
]
CAMERAS = 6  # simulated cameras by default (`temoin demo --cameras`)
MAX_CAMERAS = 8  # as many as the prefect authorised the demo commune, one demo agent each
SHIFT_S = 240.0  # a demo shift: patrol, then dock and offload (a real one is hours)
LIVE_EVERY_S = 180.0  # one camera presses the live button this often
LIVE_FIRST_S = 45.0  # the first press, after the start of the fleet
LIVE_ENV = "TEMOIN_DEMO_LIVE_EVERY_S"


def live_every_s(value: float | None = None) -> float | None:
    """How often a camera of the demo presses its live button: `value`, else $TEMOIN_DEMO_LIVE_EVERY_S, else
    every 3 minutes; None (never) for 0."""
    if value is None:
        raw = os.environ.get(LIVE_ENV, "").strip()
        try:
            value = float(raw) if raw else LIVE_EVERY_S
        except ValueError:
            raise SystemExit(f"{LIVE_ENV} must be a number of seconds (0: no live button), not {raw!r}") from None
    if value < 0:
        raise SystemExit(f"{LIVE_ENV} must be a number of seconds, 0 or more")
    return value or None


def ensure_tenant(p: Platform) -> dict[str, str]:
    """Create the demo tenant and users, or reset the demo users' passwords. Returns the passwords."""
    passwords: dict[str, str] = {}
    with p.session() as db:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == TENANT))
        if tenant is None:
            tenant = service.create_tenant(
                p,
                db,
                slug=TENANT,
                name="Port-Témoin",
                profile="fr-police-municipale",
                authorised_cameras=MAX_CAMERAS,
                territory=territory(),
                demo=True,
            )
        if not tenant.demo:
            raise SystemExit(f"tenant {TENANT} exists and is not a demo tenant: refusing to touch it")
        # The demo shows the PTZ cameras turning to the agent by themselves on an alert.
        tenant.settings = {**(tenant.settings or {}), "ptz_auto_aim": True}
        for username, name, role, number in USERS:
            user = db.scalar(select(User).where(User.username == username, User.tenant_id == tenant.id))
            password = sec.random_password()
            if user is None:
                service.create_user(
                    p,
                    db,
                    tenant,
                    username=username,
                    display_name=name,
                    role=role,
                    password=password,
                    agent_number=number,
                )
            elif user.tenant_id == tenant.id:
                user.password_hash = sec.hash_password(password)
            passwords[username] = password
        db.commit()
    return passwords


@dataclass(frozen=True)
class DemoCamera:
    serial: str
    device_id: str
    home: Path  # the camera's own folder: keys, device store, receipts (`temoin camera --home`)

    @property
    def key(self) -> Ed25519PrivateKey:
        return CameraHome(self.home).keys().signing_key


def ensure_cameras(p: Platform, base_url: str, count: int = CAMERAS) -> list[DemoCamera]:
    """Enrol the demo cameras over HTTP with one-time codes, as a real camera would (`CameraHome.enrol`)."""
    folder = p.settings.home / "demo-cameras"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    cameras = []
    for n in range(1, count + 1):
        serial = f"PT-BWC-{n:03d}"
        home = CameraHome(folder / serial)
        known = home.identity()
        with p.session() as db:
            tenant = p.tenant(db, TENANT)
            device = db.scalar(
                select(Device).where(Device.tenant_id == tenant.id, Device.serial == serial, Device.status == "active")
            )
            if device is not None and known is not None and known.device_id == device.id:
                cameras.append(DemoCamera(serial, device.id, home.root))
                continue
            if device is not None:  # its keys are gone: retire it, enrol the camera again
                devices.revoke(p, db, device, Actor.system("demo"))
            # Labelled with its asset tag: the one name the staff use for it (the id stays technical).
            code = devices.create_enrolment_code(p, db, tenant, label=serial, by=Actor.system("demo"))
        identity = home.enrol(base_url, code, serial)
        cameras.append(DemoCamera(serial, identity.device_id, home.root))
    return cameras


def ensure_shifts(p: Platform, cameras: list[DemoCamera]) -> dict[str, str]:
    """Check camera n out to agent n (as the staff does at the start of a shift). Returns device -> matricule."""
    agents = [u for u in USERS if u[2] is Role.AGENT]
    out: dict[str, str] = {}
    with p.session() as db:
        for camera, (username, _, _, number) in zip(cameras, agents, strict=False):
            assert number is not None, "every demo agent has a matricule (USERS)"
            device = db.get_one(Device, camera.device_id)  # enrolled by ensure_cameras
            # Made by ensure_tenant, as every user of USERS.
            agent = db.scalars(select(User).where(User.username == username, User.tenant_id == device.tenant_id)).one()
            current = shifts.current(db, device.id)
            if current is not None and current.user_id == agent.id:
                out[device.id] = number
                continue
            if current is not None:
                shifts.check_in(p, db, device, Actor.system("demo"))
            held = db.scalar(
                select(ShiftAssignment).where(
                    ShiftAssignment.user_id == agent.id, ShiftAssignment.checked_in_at.is_(None)
                )
            )
            if held is not None:
                shifts.check_in(p, db, db.get_one(Device, held.device_id), Actor.system("demo"))
            shifts.check_out(p, db, device, agent, Actor.system("demo"))
            out[device.id] = number
    return out


def upload_samples(p: Platform, base_url: str, cameras: list[DemoCamera], count: int, console: Console) -> int:
    """Encode, sign and upload `count` sample recordings; every other one, the latest first, shows passers-by
    whose faces a rights request's copy blurs (`passersby.py`)."""
    public_key = offload.platform_key(base_url)
    agents = [u[3] for u in USERS if u[3]]
    names = list(streets())
    done = 0
    with Progress(console=console, transient=True) as bar:
        task = bar.add_task("sample recordings: encode, sign, upload", total=count)
        for i in range(count):
            camera_id, key = cameras[i % len(cameras)].device_id, cameras[i % len(cameras)].key
            started = utcnow() - timedelta(days=i * 3, minutes=17 * i + 5)
            signed, segments = sample_recording(
                key,
                camera_id=camera_id,
                agent_id=agents[i % len(agents)],
                started_at=started,
                seed=i,
                street=names[i % len(names)],
                trigger=[Trigger.INCIDENT, Trigger.PERSON_REQUEST, Trigger.FLAGRANT_OFFENCE, Trigger.AUTOMATIC][i % 4],
                persons_informed=i % 3 != 2,
                faces=i % 2 == 0,
            )
            client = offload.VaultClient(base_url, camera_id, key, public_key)
            try:
                client.offload(signed, segments)
                done += 1
            finally:
                client.close()
            bar.advance(task)
    return done


@dataclass
class DemoWorld:
    """What the demo runs beside the server: the CCTV network and the fleet of simulated cameras."""

    network: CctvNetwork
    fleet: Fleet | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None

    def start_fleet(self) -> None:
        if self.fleet is not None:
            self.thread = threading.Thread(
                target=self.fleet.run, kwargs={"realtime": True, "stop": self.stop}, daemon=True, name="demo-fleet"
            )
            self.thread.start()

    def close(self, console: Console | None = None) -> None:
        if self.thread is not None:
            if console is not None:
                console.print("docking the cameras: offloading what they recorded…")
            self.stop.set()
            self.thread.join(120)
        self.network.stop()


def populate(
    p: Platform,
    base_url: str,
    recordings: int,
    console: Console,
    cameras: int = CAMERAS,
    live_every: float | None = None,
    passwords: dict[str, str] | None = None,
) -> DemoWorld:
    """Everything around the server at `base_url` (this process's or another's, on the same home): CCTV,
    cameras enrolled over HTTP, sample recordings, an Axis hand-over, shifts, and the fleet (not yet started)."""
    network = CctvNetwork().start()
    with p.session() as db:
        cctv = network.register(p, p.tenant(db, TENANT))
    enrolled = ensure_cameras(p, base_url, max(cameras, 1))
    uploaded = upload_samples(p, base_url, enrolled, recordings, console)
    from temoin.demo.axis_sample import hand_over  # an Axis Body Worn camera's recording, through the Swift API

    hand_over(p, base_url, TENANT, "PM-0101", console)
    fleet_cameras = enrolled[:cameras]
    assigned = ensure_shifts(p, fleet_cameras)
    if passwords is not None:
        table = Table("user", "role", "password", title="Demo users (TOTP: `temoin admin user totp USER`)")
        for username, _, role, _ in USERS:
            table.add_row(username, role.value, passwords[username])
        console.print(table)
    console.print(f"{len(enrolled)} cameras enrolled, {uploaded} signed recordings uploaded through the ingest API")
    assert network.rtsp is not None, "the network was started above"
    console.print(
        f"{cctv} CCTV cameras ({len(network.onvif)} PTZ over ONVIF) stream synthetic street views over RTSP "
        f"from {network.rtsp.url('')}; the CSU sees those around an agent in danger"
    )
    world = DemoWorld(network)
    if fleet_cameras:

        def report(label: str, what: str) -> None:
            console.print(f"[dim]{utcnow():%H:%M:%S}[/dim] [bold]{label}[/bold] {what}", highlight=False)

        first_live = min(LIVE_FIRST_S, live_every or LIVE_FIRST_S)
        world.fleet = Fleet.build(
            [c.home for c in fleet_cameras],
            base_url,
            start=utcnow(),
            settings=FleetSettings(
                shift_s=SHIFT_S, live_every_s=live_every, live_first_s=first_live, live_where=network.ptz_reaches
            ),
            report=report,
        )
        console.print(
            f"{len(fleet_cameras)} simulated cameras on patrol, checked out to "
            f"{', '.join(sorted(assigned.values()))}: they record now and then and dock every "
            f"{SHIFT_S / 60:.0f} min (320x240, 10 fps, real time)"
        )
        if live_every:
            console.print(
                f"live button: one camera presses it about {first_live:.0f} s from now, then every "
                f"{live_every:.0f} s ({LIVE_ENV}): sign in as [bold]csu[/bold] on {base_url}/live to "
                "see the alert, watch the feed and acknowledge (the camera reports it)"
            )
    return world


def run_demo(
    host: str, port: int, recordings: int, console: Console, cameras: int = CAMERAS, live_every: float | None = None
) -> None:
    if not 0 <= cameras <= MAX_CAMERAS:
        raise SystemExit(f"the demo commune is authorised {MAX_CAMERAS} cameras: --cameras 0 to {MAX_CAMERAS}")
    live_every = live_every_s(live_every)
    # Plain HTTP on a local address: cookies cannot be marked Secure there.
    settings = Settings.from_env().model_copy(update={"secure_cookies": False})
    p = Platform.open(settings, init=True)
    passwords = ensure_tenant(p)
    server = BackgroundServer(create_app(p), host=host, port=port)
    try:
        server.start()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    base_url = server.url
    world = populate(p, base_url, recordings, console, cameras, live_every, passwords)
    world.start_fleet()
    console.print(f"[bold]Témoin demo running on {base_url}[/bold]  (API docs: {base_url}/docs)  Ctrl-C to stop")
    try:
        while server.thread.is_alive():
            server.thread.join(0.5)
    except KeyboardInterrupt:
        world.close(console)
        server.stop()
