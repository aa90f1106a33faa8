"""What a plant's security review asks of the API: input PostgreSQL cannot store is a 422,
sign-in costs the same whoever asks and locks after repeated failures, security headers,
the Host check, and nothing readable without a token when anonymous reads are off."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cell.api import ApiSettings, create_app
from cell.record import users
from cell.record.models import AuditEntry
from cell.services import free_port
from tests.cell.api.conftest import BASE, ApiWorld, auth, serving

_names = itertools.count()
YEAR_ONE = "0001-01-01T00:00:00Z"


@pytest.mark.parametrize(
    "path, params, field",
    [
        ("/api/parts/A%00B", {}, "path"),
        ("/api/yield", {"robot": "R\x001"}, "query.robot"),
        ("/api/compare", {"station": "L1-ST10", "a": "x\x00", "b": "y"}, "query.a"),
        ("/api/yield", {"tz": "\x00"}, "query.tz"),
    ],
)
def test_nul_in_a_path_or_query_is_422(
    client: TestClient, path: str, params: dict, field: str
) -> None:
    res = client.get(path, params=params)
    assert res.status_code == 422, res.text
    assert res.json()["detail"] == [{"field": field, "message": "must not contain a NUL character"}]


@pytest.mark.parametrize(
    "body, field",
    [
        ('{"username": "a\\u0000b", "password": "secret-1"}', "username"),
        ('{"username": "\\ud800", "password": "secret-1"}', "username"),
        ('{"username": "someone", "password": "pw\\u0000"}', "password"),
    ],
)
def test_unstorable_text_in_a_login_body_is_422(client: TestClient, body: str, field: str) -> None:
    res = client.post("/api/auth/login", content=body, headers={"Content-Type": "application/json"})
    assert res.status_code == 422, res.text
    assert res.json()["detail"][0]["field"] == field


def test_unstorable_text_in_a_write_is_422(client: TestClient, world: ApiWorld) -> None:
    res = client.post(
        "/api/assign",
        json={"action": "maintenance", "robot": "R3", "reason": "check\x00"},
        headers=auth(world, "supervisor"),
    )
    assert res.status_code == 422 and res.json()["detail"][0]["field"] == "reason"


@pytest.mark.parametrize(
    "path, extra",
    [
        ("/api/yield", {}),
        ("/api/oee", {}),
        ("/api/cycle-time", {}),
        ("/api/pareto", {}),
        ("/api/spc", {}),
        ("/api/shift-report", {"end": "2026-03-10T00:00:00Z"}),
    ],
)
def test_a_date_in_year_one_is_422(client: TestClient, path: str, extra: dict) -> None:
    res = client.get(path, params={"start": YEAR_ONE} | extra)
    assert res.status_code == 422, res.text
    (problem,) = res.json()["detail"]
    assert problem["field"] == "query.start"
    assert "from 1970-01-01 to before 2200-01-01" in problem["message"]
    far = client.get(path, params={"end": "9999-12-31T23:59:59Z", "start": "2026-01-01T00:00:00Z"})
    assert far.status_code == 422 and far.json()["detail"][0]["field"] == "query.end"


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = users._scrypt

    def counted(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        calls.append(n)
        return real(password, salt, n, r, p)

    monkeypatch.setattr(users, "_scrypt", counted)
    return calls


def test_sign_in_costs_one_standard_scrypt_for_every_kind_of_user(
    client: TestClient, world: ApiWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    with world.session() as s:
        users.create_user(s, "token-only-user", users.Role.VIEWER)
    calls = _counting(monkeypatch)
    tries = {
        "unknown": ("nobody-at-all", "whatever-1"),
        "known, wrong password": ("engineer-user", "wrong-password"),
        "token-only": ("token-only-user", "whatever-1"),
        "known, right password": ("engineer-user", world.passwords["engineer-user"]),
    }
    for kind, (name, password) in tries.items():
        calls.clear()
        res = client.post("/api/auth/login", json={"username": name, "password": password})
        assert res.status_code == (200 if kind.endswith("right password") else 401), kind
        assert calls == [2**14], f"{kind}: {len(calls)} scrypt calls"


def test_repeated_failures_lock_the_name_for_a_while_and_are_audited(
    client: TestClient, world: ApiWorld
) -> None:
    name = f"lock-{next(_names)}"
    limit = users.LoginLimits().per_user
    with world.session() as s:
        users.create_user(s, name, users.Role.VIEWER, "right-password")
    for _ in range(limit):
        bad = client.post("/api/auth/login", json={"username": name, "password": "nope-nope"})
        assert bad.status_code == 401
    locked = client.post("/api/auth/login", json={"username": name, "password": "right-password"})
    assert locked.status_code == 429, locked.text
    assert "too many failed sign-ins" in locked.json()["error"]
    assert 800 < int(locked.headers["retry-after"]) <= 900
    with world.session() as s:
        outcomes = [
            (e.outcome, e.actor)
            for e in s.scalars(
                select(AuditEntry)
                .where(AuditEntry.action == "auth.login", AuditEntry.target == name)
                .order_by(AuditEntry.id)
            )
        ]
    assert outcomes == [("refused", "testclient")] * limit + [("locked", "testclient")]


def test_repeated_failures_from_one_address_lock_that_address(world: ApiWorld) -> None:
    app = create_app(ApiSettings(database_url=world.url))
    per_client = users.LoginLimits().per_client
    with TestClient(app, base_url=BASE, client=("10.1.2.3", 40000)) as c:
        for i in range(per_client):
            name = f"guess-{next(_names)}-{i}"
            assert c.post("/api/auth/login", json={"username": name, "password": "x"}).status_code
        res = c.post(
            "/api/auth/login",
            json={"username": "admin-user", "password": world.passwords["admin-user"]},
        )
        assert res.status_code == 429
    with TestClient(app, base_url=BASE, client=("10.1.2.4", 40000)) as other:
        res = other.post(
            "/api/auth/login",
            json={"username": "admin-user", "password": world.passwords["admin-user"]},
        )
        assert res.status_code == 200


@pytest.mark.parametrize("path", ["/", "/api/health", "/docs", "/static/app.js"])
def test_every_answer_carries_the_security_headers(client: TestClient, path: str) -> None:
    res = client.get(path)
    assert res.status_code == 200
    csp = res.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src 'self' 'nonce-" in csp
    assert res.headers["x-frame-options"] == "DENY"
    assert res.headers["x-content-type-options"] == "nosniff"


def test_an_unknown_host_is_refused(world: ApiWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(ApiSettings(database_url=world.url))
    with TestClient(app, base_url="http://attacker.example") as c:
        res = c.get("/api/roster")
        assert res.status_code == 400
        assert "INTERN_API_ALLOWED_HOSTS" in res.json()["error"]
        assert c.get("/api/roster", headers={"Host": "localhost:8470"}).status_code == 200
        assert c.get("/api/roster", headers={"Host": "[::1]:8470"}).status_code == 200
    monkeypatch.setenv("INTERN_API_ALLOWED_HOSTS", "cell1.plant.example, 10.0.0.5")
    settings = ApiSettings(database_url=world.url)
    with TestClient(create_app(settings), base_url="http://cell1.plant.example") as c:
        assert c.get("/api/roster").status_code == 200
        assert c.get("/api/roster", headers={"Host": "localhost"}).status_code == 400


@pytest.mark.parametrize("path", ["/metrics", "/docs", "/openapi.json"])
def test_nothing_is_readable_without_a_token_when_anonymous_reads_are_off(
    world: ApiWorld, path: str
) -> None:
    app = create_app(ApiSettings(database_url=world.url, anonymous_read=False))
    with TestClient(app, base_url=BASE) as c:
        res = c.get(path)
        assert res.status_code == 401 and res.headers["www-authenticate"] == "Bearer"
        assert c.get(path, headers=auth(world, "viewer")).status_code == 200


def test_openapi_lists_the_errors_the_api_gives(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    paths = doc["paths"]
    assert set(paths["/api/assign"]["post"]["responses"]) >= {"200", "401", "403", "409", "422"}
    assert set(paths["/api/auth/login"]["post"]["responses"]) >= {"200", "401", "422", "429"}
    assert set(paths["/api/yield"]["get"]["responses"]) >= {"200", "400", "401", "422"}
    assert "404" in paths["/api/parts/{part_id}"]["get"]["responses"]
    invalid = paths["/api/yield"]["get"]["responses"]["422"]["content"]["application/json"]
    assert invalid["schema"]["$ref"] == "#/components/schemas/InvalidBody"
    assert set(doc["components"]["schemas"]["InvalidBody"]["properties"]) == {"error", "detail"}


@pytest.fixture
def crashing_server(world: ApiWorld) -> Iterator[int]:
    """A real uvicorn server with the API and one more route that fails (a bug)."""
    port = free_port()
    app = create_app(ApiSettings(database_url=world.url, port=port))

    def boom() -> dict:
        raise RuntimeError("a bug")

    app.add_api_route("/api/boom", boom)
    with serving(app, port):
        yield port


def _exchange(sock: socket.socket, path: str) -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        chunk = sock.recv(4096)
        if not chunk:
            break
        data += chunk
    return data


def test_a_bug_is_a_json_500_and_the_connection_stays_open(crashing_server: int) -> None:
    with socket.create_connection(("127.0.0.1", crashing_server), timeout=10) as sock:
        first = _exchange(sock, "/api/boom")
        assert first.startswith(b"HTTP/1.1 500") and b"internal error" in first
        assert b"Traceback" not in first and b"a bug" not in first
        second = _exchange(sock, "/api/health")  # the same keep-alive connection
        assert second.startswith(b"HTTP/1.1 200") and second.endswith(b'{"status":"ok"}')
