"""schema v1

Revision ID: 0001
Revises:
Create Date: 2026-11-23 23:21:21.548343
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('parts',
    sa.Column('part_id', sa.String(length=64), nullable=False),
    sa.Column('first_seen', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.PrimaryKeyConstraint('part_id', name=op.f('pk_parts'))
    )
    op.create_table('robots',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('skills', postgresql.ARRAY(sa.String(length=40)), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_robots'))
    )
    op.create_table('stations',
    sa.Column('id', sa.String(length=40), nullable=False),
    sa.Column('line', sa.String(length=80), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('tasks', postgresql.ARRAY(sa.String(length=40)), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stations'))
    )
    op.create_table('assignments',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('robot_id', sa.String(length=40), nullable=False),
    sa.Column('station_id', sa.String(length=40), nullable=True),
    sa.Column('valid_from', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('valid_to', sa.DateTime(timezone=True), nullable=True),
    sa.Column('author', sa.String(length=80), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.ForeignKeyConstraint(['robot_id'], ['robots.id'], name=op.f('fk_assignments_robot_id_robots')),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_assignments_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_assignments'))
    )
    op.create_index('ix_assignments_open_robot', 'assignments', ['robot_id'], unique=True, postgresql_where=sa.text('valid_to IS NULL'))
    op.create_index('ix_assignments_station_from', 'assignments', ['station_id', 'valid_from'], unique=False)
    op.create_table('cell_state_events',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('station_id', sa.String(length=40), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('state_code', sa.Integer(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_cell_state_events_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cell_state_events'))
    )
    op.create_index('ix_cell_state_events_station_at', 'cell_state_events', ['station_id', 'at'], unique=False)
    op.create_table('recipes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('station_id', sa.String(length=40), nullable=False),
    sa.Column('program_no', sa.SmallInteger(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('task', sa.String(length=40), nullable=False),
    sa.Column('takt_s', sa.Float(), nullable=False),
    sa.Column('spec', postgresql.JSONB(astext_type=sa.Text()), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_recipes_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recipes')),
    sa.UniqueConstraint('station_id', 'program_no', 'content_hash', name=op.f('uq_recipes_station_id_program_no_content_hash'))
    )
    op.create_table('jobs',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('station_id', sa.String(length=40), nullable=False),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.Column('job_seq', sa.BigInteger(), nullable=False),
    sa.Column('part_id', sa.String(length=64), nullable=True),
    sa.Column('program_no', sa.Integer(), nullable=False),
    sa.Column('recipe_id', sa.Integer(), nullable=True),
    sa.Column('robot_id', sa.String(length=40), nullable=True),
    sa.Column('task', sa.String(length=40), nullable=True),
    sa.Column('policy_version', sa.String(length=80), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cycle_time_ms', sa.Integer(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('error_code', sa.Integer(), nullable=False),
    sa.Column('attempt', sa.SmallInteger(), nullable=False),
    sa.Column('rework', sa.String(length=20), nullable=True),
    sa.Column('detail', sa.Text(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.ForeignKeyConstraint(['part_id'], ['parts.part_id'], name=op.f('fk_jobs_part_id_parts')),
    sa.ForeignKeyConstraint(['recipe_id'], ['recipes.id'], name=op.f('fk_jobs_recipe_id_recipes')),
    sa.ForeignKeyConstraint(['robot_id'], ['robots.id'], name=op.f('fk_jobs_robot_id_robots')),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_jobs_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_jobs')),
    sa.UniqueConstraint('station_id', 'epoch', 'job_seq', name=op.f('uq_jobs_station_id_epoch_job_seq'))
    )
    op.create_index('ix_jobs_ended', 'jobs', ['ended_at'], unique=False)
    op.create_index('ix_jobs_part', 'jobs', ['part_id'], unique=False)
    op.create_index('ix_jobs_station_ended', 'jobs', ['station_id', 'ended_at'], unique=False)
    op.create_table('alerts',
    sa.Column('id', sa.BigInteger(), nullable=False),
    sa.Column('station_id', sa.String(length=40), nullable=False),
    sa.Column('job_id', sa.BigInteger(), nullable=True),
    sa.Column('part_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('error_code', sa.Integer(), nullable=False),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('raised_at', sa.DateTime(timezone=True), server_default=sa.text('now()'), nullable=False),
    sa.Column('acknowledged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('acknowledged_by', sa.String(length=80), nullable=True),
    sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cleared_by', sa.String(length=80), nullable=True),
    sa.Column('rework', sa.String(length=20), nullable=True),
    sa.Column('reworked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reworked_by', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_alerts_job_id_jobs')),
    sa.ForeignKeyConstraint(['station_id'], ['stations.id'], name=op.f('fk_alerts_station_id_stations')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_alerts'))
    )
    op.create_index('ix_alerts_open', 'alerts', ['station_id'], unique=False, postgresql_where=sa.text('cleared_at IS NULL'))
    op.create_index('ix_alerts_raised', 'alerts', ['raised_at'], unique=False)
    op.create_table('fastener_results',
    sa.Column('job_id', sa.BigInteger(), nullable=False),
    sa.Column('side', sa.String(length=8), nullable=False),
    sa.Column('position', sa.SmallInteger(), nullable=False),
    sa.Column('torque_nm', sa.Float(), nullable=False),
    sa.Column('angle_deg', sa.Float(), nullable=False),
    sa.Column('torque_min_nm', sa.Float(), nullable=False),
    sa.Column('torque_max_nm', sa.Float(), nullable=False),
    sa.Column('angle_min_deg', sa.Float(), nullable=False),
    sa.Column('angle_max_deg', sa.Float(), nullable=False),
    sa.Column('ok', sa.Boolean(), nullable=False),
    sa.Column('error_code', sa.Integer(), nullable=False),
    sa.Column('trace', sa.LargeBinary(), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], name=op.f('fk_fastener_results_job_id_jobs'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('job_id', 'side', 'position', name=op.f('pk_fastener_results'))
    )


def downgrade() -> None:
    op.drop_table('fastener_results')
    op.drop_index('ix_alerts_raised', table_name='alerts')
    op.drop_index('ix_alerts_open', table_name='alerts', postgresql_where=sa.text('cleared_at IS NULL'))
    op.drop_table('alerts')
    op.drop_index('ix_jobs_station_ended', table_name='jobs')
    op.drop_index('ix_jobs_part', table_name='jobs')
    op.drop_index('ix_jobs_ended', table_name='jobs')
    op.drop_table('jobs')
    op.drop_table('recipes')
    op.drop_index('ix_cell_state_events_station_at', table_name='cell_state_events')
    op.drop_table('cell_state_events')
    op.drop_index('ix_assignments_station_from', table_name='assignments')
    op.drop_index('ix_assignments_open_robot', table_name='assignments', postgresql_where=sa.text('valid_to IS NULL'))
    op.drop_table('assignments')
    op.drop_table('stations')
    op.drop_table('robots')
    op.drop_table('parts')
