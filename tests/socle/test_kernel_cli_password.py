"""`socle tenant password`: the password comes from a variable or is typed twice, never from an argument (it
would stay in the shell's history and the process list)."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select

from socle.db import new_session
from socle.models import User
from socle.ui.passwords import verify_password

from conftest import ROOT, Kit, socle_command

NEW = "Un mot de passe de la mairie 2026"


def _stored(kit: Kit, username: str) -> str | None:
    with new_session() as session:
        user = session.execute(select(User).where(User.tenant_id == kit.tenant_id, User.username == username))
        return user.scalar_one().password_hash


def test_the_password_comes_from_a_variable(kit: Kit) -> None:
    run = socle_command("tenant", "password", kit.slug, "agent", env={"USER_PASSWORD": NEW})
    assert run.returncode == 0, run.stderr
    assert "Mot de passe de agent enregistré" in run.stdout
    assert verify_password(NEW, _stored(kit, "agent"))


def test_the_password_is_typed_twice_and_never_taken_as_an_argument(kit: Kit) -> None:
    env = {name: value for name, value in os.environ.items() if name != "USER_PASSWORD"}
    typed = subprocess.run(
        [sys.executable, "-m", "socle", "tenant", "password", kit.slug, "maire"],
        input=f"{NEW}\n{NEW}\n",
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=ROOT,
    )
    assert typed.returncode == 0, typed.stderr
    assert verify_password(NEW, _stored(kit, "maire")) and NEW not in typed.stdout
    refused = socle_command("tenant", "password", kit.slug, "agent", "--password", NEW)
    assert refused.returncode == 2 and "Option inconnue : --password." in refused.stderr
    too_short = socle_command("tenant", "password", kit.slug, "agent", env={"USER_PASSWORD": "court"})
    assert too_short.returncode != 0 and "12 caractères" in too_short.stderr and "Traceback" not in too_short.stderr
