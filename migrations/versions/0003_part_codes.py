"""part codes: part ids up to 256 characters

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 09:00:00

A plant's part codes are longer than 64 characters (GS1 DataMatrix element strings with
their GS separators, codes in other scripts): ``parts.part_id``, ``jobs.part_id`` and
``alerts.part_id`` become varchar(256). Widening a varchar rewrites no table and no
index, so it is quick on a plant-year of records. The rollup tables, trigger functions
and views of 0002 carry no part id.

Downgrading fails ("value too long for type character varying(64)") while any part id is
longer than 64 characters: such ids cannot be cut short without merging parts.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("parts", False), ("jobs", True), ("alerts", True))


def _width(old: int, new: int) -> None:
    for table, nullable in COLUMNS:
        op.alter_column(
            table,
            "part_id",
            existing_type=sa.String(old),
            type_=sa.String(new),
            existing_nullable=nullable,
        )


def upgrade() -> None:
    _width(64, 256)


def downgrade() -> None:
    _width(256, 64)
