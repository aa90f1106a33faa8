"""Canary rollouts decided by the sequential rule, on simulated jobs: how often each case
ends which way, and after how many candidate jobs.

Each rollout draws jobs one at a time: the job goes to the candidate with the rule's
share, and passes first time with its arm's first-pass yield (Bernoulli). The rule
(``cell.record.rollout_rule.evaluate``) looks at every job and the rollout ends at its
first decision, or at its maximum of candidate jobs (``keep_incumbent``: no difference
shown). Cycle times stay under takt here; the guard has unit tests of its own. Cases,
with the incumbent at 90 %: candidate worse by 10 points (80 %), better by 10 points
(100 %), equal. Per case: the share of rollouts promoted, rolled back and ended at the
maximum, and the median candidate jobs to the end (rollouts ended at the maximum count
there). For equal versions only promote and roll back are wrong; keeping the incumbent
after the maximum is the honest ending. The last line is JSON for a machine. The goal
of rolling a worse candidate back within a median of 60 candidate jobs is out of reach of
any rule valid at 5 % (see ``cell.record.rollout_rule``); the figure says how far.

    python bench/rollout.py --rollouts 400 --seed 7
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
from collections import Counter
from collections.abc import Iterator

from cell.record.rollout_rule import Arm, Decision, JobOutcome, RolloutRule, evaluate

INCUMBENT_FPY = 0.90
CASES = {"worse": 0.80, "better": 1.00, "equal": 0.90}


def jobs(rng: random.Random, rule: RolloutRule, candidate_fpy: float) -> Iterator[JobOutcome]:
    """An endless stream of simulated jobs; the rule stops reading at its decision."""
    while True:
        arm = Arm.CANDIDATE if rng.random() < rule.share else Arm.INCUMBENT
        fpy = candidate_fpy if arm is Arm.CANDIDATE else INCUMBENT_FPY
        yield JobOutcome(arm=arm, ok=rng.random() < fpy, cycle_s=60.0, takt_s=76.0)


def run_case(
    rng: random.Random, rule: RolloutRule, candidate_fpy: float, rollouts: int
) -> tuple[Counter[Decision], float]:
    """Decisions of ``rollouts`` rollouts and the median candidate jobs to their end."""
    ends: Counter[Decision] = Counter()
    lengths = []
    for _ in range(rollouts):
        verdict = evaluate(jobs(rng, rule, candidate_fpy), rule)
        ends[verdict.decision] += 1
        lengths.append(verdict.evidence.jobs[Arm.CANDIDATE.value])
    return ends, statistics.median(lengths)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rollouts", type=int, default=400, help="rollouts per case (>= 200)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--share", type=float, default=0.2, help="share of jobs to the candidate")
    ap.add_argument("--max-candidate-jobs", type=int, default=RolloutRule.max_candidate_jobs)
    args = ap.parse_args()
    if args.rollouts < 1:
        ap.error("--rollouts must be at least 1")
    rule = RolloutRule(share=args.share, max_candidate_jobs=args.max_candidate_jobs)
    rng = random.Random(args.seed)
    print(
        f"incumbent FPY {INCUMBENT_FPY:.2f}, share {rule.share}, alpha {rule.alpha}, "
        f"max {rule.max_candidate_jobs} candidate jobs, {args.rollouts} rollouts per case"
    )
    print(f"{'case':<8}{'cand FPY':>9}{'promote':>9}{'rollback':>9}{'keep':>7}{'median jobs':>13}")
    rates: dict[str, dict[Decision, float]] = {}
    medians: dict[str, float] = {}
    for case, fpy in CASES.items():
        ends, median = run_case(rng, rule, fpy, args.rollouts)
        rates[case] = {d: ends[d] / args.rollouts for d in Decision}
        medians[case] = median
        r = rates[case]
        print(
            f"{case:<8}{fpy:>9.2f}{r[Decision.PROMOTE]:>9.3f}{r[Decision.ROLL_BACK]:>9.3f}"
            f"{r[Decision.KEEP_INCUMBENT]:>7.3f}{median:>13.0f}"
        )
    equal = rates["equal"]
    summary = {
        "rollouts": args.rollouts,
        "worse_rollback_rate": round(rates["worse"][Decision.ROLL_BACK], 4),
        "worse_median_jobs": medians["worse"],
        "better_promote_rate": round(rates["better"][Decision.PROMOTE], 4),
        "equal_wrong_rate": round(equal[Decision.PROMOTE] + equal[Decision.ROLL_BACK], 4),
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
