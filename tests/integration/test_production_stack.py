"""The same chain on the production stack: PostgreSQL, Redis with one worker process per service, and S3."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import pytest
from minio import Minio

from conftest import S3Server, pdfsig, socle_command

pytestmark = pytest.mark.integration


def _outputs(stdout: str) -> dict[str, Path]:
    found = dict(re.findall(r"^(PDF signé|Paquet SEDA|Accusé de dépôt) : (.+)$", stdout, re.MULTILINE))
    return {label: Path(path) for label, path in found.items()}


def test_demo_runs_on_postgres_redis_and_s3(
    own_postgres_url: str, redis_url: str, s3_server: S3Server, tmp_path: Path
) -> None:
    bucket = f"socle{uuid.uuid4().hex[:10]}"
    env = {
        "SOCLE_DATA_DIR": str(tmp_path / "data"),
        "SOCLE_DATABASE_URL": own_postgres_url,
        "SOCLE_REDIS_URL": redis_url,
        "SOCLE_QUEUE_PREFIX": f"test-{uuid.uuid4().hex[:8]}-",
        **s3_server.env(bucket),
    }

    result = socle_command("demo", env=env, timeout=300)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "mode production (Redis)" in result.stdout
    assert "4 workers démarrés" in result.stdout
    assert "validation : valid" in result.stdout
    assert "chaîne intacte" in result.stdout
    outputs = _outputs(result.stdout)
    assert "Signature is Valid" in pdfsig(outputs["PDF signé"])
    verified = socle_command("archive", "verify", str(outputs["Paquet SEDA"]), env=env)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert outputs["Accusé de dépôt"].is_file()

    # The documents live in S3, not on the local disk.
    client = Minio(s3_server.endpoint, s3_server.access_key, s3_server.secret_key, secure=s3_server.secure)
    stored = [item.object_name for item in client.list_objects(bucket, prefix="objects/", recursive=True)]
    assert len(stored) >= 3  # the PDF, the signed PDF and the SIP
    assert not (tmp_path / "data" / "objects").exists()

    # Nothing left behind: every job done, the audit chain intact in PostgreSQL.
    jobs = socle_command("jobs", env=env)
    assert jobs.returncode == 0 and "Aucune tâche en échec" in jobs.stdout
    audit = socle_command("audit", "verify", env=env)
    assert audit.returncode == 0 and "intact" in audit.stdout


def test_worker_refuses_to_start_without_redis() -> None:
    result = socle_command("worker", "ged")

    assert result.returncode == 1
    assert "SOCLE_REDIS_URL" in result.stderr
    assert "Traceback" not in result.stderr
