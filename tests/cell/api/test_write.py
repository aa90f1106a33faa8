"""Writes: every role below the one needed is refused (a test per role and endpoint), the
author of an act is the signed-in user, refusals are 409 with the reason, all audited."""

from __future__ import annotations

import itertools

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, text

from cell.record import models as m
from cell.record.models import AuditEntry
from tests.cell.api.conftest import ApiWorld, auth

ROLES = ("viewer", "technician", "engineer", "supervisor", "admin")
_names = itertools.count()


def _new_alert(world: ApiWorld, station: str = "ST30", with_job: bool = False) -> int:
    with world.session() as s:
        job_id = None
        if with_job:
            job_id = s.execute(text("SELECT id FROM jobs WHERE NOT ok LIMIT 1")).scalar_one()
        a = m.Alert(
            station_id=station,
            job_id=job_id,
            kind="nok",
            error_code=301,
            message="drop at transfer",
        )
        s.add(a)
        s.commit()
        return a.id


def _acked_alert(world: ApiWorld) -> int:
    alert_id = _new_alert(world, with_job=True)
    with world.session() as s:
        s.execute(
            text("UPDATE alerts SET acknowledged_at = now(), acknowledged_by = 'x' WHERE id = :i"),
            {"i": alert_id},
        )
        s.commit()
    return alert_id


# endpoint -> (lowest role allowed, request builder)
WRITES = {
    "assign": (
        "supervisor",
        lambda w: (
            "/api/assign",
            {"action": "maintenance", "robot": "R3", "reason": "matrix check"},
        ),
    ),
    "ack": ("technician", lambda w: (f"/api/alerts/{_new_alert(w)}/ack", None)),
    "rework": (
        "technician",
        lambda w: (f"/api/alerts/{_acked_alert(w)}/rework", {"outcome": "reworked_ok"}),
    ),
    "clear": ("technician", lambda w: (f"/api/alerts/{_acked_alert(w)}/clear", None)),
    "users": (
        "admin",
        lambda w: ("/api/users", {"username": f"new-{next(_names)}", "role": "viewer"}),
    ),
}


@pytest.mark.parametrize("endpoint", sorted(WRITES))
@pytest.mark.parametrize("role", ROLES)
def test_each_write_needs_its_role(
    client: TestClient, world: ApiWorld, endpoint: str, role: str
) -> None:
    needed, build = WRITES[endpoint]
    path, body = build(world)
    res = client.post(path, json=body, headers=auth(world, role))
    if ROLES.index(role) < ROLES.index(needed):
        assert res.status_code == 403, res.text
        assert res.json()["error"] == (f"{role}-user is {role}; this needs {needed} or above")
        with world.session() as s:
            last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert (last.actor, last.outcome, last.action) == (
            f"{role}-user",
            "forbidden",
            f"POST {path}",
        )
    else:
        assert res.status_code in (200, 201, 409), res.text
        with world.session() as s:
            last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert last.actor == f"{role}-user" and last.outcome in ("done", "refused")


@pytest.mark.parametrize("endpoint", sorted(WRITES))
def test_writes_without_a_token_are_401(client: TestClient, world: ApiWorld, endpoint: str) -> None:
    path, body = WRITES[endpoint][1](world)
    res = client.post(path, json=body)
    assert res.status_code == 401 and "needs a token" in res.json()["error"]
    assert res.headers["www-authenticate"] == "Bearer"


def test_reassignment_by_a_supervisor_is_recorded_with_its_author(
    client: TestClient, world: ApiWorld
) -> None:
    sup = auth(world, "supervisor")
    res = client.post(
        "/api/assign",
        json={"action": "maintenance", "robot": "R1", "reason": "gripper check"},
        headers=sup,
    )
    assert res.status_code in (200, 409)
    res = client.post(
        "/api/assign",
        json={"robot": "R2", "station": "ST10", "reason": "cover nut station"},
        headers=sup,
    )
    assert res.status_code == 200, res.text
    entries = {e["robot_id"]: e for e in res.json()["roster"]}
    assert entries["R2"]["station_id"] == "ST10" and entries["R2"]["author"] == "supervisor-user"
    refused = client.post(
        "/api/assign", json={"robot": "R3", "station": "ST20", "reason": "try"}, headers=sup
    )
    assert refused.status_code == 409
    assert "R3 has no skill for screwing needed at ST20" in refused.json()["error"]
    with world.session() as s:
        last = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert (last.action, last.outcome, last.target) == ("assign.reassign", "refused", "R3")
        # Put R2 back so that the roster is as the line config says.
        s.execute(text("SELECT 1"))
    back = client.post(
        "/api/assign", json={"robot": "R2", "station": "ST20", "reason": "back home"}, headers=sup
    )
    assert back.status_code == 200


def test_alert_steps_by_a_technician_in_order(client: TestClient, world: ApiWorld) -> None:
    tech = auth(world, "technician")
    alert_id = _new_alert(world, "ST10", with_job=True)
    listed = client.get("/api/alerts", params={"station": "ST10"}).json()
    assert alert_id in [a["id"] for a in listed]
    early = client.post(f"/api/alerts/{alert_id}/clear", headers=tech)
    assert early.status_code == 409 and "acknowledge" in early.json()["error"]
    assert client.post(f"/api/alerts/{alert_id}/ack", headers=tech).status_code == 200
    bad = client.post(f"/api/alerts/{alert_id}/rework", json={"outcome": "fixed"}, headers=tech)
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "outcome"
    ok = client.post(f"/api/alerts/{alert_id}/rework", json={"outcome": "scrapped"}, headers=tech)
    assert ok.status_code == 200 and ok.json()["rework"] == "scrapped"
    done = client.post(f"/api/alerts/{alert_id}/clear", headers=tech)
    assert done.status_code == 200 and done.json()["cleared_by"] == "technician-user"
    again = client.post(f"/api/alerts/{alert_id}/ack", headers=tech)
    assert again.status_code == 409 and "was cleared" in again.json()["error"]
    missing = client.post("/api/alerts/999999/ack", headers=tech)
    assert missing.status_code == 409 and missing.json() == {"error": "there is no alert 999999"}


@pytest.mark.parametrize(
    "path, body, field",
    [
        ("/api/assign", {"robot": "R1", "station": "ST10"}, "reason"),
        ("/api/assign", {"robot": "R1", "reason": "x"}, "request"),
        ("/api/assign", {"action": "teleport", "robot": "R1", "reason": "x"}, "action"),
        ("/api/assign", {"robot": "R1 OR 1=1", "station": "ST10", "reason": "x"}, "robot"),
        (
            "/api/assign",
            {"robot": "R1", "station": "ST10", "reason": "x", "author": "ceo"},
            "author",
        ),
        ("/api/alerts/abc/ack", None, "path.alert_id"),
        ("/api/users", {"username": "a b", "role": "viewer"}, "username"),
        ("/api/users", {"username": "ab", "role": "emperor"}, "role"),
    ],
)
def test_malformed_writes_get_422(
    client: TestClient, world: ApiWorld, path: str, body: dict | None, field: str
) -> None:
    res = client.post(path, json=body, headers=auth(world, "admin"))
    assert res.status_code == 422, res.text
    assert any(d["field"] == field for d in res.json()["detail"]), res.json()


def test_login_gives_a_working_token_and_refuses_bad_passwords(
    client: TestClient, world: ApiWorld
) -> None:
    bad = client.post("/api/auth/login", json={"username": "technician-user", "password": "wrong"})
    assert bad.status_code == 401 and bad.json() == {"error": "unknown user or wrong password"}
    good = client.post(
        "/api/auth/login",
        json={"username": "technician-user", "password": world.passwords["technician-user"]},
    )
    assert good.status_code == 200 and good.json()["role"] == "technician"
    me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {good.json()['token']}"})
    assert me.json() == {"username": "technician-user", "role": "technician"}
    with world.session() as s:
        stored = s.execute(
            text(
                "SELECT token_hash, password_hash FROM api_tokens t JOIN "
                "api_users u ON u.id = t.user_id"
            )
        ).all()
    assert all(good.json()["token"] not in row for row in stored)
    assert all(p.startswith("scrypt$") for _, p in stored if p is not None)


def test_metrics_count_open_alerts(client: TestClient, world: ApiWorld) -> None:
    with world.session() as s:
        s.execute(text("UPDATE alerts SET cleared_at = now() WHERE station_id = 'ST20'"))
        s.commit()
    _new_alert(world, "ST20")
    assert 'intern_open_alerts{station="ST20"} 1.0' in client.get("/metrics").text
