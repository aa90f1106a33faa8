"""A database with a generated history and the sample line, users of every role, and the
API app on it (in-process client; the web tests run a real server)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.orm import Session

from cell.api import ApiSettings, create_app
from cell.config import load_line_config, sample_config_path
from cell.demo.history import HistoryOptions, generate_history
from cell.record.roster import sync_line
from cell.record.users import Role, create_user, issue_token

END = datetime(2026, 3, 10, tzinfo=UTC)
BASE = "http://127.0.0.1"


@dataclass
class ApiWorld:
    url: str
    tokens: dict[str, str]  # role name -> token of a user with that role
    passwords: dict[str, str]

    def session(self) -> Session:
        return Session(create_engine(self.url))


def build_world(url: str) -> ApiWorld:
    generate_history(url, HistoryOptions(stations=5, days=1, end=END, seed=5))
    engine = create_engine(url)
    tokens, passwords = {}, {}
    with Session(engine) as s:
        sync_line(s, load_line_config(sample_config_path()))
        for role in Role:
            name = f"{role.label}-user"
            passwords[name] = f"pw-{role.label}-2026"
            create_user(s, name, role, passwords[name])
            tokens[role.label] = issue_token(s, name)
    engine.dispose()
    return ApiWorld(url, tokens, passwords)


@pytest.fixture(scope="session")
def world(make_database: Callable[[], str]) -> ApiWorld:
    return build_world(make_database())


@pytest.fixture(scope="session")
def client(world: ApiWorld) -> Iterator[TestClient]:
    app = create_app(ApiSettings(database_url=world.url))
    # A loopback name: the API answers only the Host names it is configured for.
    with TestClient(app, base_url=BASE, raise_server_exceptions=False) as c:
        yield c


def auth(world: ApiWorld, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world.tokens[role]}"}


@contextmanager
def serving(app: FastAPI, port: int) -> Iterator[str]:
    """``app`` served by a real uvicorn server on loopback ``port``; yields its base URL."""
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    end = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > end or not thread.is_alive():
            raise RuntimeError("the API server did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(15)
