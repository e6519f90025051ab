"""Extraction packaging as a job (temoin.jobs): asked for by a web node, built by whichever process runs jobs."""

from __future__ import annotations

from typing import Any

from temoin import jobs
from temoin.extraction.models import Extraction, ProcedureType, RecipientKind
from temoin.extraction.package import ExtractionRequest, TrimRequest, extract
from temoin.extraction.plan import ExtractionNotFound
from temoin.extraction.writing import package_name
from temoin.identity.models import Tenant, User
from temoin.vault import artefact_blobs
from temoin.vault.context import VaultContext

KIND = "extraction.package"


def job_args(user: User, request: ExtractionRequest, extraction_id: str) -> dict[str, Any]:
    trim = request.trim
    return {
        "user_id": user.id,
        "extraction_id": extraction_id,
        "recording_ids": list(request.recording_ids),
        "recipient_name": request.recipient_name,
        "recipient_kind": request.recipient_kind.value,
        "procedure_type": request.procedure_type.value,
        "reference": request.reference,
        "trim": None
        if trim is None
        else {"recording_id": trim.recording_id, "start_s": trim.start_s, "end_s": trim.end_s},
    }


def _package(p: VaultContext, run: jobs.Run, args: dict[str, Any]) -> dict[str, str]:
    """Build the package; an attempt after a killed one finds the extraction already recorded, or builds it again
    from the start (the zip is staged in the store and promoted whole, the row and journal entries in one
    transaction)."""
    extraction_id = args["extraction_id"]
    with p.session() as db:
        if db.get(Extraction, extraction_id) is not None:
            return {"extraction_id": extraction_id}
        user = db.get(User, args["user_id"])
        if user is None or not user.active:
            raise ExtractionNotFound(
                f"the user who asked for extraction {extraction_id} no longer exists or is disabled"
            )
        trim = args["trim"]
        request = ExtractionRequest(
            recording_ids=args["recording_ids"],
            recipient_name=args["recipient_name"],
            recipient_kind=RecipientKind(args["recipient_kind"]),
            procedure_type=ProcedureType(args["procedure_type"]),
            reference=args["reference"],
            trim=None if trim is None else TrimRequest(trim["recording_id"], trim["start_s"], trim["end_s"]),
        )
        try:
            row, _ = extract(p, db, user, request, progress=run.progress, extraction_id=extraction_id)
        except jobs.JobCancelled:
            # Cancelled at the last report, after the zip was promoted in the store: no row names it, remove it.
            db.rollback()
            if db.get(Extraction, extraction_id) is None:
                tenant = db.get_one(Tenant, user.tenant_id)
                artefact_blobs.remove(p.store, p.settings.home, [package_name(tenant.slug, extraction_id)])
            raise
        return {"extraction_id": row.id}


jobs.register(KIND, _package)
