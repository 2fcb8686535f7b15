"""S3 backend through the ``minio`` client (MinIO, or any S3-compatible service)."""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, cast

import certifi
import urllib3
from minio import Minio
from minio.error import InvalidResponseError, S3Error, ServerError

from socle.errors import DigestMismatch, NotFound, message
from socle.storage.api import (
    CHUNK_SIZE,
    DOWNLOAD_PREFIX,
    FileCheck,
    StoredObject,
    check_key,
    nested_name,
    not_found,
    spool,
    unavailable,
)

if TYPE_CHECKING:
    from socle.settings import Settings

log = logging.getLogger("socle.storage")

_MISSING = ("NoSuchKey", "NoSuchObject", "NotFound")
# Statuses of a server that is down or overloaded, not of a request it refuses (501 is « not implemented »).
_DOWN = frozenset({500, 502, 503, 504})
# Below this size an object is put without asking first whether it exists: the question costs a request as
# much as the upload, and writing the same bytes again under their own digest changes nothing.
_PUT_WITHOUT_ASKING = 1024 * 1024
# How long the client waits for the server's next bytes: urllib3 applies it to each read from the socket (and
# to the wait for an answer after a request is sent), not to a whole transfer, so a large download or upload
# that keeps moving is never cut, however long it takes. A server that stops answering (frozen process, paused
# machine, dead server behind a balancer) costs this per attempt, times 1 + SOCLE_S3_RETRIES: a minute each,
# not 5 minutes (about 20 in all), during which an API thread and the user wait.
_READ_TIMEOUT = 60


def client_for(settings: Settings, *, probe: bool = False) -> Minio:
    """The minio client with the settings' retries and connect timeout, the rest as minio builds it itself:
    its defaults retry 5 times with backoff and wait 5 minutes for a connection, a request to an unreachable
    server then takes seconds to turn into a 503.

    ``probe``: the client of the readiness probe, which must answer within seconds whatever the server does. A
    server that accepts connections but never answers (stalled process, paused machine, a balancer in front of
    a dead server) would otherwise hold ``/readyz`` for the read timeout of every attempt, 20 minutes in all:
    here the read timeout is the connect timeout, and there is no retry.
    """
    assert settings.s3_endpoint is not None
    read_timeout = settings.s3_connect_timeout if probe else _READ_TIMEOUT
    retries: urllib3.Retry | bool = (
        False if probe else urllib3.Retry(total=settings.s3_retries, backoff_factor=0.2, status_forcelist=sorted(_DOWN))
    )
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=settings.s3_connect_timeout, read=read_timeout),
        maxsize=10,
        cert_reqs="CERT_REQUIRED",
        ca_certs=os.environ.get("SSL_CERT_FILE") or certifi.where(),
        retries=retries,
    )
    return Minio(
        settings.s3_endpoint,
        access_key=settings.s3_access_key,
        secret_key=settings.s3_secret_key,
        secure=settings.s3_secure,
        region=settings.s3_region,
        http_client=http,
    )


def _status(exc: Exception) -> int | None:
    if isinstance(exc, S3Error):
        return int(exc.response.status)
    if isinstance(exc, ServerError):
        return exc.status_code
    code = getattr(exc, "_code", None)  # InvalidResponseError keeps the status only there
    return code if isinstance(code, int) else None


@contextmanager
def _answering() -> Iterator[None]:
    """A server that does not answer (connection refused, timeout, unknown host, or a 5xx once the client's
    own retries are spent) raises ServiceUnavailable, never the client's exception: the API answers 503 instead
    of a generic 500, and a job is retried later. The cause goes to the log for the operator."""
    try:
        yield
    except urllib3.exceptions.HTTPError as exc:  # MaxRetryError, ProtocolError, timeouts, name resolution
        log.warning("object store unreachable: %s", exc)
        raise unavailable() from exc
    except (S3Error, ServerError, InvalidResponseError) as exc:
        if _status(exc) not in _DOWN:
            raise
        log.warning("object store failing: %s", exc)
        raise unavailable() from exc


class S3Store:
    def __init__(self, client: Minio, bucket: str, spool_dir: Path, probe_client: Minio | None = None) -> None:
        self.client = client
        self.bucket = bucket
        self.spool_dir = spool_dir
        self.probe_client = probe_client or client
        self._bucket_ready = False

    def _name(self, key: str) -> str:
        return "objects/" + nested_name(check_key(key))

    def _ensure_bucket(self, client: Minio | None = None) -> None:
        if not self._bucket_ready:
            client = client or self.client
            with _answering():
                if not client.bucket_exists(self.bucket):
                    client.make_bucket(self.bucket)
            self._bucket_ready = True

    def put(
        self,
        stream: BinaryIO,
        *,
        expected_sha256: str | None = None,
        max_size: int | None = None,
        check: FileCheck | None = None,
    ) -> StoredObject:
        # The key is the digest, known only at the end: spool to local disk first, then upload under the key.
        spooled = spool(
            stream, self.spool_dir, expected_sha256=expected_sha256, max_size=max_size, check=check, durable=False
        )
        try:
            self._ensure_bucket()
            if spooled.size <= _PUT_WITHOUT_ASKING or not self.exists(spooled.sha256):
                with _answering():
                    self.client.fput_object(
                        self.bucket,
                        self._name(spooled.sha256),
                        str(spooled.path),
                        metadata={"x-amz-meta-sha256": spooled.sha256},
                    )
            return StoredObject(spooled.sha256, spooled.size)
        finally:
            spooled.path.unlink(missing_ok=True)

    @contextmanager
    def open(self, key: str) -> Iterator[BinaryIO]:
        try:
            with _answering():
                response = self.client.get_object(self.bucket, self._name(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise not_found(key) from None
            raise
        try:
            yield cast(BinaryIO, response)
        finally:
            response.close()
            response.release_conn()

    @contextmanager
    def local_path(self, key: str) -> Iterator[Path]:
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=DOWNLOAD_PREFIX, dir=self.spool_dir) as folder:
            path = Path(folder) / key
            # One GET, hashed while written (fget_object would ask for the object's size first, then re-read).
            digest = hashlib.sha256()
            with self.open(key) as stream, path.open("wb") as out, _answering():  # cut off mid-download too
                while chunk := stream.read(CHUNK_SIZE):
                    digest.update(chunk)
                    out.write(chunk)
            if digest.hexdigest() != key:  # never hand out bytes that are not what the key promises
                raise DigestMismatch(message("l'objet %(key)s est altéré dans le stockage S3", key=key))
            yield path

    def size(self, key: str) -> int:
        return int(self._stat(key).size or 0)

    def exists(self, key: str) -> bool:
        try:
            self._stat(key)
        except NotFound:
            return False
        return True

    def delete(self, key: str) -> None:
        with _answering():
            self.client.remove_object(self.bucket, self._name(key))  # S3 answers success for a missing object

    def _stat(self, key: str) -> Any:
        try:
            with _answering():
                return self.client.stat_object(self.bucket, self._name(key))
        except S3Error as exc:
            if exc.code in _MISSING:
                raise not_found(key) from None
            raise

    def check(self) -> None:
        self._bucket_ready = False
        self._ensure_bucket(self.probe_client)
