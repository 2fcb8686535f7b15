from archive.models import ArchiveBase
from socle.migrating import run_migrations

run_migrations(ArchiveBase.metadata)
