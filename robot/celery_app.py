"""The Celery application both sides use: JSON only, one queue per robot.

The cell sends jobs by task name (``RUN_JOB``) so that it never imports the robot's
runtime; the worker registers the task (``robot.worker``).
"""

from __future__ import annotations

from celery import Celery

RUN_JOB = "intern.robot.run_job"


HEARTBEAT_EVERY_S = 1.0
HEARTBEAT_TTL_S = 5.0


def heartbeat_key(robot_id: str) -> str:
    """Redis key a robot's worker refreshes every ``HEARTBEAT_EVERY_S`` while it lives."""
    return f"intern:robot:{robot_id}:heartbeat"


def robot_queue(robot_id: str) -> str:
    """The queue a robot's worker consumes: ``robot.<robot_id>``."""
    return f"robot.{robot_id}"


def make_celery(redis_url: str) -> Celery:
    """A Celery app on ``redis_url`` (broker and result backend), JSON serialisation only."""
    app = Celery("intern", broker=redis_url, backend=redis_url, set_as_current=False)
    app.conf.update(
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        # Early ack: a worker that dies mid-job must not get the job redelivered to the
        # part (a nut may already be on it); the cell ends such a job NOK "interrupted".
        task_acks_late=False,
        worker_prefetch_multiplier=1,
        # A result finished while Redis restarts is stored once it is back, not dropped.
        result_backend_always_retry=True,
        result_backend_max_retries=60,
        result_backend_base_sleep_between_retries_ms=200,
        result_backend_max_sleep_between_retries_ms=2000,
        result_expires=7 * 24 * 3600,
        task_default_queue="intern.default",
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    return app
