"""Web pages of the parapheur service (server-rendered; see socle.ui)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
