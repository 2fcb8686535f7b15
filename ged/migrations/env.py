from ged.models import GedBase
from socle.migrating import run_migrations

run_migrations(GedBase.metadata)
