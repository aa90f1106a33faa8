"""Skills turn a job into an episode on a robot and summarise it as a ``JobOutcome``.

``run_job(spec)`` is the one entry point the robot worker calls. It runs the job's task
with the job's recipe, seed and difficulty on a ``Robot`` (``robot.base``), using nothing
but that interface: by default the simulated humanoid, made through the robot registry.
The robot's own scripted program drives it (``policy=None``; on the simulator the
scripted expert with cameras off: a few tens of milliseconds per job), or a
``ChunkPolicy`` does (cameras on). A policy whose output is unusable raises
``ActionError``; the worker records that as a NOK job.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from robot.base import JobReport, Robot, make_robot
from robot.chunk_policy import ChunkPolicy, PolicyForJob, check_chunk
from robot.jobs import JobOutcome, JobSpec, Outcome
from robot.schema import Observation
from robot.sim.robot import SimRobot, SimRobotConfig

EXPERT_VERSION = "expert"
PHASE_ORDER = ("walk", "fetch", "transfer", "align", "drive", "place", "verify")


class Tape(Protocol):
    """Records a job as it runs (``robot.job_episodes.JobTape``): each chunk a policy
    planned with the observation it planned from, then each tick."""

    def plan(self, obs: Observation, chunk: np.ndarray) -> None: ...

    def tick(self, obs: Observation, applied: np.ndarray) -> None: ...


def drive(robot: Robot, policy: ChunkPolicy | None = None, tape: Tape | None = None) -> JobReport:
    """Drive the connected robot's current job to its end and return its report.

    Without a policy the robot's own program runs it. Policy chunks run open loop and
    are re-planned whenever a scripted phase moved the arms (a new round) or the chunk is
    used up. ``tape``, when given, sees every chunk planned and every tick run.
    """
    if policy is None:
        robot.run_program(None if tape is None else tape.tick)
        return robot.job_report()
    policy.reset()
    obs = robot.get_observation()
    while not robot.job_done:
        chunk = check_chunk(policy.infer(obs), policy.version)
        if tape is not None:
            tape.plan(obs, chunk)
        start_round = obs.extras.get("round")
        for a in chunk:
            applied = robot.send_action(a)
            if tape is not None:
                tape.tick(obs, applied)
            obs = robot.get_observation()
            if robot.job_done or obs.extras.get("round") != start_round:
                break
    return robot.job_report()


def describe(out: JobReport) -> str:
    """One line for people: the failure and where, then the cycle time by phase."""
    phases = ", ".join(f"{k} {out.phases[k]:.1f}" for k in PHASE_ORDER if k in out.phases)
    head = "OK" if out.success else f"NOK {out.failure}"
    bad = [f"{f.side.value} {f.position}" for f in out.fasteners if not f.ok]
    if bad:
        head += f" at {', '.join(bad)}"
    return f"{head}; cycle {out.cycle_time_s:.1f} s ({phases})"


def run_job(
    spec: JobSpec,
    *,
    policy: ChunkPolicy | None = None,
    robot: Robot | None = None,
    tape: Tape | None = None,
) -> JobOutcome:
    """Run ``spec`` on ``robot`` (connected) and return its outcome.

    Without a robot, the simulated humanoid is made for this job through the robot
    registry and connected for it alone. Deterministic on the simulator for a given
    ``spec`` (seed, difficulty, recipe) and policy. The cycle time is working time from
    the job's start to its verified result (simulated time on the simulator). ``tape``
    records the job's ticks and chunks as they run (``drive``).
    """
    cameras = policy is not None
    if robot is None:
        with make_robot(SimRobot.name, SimRobotConfig.for_job(spec, cameras=cameras)) as sim:
            return run_job(spec, policy=policy, robot=sim, tape=tape)
    robot.start_job(spec, cameras=cameras)
    out = drive(robot, policy, tape)
    return JobOutcome(
        job_key=spec.job_key,
        robot_id=spec.robot_id,
        outcome=Outcome.OK if out.success else Outcome.NOK,
        error_code=out.error_code,
        cycle_time_ms=int(np.rint(out.cycle_time_s * 1000.0)),
        policy_version=EXPERT_VERSION if policy is None else policy.version,
        fasteners=out.fasteners,
        detail=describe(out),
    )


def make_runner(
    policies: PolicyForJob | None = None, tapes: Callable[[JobSpec], Tape] | None = None
) -> Callable[[JobSpec], JobOutcome]:
    """A function that runs each job with the policy ``policies`` gives for it, or with
    the robot's own program where it gives None (and when there is no ``policies``);
    ``tapes``, when given, hands it a tape to record each job on."""

    def run(spec: JobSpec) -> JobOutcome:
        policy = None if policies is None else policies(spec)
        return run_job(spec, policy=policy, tape=None if tapes is None else tapes(spec))

    return run
