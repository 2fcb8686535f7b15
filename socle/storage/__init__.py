"""Object storage: ``get_store()`` returns the backend chosen by the settings."""

from __future__ import annotations

from functools import lru_cache

from socle.settings import Settings, get_settings
from socle.storage.api import ObjectStore, StoredObject, check_key, sha256_of_file

__all__ = ["ObjectStore", "StoredObject", "check_key", "get_store", "sha256_of_file", "store_for"]


def store_for(settings: Settings) -> ObjectStore:
    if settings.storage_backend == "s3":
        from socle.storage.s3 import S3Store, client_for

        return S3Store(
            client_for(settings),
            settings.s3_bucket,
            settings.data_dir.resolve() / "spool",
            probe_client=client_for(settings, probe=True),
        )
    from socle.storage.local import LocalStore

    return LocalStore(settings.effective_storage_path)


@lru_cache(maxsize=1)
def get_store() -> ObjectStore:
    return store_for(get_settings())
