"""Every domain's tables, gathered for migrations. Domain packages own their models."""

from temoin.axis import models as axis_models  # noqa: F401 - imported to register the tables with the metadata
from temoin.db import Base
from temoin.extraction import models as extraction_models  # noqa: F401 - imported to register its tables
from temoin.geo import models as geo_models  # noqa: F401 - imported to register its tables
from temoin.identity import models as identity_models  # noqa: F401 - imported to register its tables
from temoin.jobs import models as jobs_models  # noqa: F401 - imported to register its tables
from temoin.journal import models as journal_models  # noqa: F401 - imported to register its tables
from temoin.live import models as live_models  # noqa: F401 - imported to register its tables
from temoin.rights import models as rights_models  # noqa: F401 - imported to register its tables
from temoin.supervision import (
    dispatch_models,  # noqa: F401 - imported to register its tables
    models as supervision_models,  # noqa: F401 - imported to register its tables
)
from temoin.vault import models as vault_models  # noqa: F401 - imported to register its tables

metadata = Base.metadata
