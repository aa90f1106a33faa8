"""The counter-epoch rule, once, as a pure function.

A job row is keyed by (station, counter epoch, JobSeq). The epoch advances when the PLC's
counter goes backwards (a cold restart or a counter reset), so old rows are never touched
and a repeat never makes a second row. The rule is applied online, over what PostgreSQL
has recorded (``cell.record.jobs.resolve_epoch``), and offline, over what the orchestrator
last recorded and what waits in its outbox (``cell.line.durability``): both gather an
``EpochView`` and ask ``place_job``, so the two can never disagree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class EpochView:
    """What is known of a station's current counter epoch.

    ``epoch`` is None when nothing of the station is known. ``top_seq`` is the highest
    JobSeq recorded in that epoch. ``same_seq_part`` is the PartId recorded under the
    offered JobSeq in that epoch, and ``same_seq_found`` whether such a job exists.
    """

    epoch: int | None
    top_seq: int = 0
    same_seq_found: bool = False
    same_seq_part: str | None = None


@dataclass(frozen=True)
class Placement:
    """The epoch of an offered job; ``repeat`` when it is the recorded job of that key."""

    epoch: int
    repeat: bool


def place_job(
    view: EpochView, job_seq: int, part_id: str | None, *, counter_reset: bool = False
) -> Placement:
    """The counter epoch a PLC job belongs to, and whether it repeats a recorded job.

    Nothing known: epoch 0. The bridge saw the counter go backwards (``counter_reset``):
    the next epoch. Same JobSeq and part as a recorded job of the current epoch: a repeat.
    A JobSeq at or below the epoch's highest that is not such a repeat: the counter was
    reset, so the job opens the next epoch. Otherwise: the current epoch.
    """
    if view.epoch is None:
        return Placement(0, repeat=False)
    if counter_reset:
        return Placement(view.epoch + 1, repeat=False)
    if view.same_seq_found and view.same_seq_part == part_id:
        return Placement(view.epoch, repeat=True)
    if job_seq <= view.top_seq:
        return Placement(view.epoch + 1, repeat=False)
    return Placement(view.epoch, repeat=False)
