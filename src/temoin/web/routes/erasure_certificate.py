"""The erasure certificate of a rights request, as a PDF (RIGHTS_MANAGE, the request's own commune); each issue
is journaled with the PDF's SHA-256."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path
from fastapi.responses import Response
from sqlalchemy.orm import Session

from temoin.law.access import Permission
from temoin.platform import Platform
from temoin.reports import erasure_certificate
from temoin.web.deps import Principal, get_db, get_platform, require

RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
router = APIRouter(prefix="/api/v1/rights", tags=["rights"])


@router.get(
    "/requests/{request_id}/erasure-certificate.pdf",
    summary="The erasure certificate (PDF): each recording erased at the request, with the platform's signed "
    "deletion certificate and the signing key's fingerprint",
)
def erasure_certificate_pdf(
    request_id: RowId,
    who: Principal = require(Permission.RIGHTS_MANAGE),
    db: Session = Depends(get_db),
    p: Platform = Depends(get_platform),
) -> Response:
    req, pdf = erasure_certificate.issue(p, db, who.user, request_id)
    return Response(
        pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="certificat-effacement-{req.id}.pdf"',
            "Cache-Control": "no-store",
        },
    )
