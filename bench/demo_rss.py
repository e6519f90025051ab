"""The server's memory through a demo hour: `temoin serve` alone in its process, the demo's world around it.

`temoin demo` runs the server, six camera agents (each with its encoders), twelve RTSP CCTV simulators and the Axis
simulator in one process, whose RSS says nothing of the server's. Here the server is the real `temoin serve` in a
subprocess on the demo's home, and this process runs what the demo runs around it (`temoin.demo.run.populate`):
the CCTV network, the cameras enrolled over HTTP, the sample recordings, the Axis hand-over, then the fleet on
patrol for the whole duration (recording, docking every 4 min to offload, a live button press every 3 min:
alert, WHIP stream, live backup). A CSU operator signed in does what the dashboard does with the demo's PTZ
auto-aim: opens /live, and aims every PTZ camera in range at each live alert (`/api/v1/cctv/aim-all`, over ONVIF to
the demo's simulated cameras); `--no-csu` leaves that out. The server's RSS (VmRSS) is read every 5 s and its peak
(VmHWM) at the end.

    .venv/bin/python bench/demo_rss.py                      # one hour (the issue's figure)
    .venv/bin/python bench/demo_rss.py --minutes 10 --json F
    .venv/bin/python bench/demo_rss.py --quick              # 3 minutes, 2 recordings
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1])]
import common  # noqa: E402 - after the path above
from common import Results  # noqa: E402 - after the path above

from tests.serve_helpers import ServerProcess, free_port  # noqa: E402 - after the path above

GOAL_MB = 150.0
MB = 1e6


class CsuOperator:
    """The CSU's dashboard with PTZ auto-aim on, as csu.js does it: signed in, /live opened once, then each live
    session with a position has every PTZ camera in range aimed at it once."""

    def __init__(self, p, url: str, password: str) -> None:
        import threading

        self.p, self.url, self.password = p, url, password
        self.aimed = self.failed = self.sessions = 0
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="csu-operator", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(30)

    def _sign_in(self, http) -> str:
        from tests.helpers import totp_code

        r = http.post("/api/v1/session", json={"username": "csu", "password": self.password})
        r.raise_for_status()
        r = http.post("/api/v1/session/totp", json={"code": totp_code(self.p, "csu")})
        r.raise_for_status()
        return r.json()["csrf_token"]

    def _run(self) -> None:
        import httpx

        done: set[str] = set()
        with httpx.Client(base_url=self.url, timeout=30) as http:
            try:
                csrf = self._sign_in(http)
                http.get("/live").raise_for_status()
            except httpx.HTTPError as exc:
                self.errors.append(f"sign-in: {exc}")
                return
            while not self._stop.wait(5):
                try:
                    for s in http.get("/api/v1/live/sessions").json():  # a list of session dicts
                        if s["id"] in done or s.get("state") == "ended" or not (s.get("position") or {}).get("lat"):
                            continue
                        done.add(s["id"])
                        self.sessions += 1
                        r = http.post(
                            "/api/v1/cctv/aim-all", json={"session_id": s["id"]}, headers={"X-CSRF-Token": csrf}
                        )
                        r.raise_for_status()
                        self.aimed += r.json()["aimed"]
                        self.failed += r.json()["failed"]
                except (httpx.HTTPError, KeyError, ValueError) as exc:
                    self.errors.append(f"{type(exc).__name__}: {exc}")


def rss_bytes(pid: int) -> tuple[float, float]:
    """(VmRSS, VmHWM) of a process, bytes (read by `common.peak_rss_mib`)."""
    hwm, rss = common.peak_rss_mib(pid)
    return rss * (1 << 20), hwm * (1 << 20)


def main() -> None:
    ap = common.parser(__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=None, help="how long the fleet runs (default 60; --quick 3)")
    ap.add_argument("--cameras", type=int, default=6, help="simulated cameras on patrol (the demo's 6)")
    ap.add_argument("--live-every", type=float, default=180.0, help="seconds between live presses (the demo's)")
    ap.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="environment of the server (repeatable), e.g. MALLOC_ARENA_MAX=2",
    )
    ap.add_argument("--no-csu", action="store_true", help="no CSU operator (no dashboard, no PTZ aiming)")
    args = ap.parse_args()
    minutes = args.minutes or (3.0 if args.quick else 60.0)
    recordings = 2 if args.quick else 4
    os.umask(0o077)  # `temoin serve` refuses a home whose files others may read
    results = Results(
        "server RSS through a demo hour",
        f"temoin serve alone, {args.cameras} simulated cameras on patrol for {minutes:.0f} min, "
        f"{recordings} sample recordings, live every {args.live_every:.0f} s, SQLite"
        + ("" if args.no_csu else ", a CSU operator aiming the PTZ cameras in range at each live alert")
        + (f"; server environment {' '.join(args.server_env)}" if args.server_env else ""),
    )
    from rich.console import Console

    from temoin.demo.run import ensure_tenant, populate

    with common.bench_home(args, "demo-rss") as home:
        p = common.open_platform(home)
        passwords = ensure_tenant(p)
        url = f"http://127.0.0.1:{free_port()}"
        env = {**os.environ, "TEMOIN_HOME": str(home), "TEMOIN_INSECURE_COOKIES": "1"}
        env.update(item.split("=", 1) for item in args.server_env)
        server = ServerProcess(
            "the server",
            [sys.executable, "-m", "temoin", "serve", "--port", url.rsplit(":", 1)[1]],
            env=env,
            cwd=home,
            log=home / "server.log",
            url=url,
        )
        samples: list[tuple[float, float]] = []
        world = None
        operator = None if args.no_csu else CsuOperator(p, url, passwords["csu"])
        try:
            server.wait_answering(60)
            time.sleep(2)
            started_rss, _ = rss_bytes(server.proc.pid)
            quiet = Console(quiet=True)  # the fleet's messages would drown the bench's
            world = populate(p, url, recordings, quiet, args.cameras, args.live_every or None)
            after_setup, _ = rss_bytes(server.proc.pid)
            world.start_fleet()
            if operator is not None:
                operator.start()
            t0 = time.monotonic()
            end = t0 + minutes * 60
            next_print = t0
            while time.monotonic() < end:
                if not server.alive():
                    raise SystemExit(f"the server died: {server.tail()}")
                rss, _ = rss_bytes(server.proc.pid)
                samples.append((time.monotonic() - t0, rss))
                if time.monotonic() >= next_print:
                    common.console.print(
                        f"[dim]{(time.monotonic() - t0) / 60:5.1f} min: server RSS {rss / MB:.0f} MB "
                        f"(max so far {max(s for _, s in samples) / MB:.0f} MB)[/dim]"
                    )
                    next_print += 300
                time.sleep(5)
            final_rss, hwm = rss_bytes(server.proc.pid)
            from sqlalchemy import func, select

            from temoin.live.models import LiveSession
            from temoin.vault.models import Recording

            with p.session() as db:  # what the world did: the figures are only worth what it did
                recordings_stored = db.scalar(select(func.count()).select_from(Recording)) or 0
                live_sessions = db.scalar(select(func.count()).select_from(LiveSession)) or 0
        finally:
            if operator is not None:
                operator.close()
            if world is not None:
                world.close()
            server.stop()
            p.close()
    last = [rss for t, rss in samples if t >= minutes * 60 - 300] or [final_rss]
    results.add(
        "server RSS once started, before the demo's world",
        f"{started_rss / MB:.0f} MB",
        f"≤ {GOAL_MB:.0f}",
        started_rss / MB <= GOAL_MB,
    )
    results.add(
        "after set-up (cameras enrolled, samples and the Axis recording uploaded)",
        f"{after_setup / MB:.0f} MB",
        f"≤ {GOAL_MB:.0f}",
        after_setup / MB <= GOAL_MB,
    )
    results.add(
        f"at the end of {minutes:.0f} min (the last 5 minutes' mean)",
        f"{sum(last) / len(last) / MB:.0f} MB (now {final_rss / MB:.0f} MB)",
        f"≤ {GOAL_MB:.0f}",
        final_rss / MB <= GOAL_MB,
        end_rss_mb=final_rss / MB,
    )
    results.add(
        "peak over the run (VmHWM)",
        f"{hwm / MB:.0f} MB (sampled max {max(s for _, s in samples) / MB:.0f} MB)",
        f"≤ {GOAL_MB:.0f}",
        hwm / MB <= GOAL_MB,
        peak_rss_mb=hwm / MB,
    )
    results.add("recordings stored / live sessions during the run", f"{recordings_stored} / {live_sessions}")
    if operator is not None:
        results.add(
            "CSU operator: live alerts aimed at / PTZ aims that moved a camera / failed",
            f"{operator.sessions} / {operator.aimed} / {operator.failed}"
            + (f" ({len(operator.errors)} errors, first: {operator.errors[0]})" if operator.errors else ""),
        )
        results.raw.update(
            {"ptz_aimed": operator.aimed, "ptz_failed": operator.failed, "csu_errors": operator.errors[:5]}
        )
    results.raw.update(
        {
            "recordings": recordings_stored,
            "live_sessions": live_sessions,
            "started_rss_mb": started_rss / MB,
            "after_setup_rss_mb": after_setup / MB,
            "minutes": minutes,
            "samples": [(round(t), round(r / MB, 1)) for t, r in samples[::12]],  # one a minute
        }
    )
    results.print()
    results.write_json(args.json)


if __name__ == "__main__":
    common.main_guard(main)
