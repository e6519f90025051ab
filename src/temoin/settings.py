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
    # Login throttling: this many failures in the window locks the account+address.
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
            db_pool_size=int(env.get("TEMOIN_DB_POOL_SIZE", "10")),
            db_pool_overflow=int(env.get("TEMOIN_DB_POOL_OVERFLOW", "10")),
            db_pool_timeout_s=float(env.get("TEMOIN_DB_POOL_TIMEOUT_S", "3")),
            db_lock_timeout_s=float(env.get("TEMOIN_DB_LOCK_TIMEOUT_S", "10")),
        )
