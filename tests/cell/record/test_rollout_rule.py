"""The rollout rule on hand-made job sequences, and its error bound when it is checked
after every job (a seeded simulation with a loose bound, so that it is quick)."""

from __future__ import annotations

import random

import pytest

from cell.errors import InvalidInput
from cell.record.rollout_rule import (
    Arm,
    Decision,
    JobOutcome,
    RolloutRule,
    arm_for,
    evaluate,
    ratio_interval,
)

CAND, INC = Arm.CANDIDATE, Arm.INCUMBENT


def jobs(arm: Arm, n: int, ok: bool = True, cycle_s: float = 60.0) -> list[JobOutcome]:
    return [JobOutcome(arm, ok, cycle_s, 76.0) for _ in range(n)]


def test_passing_jobs_continue_and_count() -> None:
    verdict = evaluate(jobs(INC, 8) + jobs(CAND, 2))
    assert verdict.decision is Decision.CONTINUE
    assert verdict.evidence.jobs == {"incumbent": 8, "candidate": 2}
    assert verdict.evidence.yields() == {"incumbent": 1.0, "candidate": 1.0}


def test_candidate_failures_roll_back_at_the_seventh() -> None:
    # q(worse) = 1/3 against 0.2: each candidate failure multiplies the ratio by 5/3;
    # (5/3)**7 = 35.7 is the first power past 1/(0.9 * 0.04) = 27.8.
    assert evaluate(jobs(CAND, 6, ok=False)).decision is Decision.CONTINUE
    verdict = evaluate(jobs(CAND, 7, ok=False) + jobs(CAND, 5, ok=False))
    assert verdict.decision is Decision.ROLL_BACK
    assert "worse" in verdict.reason
    assert verdict.evidence.jobs["candidate"] == 7  # nothing after the decision is read


def test_incumbent_failures_alone_promote_at_the_fifty_third() -> None:
    # q(better) = 1/9: each incumbent failure multiplies by 10/9; 1/(0.1 * 0.04) = 250.
    assert evaluate(jobs(INC, 52, ok=False)).decision is Decision.CONTINUE
    verdict = evaluate(jobs(INC, 53, ok=False))
    assert verdict.decision is Decision.PROMOTE


def test_failures_in_proportion_to_the_share_decide_nothing() -> None:
    # One candidate failure for every four of the incumbent's: what equal versions give.
    seq = (jobs(CAND, 1, ok=False) + jobs(INC, 4, ok=False) + jobs(CAND, 4) + jobs(INC, 16)) * 20
    verdict = evaluate(seq)
    assert verdict.decision is Decision.CONTINUE
    lo, hi = verdict.evidence.ratio_interval
    assert lo is not None and hi is not None and lo < 1.0 < hi


def test_the_maximum_keeps_the_incumbent_and_is_not_a_rollback() -> None:
    rule = RolloutRule(max_candidate_jobs=50)
    assert evaluate(jobs(CAND, 49), rule).decision is Decision.CONTINUE
    verdict = evaluate(jobs(CAND, 60), rule)
    assert verdict.decision is Decision.KEEP_INCUMBENT
    assert verdict.evidence.jobs["candidate"] == 50 and "no difference" in verdict.reason


def test_three_of_the_last_ten_candidate_jobs_over_takt_roll_back() -> None:
    slow = jobs(CAND, 1, cycle_s=80.0)
    assert evaluate(slow * 2 + jobs(CAND, 5)).decision is Decision.CONTINUE
    # The incumbent's slow jobs are not the candidate's.
    assert evaluate(jobs(INC, 5, cycle_s=90.0) + slow * 2).decision is Decision.CONTINUE
    # Two slow jobs slid out of the window of ten before the third came.
    assert evaluate(slow * 2 + jobs(CAND, 8) + slow).decision is Decision.CONTINUE
    verdict = evaluate(slow * 2 + jobs(CAND, 7) + slow)
    assert verdict.decision is Decision.ROLL_BACK and "over takt" in verdict.reason
    # No takt known: the guard cannot judge.
    assert evaluate([JobOutcome(CAND, True, 500.0, None)] * 5).decision is Decision.CONTINUE


@pytest.mark.parametrize(
    "kwargs",
    [
        {"share": 0.0},
        {"share": 1.0},
        {"alpha": 0.0},
        {"max_candidate_jobs": 0},
        {"worse_ratio": 1},
        {"min_reference_jobs": 0},
        {"min_reference_jobs": 3000},
        {"drift_ratio": 1.0},
        {"look_part": 1.0},
    ],
)
def test_bad_parameters_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        RolloutRule(**kwargs)  # type: ignore[arg-type]


def test_arms_follow_the_job_key_and_the_share() -> None:
    keys = [f"ST10:0:{n}" for n in range(20000)]
    arms = [arm_for(k, 0.2) for k in keys]
    assert arms == [arm_for(k, 0.2) for k in keys]
    assert 0.19 < arms.count(CAND) / len(arms) < 0.21
    # A larger share keeps every candidate job a candidate job.
    assert all(arm_for(k, 0.5) is CAND for k, a in zip(keys, arms, strict=True) if a is CAND)


def test_ratio_interval_is_open_without_failures_and_excludes_one_on_strong_evidence() -> None:
    assert ratio_interval(0, 0, 0.2, 0.05) == (None, None)
    lo, hi = ratio_interval(30, 30, 0.2, 0.05)  # failures split 1:1 where 1:4 is equal
    assert lo is not None and lo > 1.0 and hi is not None and hi > lo


def _simulated_rollout(rng: random.Random, rule: RolloutRule, drift: bool) -> Decision:
    """Equal versions, the rule checked after every job; with ``drift`` the yield of
    both arms swings between 0.95 and 0.75 over the day."""
    seq = []
    for n in range(int(rule.max_candidate_jobs / rule.share * 1.5)):
        fpy = (0.95 if (n // 100) % 2 == 0 else 0.75) if drift else 0.9
        arm = CAND if rng.random() < rule.share else INC
        seq.append(JobOutcome(arm, rng.random() < fpy))
    return evaluate(seq, rule).decision


@pytest.mark.parametrize("drift", [False, True])
def test_equal_versions_are_wrongly_decided_at_most_alpha_when_checked_after_every_job(
    drift: bool,
) -> None:
    # A loose bound (0.3) so that errors happen often enough to count in 300 rollouts.
    rule = RolloutRule(alpha=0.3, max_candidate_jobs=60)
    rng = random.Random(11)
    ends = [_simulated_rollout(rng, rule, drift) for _ in range(300)]
    wrong = sum(d in (Decision.PROMOTE, Decision.ROLL_BACK) for d in ends) / len(ends)
    assert 0.0 < wrong <= 0.3
    rollbacks = ends.count(Decision.ROLL_BACK) / len(ends)
    assert rollbacks <= 0.3 * rule.rollback_part


def test_a_worse_candidate_is_rolled_back_and_never_promoted() -> None:
    rule = RolloutRule()
    rng = random.Random(5)
    ends = []
    for _ in range(100):
        seq = []
        for _ in range(2000):
            arm = CAND if rng.random() < rule.share else INC
            seq.append(JobOutcome(arm, rng.random() < (0.8 if arm is CAND else 0.9)))
        ends.append(evaluate(seq, rule).decision)
    assert Decision.PROMOTE not in ends
    assert ends.count(Decision.ROLL_BACK) >= 85
