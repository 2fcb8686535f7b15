from socle.migrating import run_migrations
from socle.models import KernelBase

run_migrations(KernelBase.metadata)
