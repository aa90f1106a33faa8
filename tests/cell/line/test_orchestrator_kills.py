"""The orchestrator killed with SIGKILL mid-job: the robot and the PLC always agree.

Each test runs the sample line (PLC simulator, one worker process per robot, ``intern
run`` processes) and kills the orchestrator at least three times while a station is
mid-job (``tests.cell.line.kills``). Afterwards nothing the PLC latched is missing from
the record or recorded twice, no job ran twice on a part, no robot was still on a job
the PLC had closed, and every latched job carries its robot's real result, never an
"interrupted" NOK for a job the robot finished. ``bench/faults.py`` runs the same
scenarios with more kills.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cell.line.kill_rig import claim_redis_db, release_redis_db
from tests.cell.line.kills import KillPlan, KillReport, run_scenario

pytestmark = pytest.mark.slow

KILLS = 3


@pytest.fixture
def kill_redis_url(redis_server_url: str) -> Iterator[str]:
    """A Redis database of these tests' own (the first empty one of 10-15), emptied after."""
    url = claim_redis_db(redis_server_url, "test_orchestrator_kills")
    if url is None:
        pytest.fail("no empty Redis database among 10-15 for the kill tests")
    yield url
    release_redis_db(url)


def _assert_clean(report: KillReport) -> None:
    assert report.kills >= KILLS
    assert report.jobs > report.kills, f"too few jobs latched to judge: {report}"
    counts = {
        "lost": report.lost,
        "duplicates": report.duplicates,
        "executed_twice": report.executed_twice,
        "robot_after_plc_done": report.robot_after_plc_done,
        "false_nok": report.false_nok,
        "not_robot_result": report.not_robot_result,
    }
    detail = "\n  ".join(report.problems[:20])
    assert counts == dict.fromkeys(counts, 0), f"{report.scenario}: {counts}\n  {detail}"


async def test_single_orchestrator_killed_mid_job(
    tmp_path: Path, kill_redis_url: str, make_database: Callable[[], str]
) -> None:
    plan = KillPlan("kill", kills=KILLS, seed=1)
    report = await run_scenario(plan, tmp_path, kill_redis_url, make_database())
    _assert_clean(report)
    assert report.takeover_p50_s is None and report.takeover_p99_s is None


async def test_orchestrator_killed_and_restarted_while_postgresql_is_down(
    tmp_path: Path, kill_redis_url: str
) -> None:
    plan = KillPlan("kill-pg-down", kills=KILLS, seed=2)
    report = await run_scenario(plan, tmp_path, kill_redis_url, "")
    _assert_clean(report)


async def test_standby_takes_over_when_the_active_orchestrator_is_killed(
    tmp_path: Path, kill_redis_url: str, make_database: Callable[[], str]
) -> None:
    plan = KillPlan("failover", kills=KILLS, seed=3)
    report = await run_scenario(plan, tmp_path, kill_redis_url, make_database())
    _assert_clean(report)
    assert report.takeover_p99_s is not None and report.takeover_p99_s <= 10.0
