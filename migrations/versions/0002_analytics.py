"""analytics: API users, tokens and audit; shifts; rollups kept by triggers; Grafana views

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 08:00:00

Rollups are additive partial aggregates (counts and sums), so any window is answered as
rollup rows for its whole buckets plus raw rows for its ragged edges. Triggers keep them
current as results arrive; a bulk load sets ``intern.analytics_bulk = on`` for its
transaction, skips the triggers and calls ``analytics_rebuild(t0, t1)`` afterwards.
Hourly buckets are UTC hours, daily buckets UTC days.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ROLES = ("viewer", "technician", "engineer", "supervisor", "admin")

FUNCTIONS = r"""
-- PackML states in which a station cannot produce: they count against availability.
CREATE FUNCTION analytics_state_down(state text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT state NOT IN ('idle', 'execute', 'completing', 'complete')
$$;

CREATE FUNCTION analytics_bulk() RETURNS boolean LANGUAGE sql STABLE AS $$
  SELECT coalesce(current_setting('intern.analytics_bulk', true), '') = 'on'
$$;

-- Planned time per unit for a job: its recipe's takt, else the station's longest.
CREATE FUNCTION analytics_takt_ms(p_recipe integer, p_station text) RETURNS bigint
LANGUAGE sql STABLE AS $$
  SELECT coalesce(
    (SELECT round(takt_s * 1000)::bigint FROM recipes WHERE id = p_recipe),
    (SELECT round(max(takt_s) * 1000)::bigint FROM recipes WHERE station_id = p_station),
    0)
$$;

CREATE FUNCTION analytics_job_delta(j jobs, s integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO rollup_jobs_hourly AS r
    (bucket, station_id, robot_id, task, policy_version, jobs, first_attempts, ok,
     first_pass_ok, reworked_ok, scrapped, worked, cycle_ms_sum, takt_ms_sum)
  VALUES (date_trunc('hour', j.ended_at, 'UTC'), j.station_id, j.robot_id, j.task,
          j.policy_version, s, s * (j.attempt = 1)::int, s * j.ok::int,
          s * (j.ok AND j.attempt = 1)::int,
          s * (NOT j.ok AND j.rework IS NOT DISTINCT FROM 'reworked_ok')::int,
          s * (NOT j.ok AND j.rework IS NOT DISTINCT FROM 'scrapped')::int,
          s * (j.cycle_time_ms > 0)::int, s * j.cycle_time_ms::bigint,
          s * analytics_takt_ms(j.recipe_id, j.station_id))
  ON CONFLICT ON CONSTRAINT uq_rollup_jobs_hourly_key DO UPDATE SET
    jobs = r.jobs + EXCLUDED.jobs, first_attempts = r.first_attempts + EXCLUDED.first_attempts,
    ok = r.ok + EXCLUDED.ok, first_pass_ok = r.first_pass_ok + EXCLUDED.first_pass_ok,
    reworked_ok = r.reworked_ok + EXCLUDED.reworked_ok, scrapped = r.scrapped + EXCLUDED.scrapped,
    worked = r.worked + EXCLUDED.worked, cycle_ms_sum = r.cycle_ms_sum + EXCLUDED.cycle_ms_sum,
    takt_ms_sum = r.takt_ms_sum + EXCLUDED.takt_ms_sum;
  IF NOT j.ok THEN
    INSERT INTO rollup_nok_daily AS r (day, station_id, error_code, n)
    VALUES ((j.ended_at AT TIME ZONE 'UTC')::date, j.station_id, j.error_code, s)
    ON CONFLICT (day, station_id, error_code) DO UPDATE SET n = r.n + EXCLUDED.n;
  END IF;
  IF j.cycle_time_ms > 0 THEN
    INSERT INTO rollup_cycle_daily AS r (day, station_id, bin, n)
    VALUES ((j.ended_at AT TIME ZONE 'UTC')::date, j.station_id, j.cycle_time_ms / 500, s)
    ON CONFLICT (day, station_id, bin) DO UPDATE SET n = r.n + EXCLUDED.n;
  END IF;
END $$;

CREATE FUNCTION analytics_jobs_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF analytics_bulk() THEN RETURN NULL; END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM analytics_job_delta(OLD, -1); END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN PERFORM analytics_job_delta(NEW, 1); END IF;
  RETURN NULL;
END $$;

CREATE FUNCTION analytics_fastener_delta(f fastener_results, s integer) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  j record;
BEGIN
  SELECT station_id, ended_at INTO j FROM jobs WHERE id = f.job_id;
  IF NOT FOUND THEN RETURN; END IF;  -- a cascade from a deleted job
  INSERT INTO rollup_fasteners_daily AS r
    (day, station_id, side, position, torque_min_nm, torque_max_nm, angle_min_deg,
     angle_max_deg, ok, error_code, n, torque_sum, torque_sumsq, angle_sum, angle_sumsq)
  VALUES ((j.ended_at AT TIME ZONE 'UTC')::date, j.station_id, f.side, f.position,
          f.torque_min_nm, f.torque_max_nm, f.angle_min_deg, f.angle_max_deg, f.ok,
          f.error_code, s, s * f.torque_nm, s * f.torque_nm ^ 2, s * f.angle_deg,
          s * f.angle_deg ^ 2)
  ON CONFLICT ON CONSTRAINT uq_rollup_fasteners_daily_key DO UPDATE SET
    n = r.n + EXCLUDED.n, torque_sum = r.torque_sum + EXCLUDED.torque_sum,
    torque_sumsq = r.torque_sumsq + EXCLUDED.torque_sumsq,
    angle_sum = r.angle_sum + EXCLUDED.angle_sum,
    angle_sumsq = r.angle_sumsq + EXCLUDED.angle_sumsq;
END $$;

CREATE FUNCTION analytics_fasteners_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF analytics_bulk() THEN RETURN NULL; END IF;
  IF TG_OP IN ('UPDATE', 'DELETE') THEN PERFORM analytics_fastener_delta(OLD, -1); END IF;
  IF TG_OP IN ('UPDATE', 'INSERT') THEN PERFORM analytics_fastener_delta(NEW, 1); END IF;
  RETURN NULL;
END $$;

-- Add (s = 1) or remove (s = -1) the span [t0, t1) of one state, split at UTC hours.
CREATE FUNCTION analytics_state_span(p_station text, p_state text, t0 timestamptz,
                                     t1 timestamptz, s integer) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
  IF t0 IS NULL OR t1 IS NULL OR t1 <= t0 THEN RETURN; END IF;
  INSERT INTO rollup_state_hourly AS r (bucket, station_id, state, seconds)
  SELECT h, p_station, p_state,
         s * extract(epoch FROM least(t1, h + interval '1 hour') - greatest(t0, h))
  FROM generate_series(date_trunc('hour', t0, 'UTC'), t1 - interval '1 microsecond',
                       interval '1 hour') AS h
  ON CONFLICT (bucket, station_id, state) DO UPDATE SET seconds = r.seconds + EXCLUDED.seconds;
END $$;

-- A state lasts from its event to the station's next event. An event inserted between
-- two others splits the earlier one's span, so late arrivals are accounted too.
CREATE FUNCTION analytics_state_trigger() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  prev record;
  nxt record;
BEGIN
  IF analytics_bulk() THEN RETURN NULL; END IF;
  SELECT state, at INTO prev FROM cell_state_events
   WHERE station_id = NEW.station_id AND at <= NEW.at AND (at < NEW.at OR id < NEW.id)
   ORDER BY at DESC, id DESC LIMIT 1;
  SELECT state, at INTO nxt FROM cell_state_events
   WHERE station_id = NEW.station_id AND at >= NEW.at AND (at > NEW.at OR id > NEW.id)
   ORDER BY at, id LIMIT 1;
  IF prev.at IS NOT NULL AND nxt.at IS NOT NULL THEN
    PERFORM analytics_state_span(NEW.station_id, prev.state, prev.at, nxt.at, -1);
  END IF;
  IF prev.at IS NOT NULL THEN
    PERFORM analytics_state_span(NEW.station_id, prev.state, prev.at, NEW.at, 1);
  END IF;
  IF nxt.at IS NOT NULL THEN
    PERFORM analytics_state_span(NEW.station_id, NEW.state, NEW.at, nxt.at, 1);
  END IF;
  RETURN NULL;
END $$;

-- Recompute every rollup over [t0, t1) (UTC day boundaries) from the raw rows.
CREATE FUNCTION analytics_rebuild(t0 timestamptz, t1 timestamptz) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
  d0 date := (t0 AT TIME ZONE 'UTC')::date;
  d1 date := (t1 AT TIME ZONE 'UTC')::date;
  lo_id bigint;
  hi_id bigint;
BEGIN
  IF date_trunc('day', t0, 'UTC') <> t0 OR date_trunc('day', t1, 'UTC') <> t1 THEN
    RAISE EXCEPTION 'analytics_rebuild needs UTC day boundaries, got [%, %)', t0, t1;
  END IF;
  DELETE FROM rollup_jobs_hourly WHERE bucket >= t0 AND bucket < t1;
  DELETE FROM rollup_nok_daily WHERE day >= d0 AND day < d1;
  DELETE FROM rollup_cycle_daily WHERE day >= d0 AND day < d1;
  DELETE FROM rollup_fasteners_daily WHERE day >= d0 AND day < d1;
  DELETE FROM rollup_state_hourly WHERE bucket >= t0 AND bucket < t1;
  SELECT min(id), max(id) INTO lo_id, hi_id FROM jobs WHERE ended_at >= t0 AND ended_at < t1;

  INSERT INTO rollup_jobs_hourly
    (bucket, station_id, robot_id, task, policy_version, jobs, first_attempts, ok,
     first_pass_ok, reworked_ok, scrapped, worked, cycle_ms_sum, takt_ms_sum)
  SELECT date_trunc('hour', j.ended_at, 'UTC'), j.station_id, j.robot_id, j.task,
         j.policy_version, count(*), count(*) FILTER (WHERE j.attempt = 1),
         count(*) FILTER (WHERE j.ok), count(*) FILTER (WHERE j.ok AND j.attempt = 1),
         count(*) FILTER (WHERE NOT j.ok AND j.rework = 'reworked_ok'),
         count(*) FILTER (WHERE NOT j.ok AND j.rework = 'scrapped'),
         count(*) FILTER (WHERE j.cycle_time_ms > 0), sum(j.cycle_time_ms),
         sum(coalesce(rt.ms, st.ms, 0))
  FROM jobs j
  LEFT JOIN (SELECT id, round(takt_s * 1000)::bigint AS ms FROM recipes) rt
         ON rt.id = j.recipe_id
  LEFT JOIN (SELECT station_id, round(max(takt_s) * 1000)::bigint AS ms FROM recipes
             GROUP BY station_id) st ON st.station_id = j.station_id
  WHERE j.ended_at >= t0 AND j.ended_at < t1
  GROUP BY 1, 2, 3, 4, 5;

  INSERT INTO rollup_nok_daily (day, station_id, error_code, n)
  SELECT (ended_at AT TIME ZONE 'UTC')::date, station_id, error_code, count(*)
  FROM jobs WHERE ended_at >= t0 AND ended_at < t1 AND NOT ok
  GROUP BY 1, 2, 3;

  INSERT INTO rollup_cycle_daily (day, station_id, bin, n)
  SELECT (ended_at AT TIME ZONE 'UTC')::date, station_id, cycle_time_ms / 500, count(*)
  FROM jobs WHERE ended_at >= t0 AND ended_at < t1 AND cycle_time_ms > 0
  GROUP BY 1, 2, 3;

  INSERT INTO rollup_fasteners_daily
    (day, station_id, side, position, torque_min_nm, torque_max_nm, angle_min_deg,
     angle_max_deg, ok, error_code, n, torque_sum, torque_sumsq, angle_sum, angle_sumsq)
  SELECT (j.ended_at AT TIME ZONE 'UTC')::date, j.station_id, f.side, f.position,
         f.torque_min_nm, f.torque_max_nm, f.angle_min_deg, f.angle_max_deg, f.ok,
         f.error_code, count(*), sum(f.torque_nm), sum(f.torque_nm ^ 2), sum(f.angle_deg),
         sum(f.angle_deg ^ 2)
  FROM jobs j JOIN fastener_results f ON f.job_id = j.id
  WHERE j.ended_at >= t0 AND j.ended_at < t1
    -- Job ids grow with time, so the window's fasteners are one range of the primary
    -- key: a range scan and a hash join instead of one index probe per job.
    AND f.job_id BETWEEN lo_id AND hi_id
  GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10;

  -- Closed spans only (an event with a later one); the open span of a station's latest
  -- event is added by the queries up to "now", exactly as the trigger leaves it.
  INSERT INTO rollup_state_hourly (bucket, station_id, state, seconds)
  SELECT h, sp.station_id, sp.state,
         sum(extract(epoch FROM least(sp.b, h + interval '1 hour') - greatest(sp.a, h)))
  FROM (
    SELECT e.station_id, e.state, greatest(e.at, t0) AS a, least(e.next_at, t1) AS b
    FROM (
      SELECT w.station_id, w.state, w.at,
             lead(w.at) OVER (PARTITION BY w.station_id ORDER BY w.at, w.id) AS next_at
      FROM (
        SELECT station_id, state, at, id FROM cell_state_events WHERE at >= t0 AND at < t1
        UNION ALL
        SELECT p.* FROM stations s CROSS JOIN LATERAL (
          SELECT station_id, state, at, id FROM cell_state_events
          WHERE station_id = s.id AND at < t0 ORDER BY at DESC, id DESC LIMIT 1) p
        UNION ALL
        SELECT n.* FROM stations s CROSS JOIN LATERAL (
          SELECT station_id, state, at, id FROM cell_state_events
          WHERE station_id = s.id AND at >= t1 ORDER BY at, id LIMIT 1) n
      ) w
    ) e
    WHERE e.next_at IS NOT NULL AND e.at < t1 AND e.next_at > t0
  ) sp
  CROSS JOIN LATERAL generate_series(date_trunc('hour', sp.a, 'UTC'),
                                     sp.b - interval '1 microsecond', interval '1 hour') AS h
  WHERE sp.b > sp.a
  GROUP BY 1, 2, 3;
END $$;
"""

TRIGGERS = """
CREATE TRIGGER analytics_jobs AFTER INSERT OR DELETE OR UPDATE OF
  station_id, robot_id, task, policy_version, ended_at, cycle_time_ms, ok, error_code,
  attempt, rework, recipe_id
  ON jobs FOR EACH ROW EXECUTE FUNCTION analytics_jobs_trigger();
CREATE TRIGGER analytics_fasteners AFTER INSERT OR DELETE OR UPDATE
  ON fastener_results FOR EACH ROW EXECUTE FUNCTION analytics_fasteners_trigger();
CREATE TRIGGER analytics_states AFTER INSERT
  ON cell_state_events FOR EACH ROW EXECUTE FUNCTION analytics_state_trigger();
"""

# Documented views for Grafana and ad-hoc SQL; see grafana/README.md.
VIEWS = """
CREATE VIEW v_yield_hourly AS
SELECT bucket AS time, station_id, robot_id, task, policy_version, jobs AS parts,
       jobs - first_attempts AS retried, first_pass_ok, ok + reworked_ok AS final_good,
       first_pass_ok::float8 / nullif(jobs, 0) AS first_pass_yield,
       (ok + reworked_ok)::float8 / nullif(jobs, 0) AS final_yield,
       cycle_ms_sum::float8 / nullif(worked, 0) / 1000.0 AS cycle_time_mean_s
FROM rollup_jobs_hourly;

CREATE VIEW v_yield_daily AS
SELECT date_trunc('day', bucket, 'UTC') AS time, station_id,
       sum(jobs) AS parts, sum(first_pass_ok) AS first_pass_ok,
       sum(ok + reworked_ok) AS final_good,
       sum(first_pass_ok)::float8 / nullif(sum(jobs), 0) AS first_pass_yield,
       sum(ok + reworked_ok)::float8 / nullif(sum(jobs), 0) AS final_yield
FROM rollup_jobs_hourly GROUP BY 1, 2;

CREATE VIEW v_nok_daily AS
SELECT day::timestamp AT TIME ZONE 'UTC' AS time, station_id, error_code, n
FROM rollup_nok_daily;

CREATE VIEW v_fastener_spc_daily AS
SELECT day::timestamp AT TIME ZONE 'UTC' AS time, station_id, side, position,
       torque_min_nm, torque_max_nm, sum(n) AS n,
       sum(torque_sum) / sum(n) AS torque_mean,
       sqrt(greatest(0, (sum(torque_sumsq) - sum(torque_sum) ^ 2 / sum(n))
            / nullif(sum(n) - 1, 0))) AS torque_sd,
       sum(angle_sum) / sum(n) AS angle_mean,
       sqrt(greatest(0, (sum(angle_sumsq) - sum(angle_sum) ^ 2 / sum(n))
            / nullif(sum(n) - 1, 0))) AS angle_sd
FROM rollup_fasteners_daily WHERE ok
GROUP BY 1, 2, 3, 4, 5, 6;

CREATE VIEW v_fastener_values AS
SELECT j.ended_at AS time, j.station_id, f.side, f.position, f.torque_nm, f.angle_deg,
       f.torque_min_nm, f.torque_max_nm, f.ok, f.error_code
FROM jobs j JOIN fastener_results f ON f.job_id = j.id;

CREATE VIEW v_state_hourly AS
SELECT bucket AS time, station_id, state, seconds, analytics_state_down(state) AS down
FROM rollup_state_hourly;
"""


def upgrade() -> None:
    role_list = ", ".join(f"'{r}'" for r in ROLES)
    op.create_table(
        "api_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(80), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("disabled", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.CheckConstraint(f"role IN ({role_list})", name=op.f("ck_api_users_role")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_users")),
        sa.UniqueConstraint("username", name=op.f("uq_api_users_username")),
    )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("label", sa.String(120), server_default="", nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["api_users.id"], ondelete="CASCADE",
                                name=op.f("fk_api_tokens_user_id_api_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_tokens")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_tokens_token_hash")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), server_default=sa.text("now()"),
                  nullable=False),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("role", sa.String(20), nullable=False),
        sa.Column("action", sa.String(60), nullable=False),
        sa.Column("target", sa.String(200), server_default="", nullable=False),
        sa.Column("outcome", sa.String(20), nullable=False),
        sa.Column("detail", postgresql.JSONB(), server_default="{}", nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_at", "audit_log", ["at"])
    op.create_table(
        "shifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("starts_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("ends_at > starts_at", name=op.f("ck_shifts_order")),
        # Rollups are hourly: shifts on whole UTC hours are answered from them exactly.
        sa.CheckConstraint("date_trunc('hour', starts_at, 'UTC') = starts_at AND "
                           "date_trunc('hour', ends_at, 'UTC') = ends_at",
                           name=op.f("ck_shifts_whole_hours")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_shifts")),
        postgresql.ExcludeConstraint(
            (sa.text("tstzrange(starts_at, ends_at)"), "&&"), using="gist",
            name="ex_shifts_no_overlap"),
    )
    op.create_index("ix_shifts_starts_at", "shifts", ["starts_at"])
    op.create_index("ix_alerts_part", "alerts", ["part_id"])
    op.create_index("ix_alerts_job", "alerts", ["job_id"])

    op.execute("""
    CREATE TABLE rollup_jobs_hourly (
      bucket timestamptz NOT NULL,
      station_id varchar(40) NOT NULL,
      robot_id varchar(40),
      task varchar(40),
      policy_version varchar(80),
      jobs bigint NOT NULL, first_attempts bigint NOT NULL, ok bigint NOT NULL,
      first_pass_ok bigint NOT NULL, reworked_ok bigint NOT NULL, scrapped bigint NOT NULL,
      worked bigint NOT NULL, cycle_ms_sum bigint NOT NULL, takt_ms_sum bigint NOT NULL,
      CONSTRAINT uq_rollup_jobs_hourly_key UNIQUE NULLS NOT DISTINCT
        (bucket, station_id, robot_id, task, policy_version)
    );
    CREATE INDEX ix_rollup_jobs_hourly_station ON rollup_jobs_hourly (station_id, bucket);
    CREATE TABLE rollup_nok_daily (
      day date NOT NULL, station_id varchar(40) NOT NULL, error_code integer NOT NULL,
      n bigint NOT NULL, PRIMARY KEY (day, station_id, error_code)
    );
    CREATE TABLE rollup_cycle_daily (
      day date NOT NULL, station_id varchar(40) NOT NULL, bin integer NOT NULL,
      n bigint NOT NULL, PRIMARY KEY (day, station_id, bin)
    );
    CREATE INDEX ix_rollup_cycle_daily_station ON rollup_cycle_daily (station_id, day);
    CREATE TABLE rollup_fasteners_daily (
      day date NOT NULL, station_id varchar(40) NOT NULL, side varchar(8) NOT NULL,
      position smallint NOT NULL, torque_min_nm float8 NOT NULL, torque_max_nm float8 NOT NULL,
      angle_min_deg float8 NOT NULL, angle_max_deg float8 NOT NULL, ok boolean NOT NULL,
      error_code integer NOT NULL, n bigint NOT NULL, torque_sum float8 NOT NULL,
      torque_sumsq float8 NOT NULL, angle_sum float8 NOT NULL, angle_sumsq float8 NOT NULL,
      CONSTRAINT uq_rollup_fasteners_daily_key UNIQUE (day, station_id, side, position,
        torque_min_nm, torque_max_nm, angle_min_deg, angle_max_deg, ok, error_code)
    );
    CREATE INDEX ix_rollup_fasteners_daily_station ON rollup_fasteners_daily (station_id, day);
    CREATE TABLE rollup_state_hourly (
      bucket timestamptz NOT NULL, station_id varchar(40) NOT NULL, state varchar(20) NOT NULL,
      seconds float8 NOT NULL, PRIMARY KEY (bucket, station_id, state)
    );
    CREATE INDEX ix_rollup_state_hourly_station ON rollup_state_hourly (station_id, bucket);
    """)
    op.execute(FUNCTIONS)
    op.execute(TRIGGERS)
    op.execute(VIEWS)
    # Whatever was recorded before this revision gets its rollups now.
    op.execute("""
    DO $$
    DECLARE lo timestamptz; hi timestamptz;
    BEGIN
      lo := date_trunc('day', least((SELECT min(ended_at) FROM jobs),
                                    (SELECT min(at) FROM cell_state_events)), 'UTC');
      hi := date_trunc('day', greatest((SELECT max(ended_at) FROM jobs),
                                       (SELECT max(at) FROM cell_state_events)), 'UTC')
            + interval '1 day';
      IF lo IS NOT NULL THEN PERFORM analytics_rebuild(lo, hi); END IF;
    END $$;
    """)


def downgrade() -> None:
    for view in ("v_state_hourly", "v_fastener_values", "v_fastener_spc_daily", "v_nok_daily",
                 "v_yield_daily", "v_yield_hourly"):
        op.execute(f"DROP VIEW IF EXISTS {view}")
    op.execute("DROP TRIGGER IF EXISTS analytics_states ON cell_state_events")
    op.execute("DROP TRIGGER IF EXISTS analytics_fasteners ON fastener_results")
    op.execute("DROP TRIGGER IF EXISTS analytics_jobs ON jobs")
    for fn in ("analytics_rebuild(timestamptz, timestamptz)", "analytics_state_trigger()",
               "analytics_state_span(text, text, timestamptz, timestamptz, integer)",
               "analytics_fasteners_trigger()",
               "analytics_fastener_delta(fastener_results, integer)",
               "analytics_jobs_trigger()", "analytics_job_delta(jobs, integer)",
               "analytics_takt_ms(integer, text)", "analytics_bulk()",
               "analytics_state_down(text)"):
        op.execute(f"DROP FUNCTION IF EXISTS {fn}")
    for table in ("rollup_state_hourly", "rollup_fasteners_daily", "rollup_cycle_daily",
                  "rollup_nok_daily", "rollup_jobs_hourly"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
    op.drop_index("ix_alerts_job", table_name="alerts")
    op.drop_index("ix_alerts_part", table_name="alerts")
    op.drop_index("ix_shifts_starts_at", table_name="shifts")
    op.drop_table("shifts")
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("api_tokens")
    op.drop_table("api_users")
