"""The assembled platform: settings, database, keys, journal, blob store.

Created once per process (server, CLI command, test) and handed to the parts that need it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from temoin import migrate
from temoin.context import TenantRef
from temoin.coordination import locks_for
from temoin.db import PoolLimits, make_engine, make_sessionmaker
from temoin.evidence.timestamp import Failure, Timestamper, TimestampError
from temoin.extraction import jobs as extraction_jobs
from temoin.extraction.artefacts import PACKAGES
from temoin.identity import shifts
from temoin.identity.models import Tenant
from temoin.jobs import Jobs
from temoin.jobs.inline import InlineBackend
from temoin.journal import checkpoints
from temoin.journal.entry import Actor, EntryDraft
from temoin.journal.service import Journal
from temoin.journal.sinks import FileSink
from temoin.journal.witness import SyslogWitness, witness_from_url
from temoin.keyring import Keyring
from temoin.live.artefacts import LIVE_BACKUPS
from temoin.private_files import private_folder
from temoin.rights import copy_jobs as rights_copy_jobs
from temoin.rights.artefacts import ACCESS_COPIES
from temoin.settings import Settings
from temoin.vault import derived, scrub
from temoin.vault.ingest import unfinished_uploads
from temoin.vault.retention import first_trace_of_kept
from temoin.vault.storage import BlobStore
from temoin.vault.stores import open_blob_store

if TYPE_CHECKING:
    from temoin.jobs.queue import QueueBackend


def _wire() -> None:
    """Where a lower package lets a higher one act (imports go one way: docs/architecture.md)."""
    # What is made from a recording above the vault goes with it (vault.derived); this order is the certificates'.
    for kind in (ACCESS_COPIES, LIVE_BACKUPS, PACKAGES):
        derived.register(kind)
    checkpoints.first_trace_of_kept = first_trace_of_kept  # a prune keeps the traces of recordings still kept
    shifts.unfinished_uploads = unfinished_uploads  # check-in warns of uploads not complete
    # Their job functions are registered with temoin.jobs on import: here, in every process that runs jobs.
    assert extraction_jobs.KIND and scrub.SCRUB_JOB and rights_copy_jobs.DETECT and rights_copy_jobs.REDACT


_wire()


@dataclass
class Platform:
    settings: Settings
    engine: Engine
    sessions: sessionmaker
    keyring: Keyring
    journal: Journal
    store: BlobStore
    timestamper: Timestamper | None = None  # RFC 3161 TSA client, when TEMOIN_TSA_URL is set
    witness: SyslogWitness | None = None  # where checkpoints are also sent (TEMOIN_JOURNAL_WITNESS)
    jobs: Jobs = field(init=False)  # background jobs (TEMOIN_JOBS): in this process, or queued for the workers

    @classmethod
    def open(
        cls,
        settings: Settings | None = None,
        *,
        init: bool = False,
        schema: Literal["upgrade", "start", "check"] | None = None,
    ) -> Platform:
        """Open the platform; with init=True create the data folder and keys if missing, and migrate the schema.

        `schema` (by default "upgrade" with init, else "check"): "check" refuses a schema this code cannot run on
        (temoin.migrate: none, older, or newer past a contract migration); "start" (`temoin serve`) creates it in an
        empty database, else checks; "upgrade" migrates, as init does."""
        settings = settings or Settings.from_env()
        if init:
            settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)  # private: see temoin.private_files
        keyring = Keyring.load(settings, create=init)
        timestamper = _timestamper(settings)
        engine = make_engine(
            settings.database_url,
            PoolLimits(
                settings.db_pool_size, settings.db_pool_overflow, settings.db_pool_timeout_s, settings.db_lock_timeout_s
            ),
        )
        try:
            mode = schema or ("upgrade" if init else "check")
            if mode == "upgrade":
                migrate.upgrade(engine)
            elif mode == "start":
                migrate.start(engine)
            else:
                migrate.check(engine)
        except BaseException:
            engine.dispose()
            raise
        # Nothing is repaired here: a command must see the journal as it is (`temoin serve` start-up and
        # `temoin journal repair` bring the file level with the database).
        platform = cls(
            settings=settings,
            engine=engine,
            sessions=make_sessionmaker(engine),
            keyring=keyring,
            # A journal folder outside the data folder (several nodes share one) is made private as the data folder is.
            journal=Journal(
                FileSink(private_folder(settings.journal_dir) if settings.journal_folder else settings.journal_dir)
            ),
            store=open_blob_store(settings.blob_store_url, settings.vault_dir),
            timestamper=timestamper,
            witness=witness_from_url(settings.journal_witness),
        )
        platform.jobs = Jobs(platform, _job_backend(platform))
        return platform

    @contextmanager
    def session(self) -> Iterator[Session]:
        db = self.sessions()
        try:
            yield db
        finally:
            db.close()

    def tenant(self, db: Session, slug: str) -> Tenant:
        tenant = db.scalar(select(Tenant).where(Tenant.slug == slug))
        if tenant is None:
            raise LookupError(f"no tenant {slug!r}; list them with `temoin admin tenant list`")
        return tenant

    def record(self, db: Session, draft: EntryDraft, tenant: TenantRef | None) -> None:
        """Journal `draft` in the tenant's chain, or the platform's with None (platform-wide events only: a
        tenant's row is read with `db.get_one`, so one that is missing fails rather than lands here)."""
        self.journal.write(
            db, draft, tenant_id=tenant.id if tenant else None, tenant_slug=tenant.slug if tenant else None
        )

    def close(self) -> None:
        self.jobs.close()
        locks_for(self.engine).close()  # this node's coordination locks: released
        self.engine.dispose()


def _job_backend(p: Platform) -> InlineBackend | QueueBackend:
    if p.settings.jobs == "postgresql":
        from temoin.jobs.queue import QueueBackend  # procrastinate is loaded only where jobs are queued

        return QueueBackend(p.settings.database_url, p.settings.db_pool_timeout_s)
    return InlineBackend(p, p.settings.job_threads)


def _timestamper(settings: Settings) -> Timestamper | None:
    """The TSA client from the settings; a misconfiguration stops start-up rather than silently not stamping."""
    if not settings.tsa_url:
        return None
    bundle = None
    if settings.tsa_ca_bundle is not None:
        try:
            bundle = settings.tsa_ca_bundle.read_bytes()
        except OSError as exc:
            raise TimestampError(
                Failure.CONFIG, f"cannot read TEMOIN_TSA_CA_BUNDLE {settings.tsa_ca_bundle}: {exc.strerror}"
            ) from None
    auth = (settings.tsa_username, settings.tsa_password or "") if settings.tsa_username else None
    return Timestamper(url=settings.tsa_url, timeout_s=settings.tsa_timeout_s, ca_bundle_pem=bundle, auth=auth)


SYSTEM = Actor.system
