"""Writes: sign-in, users, roster acts and alert steps. Each write is audited with its
author (the signed-in user, never a name from the request body)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Path, Request
from pydantic import Field, model_validator

from cell.api.bodies import Body
from cell.api.deps import (
    Admin,
    MaybePrincipal,
    Reader,
    SessionDep,
    Supervisor,
    Technician,
    actor_of,
)
from cell.api.errors import READ, WRITE, responses
from cell.record import alerts as al
from cell.record import models as m
from cell.record import users as auth
from cell.record.acts import Acts, audit
from cell.record.roster import roster

router = APIRouter(prefix="/api", tags=["acts"])

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]


class Login(Body):
    username: str = Field(min_length=1, max_length=80)
    password: str = Field(min_length=1, max_length=200)


@router.post("/auth/login", responses=responses(400, 401, 422, 429, 503))
def login(body: Login, request: Request, s: SessionDep) -> dict:
    """Exchange a password for a bearer token (valid ``token_ttl_hours``). Too many
    failures for a name or from an address are refused for a while (429, Retry-After)."""
    ttl = timedelta(hours=request.app.state.settings.token_ttl_hours)
    client = request.client.host if request.client else "unknown"
    token, role = auth.login(s, body.username, body.password, ttl, client=client)
    return {"token": token, "username": body.username, "role": role.label}


@router.get("/auth/me", responses=responses(401, 422, 503))
def me(who: MaybePrincipal) -> dict:
    if who is None:
        return {"username": None, "role": None}
    return {"username": who.username, "role": who.role.label}


class NewUser(Body):
    username: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,80}$")
    role: Literal["viewer", "technician", "engineer", "supervisor", "admin"]
    password: str | None = Field(default=None, min_length=8, max_length=200)


@router.post("/users", status_code=201, responses=responses(*WRITE))
def add_user(body: NewUser, s: SessionDep, who: Admin) -> dict:
    """Add a user; the answer carries a first token, shown this once."""
    try:
        auth.create_user(s, body.username, auth.Role.parse(body.role), body.password)
    except auth.AuthError as exc:
        audit(s, actor_of(who), "user.add", body.username, "refused", {"reason": str(exc)})
        raise HTTPException(409, str(exc)) from None
    token = auth.issue_token(s, body.username, label="created")
    audit(s, actor_of(who), "user.add", body.username, "done", {"role": body.role})
    return {"username": body.username, "role": body.role, "token": token}


@router.get("/roster", responses=responses(*READ))
def get_roster(s: SessionDep, _: Reader) -> list[dict]:
    """Every robot, the station it serves (or none), since when, by whom and why."""
    return [asdict(e) for e in roster(s)]


class AssignAct(Body):
    """``reassign`` robot to station; ``swap`` robot with other_robot; ``maintenance``."""

    action: Literal["reassign", "swap", "maintenance"] = "reassign"
    robot: Id
    station: Id | None = None
    other_robot: Id | None = None
    reason: str = Field(min_length=1, max_length=500)

    @model_validator(mode="after")
    def _needs(self) -> AssignAct:
        if self.action == "reassign" and not self.station:
            raise ValueError("reassign needs a station")
        if self.action == "swap" and not self.other_robot:
            raise ValueError("swap needs other_robot")
        return self


@router.post("/assign", responses=responses(*WRITE))
def assign(body: AssignAct, s: SessionDep, who: Supervisor) -> dict:
    """Roster act by a supervisor; takes effect at the station's next cycle. A refusal
    answers 409 with the reason (``cell.api.errors``)."""
    acts = Acts(s, actor_of(who))
    if body.action == "reassign":
        assert body.station is not None
        acts.reassign(body.robot, body.station, reason=body.reason)
    elif body.action == "swap":
        assert body.other_robot is not None
        acts.swap(body.robot, body.other_robot, reason=body.reason)
    else:
        acts.maintenance(body.robot, reason=body.reason)
    return {"done": body.action, "roster": [asdict(e) for e in roster(s)]}


@router.get("/alerts", responses=responses(*READ))
def list_alerts(s: SessionDep, _: Reader, station: Id | None = None) -> list[dict]:
    """Open alerts (not cleared), oldest first."""
    return [
        {
            "id": a.id,
            "station_id": a.station_id,
            "job_id": a.job_id,
            "part_id": a.part_id,
            "kind": a.kind,
            "error_code": a.error_code,
            "message": a.message,
            "raised_at": a.raised_at,
            "acknowledged_at": a.acknowledged_at,
            "acknowledged_by": a.acknowledged_by,
            "rework": a.rework,
        }
        for a in al.open_alerts(s, station)
    ]


class ReworkBody(Body):
    outcome: al.Rework


AlertId = Annotated[int, Path(ge=1, le=2**62)]


def _alert_view(a: m.Alert) -> dict:
    return {
        "id": a.id,
        "acknowledged_by": a.acknowledged_by,
        "rework": a.rework,
        "cleared_by": a.cleared_by,
        "cleared_at": a.cleared_at,
    }


@router.post("/alerts/{alert_id}/ack", responses=responses(*WRITE))
def ack(alert_id: AlertId, s: SessionDep, who: Technician) -> dict:
    return _alert_view(Acts(s, actor_of(who)).acknowledge(alert_id))


@router.post("/alerts/{alert_id}/rework", responses=responses(*WRITE))
def rework(alert_id: AlertId, body: ReworkBody, s: SessionDep, who: Technician) -> dict:
    return _alert_view(Acts(s, actor_of(who)).rework(alert_id, body.outcome))


@router.post("/alerts/{alert_id}/clear", responses=responses(*WRITE))
def clear(alert_id: AlertId, s: SessionDep, who: Technician) -> dict:
    return _alert_view(Acts(s, actor_of(who)).clear(alert_id))
