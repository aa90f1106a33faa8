"""replay conflicts: results that met a different one under their job key are kept

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-27 11:00:00

An outbox entry replayed onto a job key that the record already holds with other content
(another part, another outcome) used to be dropped without a word. It is now kept here,
with the row of record and the entry both as JSON, and an alert names it for a person.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "replay_conflicts",
        sa.Column("id", sa.BigInteger(), primary_key=True),
        sa.Column("station_id", sa.String(40), sa.ForeignKey("stations.id"), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("job_seq", sa.BigInteger(), nullable=False),
        sa.Column("job_id", sa.BigInteger(), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("differs", postgresql.ARRAY(sa.String(40)), nullable=False),
        sa.Column("recorded", postgresql.JSONB(), nullable=False),
        sa.Column("replayed", postgresql.JSONB(), nullable=False),
        sa.Column("entry_hash", sa.String(64), nullable=False),
        sa.Column("alert_id", sa.BigInteger(), sa.ForeignKey("alerts.id")),
        sa.Column(
            "found_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.UniqueConstraint("station_id", "epoch", "job_seq", "entry_hash"),
    )


def downgrade() -> None:
    op.drop_table("replay_conflicts")
