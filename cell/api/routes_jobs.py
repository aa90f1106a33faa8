"""One job's detail beyond the part's history: its torque-angle traces."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from cell.api.deps import Reader, SessionDep
from cell.api.errors import READ, responses
from cell.insight.traces import job_traces

router = APIRouter(prefix="/api", tags=["analytics"], responses=responses(*READ))

JobId = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/jobs/{job_id}/traces", responses=responses(404))
def get_traces(job_id: JobId, s: SessionDep, _: Reader) -> dict:
    """Each fastener of the job: final torque and angle, their windows, and the
    torque-angle curve where one was stored (failed fasteners always have one)."""
    traces = job_traces(s, job_id)
    if traces is None:
        raise HTTPException(404, f"no job {job_id} on record")
    return asdict(traces)
