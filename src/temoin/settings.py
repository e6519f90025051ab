"""Platform settings, read once from the environment.

Embedded defaults: SQLite and a local data folder under TEMOIN_HOME (default ./var),
so that nothing needs to be installed to run a demo.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    master_key_file: Path | None = None
    master_key_env: str | None = field(default=None, repr=False)
    # Cookies are marked Secure unless explicitly served over plain HTTP (demo, tests).
    secure_cookies: bool = True
    session_hours: int = 10
    # Device request signatures are accepted within this clock window.
    device_clock_window_s: int = 300
    max_manifest_bytes: int = 1_048_576
    max_segment_bytes: int = 4 * 1024**3
    retention_interval_s: int = 3600
    # Sign-in throttling (identity.throttle): failures free of delay per account (twice as many per address),
    # then growing delays; failures older than the window are forgotten.
    login_max_failures: int = 5
    login_window_s: int = 900
    # Live transmission: STUN/TURN servers for the media plane (none: host candidates only, a LAN or
    # a server with a public address), viewers per stream, silence after which a stream is "link lost".
    live_ice_servers: tuple[str, ...] = ()
    live_max_viewers: int = 8
    live_stall_after_s: float = 2.0
    # RFC 3161 timestamps of packages and journal seals (docs/timestamping.md); none while tsa_url is empty.
    tsa_url: str = ""
    tsa_ca_bundle: Path | None = None  # PEM: replies are checked against it when stamping
    tsa_timeout_s: float = 10.0
    tsa_username: str | None = None
    tsa_password: str | None = field(default=None, repr=False)
    # Journal: the server seals every chain whose head moved this often; checkpoints also go to this
    # witness (syslog+tcp://host:port), outside the platform's own two sinks.
    journal_seal_interval_s: float = 60.0
    journal_witness: str | None = None
    # Reverse proxies whose X-Forwarded-For is believed (addresses or networks); none: the peer's address is
    # the client's, whatever the headers say (identity.addresses).
    trusted_proxies: tuple[str, ...] = ()
    # Web hardening (docs/security.md, "Web and transport"): the largest request body of an ordinary route
    # (JSON, forms; uploads have their own limits); redaction jobs run at most this many at once, with at most
    # this many waiting or running per tenant and in all.
    max_body_bytes: int = 1_048_576
    redaction_workers: int = 2
    redaction_jobs_per_tenant: int = 4
    redaction_jobs_max: int = 32
    # Database waits are bounded, so that a burst of requests is answered 503 instead of freezing the server:
    # connections per process (pool + overflow), how long a request waits for one, and how long a statement
    # waits for a lock (SQLite's busy timeout, PostgreSQL's lock_timeout).
    db_pool_size: int = 10
    db_pool_overflow: int = 10
    db_pool_timeout_s: float = 3.0
    db_lock_timeout_s: float = 10.0

    @property
    def vault_dir(self) -> Path:
        return self.home / "vault"

    @property
    def journal_dir(self) -> Path:
        return self.home / "journal"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def live_backup_dir(self) -> Path:
        return self.home / "live-backup"

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if env is None else env)
        home = Path(env.get("TEMOIN_HOME", "./var")).resolve()
        url = env.get("TEMOIN_DATABASE_URL") or f"sqlite:///{home / 'temoin.db'}"
        key_file = env.get("TEMOIN_MASTER_KEY_FILE")
        return cls(
            home=home,
            database_url=url,
            master_key_file=Path(key_file) if key_file else None,
            master_key_env=env.get("TEMOIN_MASTER_KEY"),
            secure_cookies=env.get("TEMOIN_INSECURE_COOKIES", "") != "1",
            retention_interval_s=int(env.get("TEMOIN_RETENTION_INTERVAL_S", "3600")),
            live_ice_servers=tuple(u.strip() for u in env.get("TEMOIN_LIVE_ICE_SERVERS", "").split(",") if u.strip()),
            live_max_viewers=int(env.get("TEMOIN_LIVE_MAX_VIEWERS", "8")),
            live_stall_after_s=float(env.get("TEMOIN_LIVE_STALL_AFTER_S", "2")),
            tsa_url=env.get("TEMOIN_TSA_URL", "").strip(),
            tsa_ca_bundle=Path(env["TEMOIN_TSA_CA_BUNDLE"]) if env.get("TEMOIN_TSA_CA_BUNDLE") else None,
            tsa_timeout_s=float(env.get("TEMOIN_TSA_TIMEOUT_S", "10")),
            tsa_username=env.get("TEMOIN_TSA_USERNAME") or None,
            tsa_password=env.get("TEMOIN_TSA_PASSWORD") or None,
            journal_seal_interval_s=float(env.get("TEMOIN_JOURNAL_SEAL_INTERVAL_S", "60")),
            journal_witness=env.get("TEMOIN_JOURNAL_WITNESS") or None,
            trusted_proxies=_networks(env.get("TEMOIN_TRUSTED_PROXIES", "")),
            max_body_bytes=int(env.get("TEMOIN_MAX_BODY_BYTES", "1048576")),
            redaction_workers=max(1, int(env.get("TEMOIN_REDACTION_WORKERS", "2"))),
            redaction_jobs_per_tenant=max(1, int(env.get("TEMOIN_REDACTION_JOBS_PER_TENANT", "4"))),
            redaction_jobs_max=max(1, int(env.get("TEMOIN_REDACTION_JOBS_MAX", "32"))),
            db_pool_size=int(env.get("TEMOIN_DB_POOL_SIZE", "10")),
            db_pool_overflow=int(env.get("TEMOIN_DB_POOL_OVERFLOW", "10")),
            db_pool_timeout_s=float(env.get("TEMOIN_DB_POOL_TIMEOUT_S", "3")),
            db_lock_timeout_s=float(env.get("TEMOIN_DB_LOCK_TIMEOUT_S", "10")),
        )


def _networks(text: str) -> tuple[str, ...]:
    import ipaddress

    out = []
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise ValueError(f"TEMOIN_TRUSTED_PROXIES: {item!r} is not an IP address or network; give the "
                             "reverse proxies' addresses separated by commas, e.g. 127.0.0.1,10.0.0.0/24") from None
    return tuple(out)
