"""The fault analysis can fail: each way the robot, the PLC and the record disagree is
counted on hand-made inputs, and a clean run counts nothing."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from cell.cli.logs import JsonFormatter
from tests.cell.line.kill_analysis import (
    JSON_KEYS,
    JobKey,
    Latch,
    RowView,
    WorkerEvent,
    analyse,
    percentile,
    read_worker_log,
    takeover_delays,
)

T0 = 1_800_000_000.0


def _row(seq: int, *, ok: bool = True, attempt: int = 1, part: str | None = None) -> RowView:
    return RowView(
        station="ST10",
        epoch=0,
        job_seq=seq,
        part_id=part or f"P{seq}",
        ok=ok,
        error_code=0 if ok else 105,
        attempt=attempt,
        policy_version="expert",
        task="nut_install",
        fasteners=6 if ok else 0,
    )


def _latch(seq: int, *, ok: bool = True, part: str | None = None) -> Latch:
    return Latch("ST10", seq, part or f"P{seq}", ok, T0 + 10 * seq + 5)


def _job(seq: int, *, outcome: str = "ok", key: str | None = None) -> list[WorkerEvent]:
    """A robot's clean job: started at 10*seq, ended 3 s later, latched 2 s after that."""
    k = JobKey.parse(key or f"ST10:0:{seq}")
    assert k is not None
    return [
        WorkerEvent("started", k, T0 + 10 * seq),
        WorkerEvent("ended", k, T0 + 10 * seq + 3, outcome),
    ]


def _clean() -> tuple[list[Latch], list[RowView], list[WorkerEvent]]:
    return [_latch(1), _latch(2)], [_row(1), _row(2)], [*_job(1), *_job(2)]


def _counts(report: object) -> dict[str, object]:
    return {k: v for k, v in vars(report).items() if k not in ("scenario", "problems")}


def test_a_clean_run_counts_nothing() -> None:
    latches, rows, events = _clean()
    report = analyse("kill", 3, latches, rows, events)
    assert _counts(report) == {
        "kills": 3,
        "jobs": 2,
        "lost": 0,
        "duplicates": 0,
        "executed_twice": 0,
        "robot_after_plc_done": 0,
        "false_nok": 0,
        "takeover_p50_s": None,
        "takeover_p99_s": None,
        "not_robot_result": 0,
    }
    assert report.failures() == [] and report.problems == ()


def test_a_job_started_twice_is_executed_twice() -> None:
    latches, rows, events = _clean()
    again = WorkerEvent("started", events[0].key, T0 + 12)
    report = analyse("kill", 1, latches, rows, [*events, again])
    assert report.executed_twice == 1
    assert report.failures() == ["executed_twice = 1"]
    assert "executed twice: ST10:0:1 (2 starts)" in report.problems


def test_a_robot_ending_after_the_latch_is_robot_after_plc_done() -> None:
    latches, rows, events = _clean()
    late_end = WorkerEvent("ended", events[2].key, latches[1].at + 0.5, "ok")  # type: ignore[operator]
    report = analyse("kill", 1, latches, rows, [*events[:3], late_end])
    assert report.robot_after_plc_done == 1
    # A robot starting a job the PLC had closed counts too, once per job.
    late_start = WorkerEvent("started", events[0].key, latches[0].at + 1)  # type: ignore[operator]
    report = analyse("kill", 1, latches, rows, [*events, late_start])
    assert (report.robot_after_plc_done, report.executed_twice) == (1, 1)


def test_a_late_robot_is_matched_to_the_rows_epoch() -> None:
    latches, rows, events = _clean()
    # The same JobSeq under another epoch is another PLC job: not this latch's.
    other = JobKey("ST10", 7, 1)
    late = WorkerEvent("started", other, latches[0].at + 1)  # type: ignore[operator]
    assert analyse("kill", 1, latches, rows, [*events, late]).robot_after_plc_done == 0


def test_a_nok_row_for_a_job_the_robot_ended_ok_is_a_false_nok() -> None:
    latches, rows, events = _clean()
    rows[1] = _row(2, ok=False)
    latches[1] = _latch(2, ok=False)
    report = analyse("kill", 1, latches, rows, events)
    assert (report.false_nok, report.not_robot_result) == (1, 1)
    assert "false NOK: ST10:0:2 error 105, robot ended ok" in report.problems


def test_a_retry_is_judged_by_its_own_key() -> None:
    latches, rows, events = _clean()
    # Attempt 1 ended NOK, the retry ":2" ended OK, the row (attempt 2) says OK: clean.
    events = [*_job(1), *_job(2, outcome="nok"), *_job(2, key="ST10:0:2:2")]
    rows[1] = _row(2, attempt=2)
    assert analyse("kill", 1, latches, rows, events).failures() == []
    # The retry ended OK but the row says NOK: false.
    rows[1] = _row(2, ok=False, attempt=2)
    assert analyse("kill", 1, latches, rows, events).false_nok == 1


def test_a_latched_result_without_its_row_is_lost() -> None:
    latches, rows, events = _clean()
    report = analyse("kill-pg-down", 1, latches, rows[:1], events)
    assert report.lost == 1
    # A row for another part under that JobSeq does not count as the latched one.
    report = analyse("kill", 1, latches, [rows[0], _row(2, part="OTHER")], events)
    assert report.lost == 1


def test_two_rows_for_one_part_at_a_station_are_a_duplicate() -> None:
    latches, rows, events = _clean()
    report = analyse("kill", 1, latches, [*rows, _row(3, part="P2")], events)
    assert report.duplicates == 1
    same_key = RowView(**{**vars(rows[1]), "part_id": "P9"})
    assert analyse("kill", 1, latches, [*rows, same_key], events).duplicates == 1


def test_a_row_that_is_not_what_the_robot_reported() -> None:
    latches, rows, events = _clean()
    no_policy = RowView(**{**vars(rows[0]), "policy_version": ""})
    no_fasteners = RowView(**{**vars(rows[1]), "fasteners": 0})
    report = analyse("kill", 1, latches, [no_policy, no_fasteners], events)
    assert report.not_robot_result == 2
    # A latched job no robot reported on at all.
    report = analyse("kill", 1, latches, rows, events[:2])
    assert report.not_robot_result == 1 and report.failures() == ["not_robot_result = 1"]


def test_takeover_is_timed_to_each_stations_first_write_after_the_kill() -> None:
    writes = [(1.0, "ST10"), (2.5, "ST20"), (4.0, "ST10"), (9.0, "ST20")]
    assert takeover_delays([2.0], writes, ["ST10", "ST20"], end=20.0) == [2.0, 0.5]
    # A station never written again counts until the end.
    assert takeover_delays([5.0], writes, ["ST10", "ST20"], end=20.0) == [15.0, 4.0]
    assert percentile([3.0, 1.0, 2.0], 0.5) == 2.0
    assert percentile([3.0, 1.0, 2.0], 0.99) == 3.0
    assert percentile([], 0.5) is None
    latches, rows, events = _clean()
    report = analyse("failover", 1, latches, rows, events, [0.5, 12.0])
    assert report.failures() == ["takeover p99 12.0 s > 10 s"]


def test_the_json_object_has_exactly_the_benchs_keys() -> None:
    latches, rows, events = _clean()
    out = analyse("failover", 2, latches, rows, events, [1.0]).as_json()
    assert (
        tuple(out)
        == JSON_KEYS
        == (
            "scenario",
            "kills",
            "jobs",
            "lost",
            "duplicates",
            "executed_twice",
            "robot_after_plc_done",
            "false_nok",
            "takeover_p50_s",
            "takeover_p99_s",
        )
    )
    json.dumps(out)


def test_worker_log_lines_are_read_as_the_json_formatter_writes_them(tmp_path: Path) -> None:
    fmt = JsonFormatter()

    def line(message: str, **fields: object) -> str:
        rec = logging.LogRecord("robot.worker", logging.INFO, __file__, 1, message, None, None)
        for k, v in fields.items():
            setattr(rec, k, v)
        return fmt.format(rec)

    common = {"fence": "F1", "station": "ST20", "robot": "R2"}
    log = tmp_path / "worker.log"
    log.write_text(
        "\n".join(
            [
                "celery banner, not JSON",
                line("job started ST20:1:4:2", job_key="ST20:1:4:2", at=T0, **common),
                line("heartbeat", at=T0),
                line(
                    "job ended ST20:1:4:2 nok",
                    job_key="ST20:1:4:2",
                    at=T0 + 2,
                    outcome="nok",
                    error_code=204,
                    **common,
                ),
                '{"message": "job ended", "job_key": "garbage", "at": 1.0}',
            ]
        )
    )
    events = read_worker_log(log)
    key = JobKey("ST20", 1, 4, 2)
    assert events == [
        WorkerEvent("started", key, T0, None, "R2"),
        WorkerEvent("ended", key, T0 + 2, "nok", "R2"),
    ]
    assert key.text() == "ST20:1:4:2" and JobKey.parse("ST20:1:4") == JobKey("ST20", 1, 4)
