"""Platform settings, read once from the environment by Settings.from_env() (variables TEMOIN_<FIELD>, e.g.
TEMOIN_SESSION_HOURS); Settings(...) takes only what it is given, and the defaults.

Embedded defaults: SQLite and a local data folder under TEMOIN_HOME (default ./var),
so that nothing needs to be installed to run a demo.

A bad value raises InvalidSettings, one message naming each variable, what is wrong with it and the expected form;
the `temoin` command prints it and exits 2.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import os
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, EnvSettingsSource, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from temoin.errors import InvalidInput

PREFIX = "TEMOIN_"
# Fields whose variable is not PREFIX + the field's name (older names, kept for existing deployments).
VARIABLES = {"master_key_env": "TEMOIN_MASTER_KEY", "secure_cookies": "TEMOIN_INSECURE_COOKIES"}

# TEMOIN_* variables that are not settings but are read elsewhere: the CLI's token, the camera and verify tools,
# the demo, the redaction engine's threads, the test command.
OTHER_VARIABLES = frozenset(
    {"TEMOIN_API_TOKEN", "TEMOIN_TRUST_STORE", "TEMOIN_DEMO_LIVE_EVERY_S", "TEMOIN_REDACTION_THREADS"}
)
OTHER_PREFIXES = ("TEMOIN_TEST_",)
# Settings that were removed, and what replaces them: a deployment that still sets one is told so at start.
REMOVED = {
    "TEMOIN_REDACTION_WORKERS": "redacted copies run as background jobs: TEMOIN_JOB_THREADS (inline) or "
    "TEMOIN_WORKER_CONCURRENCY (temoin worker) set how many run at once",
}

log = logging.getLogger("temoin.settings")

# The environment Settings() reads, set by from_env only: Settings(...) takes what it is given and the defaults, as
# tests and tools expect whatever the shell exports; from_env(env) reads `env` instead of os.environ.
_environ: ContextVar[Mapping[str, str] | None] = ContextVar("temoin_settings_environ", default=None)


class InvalidSettings(InvalidInput, ValueError):
    """A TEMOIN_* variable has a value the platform cannot use: the message names it and the expected form."""


def variable(field: str) -> str:
    """The environment variable that sets `field`."""
    return VARIABLES.get(field, PREFIX + field.upper())


class _Environment(EnvSettingsSource):
    """TEMOIN_* variables, from os.environ or a given mapping; TEMOIN_MASTER_KEY and TEMOIN_INSECURE_COOKIES
    (true: cookies without the Secure flag) keep their names."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._given = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        from pydantic_settings.sources.utils import parse_env_vars

        return parse_env_vars(self._given, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        if field_name not in VARIABLES:
            return super().get_field_value(field, field_name)
        value = self.env_vars.get(VARIABLES[field_name].lower())
        if field_name == "secure_cookies" and value is not None:
            value = {"1": "0", "true": "0", "yes": "0", "on": "0", "0": "1", "false": "1", "no": "1", "off": "1"}.get(
                value.strip().lower(), value
            )
        return value, field_name, False


def _split(value: Any) -> Any:
    """A comma-separated variable as a tuple (whitespace and empty items dropped)."""
    if isinstance(value, str):
        return tuple(item.strip() for item in value.split(",") if item.strip())
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix=PREFIX, frozen=True, extra="ignore", env_ignore_empty=True, validate_default=True
    )

    home: Path = Field(Path("./var"), description="data folder: database, vault, journal files, keys")
    database_url: str = Field("", description="SQLAlchemy URL of the database; empty: SQLite in the data folder")
    blob_store_url: str = Field(
        "",
        description="where the sealed blobs live: empty, HOME/vault; s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME], "
        "an S3-compatible object store (credentials: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY)",
    )
    master_key_file: Path | None = Field(None, description="file of the master key (default: HOME/keys/master.key)")
    master_key_env: str | None = Field(None, repr=False, description="the master key itself, base64 of 32 bytes")
    secure_cookies: bool = Field(True, description="cookies marked Secure (TEMOIN_INSECURE_COOKIES=1: plain HTTP)")
    session_hours: int = Field(10, gt=0, description="how long a web sign-in lasts, in hours")
    device_clock_window_s: int = Field(300, gt=0, description="clock skew accepted on device request signatures")
    max_manifest_bytes: int = Field(1_048_576, gt=0, description="largest recording manifest a camera may send")
    max_segment_bytes: int = Field(4 * 1024**3, gt=0, description="largest media segment a camera may send")
    retention_interval_s: int = Field(3600, gt=0, description="how often the server applies the retention periods")
    login_max_failures: int = Field(5, gt=0, description="sign-in failures free of delay per account (twice per IP)")
    login_window_s: int = Field(900, gt=0, description="sign-in failures older than this are forgotten")
    live_ice_servers: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="STUN/TURN servers of the live media plane; none: host candidates only (LAN, public address)"
    )
    live_max_viewers: int = Field(8, gt=0, description="viewers per live stream")
    live_stall_after_s: float = Field(2.0, gt=0, description="silence after which a live stream is shown link lost")
    node_url: str = Field(
        "",
        description="this node's own base URL as the other nodes reach it (http://10.0.0.5:8000): live media crosses "
        "nodes (WHIP/WHEP on any node, media on the node that owns the stream); empty: one node",
    )
    node_secret: str | None = Field(
        None, repr=False, description="secret shared by the nodes (at least 32 characters) signing live forwards"
    )
    live_owner_lease_s: float = Field(
        10.0, ge=1, description="a node silent this long loses the live streams it owned (another takes them)"
    )
    tsa_url: str = Field("", description="RFC 3161 timestamp authority (docs/timestamping.md); empty: no timestamps")
    tsa_ca_bundle: Path | None = Field(None, description="PEM of the TSA's CA certificates: replies checked against it")
    tsa_timeout_s: float = Field(10.0, gt=0, description="longest wait for the TSA's connection, then for its answer")
    tsa_username: str | None = Field(None, description="HTTP basic authentication user at the TSA")
    tsa_password: str | None = Field(None, repr=False, description="HTTP basic authentication password at the TSA")
    journal_seal_interval_s: float = Field(
        60.0, gt=0, description="the server seals every chain whose head moved this often"
    )
    journal_witness: str | None = Field(None, description="syslog+tcp://HOST:PORT receiving every journal checkpoint")
    journal_folder: Path | None = Field(
        None,
        description="folder of the journal's files (default: HOME/journal); several nodes share this one folder "
        "(a network share with working flock), each keeping the rest of its data folder to itself",
    )
    trusted_proxies: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description="reverse proxies whose X-Forwarded-For is believed; none: the peer's address is the client's"
    )
    max_body_bytes: int = Field(1_048_576, gt=0, description="largest request body of an ordinary route (not uploads)")
    jobs: Literal["inline", "postgresql"] = Field(
        "inline",
        description="who runs background jobs: inline (this process's threads) or postgresql (`temoin worker`s)",
    )
    job_threads: int = Field(2, gt=0, description="inline jobs running at once in one process")
    worker_concurrency: int = Field(2, gt=0, description="jobs one `temoin worker` runs at once")
    worker_heartbeat_s: float = Field(10.0, gt=0, description="how often a worker says it is alive")
    worker_stalled_after_s: float = Field(
        30.0, gt=0, description="a worker silent this long is taken for dead: its jobs run again on another"
    )
    redaction_jobs_per_tenant: int = Field(4, description="redaction jobs waiting or running per tenant (at least 1)")
    redaction_jobs_max: int = Field(32, description="redaction jobs waiting or running in all (at least 1)")
    events_url: str = Field(
        "",
        description="nats://HOST:PORT[,...] of a NATS JetStream carrying the CSU's events between nodes; empty: none",
    )
    events_stream: str = Field(
        "TEMOIN", pattern=r"^[A-Za-z0-9_-]+$", description="JetStream stream (and subject prefix) of the events"
    )
    events_keep_s: int = Field(
        86400, gt=0, description="how long JetStream keeps the events (a dashboard catches up within it)"
    )
    # Database waits are bounded, so that a burst of requests is answered 503 instead of freezing the server.
    db_pool_size: int = Field(10, gt=0, description="database connections kept per process")
    db_pool_overflow: int = Field(10, ge=0, description="database connections opened beyond the pool under load")
    db_pool_timeout_s: float = Field(3.0, gt=0, description="how long a request waits for a free connection (then 503)")
    db_lock_timeout_s: float = Field(10.0, gt=0, description="how long a statement waits for a lock (then 503)")

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InvalidSettings(explain(exc)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Arguments first, then the environment (from_env only); no .env or secrets files.
        environ = _environ.get()
        return (init_settings,) if environ is None else (init_settings, _Environment(settings_cls, environ))

    @field_validator("home")
    @classmethod
    def _absolute_home(cls, home: Path) -> Path:
        return home.resolve()

    @field_validator("database_url")
    @classmethod
    def _sqlite_in_home(cls, url: str, info: ValidationInfo) -> str:
        home = info.data.get("home")
        return url or (f"sqlite:///{home / 'temoin.db'}" if home is not None else url)

    @field_validator("tsa_url")
    @classmethod
    def _strip(cls, url: str) -> str:
        return url.strip()

    @field_validator("blob_store_url")
    @classmethod
    def _object_store(cls, url: str) -> str:
        url = url.strip()
        if url and not url.startswith("s3://"):
            raise ValueError("the blob store must be empty (local files) or an s3://BUCKET[/PREFIX] URL")
        if "@" in url:  # nor in its endpoint: the store's error messages name it
            raise ValueError(
                "credentials never go in the blob store URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
            )
        return url

    @field_validator("node_url")
    @classmethod
    def _node_url(cls, url: str) -> str:
        url = url.strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise ValueError("the node URL must be http://HOST:PORT or https://HOST:PORT, as the other nodes reach it")
        return url

    @field_validator("node_secret")
    @classmethod
    def _node_secret(cls, secret: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("node_url") and (secret is None or len(secret) < 32):
            raise ValueError(
                "with TEMOIN_NODE_URL set, give every node the same TEMOIN_NODE_SECRET of at least 32 characters "
                "(e.g. `openssl rand -base64 32`): it signs the live requests one node forwards to another"
            )
        return secret

    @field_validator("live_ice_servers", mode="before")
    @classmethod
    def _servers(cls, value: Any) -> Any:
        return _split(value)

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        out = []
        for item in _split(value):
            try:
                out.append(str(ipaddress.ip_network(item, strict=False)))
            except (TypeError, ValueError):
                raise ValueError(
                    f"{item!r} is not an IP address or network; give the reverse proxies' addresses "
                    "separated by commas, e.g. 127.0.0.1,10.0.0.0/24"
                ) from None
        return tuple(out)

    @field_validator("redaction_jobs_per_tenant", "redaction_jobs_max")
    @classmethod
    def _at_least_one(cls, value: int) -> int:
        return max(1, value)

    @property
    def vault_dir(self) -> Path:
        return self.home / "vault"

    @property
    def journal_dir(self) -> Path:
        return self.journal_folder if self.journal_folder is not None else self.home / "journal"

    @property
    def keys_dir(self) -> Path:
        return self.home / "keys"

    @property
    def live_backup_dir(self) -> Path:
        return self.home / "live-backup"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings from `env` (default: the process's environment) alone."""
        environ = os.environ if env is None else env
        for warning in unknown_variables(environ):
            log.warning("%s", warning)
        token = _environ.set(environ)
        try:
            return cls()
        finally:
            _environ.reset(token)


def unknown_variables(environ: Mapping[str, str]) -> list[str]:
    """What to tell of TEMOIN_* variables that no part of Témoin reads (a typo, or a removed setting): each is
    ignored, so a deployment that relies on one would otherwise never learn that it has no effect."""
    known = {variable(name) for name in Settings.model_fields} | OTHER_VARIABLES
    said = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in known or name.startswith(OTHER_PREFIXES):
            continue
        if name in REMOVED:
            said.append(f"{name} is no longer a setting and is ignored: {REMOVED[name]}")
            continue
        close = difflib.get_close_matches(name, sorted(known), n=1, cutoff=0.8)
        hint = f" (did you mean {close[0]}?)" if close else ""
        said.append(f"{name} is not a Témoin setting and is ignored{hint}; the README lists the settings")
    return said


def _expected(field: FieldInfo) -> str:
    kind = str(field.annotation)
    if "tuple" in kind:
        form = "values separated by commas"
    elif "bool" in kind:
        form = "1 or 0 (or true/false)"
    elif "int" in kind:
        form = "a whole number"
    elif "float" in kind:
        form = "a number"
    elif "Path" in kind:
        form = "a file or folder path"
    else:
        form = "text"
    bounds = [
        f"{'>' if hasattr(m, 'gt') else '>='} {getattr(m, 'gt', getattr(m, 'ge', None))}"
        for m in field.metadata
        if hasattr(m, "gt") or hasattr(m, "ge")
    ]
    default = field.default
    example = f", e.g. {default}" if default not in (None, "", ()) and not isinstance(default, bool) else ""
    return f"{form}{' ' + bounds[0] if bounds else ''}{example} ({field.description})"


def explain(exc: ValidationError) -> str:
    """One line per bad variable: its name, its value, what is wrong, the expected form."""
    lines = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        field = Settings.model_fields.get(name)
        if field is None:
            lines.append(error["msg"])
            continue
        problem = error["msg"].removeprefix("Value error, ")
        value = (
            ""
            if error["type"] == "missing" or Settings.model_fields[name].repr is False or name == "blob_store_url"
            else f"={error['input']!r}"
        )  # secrets are never printed
        expected = "" if error["type"] == "value_error" else f"; expected {_expected(field)}"  # it says the form
        lines.append(f"{variable(name)}{value}: {problem[:1].lower() + problem[1:]}{expected}")
    return "\n".join(lines)
