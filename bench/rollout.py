"""Canary rollouts decided by the sequential rule, on simulated jobs: how often each case
ends which way, and after how many candidate jobs.

Each rollout first draws the incumbent's reference, its record before the rollout:
``--reference-jobs`` jobs, each passing first time with the reference yield. Then it
draws jobs one at a time: the job goes to the candidate with the rule's share, and
passes first time with its arm's first-pass yield (Bernoulli). The rule
(``cell.record.rollout_rule.evaluate``) looks at every job and the rollout ends at its
first decision, or at its maximum of candidate jobs (``keep_incumbent``: no difference
shown). Cycle times stay under takt here; the guard has unit tests of its own.

The cases the goals are about, with the incumbent at 90 %: candidate worse by 10 points
(80 %), better by 10 points (100 %), equal. Then equal versions at other yields, with a
reference too short to use (the conditional test alone decides), and with the line
drifting: a bad batch takes both arms to 80 % for the whole rollout while the reference
was at 90 %. Per case: the share of rollouts promoted, rolled back and ended at the
maximum, the median candidate jobs to the end (rollouts ended at the maximum count
there), and the share that ended on the reference test. For equal versions only
promote and roll back are wrong; keeping the incumbent after the maximum is the honest
ending. The last line is JSON for a machine, from the first three cases. Goals: a worse
candidate rolled back within a median of 60 candidate jobs, equal versions decided
wrongly in at most 5 % of rollouts, a better one promoted in at least 95 %. 2000
rollouts per case by default: at 400 the equal case's rate moves by about a point from
seed to seed (its standard error is 0.9 points at 3.4 %).

    python bench/rollout.py --rollouts 2000 --seed 1
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

from cell.record.rollout_reference import Reference
from cell.record.rollout_rule import (
    Arm,
    Decision,
    JobOutcome,
    RolloutRule,
    SequentialTest,
    evaluate,
)

SHORT_REFERENCE = 200  # below the rule's minimum: the conditional test alone decides


@dataclass(frozen=True)
class Case:
    name: str
    incumbent_fpy: float
    candidate_fpy: float
    reference_fpy: float | None = None  # None: the incumbent's
    reference_jobs: int | None = None  # None: --reference-jobs

    @property
    def reference_yield(self) -> float:
        return self.incumbent_fpy if self.reference_fpy is None else self.reference_fpy


def cases(reference_jobs: int) -> list[Case]:
    return [
        Case("worse", 0.90, 0.80),
        Case("better", 0.90, 1.00),
        Case("equal", 0.90, 0.90),
        Case("equal", 0.80, 0.80),
        Case("equal", 0.95, 0.95),
        Case("equal", 0.99, 0.99),
        Case("worse", 0.90, 0.80, reference_jobs=SHORT_REFERENCE),
        Case("equal", 0.90, 0.90, reference_jobs=SHORT_REFERENCE),
        Case("drift", 0.80, 0.80, reference_fpy=0.90),
    ]


def jobs(rng: random.Random, rule: RolloutRule, case: Case) -> Iterator[JobOutcome]:
    """An endless stream of simulated jobs; the rule stops reading at its decision."""
    while True:
        arm = Arm.CANDIDATE if rng.random() < rule.share else Arm.INCUMBENT
        fpy = case.candidate_fpy if arm is Arm.CANDIDATE else case.incumbent_fpy
        yield JobOutcome(arm=arm, ok=rng.random() < fpy, cycle_s=60.0, takt_s=76.0)


@dataclass(frozen=True)
class Result:
    rates: dict[Decision, float]
    median_jobs: float
    on_reference: float  # share of rollouts that ended on the reference test


def run_case(
    rng: random.Random, rule: RolloutRule, case: Case, reference_jobs: int, rollouts: int
) -> Result:
    """``rollouts`` rollouts of ``case``, each with a reference of its own."""
    ends: Counter[Decision] = Counter()
    lengths, on_reference = [], 0
    for _ in range(rollouts):
        ok = sum(rng.random() < case.reference_yield for _ in range(reference_jobs))
        verdict = evaluate(jobs(rng, rule, case), rule, Reference(reference_jobs, ok))
        ends[verdict.decision] += 1
        lengths.append(verdict.evidence.jobs[Arm.CANDIDATE.value])
        on_reference += verdict.evidence.test is SequentialTest.REFERENCE
    rates = {d: ends[d] / rollouts for d in Decision}
    return Result(rates, statistics.median(lengths), on_reference / rollouts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rollouts", type=int, default=2000, help="rollouts per case (>= 200)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--share", type=float, default=0.2, help="share of jobs to the candidate")
    ap.add_argument("--max-candidate-jobs", type=int, default=RolloutRule.max_candidate_jobs)
    ap.add_argument(
        "--reference-jobs", type=int, default=1000, help="the incumbent's jobs before the rollout"
    )
    args = ap.parse_args()
    if args.rollouts < 1 or args.reference_jobs < 0:
        ap.error("--rollouts must be at least 1 and --reference-jobs at least 0")
    rule = RolloutRule(share=args.share, max_candidate_jobs=args.max_candidate_jobs)
    rng = random.Random(args.seed)
    print(
        f"share {rule.share}, alpha {rule.alpha} (rollback {rule.rollback_alpha:.3f}),"
        f" max {rule.max_candidate_jobs} candidate jobs, reference {args.reference_jobs} jobs"
        f" (used from {rule.min_reference_jobs}), {args.rollouts} rollouts per case"
    )
    print(
        f"{'case':<8}{'inc FPY':>8}{'cand FPY':>9}{'ref FPY':>8}{'ref jobs':>9}"
        f"{'promote':>9}{'rollback':>9}{'keep':>7}{'median jobs':>13}{'on ref':>8}"
    )
    results: dict[str, Result] = {}
    for case in cases(args.reference_jobs):
        n_ref = args.reference_jobs if case.reference_jobs is None else case.reference_jobs
        res = run_case(rng, rule, case, n_ref, args.rollouts)
        results.setdefault(case.name, res)  # the first of each name feeds the JSON line
        r, ref_fpy = res.rates, case.reference_yield
        print(
            f"{case.name:<8}{case.incumbent_fpy:>8.2f}{case.candidate_fpy:>9.2f}{ref_fpy:>8.2f}"
            f"{n_ref:>9}{r[Decision.PROMOTE]:>9.3f}{r[Decision.ROLL_BACK]:>9.3f}"
            f"{r[Decision.KEEP_INCUMBENT]:>7.3f}{res.median_jobs:>13.0f}{res.on_reference:>8.2f}"
        )
    equal = results["equal"].rates
    summary = {
        "rollouts": args.rollouts,
        "reference_jobs": args.reference_jobs,
        "worse_rollback_rate": round(results["worse"].rates[Decision.ROLL_BACK], 4),
        "worse_median_jobs": results["worse"].median_jobs,
        "better_promote_rate": round(results["better"].rates[Decision.PROMOTE], 4),
        "equal_wrong_rate": round(equal[Decision.PROMOTE] + equal[Decision.ROLL_BACK], 4),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
