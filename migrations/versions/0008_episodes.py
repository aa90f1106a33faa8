"""episodes: each job's episode in the episode store

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05 10:00:00

One row per attempt of a job whose robot kept its episode (``robot.job_episodes``): where
it is in the store (relative path), its control ticks and bytes, the job's outcome and
policy version.
Retention (``intern episodes prune``) deletes files and sets ``pruned_at``; rows stay.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "episodes",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), nullable=False),
        sa.Column("attempt", sa.SmallInteger(), nullable=False),
        sa.Column("path", sa.String(400), nullable=False),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("policy_version", sa.String(80), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_episodes")),
        sa.ForeignKeyConstraint(
            ["job_id"], ["jobs.id"], name=op.f("fk_episodes_job_id_jobs"), ondelete="CASCADE"
        ),
        sa.UniqueConstraint("job_id", "attempt", name=op.f("uq_episodes_job_id_attempt")),
    )
    op.create_index("ix_episodes_job_id", "episodes", ["job_id"])
    op.create_index("ix_episodes_created", "episodes", ["created_at"])


def downgrade() -> None:
    op.drop_table("episodes")
