"""rollouts: canary rollouts of a policy version on a station, and each job's arm

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 10:00:00

A rollout runs a candidate policy version beside the incumbent on one station until the
sequential rule (``cell.record.rollout_rule``) or a supervisor ends it. At most one runs
per station (a partial unique index). ``rollout_jobs`` holds the arm each job of a
rollout ran on; a job belongs to at most one rollout.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "rollouts",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("station_id", sa.String(40), nullable=False),
        sa.Column("incumbent_version", sa.String(80), nullable=False),
        sa.Column("candidate_version", sa.String(80), nullable=False),
        sa.Column("share", sa.Float(), nullable=False),
        sa.Column(
            "started_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("started_by", sa.String(80), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(80), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("evidence", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rollouts")),
        sa.ForeignKeyConstraint(
            ["station_id"], ["stations.id"], name=op.f("fk_rollouts_station_id_stations")
        ),
        sa.CheckConstraint("share > 0 AND share < 1", name=op.f("ck_rollouts_share")),
        sa.CheckConstraint(
            "state IN ('running', 'promoted', 'rolled_back', 'stopped')",
            name=op.f("ck_rollouts_state"),
        ),
        sa.CheckConstraint(
            "candidate_version <> incumbent_version", name=op.f("ck_rollouts_versions_differ")
        ),
    )
    op.create_index(
        "ix_rollouts_running_station",
        "rollouts",
        ["station_id"],
        unique=True,
        postgresql_where=sa.text("state = 'running'"),
    )
    op.create_index("ix_rollouts_station_started", "rollouts", ["station_id", "started_at"])
    op.create_table(
        "rollout_jobs",
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("rollout_id", sa.BigInteger(), nullable=False),
        sa.Column("arm", sa.String(10), nullable=False),
        sa.PrimaryKeyConstraint("job_id", name=op.f("pk_rollout_jobs")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_rollout_jobs_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["rollout_id"],
            ["rollouts.id"],
            name=op.f("fk_rollout_jobs_rollout_id_rollouts"),
            ondelete="CASCADE",
        ),
        sa.CheckConstraint("arm IN ('incumbent', 'candidate')", name=op.f("ck_rollout_jobs_arm")),
    )
    op.create_index("ix_rollout_jobs_rollout_id", "rollout_jobs", ["rollout_id"])


def downgrade() -> None:
    op.drop_table("rollout_jobs")
    op.drop_table("rollouts")
