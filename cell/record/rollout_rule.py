"""When a canary rollout of a policy version decides: the rule, pure (no SQL, no clock).

A rollout runs a candidate policy version beside the incumbent on one station: each job
goes to the candidate with probability ``share``, decided by the job's key alone
(``arm_for``), so the arm is independent of the part and of how the job will end. After
every job the rule answers promote, roll back, or continue.

The test: failures only, conditioned on. Given that a job failed its first pass, the
chance that it was a candidate job is ``q = s*r / (s*r + 1 - s)``, where ``s`` is the
share and ``r`` the failure-rate ratio candidate/incumbent. When the versions are equal,
``q == s`` exactly, whatever the yield is and however it drifts over the day (a bad batch
of castings hits both arms alike), so the test has no nuisance parameter and needs no
normal approximation. Two one-sided sequential probability ratio tests run on that
sequence of failures:

- roll back: likelihood ratio of ``r = worse_ratio`` (default 2: 90 % -> 80 % FPY)
  against ``r = 1``;
- promote: likelihood ratio of ``r = better_ratio`` (default 0.5) against ``r = 1``.

Each ratio is a nonnegative martingale under ``r = 1`` (a supermartingale for every
``r`` on the far side), so by Ville's inequality it ever reaches ``1/a`` with chance at
most ``a``: the rule is valid when checked after every job, for as long as it runs.
``alpha`` is split: ``rollback_part`` (0.8) of it to rolling back, the rest to
promoting. So for equal versions P(any decision) <= alpha; for a worse candidate
P(promote) <= 0.2*alpha; for a better one P(roll back) <= 0.8*alpha. Promoting gets the
smaller share because a wrongly promoted version costs yield on every later job, while a
wrong rollback costs a retry.

When neither test decides by ``max_candidate_jobs`` candidate jobs, the rule ends with
``keep_incumbent``: no difference shown, the incumbent stays. It never promotes on a point
estimate (that would void the bound) and does not call it a rollback (nothing showed the
candidate worse). For equal versions this is the right ending, not an error.

The guard: the candidate rolls back at once when ``takt_over_limit`` (3) of its last
``takt_window`` (10) jobs ran longer than the recipe's takt. A job over takt holds the
line; one may be a slow part, three in ten is the policy. The guard is an operating
limit outside the error bound.

What it costs (``bench/rollout.py``, incumbent at 90 %, defaults): a candidate 10 points
worse is rolled back after a median of about 90 candidate jobs, one 10 points better
promoted after about 110, and equal versions are decided either way in about 3 % of
rollouts. No rule that keeps P(roll back | equal) <= 5 % can roll a 10-points-worse
candidate back within 60 candidate jobs in much more than half of the rollouts: a single
look at exactly 60 candidate jobs (about 240 incumbent jobs beside them), spending all of
5 % there, rolls back only 52 % of the time, and a rule that checks after every job has
that look among its chances. Faster needs a known incumbent yield (from its record
before the rollout, which gives up the protection against drift) or a looser bound.

The evidence also carries an always-valid confidence interval for the failure-rate ratio
(a beta-binomial mixture martingale on ``q``, level ``1 - alpha``), ``None`` for an end
that no data bounds yet.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from cell.errors import InvalidInput


class Arm(StrEnum):
    INCUMBENT = "incumbent"
    CANDIDATE = "candidate"


class Decision(StrEnum):
    CONTINUE = "continue"
    PROMOTE = "promote"
    ROLL_BACK = "roll_back"
    KEEP_INCUMBENT = "keep_incumbent"  # the maximum reached with no difference shown


def arm_for(job_key: str, share: float) -> Arm:
    """The arm of the job with ``job_key`` (station:epoch:JobSeq): candidate when the
    key's SHA-256, read as a fraction of 2**64, is below ``share``. The same key always
    gets the same arm, so a repeated or re-attached job never changes version."""
    digest = hashlib.sha256(job_key.encode()).digest()
    return Arm.CANDIDATE if int.from_bytes(digest[:8], "big") / 2**64 < share else Arm.INCUMBENT


@dataclass(frozen=True)
class JobOutcome:
    """One job of a rollout: its arm, whether it passed first time, its cycle time and
    its recipe's takt (None: no takt known, the guard skips it)."""

    arm: Arm
    ok: bool
    cycle_s: float = 0.0
    takt_s: float | None = None


@dataclass(frozen=True)
class RolloutRule:
    """The rule's parameters; invalid ones raise ``InvalidInput``."""

    share: float = 0.2
    alpha: float = 0.05
    rollback_part: float = 0.8
    worse_ratio: float = 2.0
    better_ratio: float = 0.5
    max_candidate_jobs: int = 300
    takt_window: int = 10
    takt_over_limit: int = 3

    def __post_init__(self) -> None:
        checks = (
            (0.0 < self.share < 1.0, f"share must be between 0 and 1, got {self.share}"),
            (0.0 < self.alpha < 1.0, f"alpha must be between 0 and 1, got {self.alpha}"),
            (0.0 < self.rollback_part < 1.0, "rollback_part must be between 0 and 1"),
            (self.worse_ratio > 1.0, "worse_ratio must be above 1"),
            (0.0 < self.better_ratio < 1.0, "better_ratio must be between 0 and 1"),
            (self.max_candidate_jobs >= 1, "max_candidate_jobs must be at least 1"),
            (1 <= self.takt_over_limit <= self.takt_window, "need 1 <= takt_over_limit <= window"),
        )
        for ok, message in checks:
            if not ok:
                raise InvalidInput(message)

    def q(self, ratio: float) -> float:
        """Chance that a failed job is a candidate job at failure-rate ratio ``ratio``."""
        return self.share * ratio / (self.share * ratio + 1.0 - self.share)


@dataclass
class Evidence:
    """What the decision rests on; ``as_json`` is what the record keeps."""

    jobs: dict[str, int] = field(default_factory=lambda: {a.value: 0 for a in Arm})
    ok: dict[str, int] = field(default_factory=lambda: {a.value: 0 for a in Arm})
    log_e_worse: float = 0.0
    log_e_better: float = 0.0
    over_takt_recent: int = 0
    ratio_interval: tuple[float | None, float | None] = (None, None)

    def yields(self) -> dict[str, float | None]:
        return {a: (self.ok[a] / n if n else None) for a, n in self.jobs.items()}

    def failures(self, arm: Arm) -> int:
        return self.jobs[arm.value] - self.ok[arm.value]

    def as_json(self) -> dict[str, object]:
        return asdict(self) | {"yields": self.yields(), "ratio_interval": list(self.ratio_interval)}


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    evidence: Evidence


def evaluate(outcomes: Iterable[JobOutcome], rule: RolloutRule | None = None) -> Verdict:
    """Replay a rollout's jobs in the order they ended and return the first decision
    (the jobs after it are not looked at), or ``continue`` with the evidence so far."""
    rule = rule or RolloutRule()
    ev = Evidence()
    q0, qw, qb = rule.share, rule.q(rule.worse_ratio), rule.q(rule.better_ratio)
    # Log-likelihood ratio steps for a failed job of each arm, per test.
    worse = {Arm.CANDIDATE: math.log(qw / q0), Arm.INCUMBENT: math.log((1 - qw) / (1 - q0))}
    better = {Arm.CANDIDATE: math.log(qb / q0), Arm.INCUMBENT: math.log((1 - qb) / (1 - q0))}
    rollback_at = math.log(1.0 / (rule.alpha * rule.rollback_part))
    promote_at = math.log(1.0 / (rule.alpha * (1.0 - rule.rollback_part)))
    recent: deque[bool] = deque(maxlen=rule.takt_window)
    verdict: tuple[Decision, str] | None = None
    for job in outcomes:
        ev.jobs[job.arm.value] += 1
        ev.ok[job.arm.value] += int(job.ok)
        if not job.ok:
            ev.log_e_worse += worse[job.arm]
            ev.log_e_better += better[job.arm]
        if job.arm is Arm.CANDIDATE and job.takt_s is not None:
            recent.append(job.cycle_s > job.takt_s)
            ev.over_takt_recent = sum(recent)
        verdict = _decision(ev, rule, rollback_at, promote_at)
        if verdict is not None:
            break
    ev.ratio_interval = ratio_interval(
        ev.failures(Arm.CANDIDATE), ev.failures(Arm.INCUMBENT), rule.share, rule.alpha
    )
    decision, reason = verdict or (Decision.CONTINUE, "no decision yet")
    return Verdict(decision, reason, ev)


def _decision(
    ev: Evidence, rule: RolloutRule, rollback_at: float, promote_at: float
) -> tuple[Decision, str] | None:
    n = ev.jobs[Arm.CANDIDATE.value]
    if ev.over_takt_recent >= rule.takt_over_limit:
        return Decision.ROLL_BACK, (
            f"{ev.over_takt_recent} of the candidate's last {rule.takt_window} jobs ran over takt"
        )
    if ev.log_e_worse >= rollback_at:
        return Decision.ROLL_BACK, f"candidate's first-pass yield worse (after {n} candidate jobs)"
    if ev.log_e_better >= promote_at:
        return Decision.PROMOTE, f"candidate's first-pass yield better (after {n} candidate jobs)"
    if n >= rule.max_candidate_jobs:
        return Decision.KEEP_INCUMBENT, (
            f"no difference shown in {n} candidate jobs: keep the incumbent"
        )
    return None


def ratio_interval(
    candidate_failures: int, incumbent_failures: int, share: float, alpha: float
) -> tuple[float | None, float | None]:
    """Always-valid ``1 - alpha`` interval for the failure-rate ratio candidate/incumbent:
    the ratios whose ``q`` a Beta(1, 1) mixture martingale has not rejected (Ville), found
    on a grid of ``q``. ``None`` stands for 0 or infinity, an end no data bounds yet."""
    k, f = candidate_failures, candidate_failures + incumbent_failures
    log_mix = math.lgamma(k + 1) + math.lgamma(f - k + 1) - math.lgamma(f + 2)
    limit = math.log(1.0 / alpha)
    kept = [
        q
        for q in (i / 2000 for i in range(1, 2000))
        if log_mix - k * math.log(q) - (f - k) * math.log(1 - q) < limit
    ]
    if not kept:  # cannot happen: the mixture's own maximum is kept; guard all the same
        return (None, None)

    def ratio(q: float) -> float:
        return q * (1 - share) / (share * (1 - q))

    lo = None if kept[0] <= 1 / 2000 else round(ratio(kept[0]), 3)
    hi = None if kept[-1] >= 1999 / 2000 else round(ratio(kept[-1]), 3)
    return (lo, hi)
