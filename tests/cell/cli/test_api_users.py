"""``intern api user-add``: a user without a password is told it is API-only and how to
give it one; giving it one later works and lets it sign in."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from cell.cli import app
from cell.record.users import login


def test_user_without_a_password_is_told_how_to_add_one(
    make_database: Callable[[], str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_database()
    monkeypatch.setenv("INTERN_DATABASE_URL", url)
    runner = CliRunner()
    made = runner.invoke(app, ["api", "user-add", "scraper", "--role", "viewer"])
    assert made.exit_code == 0, made.output
    assert "token:" in made.stdout
    assert "scraper is API-only" in made.stderr
    assert "intern api user-add scraper --role viewer --password" in made.stderr
    added = runner.invoke(
        app,
        ["api", "user-add", "scraper", "--role", "viewer", "--password"],
        input="a-long-password\na-long-password\n",
    )
    assert added.exit_code == 0, added.output
    assert "password added for scraper (viewer)" in added.stdout
    again = runner.invoke(
        app,
        ["api", "user-add", "scraper", "--role", "viewer", "--password"],
        input="other-password\nother-password\n",
    )
    assert again.exit_code == 2 and "has a password" in again.stderr
    engine = create_engine(url)
    with Session(engine) as s:
        _, role = login(s, "scraper", "a-long-password", timedelta(hours=1))
    engine.dispose()
    assert role.label == "viewer"
