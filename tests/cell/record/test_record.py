from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from cell.config import load_line_config, sample_config_path
from cell.record import models as m
from cell.record.jobs import JobRecord, last_job_seqs, record_job, resolve_epoch
from cell.record.roster import robot_for_station, sync_line
from cell.record.trace import pack_trace, unpack_trace
from robot.jobs import FastenerResult, Side


def _fastener(pos: int, ok: bool = True) -> FastenerResult:
    return FastenerResult(
        position=pos,
        side=Side.LEFT,
        torque_nm=21.5,
        angle_deg=700.0,
        torque_min_nm=18,
        torque_max_nm=26,
        angle_min_deg=540,
        angle_max_deg=900,
        ok=ok,
        error_code=0 if ok else 204,
        trace_angle_deg=[0.0, 350.0, 700.0],
        trace_torque_nm=[0.0, 4.0, 21.5],
    )


def _rec(seq: int, part: str | None = "P-1", epoch: int = 0, ok: bool = True) -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        station_id="ST10",
        epoch=epoch,
        job_seq=seq,
        part_id=part,
        program_no=1,
        robot_id="R1",
        task="nut_install",
        started_at=now,
        ended_at=now,
        cycle_time_ms=70000,
        ok=ok,
        error_code=0 if ok else 204,
        fasteners=[_fastener(1, ok), _fastener(2)],
    )


def _seed(session: Session) -> None:
    sync_line(session, load_line_config(sample_config_path()))


def test_recording_the_same_job_twice_leaves_one_row(db_session: Session) -> None:
    _seed(db_session)
    first = record_job(db_session, _rec(7))
    again = record_job(db_session, _rec(7, ok=False))
    assert first.created and not again.created
    assert again.job_id == first.job_id
    rows = db_session.scalar(select(func.count()).select_from(m.Job))
    fasteners = db_session.scalar(select(func.count()).select_from(m.FastenerResult))
    assert (rows, fasteners) == (1, 2)
    assert db_session.get(m.Job, first.job_id).ok is True  # the first recording stands


def test_trace_is_stored_compactly_and_round_trips(db_session: Session) -> None:
    _seed(db_session)
    rec = record_job(db_session, _rec(1))
    blob = db_session.scalars(
        select(m.FastenerResult.trace).where(m.FastenerResult.job_id == rec.job_id)
    ).first()
    angle, torque = unpack_trace(blob)
    assert angle.tolist() == [0.0, 350.0, 700.0]
    assert torque.tolist() == [0.0, 4.0, 21.5]
    assert len(pack_trace([0.0] * 64, [0.0] * 64)) == 512


def test_epoch_repeat_continue_and_counter_reset(db_session: Session) -> None:
    _seed(db_session)
    assert resolve_epoch(db_session, "ST10", 1, "P-1").epoch == 0
    record_job(db_session, _rec(1, "P-1"))
    record_job(db_session, _rec(2, "P-2"))
    repeat = resolve_epoch(db_session, "ST10", 2, "P-2")
    assert repeat.epoch == 0 and repeat.existing is not None
    nxt = resolve_epoch(db_session, "ST10", 3, "P-3")
    assert nxt.epoch == 0 and nxt.existing is None
    # The PLC restarted and counts from 1 again with a new part: a new epoch.
    reset = resolve_epoch(db_session, "ST10", 1, "P-9")
    assert reset.epoch == 1 and reset.existing is None
    record_job(db_session, _rec(1, "P-9", epoch=1))
    assert db_session.scalar(select(func.count()).select_from(m.Job)) == 3
    old = db_session.scalar(select(m.Job).where(m.Job.epoch == 0, m.Job.job_seq == 1))
    assert old.part_id == "P-1"


def test_sync_line_is_idempotent_and_assigns_home_stations(db_session: Session) -> None:
    line = load_line_config(sample_config_path())
    ids1 = sync_line(db_session, line)
    ids2 = sync_line(db_session, line)
    assert ids1 == ids2
    assert robot_for_station(db_session, "ST10") == "R1"
    assert robot_for_station(db_session, "ST30") == "R3"
    open_rows = db_session.scalar(
        select(func.count()).select_from(m.Assignment).where(m.Assignment.valid_to.is_(None))
    )
    assert open_rows == len(line.robots)


def test_last_job_seqs_are_taken_from_the_current_epoch(db_session: Session) -> None:
    _seed(db_session)
    for seq in (1, 2, 3):
        record_job(db_session, _rec(seq, f"P-{seq}"))
    record_job(db_session, _rec(1, "P-9", epoch=1))
    assert last_job_seqs(db_session) == {"ST10": 1}
    forced = resolve_epoch(db_session, "ST10", 5, "P-5", counter_reset=True)
    assert forced.epoch == 2
