"""station leases: which orchestrator process serves each station

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 10:00:00

Several ``intern run`` processes, possibly on several hosts, may serve one line: each
station is served by the one process holding its lease row. ``fencing`` grows by one at
every change of owner; the times are PostgreSQL's clock, never a host's.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "station_leases",
        sa.Column("station_id", sa.String(40), nullable=False),
        sa.Column("owner", sa.Text(), nullable=False),
        sa.Column("fencing", sa.BigInteger(), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("renewed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("station_id", name=op.f("pk_station_leases")),
        sa.CheckConstraint("fencing > 0", name=op.f("ck_station_leases_fencing_positive")),
    )


def downgrade() -> None:
    op.drop_table("station_leases")
