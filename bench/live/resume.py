"""How fast a camera's live stream comes back after a network cut (issue 4, item 6: within 3 s of the network's
return): p50/p95 over N cuts of one live session.

The set-up is tests/test_live_resume.py's: a real camera agent (`CameraRuntime`, 160x120 at 10 fps) in a network
namespace of its own, joined to the server's (uvicorn, in this process) by TUN interfaces and a user-space
forwarder that a cut turns into a black hole; a WHEP viewer (aiortc, decoding) in the server's namespace. For each
cut: the time the camera takes to notice (the wearer's "live link lost" warning), and the time from the restore
to the viewer's first decoded picture. Must run as root (namespaces, TUN).

    .venv/bin/python bench/live/resume.py              # 10 cuts of 5 s
    .venv/bin/python bench/live/resume.py --quick      # 3 cuts
    .venv/bin/python bench/live/resume.py --cuts 20 --cut-s 2
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from temoin.law.access import Role  # noqa: E402
from temoin.platform import Platform  # noqa: E402
from temoin.settings import Settings  # noqa: E402
from tests.helpers import make_commune  # noqa: E402
from tests.test_live import Events, Viewer, token_for, until  # noqa: E402
from tests.test_live_resume import CutLink, camera_behind, first_picture_after, go_live, serving  # noqa: E402


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def cuts(
    link: CutLink,
    camera,
    url: str,
    token: str,
    count: int,  # noqa: ANN001
    cut_s: float,
) -> list[tuple[float, float]]:
    out = []
    async with Events(url, token) as events:
        viewer = Viewer(url, token)
        await go_live(camera, events, viewer)
        for i in range(count):
            await asyncio.sleep(2.0)  # the link settles (receiver reports flowing) between two cuts
            warned = len(camera.signals.warnings)
            link.cut()
            cut_at = time.monotonic()
            await until(
                lambda: any("live link lost" in w for w in camera.signals.warnings[warned:]),
                cut_s + 10,
                "the camera noticing the cut",
            )
            noticed = time.monotonic() - cut_at
            await asyncio.sleep(max(0.0, cut_s - (time.monotonic() - cut_at)))
            link.restore()
            restored = time.monotonic()
            resume = await first_picture_after(viewer, restored, 15, "a picture after the restore")
            out.append((noticed, resume))
            print(
                f"cut {i + 1}/{count}: noticed after {noticed:.2f} s, restore -> first picture {resume:.2f} s",
                flush=True,
            )
        await viewer.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cuts", type=int, default=10)
    parser.add_argument("--cut-s", type=float, default=5.0)
    parser.add_argument("--quick", action="store_true", help="3 cuts")
    args = parser.parse_args()
    count = 3 if args.quick else args.cuts
    with tempfile.TemporaryDirectory(prefix="temoin-resume-") as tmp:
        platform = Platform.open(
            Settings(home=Path(tmp) / "home", database_url=f"sqlite:///{tmp}/temoin.db", secure_cookies=False),
            init=True,
        )
        commune = make_commune(platform, cameras=0)
        token = token_for(platform, commune.users[Role.CSU_OPERATOR])
        with CutLink() as link, serving(platform, link.host_ip) as url:
            camera = camera_behind(link, platform, url, commune.slug, Path(tmp) / "camera")
            try:
                results = asyncio.run(cuts(link, camera, url, token, count, args.cut_s))
            finally:
                camera.close()
        platform.close()
    noticed = [n for n, _ in results]
    resume = [r for _, r in results]
    print(f"\n{count} cuts of {args.cut_s:.0f} s (black hole both ways), 160x120 at 10 fps, one machine:")
    print(
        f"  cut noticed by the camera:        p50 {statistics.median(noticed):.2f} s, "
        f"p95 {pct(noticed, 0.95):.2f} s, max {max(noticed):.2f} s"
    )
    print(
        f"  restore -> first decoded picture: p50 {statistics.median(resume):.2f} s, p95 {pct(resume, 0.95):.2f} s, "
        f"max {max(resume):.2f} s (criterion: 3 s)"
    )


if __name__ == "__main__":
    main()
