"""The reference test of a canary rollout: the candidate against the incumbent's record
before the rollout, and the guard that retires that record when the line drifts. Pure
(no SQL, no clock); ``cell.record.rollout_rule`` decides when it is used.

The reference is the incumbent's last jobs on the station before the rollout started (up
to ``RolloutRule.reference_jobs``, 2000; first pass OK or not). A station runs about 750
jobs a day, so a version that has run two days has the 1000 the rule asks for.

The null. Before each candidate job, the chance that it fails is what every job seen so
far predicts if they all share one failure rate: ``(f + 1/2) / (n + 1)`` over the
reference, the incumbent's jobs beside the candidate and the candidate's own (posterior
mean under a Jeffreys prior, ``predictive``). Counting the candidate's jobs is what the
null says (equal versions share the rate), and it keeps the reference's own sampling
error from turning into wrong decisions: with 300 reference jobs at 90 %, a
likelihood-ratio test at 5 % decided equal versions wrongly in 6.6 % of simulated
rollouts when its rate came from the incumbent's jobs alone, in 4.0 % with the
candidate's counted.

Roll back: two martingales under that null, mixed, ``look_part`` (0.8) of the weight on
the first.

- The look asks one question at the candidate's ``look_jobs``-th job (60): has it failed
  at least ``look_failures`` of them, the fewest that the reference makes no likelier
  than ``look_part`` times the rollback's level (12 of 60 at a 90 % yield)? After every
  job its martingale is the chance of that answer as the jobs so far predict it
  (beta-binomial, ``tail``) over its chance at the start, so a clear case ends well
  before the 60th job, once the answer is all but certain.
- The likelihood ratio of the candidate failing ``worse_ratio`` times as often as the
  null predicts (``alternative``), before the look and after it.

Why the look: a likelihood-ratio test alone spends its error budget all along the
rollout; with a known yield of 90 % and 3.5 % of equal versions rolled back it rolls a
candidate at 80 % back within 60 candidate jobs in 53 % of rollouts, where one look at
the 60th job with no more error does so in 68 % (computed exactly). The mix keeps much
of that gain (figures in ``cell.record.rollout_rule``) and still checks after every
job. Promote: the likelihood ratio of the candidate failing ``better_ratio`` times as
often.

Validity. Each martingale is one under the null with the failure rate drawn from the
prior (the look's by construction: the predicted chance of a fixed event), so by Ville's
inequality the mix ever reaches ``1/a`` with chance at most ``a``, averaged over that
prior, however often it is checked. At a fixed yield the bound is checked by simulation
(figures in ``cell.record.rollout_rule``).

The drift guard. A bad batch of castings lowers both arms at once; the candidate then
looks worse than the record before the rollout although it is no worse than the
incumbent beside it. The guard watches the incumbent's jobs during the rollout against
its reference and its own jobs so far with two one-sided likelihood-ratio tests of the
same kind (failing ``drift_ratio`` times as often, or ``1/drift_ratio`` times), each at
level ``drift_alpha``. Once either shows a departure (``drift_shown``) the reference
test retires for the rest of the rollout and the conditional test on the rollout's own
jobs, which no drift can fool, decides. The incumbent runs four jobs for each of the
candidate's (share 0.2), so a lasting drift shows in its jobs first; one that the
candidate's first jobs happen to show sooner can still turn into a wrong decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from cell.errors import InvalidInput


@dataclass(frozen=True)
class Reference:
    """The incumbent's record on the station before the rollout: ``jobs`` of its last
    jobs, ``ok`` of them passed first time."""

    jobs: int = 0
    ok: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.ok <= self.jobs:
            raise InvalidInput(f"a reference needs 0 <= ok <= jobs, got {self.ok} of {self.jobs}")

    @property
    def fpy(self) -> float | None:
        return self.ok / self.jobs if self.jobs else None


def predictive(failures: int, jobs: int) -> float:
    """The chance that the next job fails, given ``failures`` in ``jobs`` that share its
    failure rate (posterior mean under a Jeffreys prior; 1/2 before any job)."""
    return (failures + 0.5) / (jobs + 1.0)


def alternative(theta0: float, ratio: float) -> float:
    """The failure rate ``ratio`` times ``theta0``, kept below 1: for a ratio above 1, the
    pass rate divided by ``ratio`` where that fails less (a yield of 40 % goes to 20 %)."""
    if ratio <= 1.0:
        return ratio * theta0
    return min(ratio * theta0, 1.0 - (1.0 - theta0) / ratio)


def log_ratio(failed: bool, theta0: float, theta1: float) -> float:
    """Log-likelihood ratio of one job's outcome, failure rate ``theta1`` against ``theta0``."""
    return math.log(theta1 / theta0) if failed else math.log((1.0 - theta1) / (1.0 - theta0))


def tail(need: int, remaining: int, failures: int, jobs: int) -> float:
    """The chance of at least ``need`` failures in ``remaining`` more jobs, given
    ``failures`` in ``jobs`` that share their failure rate (beta-binomial, the posterior
    predictive under a Jeffreys prior)."""
    if need <= 0:
        return 1.0
    if need > remaining:
        return 0.0
    a, b = failures + 0.5, jobs - failures + 0.5
    base = _log_beta(a, b) - math.lgamma(remaining + 1)
    total = 0.0
    for j in range(need, remaining + 1):
        term = math.exp(
            _log_beta(a + j, b + remaining - j)
            - base
            - math.lgamma(j + 1)
            - math.lgamma(remaining - j + 1)
        )
        total += term
        if term < 1e-12 * total:  # past the mode the terms only shrink
            break
    return min(total, 1.0)


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


class ReferenceTest:
    """The reference test and its drift guard, fed one job at a time in the order the
    jobs ended. ``log_e_worse`` and ``log_e_better`` are the test's log-likelihood
    ratios; ``drift_shown`` stays true once the guard has seen the incumbent depart, and
    the ratios stay where they were then."""

    def __init__(
        self,
        reference: Reference,
        *,
        worse_ratio: float,
        better_ratio: float,
        rollback_alpha: float,
        look_jobs: int,
        look_part: float,
        drift_ratio: float,
        drift_alpha: float,
    ) -> None:
        self.worse_ratio, self.better_ratio, self.drift_ratio = (
            worse_ratio,
            better_ratio,
            drift_ratio,
        )
        self.drift_at = math.log(1.0 / drift_alpha)
        ref_failures = reference.jobs - reference.ok
        # Every job so far (the test's null) and the incumbent's alone (the guard's).
        self.failures, self.jobs = ref_failures, reference.jobs
        self.incumbent_failures, self.incumbent_jobs = ref_failures, reference.jobs
        # The candidate's jobs, and its failures among the first ``look_jobs`` of them.
        self.candidate_jobs = self.look_count = 0
        # The look: the fewest failures in the first ``look_jobs`` candidate jobs that the
        # reference gives a chance of at most look_part * rollback_alpha (its exact chance
        # ``look_size``); none when even all of them failing is that likely.
        self.look_jobs, self.look_part = look_jobs, look_part
        self.look_failures = next(
            k
            for k in range(look_jobs + 2)
            if tail(k, look_jobs, ref_failures, reference.jobs) <= look_part * rollback_alpha
        )
        self.look_size = tail(self.look_failures, look_jobs, ref_failures, reference.jobs)
        self.log_lr_worse = 0.0
        self.log_e_worse = self.log_e_better = 0.0
        self.log_e_drift_up = self.log_e_drift_down = 0.0
        self.drift_shown = False

    def add(self, candidate: bool, ok: bool) -> None:
        """Account one job, the candidate's or the incumbent's; nothing once drift is
        shown (the test is retired for the rest of the rollout)."""
        if self.drift_shown:
            return
        failed = not ok
        if candidate:
            theta0 = predictive(self.failures, self.jobs)
            self.log_lr_worse += log_ratio(failed, theta0, alternative(theta0, self.worse_ratio))
            self.log_e_better += log_ratio(failed, theta0, alternative(theta0, self.better_ratio))
            if self.candidate_jobs < self.look_jobs:
                self.look_count += failed
            self.candidate_jobs += 1
        else:
            theta0 = predictive(self.incumbent_failures, self.incumbent_jobs)
            up, down = alternative(theta0, self.drift_ratio), theta0 / self.drift_ratio
            self.log_e_drift_up += log_ratio(failed, theta0, up)
            self.log_e_drift_down += log_ratio(failed, theta0, down)
            self.incumbent_failures += failed
            self.incumbent_jobs += 1
            if max(self.log_e_drift_up, self.log_e_drift_down) >= self.drift_at:
                self.drift_shown = True
        self.failures += failed
        self.jobs += 1
        self.log_e_worse = self._log_e_worse()

    def _log_e_worse(self) -> float:
        """Log of the roll-back martingale: the look's chance of rejecting, as the jobs so
        far predict it, over its size, mixed with the likelihood ratio."""
        if self.look_size == 0.0:  # no look possible: the likelihood ratio alone
            return self.log_lr_worse
        look = tail(
            self.look_failures - self.look_count,
            self.look_jobs - min(self.candidate_jobs, self.look_jobs),
            self.failures,
            self.jobs,
        )
        log_lr = math.log(1.0 - self.look_part) + self.log_lr_worse
        if look == 0.0:
            return log_lr
        log_look = math.log(self.look_part * look / self.look_size)
        high = max(log_look, log_lr)
        return high + math.log(math.exp(log_look - high) + math.exp(log_lr - high))
