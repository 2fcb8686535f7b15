from interop.models import InteropBase
from socle.migrating import run_migrations

run_migrations(InteropBase.metadata)
