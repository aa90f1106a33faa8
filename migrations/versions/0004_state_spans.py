"""state spans: the state rollup kept per statement; PackML's production cycle counts as running

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27 10:00:00

The line stores a change of state as the chain of PackML states it goes through, all at
the same instant and in one INSERT (Execute -> Completing -> Complete). 0002's row
trigger took every event after the new one as already accounted for in the rollup, but
AFTER ROW triggers run once the whole statement is in, so the state before such a chain
(Execute, Idle, Complete: the running ones) was added and removed again, and the shift
report read availability 0 % for stations that made a hundred parts. The rollup is now
kept by a statement trigger over the inserted rows: for each station it takes back the
spans between the old events around the new ones and adds the spans of all of them,
which is right for chains, for late arrivals and for single events alike.

Starting and Resetting are steps of PackML's production cycle (Idle -> Starting ->
Execute, Complete -> Resetting -> Idle), not of a hold or a stop, so they count as
running now; down are the held, suspended, stopped and aborted families.
``analytics_state_off`` names the states of a station that is shut down (Stopping,
Stopped): time no one planned it to produce when no shift says otherwise.

The state rollup is rebuilt from the raw events for every day that has any.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPGRADE = r"""
CREATE OR REPLACE FUNCTION analytics_state_down(state text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT state NOT IN ('idle', 'starting', 'execute', 'completing', 'complete', 'resetting')
$$;

CREATE FUNCTION analytics_state_off(state text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT state IN ('stopping', 'stopped', 'undefined')
$$;

-- Per station among the inserted events: the spans between the old events from the one
-- before the first new event to the one after the last are taken back (s = -1), and the
-- spans between all events over the same stretch are added (s = 1). Spans outside that
-- stretch do not change; the open span of a station's latest event is never stored.
CREATE FUNCTION analytics_states_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  st text;
  lo record;
  hi record;
  p record;
  n record;
BEGIN
  IF analytics_bulk() THEN RETURN NULL; END IF;
  FOR st IN SELECT DISTINCT station_id FROM new_events LOOP
    SELECT at, id INTO lo FROM new_events WHERE station_id = st ORDER BY at, id LIMIT 1;
    SELECT at, id INTO hi FROM new_events WHERE station_id = st
     ORDER BY at DESC, id DESC LIMIT 1;
    SELECT at, id INTO p FROM cell_state_events
     WHERE station_id = st AND (at, id) < (lo.at, lo.id) ORDER BY at DESC, id DESC LIMIT 1;
    SELECT at, id INTO n FROM cell_state_events
     WHERE station_id = st AND (at, id) > (hi.at, hi.id) ORDER BY at, id LIMIT 1;
    PERFORM analytics_state_span(st, sp.state, sp.at, sp.next_at, sp.s)
    FROM (
      SELECT v.s, e.state, e.at,
             lead(e.at) OVER (PARTITION BY v.s ORDER BY e.at, e.id) AS next_at
      FROM cell_state_events e CROSS JOIN (VALUES (-1), (1)) AS v(s)
      WHERE e.station_id = st
        AND (p.id IS NULL OR (e.at, e.id) >= (p.at, p.id))
        AND (n.id IS NULL OR (e.at, e.id) <= (n.at, n.id))
        AND (v.s = 1 OR e.id NOT IN (SELECT id FROM new_events))
    ) sp
    WHERE sp.next_at IS NOT NULL;
  END LOOP;
  RETURN NULL;
END $$;

DROP TRIGGER analytics_states ON cell_state_events;
DROP FUNCTION analytics_state_trigger();
CREATE TRIGGER analytics_states AFTER INSERT ON cell_state_events
  REFERENCING NEW TABLE AS new_events
  FOR EACH STATEMENT EXECUTE FUNCTION analytics_states_inserted();
"""

# Every day with a state event gets its rollups from the raw rows again.
REBUILD = """
DO $$
DECLARE lo timestamptz; hi timestamptz;
BEGIN
  SELECT date_trunc('day', min(at), 'UTC'), date_trunc('day', max(at), 'UTC') + interval '1 day'
    INTO lo, hi FROM cell_state_events;
  IF lo IS NOT NULL THEN PERFORM analytics_rebuild(lo, hi); END IF;
END $$;
"""

# 0002's row trigger and down states, as they were.
DOWNGRADE = r"""
DROP TRIGGER analytics_states ON cell_state_events;
DROP FUNCTION analytics_states_inserted();
DROP FUNCTION analytics_state_off(text);
CREATE OR REPLACE FUNCTION analytics_state_down(state text) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT state NOT IN ('idle', 'execute', 'completing', 'complete')
$$;

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

CREATE TRIGGER analytics_states AFTER INSERT
  ON cell_state_events FOR EACH ROW EXECUTE FUNCTION analytics_state_trigger();
"""


def upgrade() -> None:
    op.execute(UPGRADE)
    op.execute(REBUILD)


def downgrade() -> None:
    op.execute(DOWNGRADE)
