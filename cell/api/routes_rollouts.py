"""Canary rollouts as JSON, for the rollouts page: the same status the CLI shows."""

from __future__ import annotations

from dataclasses import asdict

from fastapi import APIRouter

from cell.api.deps import Reader, SessionDep
from cell.api.errors import READ, responses
from cell.insight.params import StationId
from cell.record import rollouts as ro

router = APIRouter(prefix="/api", tags=["rollouts"], responses=responses(*READ))


@router.get("/rollouts")
def get_rollouts(s: SessionDep, _: Reader, station: StationId | None = None) -> list[dict]:
    """Each station's latest rollout, or all of ``station``'s, latest first: versions,
    share, each arm's jobs and first-pass yield, the incumbent's jobs and yield before
    the rollout (the rule's reference), the interval for the failure-rate ratio
    candidate/incumbent, state and decision. Read only: the line records the rule's
    decision as the rollout's jobs end."""
    return [asdict(r) for r in ro.status(s, station)]
