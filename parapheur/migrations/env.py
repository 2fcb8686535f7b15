from parapheur.models import ParapheurBase
from socle.migrating import run_migrations

run_migrations(ParapheurBase.metadata)
