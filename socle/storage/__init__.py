"""Object storage: ``get_store()`` returns the backend chosen by the settings."""

from __future__ import annotations

from functools import lru_cache

from socle.settings import Settings, get_settings
from socle.storage.api import ObjectStore, StoredObject, check_key, sha256_of_file

__all__ = ["ObjectStore", "StoredObject", "check_key", "get_store", "sha256_of_file", "store_for"]


def store_for(settings: Settings) -> ObjectStore:
    if settings.storage_backend == "s3":
        from minio import Minio

        from socle.storage.s3 import S3Store

        assert settings.s3_endpoint is not None
        client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key,
            secure=settings.s3_secure,
            region=settings.s3_region,
        )
        return S3Store(client, settings.s3_bucket, settings.data_dir.resolve() / "spool")
    from socle.storage.local import LocalStore

    return LocalStore(settings.effective_storage_path)


@lru_cache(maxsize=1)
def get_store() -> ObjectStore:
    return store_for(get_settings())
