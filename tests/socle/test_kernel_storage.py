"""The object-store contract, run against both backends: local folder and S3 (moto, or the MinIO of CI)."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import urllib3
from minio import Minio

from socle.errors import DigestMismatch, InvalidInput, NotFound, PayloadTooLarge, ServiceUnavailable
from socle.storage import ObjectStore, store_for
from socle.storage.api import nested_name
from socle.storage.local import LocalStore
from socle.storage.s3 import S3Store

from conftest import S3Server


@dataclass
class Backend:
    name: str
    store: ObjectStore
    spool: Path  # where writes are staged: nothing may be left there
    objects: Callable[[], list[str]]  # the keys really present in the backend


def _minio(server: S3Server, **options: object) -> Minio:
    return Minio(
        server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        secure=server.secure,
        region="us-east-1",
        **options,  # type: ignore[arg-type]
    )


def _local(tmp_path: Path) -> Backend:
    root = tmp_path / "objects"
    store = LocalStore(root)

    def objects() -> list[str]:
        return sorted(path.name for path in root.rglob("*") if path.is_file() and ".tmp" not in path.parts)

    return Backend("local", store, root / ".tmp", objects)


def _s3(tmp_path: Path, server: S3Server) -> Backend:
    client = _minio(server)
    bucket = f"t{uuid.uuid4().hex[:12]}"
    store = S3Store(client, bucket, tmp_path / "spool")
    store.check()  # creates the bucket, as the readiness probe does

    def objects() -> list[str]:
        return sorted(obj.object_name.rsplit("/", 1)[-1] for obj in client.list_objects(bucket, recursive=True))

    return Backend("s3", store, tmp_path / "spool", objects)


@pytest.fixture(params=["local", "s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    if request.param == "local":
        return _local(tmp_path)
    return _s3(tmp_path, request.getfixturevalue("s3_server"))


def _leftovers(folder: Path) -> list[Path]:
    return list(folder.rglob("*")) if folder.exists() else []


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------------------------------------
# The contract, on both backends


def test_put_returns_the_sha256_key_and_size(backend: Backend) -> None:
    data = b"Arr\xc3\xaat\xc3\xa9 du maire n\xc2\xb0 12"
    stored = backend.store.put(io.BytesIO(data))
    assert stored.key == stored.sha256 == _sha(data)
    assert stored.size == len(data)
    assert backend.store.exists(stored.key)
    assert backend.store.size(stored.key) == len(data)
    with backend.store.open(stored.key) as stream:
        assert stream.read() == data
    assert _leftovers(backend.spool) == []


def test_same_bytes_twice_are_stored_once(backend: Backend) -> None:
    first = backend.store.put(io.BytesIO(b"une fois"))
    second = backend.store.put(io.BytesIO(b"une fois"), expected_sha256=first.key.upper())  # digests in any case
    other = backend.store.put(io.BytesIO(b"une autre"))
    assert first == second
    assert other.key != first.key
    assert backend.objects() == sorted([first.key, other.key])
    assert _leftovers(backend.spool) == []


def test_digest_mismatch_stores_nothing(backend: Backend) -> None:
    data = b"contenu transmis"
    with pytest.raises(DigestMismatch) as caught:
        backend.store.put(io.BytesIO(data), expected_sha256=_sha(b"contenu annonce"))
    assert caught.value.extra == {"expected": _sha(b"contenu annonce"), "actual": _sha(data)}
    assert not backend.store.exists(_sha(data))
    assert backend.objects() == []
    assert _leftovers(backend.spool) == []

    stored = backend.store.put(io.BytesIO(data), expected_sha256=_sha(data))
    assert backend.objects() == [stored.key]


def test_too_large_stores_nothing(backend: Backend) -> None:
    data = os.urandom(3 * 1024 * 1024 + 5)  # more than one chunk
    with pytest.raises(PayloadTooLarge) as caught:
        backend.store.put(io.BytesIO(data), max_size=len(data) - 1)
    assert caught.value.status == 413 and caught.value.extra == {"max_size": len(data) - 1}
    assert not backend.store.exists(_sha(data))
    assert backend.objects() == []
    assert _leftovers(backend.spool) == []

    exact = backend.store.put(io.BytesIO(data), max_size=len(data))  # the limit itself is allowed
    assert exact.size == len(data)


def test_a_refused_file_check_stores_nothing(backend: Backend) -> None:
    data = b"pas un PDF"
    seen: list[bytes] = []

    def refuse(path: Path) -> None:
        seen.append(path.read_bytes())  # the check sees the complete file, before anything is visible
        assert not backend.store.exists(_sha(data))
        raise InvalidInput("refusé par la vérification")

    with pytest.raises(InvalidInput):
        backend.store.put(io.BytesIO(data), check=refuse)
    assert seen == [data]
    assert backend.objects() == []
    assert _leftovers(backend.spool) == []

    stored = backend.store.put(io.BytesIO(data), check=lambda path: None)
    assert backend.objects() == [stored.key]


def test_a_large_stream_round_trips(backend: Backend) -> None:
    data = os.urandom(12 * 1024 * 1024)
    stored = backend.store.put(io.BytesIO(data))
    assert stored.key == _sha(data) and stored.size == len(data)
    with backend.store.open(stored.key) as stream:
        digest, size = hashlib.sha256(), 0
        while chunk := stream.read(256 * 1024):
            digest.update(chunk)
            size += len(chunk)
    assert digest.hexdigest() == stored.key and size == len(data)
    with backend.store.local_path(stored.key) as path:
        assert path.read_bytes() == data
    assert backend.store.size(stored.key) == len(data)
    assert _leftovers(backend.spool) == []


def test_delete_removes_one_object_for_good(backend: Backend) -> None:
    gone, kept = backend.store.put(io.BytesIO(b"a eliminer")), backend.store.put(io.BytesIO(b"a garder"))
    backend.store.delete(gone.key)
    assert not backend.store.exists(gone.key) and backend.objects() == [kept.key]
    backend.store.delete(gone.key)  # twice: nothing more happens
    assert backend.objects() == [kept.key]
    with pytest.raises(InvalidInput):
        backend.store.delete("../" + "a" * 61)


def test_unknown_key_is_not_found(backend: Backend) -> None:
    key = _sha(b"jamais stocke")
    assert not backend.store.exists(key)
    with pytest.raises(NotFound), backend.store.open(key):
        pass
    with pytest.raises(NotFound), backend.store.local_path(key):
        pass
    with pytest.raises(NotFound):
        backend.store.size(key)
    assert _leftovers(backend.spool) == []


@pytest.mark.parametrize(
    "key",
    ["../etc/passwd", "", "A" * 64, "ab" * 31, "../" + "a" * 61, "a" * 64 + "/..", "a" * 63 + "\n", "g" * 64],
)
def test_an_invalid_key_is_refused(backend: Backend, key: str) -> None:
    with pytest.raises(InvalidInput), backend.store.open(key):
        pass
    with pytest.raises(InvalidInput), backend.store.local_path(key):
        pass
    with pytest.raises(InvalidInput):
        backend.store.size(key)
    with pytest.raises(InvalidInput):
        backend.store.exists(key)


def test_check_passes_on_a_working_store(backend: Backend) -> None:
    backend.store.check()
    backend.store.check()
    assert backend.objects() == []


# ---------------------------------------------------------------------------------------------------------
# Backend specifics


def test_local_objects_are_read_only_and_no_upload_is_left(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "objects")
    stored = store.put(io.BytesIO(b"scelle"))
    path = tmp_path / "objects" / nested_name(stored.key)
    assert path.read_bytes() == b"scelle"
    assert stat.S_IMODE(path.stat().st_mode) == 0o440
    with store.local_path(stored.key) as local:
        assert local == path
    store.put(io.BytesIO(b"scelle"))  # the second write of the same bytes changes nothing
    assert stat.S_IMODE(path.stat().st_mode) == 0o440
    assert list((tmp_path / "objects" / ".tmp").glob(".upload-*")) == []


def test_local_check_fails_when_the_folder_cannot_be_written(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_bytes(b"")
    with pytest.raises(OSError):
        LocalStore(blocker).check()


def test_store_for_follows_the_settings(tmp_path: Path, s3_server: S3Server) -> None:
    from socle.settings import Settings

    local = store_for(Settings(data_dir=tmp_path, storage_path=tmp_path / "ailleurs"))
    assert isinstance(local, LocalStore) and local.root == (tmp_path / "ailleurs").resolve()

    bucket = f"t{uuid.uuid4().hex[:12]}"
    env = s3_server.env(bucket)
    remote = store_for(
        Settings(
            data_dir=tmp_path,
            storage_backend="s3",
            s3_endpoint=env["SOCLE_S3_ENDPOINT"],
            s3_access_key=env["SOCLE_S3_ACCESS_KEY"],
            s3_secret_key=env["SOCLE_S3_SECRET_KEY"],
            s3_secure=s3_server.secure,
            s3_region="us-east-1",
            s3_bucket=bucket,
        )
    )
    assert isinstance(remote, S3Store)
    stored = remote.put(io.BytesIO(b"par les reglages"))
    assert _minio(s3_server).stat_object(bucket, "objects/" + nested_name(stored.key)).size == 16
    assert list((tmp_path / "spool").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("SOCLE_S3_RETRIES", "-1", "doit valoir au moins 0"),
        ("SOCLE_S3_RETRIES", "11", "doit valoir au plus 10"),
        ("SOCLE_S3_RETRIES", "beaucoup", "nombre entier attendu"),
        ("SOCLE_S3_CONNECT_TIMEOUT", "0", "doit être supérieur à 0"),
        ("SOCLE_S3_CONNECT_TIMEOUT", "cinq", "nombre attendu"),
    ],
)
def test_a_wrong_s3_retries_or_timeout_is_refused_naming_it(
    use_env: Callable[..., None], name: str, value: str, says: str
) -> None:
    from socle.errors import SettingsError
    from socle.settings import load_settings

    use_env(**{name: value})
    with pytest.raises(SettingsError) as refused:
        load_settings()
    assert f"{name} : " in str(refused.value) and says in str(refused.value), str(refused.value)


@pytest.fixture
def s3_backend(tmp_path: Path, s3_server: S3Server) -> Iterator[tuple[S3Store, Minio]]:
    backend = _s3(tmp_path, s3_server)
    assert isinstance(backend.store, S3Store)
    yield backend.store, backend.store.client


def test_s3_local_path_detects_an_object_altered_behind_its_back(s3_backend: tuple[S3Store, Minio]) -> None:
    store, client = s3_backend
    stored = store.put(io.BytesIO(b"original"))
    with store.local_path(stored.key) as path:
        assert path.read_bytes() == b"original"
        assert path.is_relative_to(store.spool_dir)
        assert path.parent.parent == store.spool_dir and path.parent.name.startswith(".download-")  # see clean-up
    assert not path.exists()  # the local copy is removed once used

    client.put_object(store.bucket, "objects/" + nested_name(stored.key), io.BytesIO(b"falsifie"), 8)
    with pytest.raises(DigestMismatch), store.local_path(stored.key):
        pass
    assert list(store.spool_dir.iterdir()) == []


def test_s3_objects_carry_their_digest(s3_backend: tuple[S3Store, Minio]) -> None:
    store, client = s3_backend
    stored = store.put(io.BytesIO(b"avec metadonnees"))
    info = client.stat_object(store.bucket, "objects/" + nested_name(stored.key))
    assert info.metadata["x-amz-meta-sha256"] == stored.key


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again on return: nothing listens there


def test_s3_check_fails_when_the_server_is_unreachable(tmp_path: Path) -> None:
    client = Minio(
        f"127.0.0.1:{_closed_port()}",
        access_key="x",
        secret_key="y",
        secure=False,
        region="us-east-1",
        http_client=urllib3.PoolManager(retries=urllib3.Retry(total=0)),
    )
    with pytest.raises(ServiceUnavailable):  # not the client's own exception: the API answers 503
        S3Store(client, "socle", tmp_path / "spool").check()
