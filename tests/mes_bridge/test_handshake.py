"""The pure handshake machine, fed plain values."""

from __future__ import annotations

import pytest

from mes_bridge.errors import HandshakeError, JobNotCurrent
from mes_bridge.handshake import StationHandshake
from mes_bridge.handshake_types import Classification, NoticeKind, Phase
from mes_bridge.jobs import InputProblem, PlcJob, PlcResult, check_job_input
from mes_bridge.tags import Tag

OK = PlcResult(1, 0, 61_000)


def snapshot(
    job_seq: int,
    ack: int,
    res: int,
    res_ack: int,
    part: object = "DC1-2611-000001",
    program: object = 1,
) -> dict[Tag, object]:
    return {
        Tag.JOB_SEQ: job_seq,
        Tag.JOB_ACK_SEQ: ack,
        Tag.RESULT_SEQ: res,
        Tag.RESULT_ACK_SEQ: res_ack,
        Tag.PART_ID: part,
        Tag.PROGRAM_NO: program,
    }


def synced(job_seq: int = 0) -> StationHandshake:
    m = StationHandshake("ST10")
    out = m.resync(snapshot(job_seq, job_seq, job_seq, job_seq))
    assert out.classification is Classification.IDLE
    return m


def request(
    m: StationHandshake, seq: int, part: object = "DC1-2611-000042", program: object = 3
) -> PlcJob | None:
    m.observe(Tag.PART_ID, part)
    m.observe(Tag.PROGRAM_NO, program)
    out = m.observe(Tag.JOB_SEQ, seq)
    return out.jobs[0] if out.jobs else None


def kinds(out) -> list[NoticeKind]:
    return [n.kind for n in out.notices]


def run_job(m: StationHandshake, job: PlcJob, result: PlcResult = OK) -> None:
    m.accept(job)
    m.publish(job, result)
    m.observe(Tag.RESULT_ACK_SEQ, job.job_seq)


def test_a_sequence_of_jobs_writes_the_handshake_in_order() -> None:
    m = synced()
    job = request(m, 1)
    assert job is not None and job.part_id == "DC1-2611-000042" and job.program_no == 3
    assert job.valid and not job.resumed and not job.counter_reset and m.phase is Phase.OFFERED

    assert m.accept(job) == (((Tag.JOB_ACK_SEQ, 1), (Tag.BUSY, True)),)
    steps = m.publish(job, PlcResult(2, 17, 75_000))
    assert steps == (
        ((Tag.RESULT, 2), (Tag.ERROR_CODE, 17), (Tag.CYCLE_TIME_MS, 75_000)),
        ((Tag.RESULT_SEQ, 1), (Tag.BUSY, False)),
    )
    assert steps[-1][0] == (Tag.RESULT_SEQ, 1)  # ResultSeq moves last
    assert m.phase is Phase.PUBLISHED and not m.result_acked(job)
    m.observe(Tag.RESULT_ACK_SEQ, 1)
    assert m.result_acked(job) and m.phase is Phase.IDLE

    nxt = request(m, 2)
    assert nxt is not None and nxt.job_seq == 2 and nxt.skipped == 0
    assert m.result_acked(job)  # stays true once the PLC moved on


def test_a_repeated_job_seq_is_visible_and_never_produces_a_second_job() -> None:
    m = synced()
    job = request(m, 1)
    assert job is not None
    out = m.observe(Tag.JOB_SEQ, 1)
    assert out.jobs == () and kinds(out) == [NoticeKind.REPEAT]
    run_job(m, job)
    out = m.observe(Tag.JOB_SEQ, 1)
    assert out.jobs == () and kinds(out) == [NoticeKind.REPEAT]


def test_a_gap_is_visible_and_the_job_still_comes_out() -> None:
    m = synced(4)
    out = m.observe(Tag.JOB_SEQ, 8)
    assert [j.job_seq for j in out.jobs] == [8]
    assert out.jobs[0].skipped == 3 and kinds(out) == [NoticeKind.GAP]
    assert "from 4 to 8" in out.notices[0].detail


def test_a_counter_going_backwards_is_a_counter_reset_and_a_new_epoch() -> None:
    m = synced()
    for seq in (1, 2, 3):
        job = request(m, seq)
        assert job is not None
        run_job(m, job)
    out = m.observe(Tag.JOB_SEQ, 1)
    assert kinds(out) == [NoticeKind.COUNTER_RESET] and m.epoch == 1
    assert out.jobs[0].job_seq == 1 and out.jobs[0].counter_reset
    again = request(m, 2)
    assert again is not None and not again.counter_reset


def test_a_reset_to_zero_is_reported_and_the_next_job_carries_the_flag() -> None:
    m = synced()
    job = request(m, 5)
    assert job is not None
    run_job(m, job)
    out = m.observe(Tag.JOB_SEQ, 0)
    assert out.jobs == () and kinds(out) == [NoticeKind.COUNTER_RESET]
    nxt = request(m, 1)
    assert nxt is not None and nxt.counter_reset and nxt.skipped == 0


def test_a_new_job_seq_while_a_job_is_open_supersedes_it() -> None:
    m = synced()
    old = request(m, 1)
    assert old is not None
    m.accept(old)
    m.observe(Tag.PART_ID, "DC1-2611-000099")
    out = m.observe(Tag.JOB_SEQ, 2)
    assert kinds(out) == [NoticeKind.SUPERSEDED] and out.jobs[0].job_seq == 2
    with pytest.raises(JobNotCurrent, match=r"job 1.*current job is job 2"):
        m.publish(old, OK)


@pytest.mark.parametrize(
    ("part", "program", "problems"),
    [
        ("", 1, [InputProblem.PART_ID_EMPTY]),
        ("  \x00\x00", 1, [InputProblem.PART_ID_EMPTY]),
        (["X" * 10_000], 1, [InputProblem.PART_ID_NOT_TEXT]),
        (None, 1, [InputProblem.PART_ID_NOT_TEXT]),
        (12345, 1, [InputProblem.PART_ID_NOT_TEXT]),
        ("DC1-2611-000001", 0, [InputProblem.PROGRAM_NO_OUT_OF_RANGE]),
        ("DC1-2611-000001", -4, [InputProblem.PROGRAM_NO_OUT_OF_RANGE]),
        ("DC1-2611-000001", float("nan"), [InputProblem.PROGRAM_NO_NOT_INT]),
        ("DC1-2611-000001", True, [InputProblem.PROGRAM_NO_NOT_INT]),
        ("", None, [InputProblem.PART_ID_EMPTY, InputProblem.PROGRAM_NO_NOT_INT]),
    ],
)
def test_bad_part_id_or_program_no_still_makes_a_job(part, program, problems) -> None:
    m = synced()
    job = request(m, 1, part=part, program=program)
    assert job is not None and not job.valid and list(job.problems) == problems
    assert len(job.raw_part_id) <= 100 and len(job.raw_program_no) <= 100
    if isinstance(part, list):
        assert job.raw_part_id.startswith("['XXX") and "10004 chars" in job.raw_part_id
    assert (job.part_id == "") == any(p.value.startswith("part_id") for p in problems)
    # The cell can still end it NOK through the normal handshake.
    run_job(m, job, PlcResult(2, 901, 0))
    assert m.result_acked(job)


def test_padding_is_stripped_from_a_part_id() -> None:
    assert check_job_input("DC1-2611-000001\x00\x00  ", 7) == ("DC1-2611-000001", 7, ())


@pytest.mark.parametrize(
    "part",
    [
        "\x1d01095011010209171719050810ABCD1234\x1d2110",  # GS1 element strings
        "Gussteil-Nr. Ä-4711 鋳造",  # other scripts
        "DC1\n2611",  # a line end inside: the line's policy decides, not the bridge
        "X" * 10_000,  # so does its length
    ],
)
def test_any_text_is_passed_on_verbatim_for_the_line_to_judge(part: str) -> None:
    m = synced()
    job = request(m, 1, part=part)
    assert job is not None and job.valid and job.part_id == part
    assert len(job.raw_part_id) <= 100


def test_resync_a_idle() -> None:
    m = StationHandshake("ST10")
    out = m.resync(snapshot(12, 12, 12, 12))
    assert out.classification is Classification.IDLE and out.jobs == () and out.writes == ()
    assert m.phase is Phase.IDLE
    nxt = request(m, 13)
    assert nxt is not None and nxt.skipped == 0


def test_resync_a_fresh_plc_at_zero_is_idle() -> None:
    out = StationHandshake("ST10").resync(snapshot(0, 0, 0, 0))
    assert out.classification is Classification.IDLE and out.jobs == ()


def test_resync_b_new_job_pending() -> None:
    m = StationHandshake("ST10")
    out = m.resync(snapshot(13, 12, 12, 12, part="DC1-2611-000013", program=2))
    assert out.classification is Classification.NEW_JOB
    (job,) = out.jobs
    assert (job.job_seq, job.part_id, job.program_no, job.resumed) == (
        13,
        "DC1-2611-000013",
        2,
        False,
    )


def test_resync_b_does_not_hand_out_a_job_the_cell_already_has() -> None:
    m = synced(12)
    job = request(m, 13)
    assert job is not None
    m.connection_lost()
    out = m.resync(snapshot(13, 12, 12, 12))
    assert out.classification is Classification.NEW_JOB and out.jobs == () and out.writes == ()
    m.accept(job)  # the cell goes on with the job it holds


def test_resync_b_rewrites_an_acknowledgement_the_plc_never_got() -> None:
    m = synced(12)
    job = request(m, 13)
    assert job is not None
    m.connection_lost()
    m.accept(job)  # committed while disconnected
    out = m.resync(snapshot(13, 12, 12, 12))
    assert out.jobs == () and out.writes == (((Tag.JOB_ACK_SEQ, 13), (Tag.BUSY, True)),)
    assert kinds(out) == [NoticeKind.REWRITTEN] and m.phase is Phase.ACCEPTED


def test_resync_c_unanswered_job_comes_out_resumed_after_a_restart() -> None:
    m = StationHandshake("ST10", last_job_seq=13)  # e.g. from the production record
    out = m.resync(snapshot(13, 13, 12, 12))
    assert out.classification is Classification.RESUMED
    (job,) = out.jobs
    assert job.resumed and job.job_seq == 13 and kinds(out) == [NoticeKind.RESUMED]
    # The cell republishes a recorded result (or ends it NOK interrupted) without accepting.
    steps = m.publish(job, PlcResult(2, 950, 0))
    assert steps[-1] == ((Tag.RESULT_SEQ, 13), (Tag.BUSY, False))


def test_resync_c_job_in_hand_is_not_resumed_twice() -> None:
    m = synced(12)
    job = request(m, 13)
    assert job is not None
    m.accept(job)
    m.connection_lost()
    out = m.resync(snapshot(13, 13, 12, 12))
    assert out.classification is Classification.RESUMED and out.jobs == () and out.writes == ()
    m.publish(job, OK)


def test_resync_c_rewrites_a_result_whose_result_seq_was_lost() -> None:
    m = synced(12)
    job = request(m, 13)
    assert job is not None
    m.accept(job)
    m.connection_lost()
    m.publish(job, PlcResult(1, 0, 70_000))  # the transport closed before ResultSeq landed
    out = m.resync(snapshot(13, 13, 12, 12))
    assert out.jobs == ()
    assert out.writes == (
        ((Tag.RESULT, 1), (Tag.ERROR_CODE, 0), (Tag.CYCLE_TIME_MS, 70_000)),
        ((Tag.RESULT_SEQ, 13), (Tag.BUSY, False)),
    )
    m.observe(Tag.RESULT_ACK_SEQ, 13)
    assert m.result_acked(job)


def test_resync_d_result_published_but_not_acked_keeps_waiting() -> None:
    m = synced(12)
    job = request(m, 13)
    assert job is not None
    m.accept(job)
    m.publish(job, OK)
    m.connection_lost()
    out = m.resync(snapshot(13, 13, 13, 12))
    assert out.classification is Classification.AWAITING_ACK
    assert out.jobs == () and out.writes == () and m.phase is Phase.PUBLISHED
    m.observe(Tag.RESULT_ACK_SEQ, 13)
    assert m.result_acked(job)


def test_resync_d_after_a_restart_produces_nothing() -> None:
    m = StationHandshake("ST10")
    out = m.resync(snapshot(13, 13, 13, 12))
    assert out.classification is Classification.AWAITING_ACK and out.jobs == ()
    m.observe(Tag.RESULT_ACK_SEQ, 13)
    nxt = request(m, 14)
    assert nxt is not None and nxt.skipped == 0


def test_resync_sees_a_counter_reset_and_drops_the_open_job() -> None:
    m = synced(40)
    job = request(m, 41)
    assert job is not None
    m.accept(job)
    m.connection_lost()
    out = m.resync(snapshot(1, 0, 0, 0))  # cold restart, then a first new job
    assert kinds(out)[0] is NoticeKind.COUNTER_RESET
    assert out.classification is Classification.NEW_JOB
    assert out.jobs[0].job_seq == 1 and out.jobs[0].counter_reset
    with pytest.raises(JobNotCurrent):
        m.publish(job, OK)


def test_unreadable_job_seq_decides_nothing() -> None:
    m = StationHandshake("ST10")
    out = m.resync(snapshot(12, 12, 12, 12) | {Tag.JOB_SEQ: None})
    assert out.classification is Classification.UNREADABLE and out.jobs == ()
    assert m.phase is Phase.UNSYNCED
    m2 = synced(3)
    out = m2.observe(Tag.JOB_SEQ, -1)
    assert out.jobs == () and kinds(out) == [NoticeKind.UNREADABLE]


def test_misuse_by_the_cell_is_refused_clearly() -> None:
    m = synced()
    job = request(m, 1)
    assert job is not None
    other = PlcJob("ST20", 1, "DC1-2611-000001", 1)
    with pytest.raises(HandshakeError, match="station ST20 given to station ST10"):
        m.accept(other)
    m.publish(job, OK)
    m.publish(job, OK)  # a retry of the same result is fine
    with pytest.raises(HandshakeError, match="refusing to replace"):
        m.publish(job, PlcResult(2, 1, 0))
    with pytest.raises(HandshakeError, match="cannot accept"):
        m.accept(job)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((3, 0, 0), "result must be 1"),
        ((1, 2**31, 0), "Int32"),
        ((1, 0, -1), "UInt32"),
        ((1, 0, 1.5), "must be an int"),
    ],
)
def test_result_values_must_fit_their_tags(args, message) -> None:
    with pytest.raises(ValueError, match=message):
        PlcResult(*args)


def test_an_ack_given_while_disconnected_is_seen_at_the_resync() -> None:
    m = synced(3)
    job = request(m, 4)
    assert job is not None
    m.accept(job)
    m.publish(job, OK)
    m.connection_lost()
    # Meanwhile the PLC latched job 4, acknowledged it and requested job 5.
    out = m.resync(snapshot(5, 4, 4, 4))
    assert m.result_acked(job)
    assert [j.job_seq for j in out.jobs] == [5] and out.notices == ()


def test_a_refused_step_is_taken_back_unless_something_else_moved_the_machine() -> None:
    m = synced()
    job = request(m, 1)
    assert job is not None
    before = m.mark()
    m.accept(job)
    m.publish(job, OK)
    after = m.mark()
    assert m.revert(before, after) and m.phase is Phase.OFFERED and m.result is None
    m.accept(job)  # the cell tries again: allowed, as if the refused step never happened
    before = m.mark()
    m.publish(job, OK)
    after = m.mark()
    newer = request(m, 2)  # the PLC moved on before the refusal came back
    assert newer is not None
    assert not m.revert(before, after)
    assert m.is_current(newer) and m.phase is Phase.OFFERED
