"""The live line: a snapshot of every station now, and a stream of them."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api", tags=["live"])
