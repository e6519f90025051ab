"""CCTV credentials and outbound connections (docs/security.md, "Web and transport"): a stored ONVIF password stays
bound to the address it was given for, and the platform connects only inside the commune's declared CCTV network.
Against simulated ONVIF cameras (real HTTP, real WS-Security digests); each test on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from temoin.demo.cctv.onvif_sim import OnvifPtzSimulator
from temoin.demo.cctv.state import PtzPose
from temoin.identity.service import IdentityError, update_settings
from temoin.journal.entry import Actor
from temoin.law.access import Role
from temoin.platform import Platform
from temoin.supervision import outbound, ptz, registry
from temoin.supervision.models import CctvCamera
from tests.helpers import Commune, make_commune, sign_in

SECRET = "Zq9-onvif-SECRET-41"
HEADER = "id,name,lat,lon,heading_deg,fov_deg,ptz,stream_url,onvif_url,onvif_username,onvif_password\n"
AGENT = (43.5585, 4.0845)


def ptz_row(url: str, password: str = "", user: str = "csu") -> str:
    return f"cctv-01,Mât,43.559,4.0845,180,60,true,rtsp://127.0.0.1:8554/cctv-01,{url},{user},{password}\n"


def import_csv(p: Platform, slug: str, text: str) -> None:
    with p.session() as db:
        registry.import_file(
            p, db, p.tenant(db, slug), "cameras.csv", (HEADER + text).encode(), actor=Actor.system("test")
        )


def declare(p: Platform, slug: str, networks: list[str] | None) -> None:
    with p.session() as db:
        update_settings(p, db, p.tenant(db, slug), {"cctv_networks": networks})
        db.commit()


def aim(p: Platform, slug: str) -> ptz.AimResult:
    with p.session() as db:
        tenant_id = p.tenant(db, slug).id
    return asyncio.run(ptz.aim(p, tenant_id, "cctv-01", *AGENT, actor=Actor.system("test")))


@pytest.fixture
def commune(platform: Platform) -> Commune:
    return make_commune(platform, cameras=0)


@pytest.fixture
def cameras() -> Iterator[tuple[OnvifPtzSimulator, OnvifPtzSimulator]]:
    """The real camera, and another host that would like to learn its password."""
    with (
        OnvifPtzSimulator(PtzPose(), 180.0, 20.0, "csu", SECRET) as real,
        OnvifPtzSimulator(PtzPose(), 180.0, 20.0, "csu", "whatever") as other,
    ):
        yield real, other


def test_a_new_onvif_address_needs_the_password_again(platform: Platform, commune: Commune, cameras) -> None:
    real, other = cameras
    declare(platform, commune.slug, ["127.0.0.0/8"])
    import_csv(platform, commune.slug, ptz_row(real.url, SECRET))
    assert aim(platform, commune.slug).camera_id == "cctv-01"

    # Re-imported with the other host's address and no password: refused whole, nothing changed.
    with pytest.raises(registry.RegistryError, match="give onvif_password again") as refused:
        import_csv(platform, commune.slug, ptz_row(other.url))
    assert "camera cctv-01" in refused.value.message and SECRET not in refused.value.message
    # The same with another user name.
    with pytest.raises(registry.RegistryError, match="give onvif_password again"):
        import_csv(platform, commune.slug, ptz_row(real.url, user="admin"))
    with platform.session() as db:
        cam = db.get(CctvCamera, (platform.tenant(db, commune.slug).id, "cctv-01"))
        assert cam.onvif_url == real.url
    aim(platform, commune.slug)
    assert other.requests == []  # the other host never saw a digest of the password

    # Same address, no password: kept (a list exported without secrets imports again).
    import_csv(platform, commune.slug, ptz_row(real.url))
    aim(platform, commune.slug)
    # A new address with its password: accepted, and used there.
    import_csv(platform, commune.slug, ptz_row(other.url, "whatever"))
    aim(platform, commune.slug)
    assert "AbsoluteMove" in other.requests


def test_the_api_says_why_an_import_was_refused(platform: Platform, client, commune: Commune, cameras) -> None:
    real, other = cameras
    import_csv(platform, commune.slug, ptz_row(real.url, SECRET))
    csrf = sign_in(platform, client, commune.users[Role.TECH_ADMIN])
    r = client.post(
        "/api/v1/cctv/import",
        content=(HEADER + ptz_row(other.url)).encode(),
        headers={"Content-Type": "text/csv", "X-CSRF-Token": csrf},
    )
    assert r.status_code in (400, 422), r.text
    assert "onvif_password" in r.text and SECRET not in r.text


def test_no_connection_outside_the_declared_cctv_network(platform: Platform, commune: Commune, cameras) -> None:
    real, _ = cameras
    import_csv(platform, commune.slug, ptz_row(real.url, SECRET))
    # None declared: nothing is reached, and the message says how to declare the network.
    with pytest.raises(ptz.OutsideNetwork, match="cctv_networks="):
        aim(platform, commune.slug)
    # Declared, but the camera's address is elsewhere (an administrator pointing it at the Internet, say).
    declare(platform, commune.slug, ["10.20.0.0/16"])
    with pytest.raises(ptz.OutsideNetwork, match=r"127\.0\.0\.1.*outside the commune's declared CCTV network"):
        aim(platform, commune.slug)
    assert real.requests == [] and real.refused == 0
    # A name is judged by every address it resolves to.
    declare(platform, commune.slug, ["127.0.0.0/8"])
    import_csv(platform, commune.slug, ptz_row(real.url.replace("127.0.0.1", "localhost"), SECRET))
    aim(platform, commune.slug)
    assert "AbsoluteMove" in real.requests
    from tests.journal_helpers import journal

    failed = journal(platform, commune.slug, "ptz.failed")
    assert [e["details"]["reason"] for e in failed] == ["outside_network", "outside_network"]


def test_the_network_setting_is_validated_and_the_demo_commune_defaults_to_private_ranges(
    platform: Platform, commune: Commune
) -> None:
    with pytest.raises(IdentityError, match="not an address range"):
        declare(platform, commune.slug, ["the town hall"])
    with platform.session() as db:
        tenant = platform.tenant(db, commune.slug)
        update_settings(platform, db, tenant, {"cctv_networks": "10.20.0.0/16, 192.168.5.7/24"})  # the CLI's form
        assert [str(n) for n in outbound.declared_networks(tenant)] == ["10.20.0.0/16", "192.168.5.0/24"]
        tenant.settings = {}
        assert outbound.declared_networks(tenant) == ()
        tenant.demo = True
        assert {"127.0.0.0/8", "10.0.0.0/8", "192.168.0.0/16"} <= {str(n) for n in outbound.declared_networks(tenant)}
        db.rollback()


def test_service_addresses_given_by_the_camera_are_checked_too() -> None:
    async def check() -> None:
        nets = (outbound.ipaddress.ip_network("127.0.0.0/8"),)
        await ptz._allowed("http://127.0.0.1:8080/onvif/ptz", nets, "a service address")
        with pytest.raises(ptz.OutsideNetwork, match=r"169.254.169.254"):
            await ptz._allowed("http://169.254.169.254/latest/meta-data", nets, "a service address")

    asyncio.run(check())
