"""Administration pages of the kernel: the collectivité and its user accounts."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(include_in_schema=False)
