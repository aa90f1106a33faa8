"""Skills turn a job into an episode on a robot and summarise it as a ``JobOutcome``.

``run_job(spec)`` is the one entry point the robot worker calls.
"""

from __future__ import annotations

import numpy as np

from robot.jobs import ErrorCode, FastenerResult, JobOutcome, JobSpec, Outcome, Task


def run_job(spec: JobSpec) -> JobOutcome:
    """Run ``spec`` and return its outcome; deterministic for a given ``spec.seed``."""
    rng = np.random.default_rng(spec.seed)
    fasteners: list[FastenerResult] = []
    for f in spec.fasteners:
        target_t = (f.torque_min_nm + f.torque_max_nm) / 2
        target_a = (f.angle_min_deg + f.angle_max_deg) / 2
        fail = rng.random() < 0.03 * spec.difficulty
        torque = float(target_t * (0.5 if fail else rng.normal(1.0, 0.04)))
        angle = float(target_a * rng.normal(1.0, 0.05))
        angles = np.linspace(0.0, angle, 24)
        torques = torque * (angles / max(angle, 1e-6)) ** 3
        ok = f.torque_min_nm <= torque <= f.torque_max_nm and f.angle_min_deg <= angle <= (
            f.angle_max_deg
        )
        fasteners.append(
            FastenerResult(
                position=f.position,
                side=f.side,
                torque_nm=round(torque, 3),
                angle_deg=round(angle, 2),
                torque_min_nm=f.torque_min_nm,
                torque_max_nm=f.torque_max_nm,
                angle_min_deg=f.angle_min_deg,
                angle_max_deg=f.angle_max_deg,
                ok=ok,
                error_code=0 if ok else int(ErrorCode.UNDER_TORQUE),
                trace_angle_deg=[round(float(a), 2) for a in angles],
                trace_torque_nm=[round(float(t), 3) for t in torques],
            )
        )
    bad = [f for f in fasteners if not f.ok]
    handling_fail = spec.task is Task.MATERIAL_HANDLING and rng.random() < 0.03 * spec.difficulty
    error = bad[0].error_code if bad else (int(ErrorCode.DROP) if handling_fail else 0)
    return JobOutcome(
        job_key=spec.job_key,
        robot_id=spec.robot_id,
        outcome=Outcome.NOK if error else Outcome.OK,
        error_code=error,
        cycle_time_ms=int(spec.takt_s * 1000 * rng.uniform(0.7, 0.95)),
        policy_version="placeholder",
        fasteners=fasteners,
    )
