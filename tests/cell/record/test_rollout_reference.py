"""The rollout rule with the incumbent's reference (its record before the rollout):
sooner decisions than without, the fallback when the reference is too short or the line
drifts, the evidence, and the error bound when checked after every job (a seeded
simulation with a loose bound, so that it is quick)."""

from __future__ import annotations

import random

import pytest

from cell.errors import InvalidInput
from cell.record.rollout_reference import Reference, alternative
from cell.record.rollout_rule import (
    Arm,
    Decision,
    JobOutcome,
    RolloutRule,
    SequentialTest,
    evaluate,
)

CAND, INC = Arm.CANDIDATE, Arm.INCUMBENT
AT_90 = Reference(jobs=2000, ok=1800)


def rounds(candidate_fails: list[bool], incumbent_fails_every: int) -> list[JobOutcome]:
    """One candidate job then four of the incumbent's, per entry of ``candidate_fails``;
    the incumbent fails one job in ``incumbent_fails_every``."""
    seq, k = [], 0
    for failed in candidate_fails:
        seq.append(JobOutcome(CAND, not failed))
        for _ in range(4):
            seq.append(JobOutcome(INC, k % incumbent_fails_every != 0))
            k += 1
    return seq


def test_a_reference_rolls_a_worse_candidate_back_sooner() -> None:
    # The candidate fails 2 jobs in 5, the incumbent 1 in 10, as its record did.
    seq = rounds([True, False, False, True, False] * 20, incumbent_fails_every=10)
    alone = evaluate(seq)
    with_ref = evaluate(seq, reference=AT_90)
    assert alone.decision is with_ref.decision is Decision.ROLL_BACK
    assert (alone.evidence.test, with_ref.evidence.test) == (
        SequentialTest.CONDITIONAL,
        SequentialTest.REFERENCE,
    )
    assert with_ref.evidence.jobs["candidate"] < alone.evidence.jobs["candidate"]
    assert "record" in with_ref.reason


def test_the_look_rolls_back_before_its_sixtieth_job_what_the_ratio_alone_does_after() -> None:
    # The candidate fails one job in five (20 %), the incumbent one in ten, as its record.
    seq = rounds(([True] + [False] * 4) * 40, incumbent_fails_every=10)
    verdict = evaluate(seq, reference=AT_90)
    assert verdict.decision is Decision.ROLL_BACK and verdict.evidence.look_failures == 12
    assert verdict.evidence.jobs["candidate"] <= 60
    ratio_alone = evaluate(seq, RolloutRule(look_part=1e-6), AT_90)
    assert ratio_alone.decision is Decision.ROLL_BACK
    assert ratio_alone.evidence.jobs["candidate"] > 60


def test_a_too_short_reference_leaves_the_decision_to_the_conditional_test() -> None:
    seq = rounds([True, False, False, True, False] * 20, incumbent_fails_every=10)
    rule = RolloutRule()
    short = Reference(jobs=rule.min_reference_jobs - 1, ok=rule.min_reference_jobs - 101)
    verdict = evaluate(seq, rule, short)
    alone = evaluate(seq, rule)
    assert (
        verdict.evidence.test is SequentialTest.CONDITIONAL and verdict.evidence.reference == short
    )
    assert (verdict.decision, verdict.evidence.jobs) == (alone.decision, alone.evidence.jobs)
    assert verdict.evidence.reference_log_e_worse == 0.0


def test_the_evidence_carries_the_reference_used() -> None:
    as_json = evaluate(rounds([False] * 3, 10), reference=AT_90).evidence.as_json()
    assert as_json["reference"] == {"jobs": 2000, "ok": 1800, "yield": 0.9}
    assert as_json["test"] == "reference" and as_json["drift_shown"] is False
    assert evaluate([]).evidence.as_json()["reference"] == {"jobs": 0, "ok": 0, "yield": None}


def test_a_drifting_line_retires_the_reference() -> None:
    # Both arms fail every other job, against a record of one in ten: the line, not the
    # candidate. Without the guard the reference test would roll the candidate back.
    seq = rounds([True, False] * 20, incumbent_fails_every=2)
    unguarded = evaluate(seq, RolloutRule(drift_alpha=1e-12), AT_90)
    assert (
        unguarded.decision is Decision.ROLL_BACK
        and unguarded.evidence.test is SequentialTest.REFERENCE
    )
    verdict = evaluate(seq, reference=AT_90)
    assert verdict.decision is Decision.CONTINUE
    assert verdict.evidence.drift_shown and verdict.evidence.test is SequentialTest.CONDITIONAL


def test_alternatives_stay_rates() -> None:
    assert alternative(0.1, 2.0) == pytest.approx(0.2)
    assert alternative(0.6, 2.0) == pytest.approx(0.8)  # the pass rate halves instead
    assert alternative(0.1, 0.5) == pytest.approx(0.05)
    with pytest.raises(InvalidInput):
        Reference(jobs=5, ok=6)


def _equal_rollout(rng: random.Random, rule: RolloutRule, fpy: float) -> Decision:
    """Equal versions at ``fpy`` with a reference drawn at the same yield."""
    ok = sum(rng.random() < fpy for _ in range(rule.reference_jobs))
    seq = []
    for _ in range(int(rule.max_candidate_jobs / rule.share * 1.5)):
        arm = CAND if rng.random() < rule.share else INC
        seq.append(JobOutcome(arm, rng.random() < fpy))
    return evaluate(seq, rule, Reference(rule.reference_jobs, ok)).decision


@pytest.mark.parametrize("fpy", [0.8, 0.95])
def test_equal_versions_are_wrongly_decided_at_most_alpha_with_a_reference(fpy: float) -> None:
    # A loose bound (0.3) so that errors happen often enough to count in 200 rollouts.
    rule = RolloutRule(alpha=0.3, max_candidate_jobs=60, reference_jobs=1000)
    rng = random.Random(3)
    ends = [_equal_rollout(rng, rule, fpy) for _ in range(200)]
    wrong = sum(d in (Decision.PROMOTE, Decision.ROLL_BACK) for d in ends) / len(ends)
    assert 0.0 < wrong <= 0.3
