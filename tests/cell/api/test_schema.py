"""The OpenAPI document tells the truth: schemathesis generates requests for every
operation from it (valid and invalid ones) against a real server, and every answer must
be documented there, shaped as documented, and never a 5xx."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from cell.api import ApiSettings, create_app
from cell.services import free_port
from tests.cell.api.conftest import ApiWorld, build_world, serving

# Examples per operation: enough for each field's edge cases (NUL, far dates, wrong
# types), few enough to keep the suite's time.
EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def schema_world(make_database: Callable[[], str]) -> ApiWorld:
    """A database of its own: generated writes must not disturb the other API tests."""
    return build_world(make_database())


@pytest.fixture(scope="module")
def api_server(schema_world: ApiWorld) -> Iterator[str]:
    port = free_port()
    with serving(create_app(ApiSettings(database_url=schema_world.url, port=port)), port) as url:
        yield url


@pytest.fixture(scope="module")
def api_schema(api_server: str) -> schemathesis.BaseSchema:
    return schemathesis.openapi.from_url(f"{api_server}/openapi.json")


# The event stream answers for minutes by design; its 401/422 are those of /api/live.
schema = schemathesis.pytest.from_fixture("api_schema").exclude(path="/api/live/events")


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_answer_is_documented(case: schemathesis.Case, schema_world: ApiWorld) -> None:
    headers = {"Authorization": f"Bearer {schema_world.tokens['admin']}"}
    case.call_and_validate(headers=headers, checks=CHECKS)
