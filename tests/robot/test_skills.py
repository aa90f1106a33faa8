"""run_job: a job from the line's recipes run on the simulated humanoid."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from robot.env import CellEnv
from robot.errors import ActionError
from robot.jobs import ErrorCode, FastenerSpec, JobSpec, Outcome, Task
from robot.schema import ACTION_DIM, Observation
from robot.sim.config import default_fasteners
from robot.skills import run_job

SAMPLE = Path(__file__).parents[2] / "cell" / "configs" / "sample_line.yaml"


def _recipes() -> dict[Task, tuple[tuple[FastenerSpec, ...], float]]:
    data = yaml.safe_load(SAMPLE.read_text())
    out = {}
    for station in data["stations"]:
        for r in station["recipes"]:
            specs = tuple(FastenerSpec(**f) for f in r.get("fasteners", []))
            out[Task(r["task"])] = (specs, float(r["takt_s"]))
    return out


def _spec(task: Task, seed: int = 1, difficulty: float = 1.0, **kw) -> JobSpec:
    fasteners, takt = _recipes()[task]
    return JobSpec(
        job_key=f"ST:0:{seed}",
        station_id="ST",
        robot_id="R1",
        part_id="P",
        program_no=1,
        task=task,
        fasteners=kw.get("fasteners", fasteners),
        takt_s=takt,
        seed=seed,
        difficulty=difficulty,
    )


def test_default_recipes_are_the_sample_lines() -> None:
    for task, (fasteners, _) in _recipes().items():
        assert default_fasteners(task) == fasteners


@pytest.mark.parametrize("task", list(Task))
def test_each_sample_recipe_runs_and_is_judged_against_its_windows(task: Task) -> None:
    spec = _spec(task, seed=2)
    out = run_job(spec)
    assert out.job_key == spec.job_key and out.policy_version == "expert"
    assert out.outcome is Outcome.OK and out.error_code == 0
    # Simulated cycle time (the simulator's clock, not wall time): inside the takt.
    assert 15_000 < out.cycle_time_ms < spec.takt_s * 1000
    assert "walk" in out.detail and "verify" in out.detail
    assert len(out.fasteners) == len(spec.fasteners)
    for res, f in zip(out.fasteners, spec.fasteners, strict=True):
        assert (res.side, res.position) == (f.side, f.position)
        assert (res.torque_min_nm, res.torque_max_nm) == (f.torque_min_nm, f.torque_max_nm)
        assert (res.angle_min_deg, res.angle_max_deg) == (f.angle_min_deg, f.angle_max_deg)
        assert res.ok == (
            f.torque_min_nm <= res.torque_nm <= f.torque_max_nm
            and f.angle_min_deg <= res.angle_deg <= f.angle_max_deg
        )
        assert 2 <= len(res.trace_angle_deg) == len(res.trace_torque_nm) <= 64
    assert run_job(spec) == out  # deterministic


def test_a_tighter_recipe_is_judged_against_its_own_windows() -> None:
    tight = tuple(
        f.model_copy(update={"angle_max_deg": 600.0}) for f in _recipes()[Task.NUT_INSTALL][0]
    )
    out = run_job(_spec(Task.NUT_INSTALL, seed=2, fasteners=tight))
    assert out.outcome is Outcome.NOK and out.error_code == ErrorCode.ANGLE_HIGH
    assert all(f.angle_max_deg == 600.0 for f in out.fasteners)


def test_hard_difficulty_gives_nok_jobs_with_fastening_codes() -> None:
    outs = [run_job(_spec(Task.NUT_INSTALL, seed=s, difficulty=3.0)) for s in range(12)]
    bad = [o for o in outs if o.outcome is Outcome.NOK]
    assert bad and all(200 < o.error_code < 300 for o in bad)
    assert all(o.error_code == next(f.error_code for f in o.fasteners if not f.ok) for o in bad)


def test_a_fastening_job_without_fasteners_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one fastener"):
        run_job(_spec(Task.NUT_INSTALL, fasteners=()))


class _Still:
    """A policy that holds the arms still: every fastener times out."""

    version = "still-v1"

    def __init__(self) -> None:
        self.resets = 0

    def infer(self, obs: Observation, prefix: np.ndarray | None = None) -> np.ndarray:
        assert set(obs.images) == {"head", "wrist_left", "wrist_right"}  # cameras on
        return np.zeros((8, ACTION_DIM), dtype=np.float32)

    def reset(self) -> None:
        self.resets += 1


def test_a_policy_drives_the_job_and_its_version_is_recorded() -> None:
    policy = _Still()
    out = run_job(_spec(Task.MATERIAL_HANDLING, seed=3), policy=policy)
    assert out.policy_version == "still-v1" and policy.resets == 1
    assert out.outcome is Outcome.NOK and out.error_code == ErrorCode.HANDLING_TIMEOUT
    # Simulated time: the round's whole tick budget was spent waiting.
    assert out.cycle_time_ms > 10_000


def test_a_policy_returning_garbage_is_an_action_error() -> None:
    class Broken(_Still):
        def infer(self, obs, prefix=None):
            return np.zeros(ACTION_DIM)

    with pytest.raises(ActionError, match="shape"):
        run_job(_spec(Task.SCREWING), policy=Broken())


def test_expert_rate_drops_with_difficulty() -> None:
    def rate(d: float) -> float:
        from robot.env import rollout

        n = 30
        return (
            sum(
                rollout(CellEnv(Task.NUT_INSTALL, seed=s, difficulty=d, render=False)).success
                for s in range(500, 500 + n)
            )
            / n
        )

    easy, hard = rate(1.0), rate(3.0)
    assert easy >= 0.85 and hard <= easy - 0.3
