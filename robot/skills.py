"""Skills turn a job into an episode on a robot and summarise it as a ``JobOutcome``.

``run_job(spec)`` is the one entry point the robot worker calls. It runs the job's task on
the simulated humanoid with the job's recipe, seed and difficulty, driven by the scripted
expert (``policy=None``, cameras off: a few tens of milliseconds per job) or by a
``ChunkPolicy`` (cameras on). A policy whose output is unusable raises ``ActionError``;
the worker records that as a NOK job.
"""

from __future__ import annotations

import numpy as np

from robot.env import ChunkPolicy, EpisodeOutcome, check_chunk
from robot.jobs import JobOutcome, JobSpec, Outcome
from robot.sim.robot import SimRobot, SimRobotConfig

EXPERT_VERSION = "expert"
PHASE_ORDER = ("walk", "fetch", "transfer", "align", "drive", "place", "verify")


def drive(robot: SimRobot, policy: ChunkPolicy | None = None) -> EpisodeOutcome:
    """Drive the connected robot's current episode to its end and return the outcome.

    Policy chunks run open loop and are re-planned whenever a scripted phase moved the
    arms (a new round) or the chunk is used up.
    """
    if policy is not None:
        policy.reset()
    obs = robot.get_observation()
    while not robot.episode_done:
        if policy is None:
            robot.send_action(robot.expert_action())
            continue
        chunk = check_chunk(policy.infer(obs), policy.version)
        start_round = obs.extras.get("round")
        for a in chunk:
            robot.send_action(a)
            obs = robot.get_observation()
            if robot.episode_done or obs.extras.get("round") != start_round:
                break
    return robot.outcome()


def describe(out: EpisodeOutcome) -> str:
    """One line for people: the failure and where, then the cycle time by phase."""
    phases = ", ".join(f"{k} {out.phases[k]:.1f}" for k in PHASE_ORDER if k in out.phases)
    head = "OK" if out.success else f"NOK {out.failure}"
    bad = [f"{f.side.value} {f.position}" for f in out.fasteners if not f.ok]
    if bad:
        head += f" at {', '.join(bad)}"
    return f"{head}; cycle {out.cycle_time_s:.1f} s ({phases})"


def run_job(spec: JobSpec, *, policy: ChunkPolicy | None = None) -> JobOutcome:
    """Run ``spec`` on the simulated humanoid and return its outcome.

    Deterministic for a given ``spec`` (seed, difficulty, recipe) and policy. The cycle
    time is simulated working time from the job's start to its verified result.
    """
    config = SimRobotConfig(
        task=spec.task,
        seed=spec.seed,
        difficulty=spec.difficulty,
        fasteners=spec.fasteners,
        takt_s=spec.takt_s,
        render=policy is not None,
    )
    with SimRobot(config) as robot:
        out = drive(robot, policy)
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
