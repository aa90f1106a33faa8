"""When a canary rollout of a policy version decides: the rule, pure (no SQL, no clock).

A rollout runs a candidate policy version beside the incumbent on one station: each job
goes to the candidate with probability ``share``, decided by the job's key alone
(``arm_for``), so the arm is independent of the part and of how the job will end. After
every job the rule answers promote, roll back, or continue.

Two sequential tests; one decides at a time (``Evidence.test``):

- The reference test (``cell.record.rollout_reference``), when the incumbent's record on
  the station before the rollout (its reference) holds at least ``min_reference_jobs``
  (1000) jobs: the candidate's jobs against the failure rate that the reference and the
  jobs since predict. Knowing the incumbent's yield from thousands of jobs is what makes
  it fast. Its guard retires it for the rest of the rollout once the incumbent's own
  jobs depart from its reference (the line drifting); the conditional test then decides,
  on the jobs after that point.
- The conditional test, otherwise: failures only, conditioned on. Given that a job
  failed its first pass, the chance that it was a candidate job is
  ``q = s*r / (s*r + 1 - s)``, ``s`` the share and ``r`` the failure-rate ratio
  candidate/incumbent. When the versions are equal, ``q == s`` exactly, whatever the
  yield is and however it drifts over the day (a bad batch of castings hits both arms
  alike), so the test has no nuisance parameter. Two one-sided sequential probability
  ratio tests run on that sequence of failures: roll back, ``r = worse_ratio`` (2: 90 %
  -> 80 % FPY) against ``r = 1``; promote, ``r = better_ratio`` (0.5) against ``r = 1``.

Every statistic is a nonnegative martingale under its null, so by Ville's inequality it
ever reaches ``1/a`` with chance at most ``a``: the rule stays valid when checked after
every job, for as long as it runs (the reference test's bound holds averaged over its
prior; at fixed yields it is checked by simulation, below). ``alpha`` (0.04, a point
under the 5 % allowed, for the reference's own sampling error) is split:
``rollback_part`` (0.9) of it to rolling back, the rest to promoting. Promoting gets the
smaller share because a wrongly promoted version costs yield on every later job, while a
wrong rollback costs a retry.

When nothing decides by ``max_candidate_jobs`` candidate jobs, the rule ends with
``keep_incumbent``: no difference shown, the incumbent stays. It never promotes on a
point estimate (that would void the bound) and does not call it a rollback (nothing
showed the candidate worse). For equal versions this is the right ending, not an error.

The takt guard: the candidate rolls back at once when ``takt_over_limit`` (3) of its
last ``takt_window`` (10) jobs ran longer than the recipe's takt. A job over takt holds
the line; one may be a slow part, three in ten is the policy. It is an operating limit
outside the error bound.

What it costs (``bench/rollout.py --rollouts 2000 --seed 1``: share 0.2, incumbent at
90 % with 1000 jobs on record): a candidate 10 points worse is rolled back in 94 % of
rollouts after a median of 55 candidate jobs (the others end at the maximum, the
incumbent kept); one 10 points better is promoted in 100 % after a median of 108; equal
versions are decided either way in 3.1 %. Without the look the same levels roll the
worse candidate back within 60 candidate jobs in 45 % of rollouts (median 66), with it in
58 %. Equal versions decided wrongly, 1000 rollouts per point: 1.5 to 4.1 % over yields
of 80, 85, 90, 95 and 99 % and references of 1000 and 2000 jobs. With a reference too
short to use (200 jobs) the conditional test alone rolls the worse candidate back after
a median of 92 candidate jobs and decides equal versions in 3.1 %.

What drift costs (equal versions, reference at 90 %, both arms at another yield for the
whole rollout, 1000 rollouts each): at 80 % they are decided wrongly in 16 % of rollouts
(70 % without the guard), at 85 % in 16 % (26 %), at 87 % in 11 % (13 %), at 95 % in 2 %
(16 %). The conditional test alone is exact under any drift; the reference's speed is
paid for by the drift that the candidate's first jobs show before the incumbent's do.

The evidence also carries an always-valid confidence interval for the failure-rate ratio
from the conditional test (a beta-binomial mixture martingale on ``q``, level
``1 - alpha``), ``None`` for an end that no data bounds yet.
"""

from __future__ import annotations

import hashlib
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from enum import StrEnum

from cell.errors import InvalidInput
from cell.record.rollout_reference import Reference, ReferenceTest


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
    """The rule's parameters; invalid ones raise ``InvalidInput``. ``reference_jobs``: how
    many of the incumbent's last jobs before the rollout make its reference (the record
    side reads that many); ``min_reference_jobs``: fewer, and the conditional test alone
    decides. ``look_*`` and ``drift_*``: the reference test's look and drift guard
    (``cell.record.rollout_reference``)."""

    share: float = 0.2
    alpha: float = 0.04
    rollback_part: float = 0.9
    worse_ratio: float = 2.0
    better_ratio: float = 0.5
    max_candidate_jobs: int = 300
    takt_window: int = 10
    takt_over_limit: int = 3
    reference_jobs: int = 2000
    min_reference_jobs: int = 1000
    look_jobs: int = 60
    look_part: float = 0.8
    drift_ratio: float = 1.5
    drift_alpha: float = 0.05

    def __post_init__(self) -> None:
        checks = (
            (0.0 < self.share < 1.0, f"share must be between 0 and 1, got {self.share}"),
            (0.0 < self.alpha < 1.0, f"alpha must be between 0 and 1, got {self.alpha}"),
            (0.0 < self.rollback_part < 1.0, "rollback_part must be between 0 and 1"),
            (self.worse_ratio > 1.0, "worse_ratio must be above 1"),
            (0.0 < self.better_ratio < 1.0, "better_ratio must be between 0 and 1"),
            (self.max_candidate_jobs >= 1, "max_candidate_jobs must be at least 1"),
            (1 <= self.takt_over_limit <= self.takt_window, "need 1 <= takt_over_limit <= window"),
            (
                1 <= self.min_reference_jobs <= self.reference_jobs,
                "need 1 <= min_reference_jobs <= reference_jobs",
            ),
            (self.look_jobs >= 1, "look_jobs must be at least 1"),
            (0.0 < self.look_part < 1.0, "look_part must be between 0 and 1"),
            (self.drift_ratio > 1.0, "drift_ratio must be above 1"),
            (0.0 < self.drift_alpha < 1.0, "drift_alpha must be between 0 and 1"),
        )
        for ok, message in checks:
            if not ok:
                raise InvalidInput(message)

    @property
    def rollback_alpha(self) -> float:
        """The error level spent on rolling back (``rollback_part`` of ``alpha``)."""
        return self.alpha * self.rollback_part

    @property
    def promote_alpha(self) -> float:
        """The error level spent on promoting (the rest of ``alpha``)."""
        return self.alpha * (1.0 - self.rollback_part)

    def q(self, ratio: float) -> float:
        """Chance that a failed job is a candidate job at failure-rate ratio ``ratio``."""
        return self.share * ratio / (self.share * ratio + 1.0 - self.share)


class SequentialTest(StrEnum):
    """Which test the decision rests on."""

    REFERENCE = "reference"  # the candidate against the incumbent's record and its jobs
    CONDITIONAL = "conditional"  # which arm the rollout's failed jobs ran on


@dataclass
class Evidence:
    """What the decision rests on; ``as_json`` is what the record keeps. ``log_e_*``: the
    conditional test's log-likelihood ratios; ``reference_log_e_*`` the reference
    test's (0 while it does not run)."""

    jobs: dict[str, int] = field(default_factory=lambda: {a.value: 0 for a in Arm})
    ok: dict[str, int] = field(default_factory=lambda: {a.value: 0 for a in Arm})
    reference: Reference = field(default_factory=Reference)
    test: SequentialTest = SequentialTest.CONDITIONAL
    log_e_worse: float = 0.0
    log_e_better: float = 0.0
    reference_log_e_worse: float = 0.0
    reference_log_e_better: float = 0.0
    # The reference test's look: this many failures in the candidate's first
    # ``look_jobs`` jobs roll it back (None: no reference test, or no look possible).
    look_failures: int | None = None
    drift_shown: bool = False
    conditional_since: int = 0  # the conditional test counts the jobs after this many
    over_takt_recent: int = 0
    ratio_interval: tuple[float | None, float | None] = (None, None)

    def yields(self) -> dict[str, float | None]:
        return {a: (self.ok[a] / n if n else None) for a, n in self.jobs.items()}

    def failures(self, arm: Arm) -> int:
        return self.jobs[arm.value] - self.ok[arm.value]

    def as_json(self) -> dict[str, object]:
        reference = asdict(self.reference) | {"yield": self.reference.fpy}
        return asdict(self) | {
            "yields": self.yields(),
            "reference": reference,
            "ratio_interval": list(self.ratio_interval),
        }


@dataclass(frozen=True)
class Verdict:
    decision: Decision
    reason: str
    evidence: Evidence


def evaluate(
    outcomes: Iterable[JobOutcome],
    rule: RolloutRule | None = None,
    reference: Reference | None = None,
) -> Verdict:
    """Replay a rollout's jobs in the order they ended and return the first decision
    (the jobs after it are not looked at), or ``continue`` with the evidence so far.
    ``reference``: the incumbent's record before the rollout; without one, or with fewer
    than ``rule.min_reference_jobs`` jobs, the conditional test alone decides."""
    rule = rule or RolloutRule()
    ev = Evidence(reference=reference or Reference())
    conditional = _Conditional(rule)
    ref = None
    if ev.reference.jobs >= rule.min_reference_jobs:
        ref = ReferenceTest(
            ev.reference,
            worse_ratio=rule.worse_ratio,
            better_ratio=rule.better_ratio,
            rollback_alpha=rule.rollback_alpha,
            look_jobs=rule.look_jobs,
            look_part=rule.look_part,
            drift_ratio=rule.drift_ratio,
            drift_alpha=rule.drift_alpha,
        )
        ev.look_failures = ref.look_failures if ref.look_size > 0.0 else None
        ev.test = SequentialTest.REFERENCE
    recent: deque[bool] = deque(maxlen=rule.takt_window)
    verdict: tuple[Decision, str] | None = None
    for job in outcomes:
        _account(ev, job, conditional, ref)
        if job.arm is Arm.CANDIDATE and job.takt_s is not None:
            recent.append(job.cycle_s > job.takt_s)
            ev.over_takt_recent = sum(recent)
        verdict = _decision(ev, rule)
        if verdict is not None:
            break
    ev.ratio_interval = ratio_interval(
        ev.failures(Arm.CANDIDATE), ev.failures(Arm.INCUMBENT), rule.share, rule.alpha
    )
    decision, reason = verdict or (Decision.CONTINUE, "no decision yet")
    return Verdict(decision, reason, ev)


def _account(
    ev: Evidence, job: JobOutcome, conditional: _Conditional, ref: ReferenceTest | None
) -> None:
    """Count one job in the evidence and in the tests."""
    ev.jobs[job.arm.value] += 1
    ev.ok[job.arm.value] += int(job.ok)
    conditional.add(ev, job)
    if ref is None:
        return
    ref.add(job.arm is Arm.CANDIDATE, job.ok)
    ev.reference_log_e_worse, ev.reference_log_e_better = ref.log_e_worse, ref.log_e_better
    if ref.drift_shown and not ev.drift_shown:
        # The reference retires and the conditional test decides from here on, counting
        # only the jobs after this one: the moment the guard picked (the incumbent's
        # jobs looking unusual) must not pick the conditional test's evidence too.
        ev.drift_shown = True
        ev.test = SequentialTest.CONDITIONAL
        ev.log_e_worse = ev.log_e_better = 0.0
        ev.conditional_since = sum(ev.jobs.values())


class _Conditional:
    """The conditional test's log-likelihood ratio steps for a failed job of each arm."""

    def __init__(self, rule: RolloutRule) -> None:
        q0, qw, qb = rule.share, rule.q(rule.worse_ratio), rule.q(rule.better_ratio)
        self.worse = {
            Arm.CANDIDATE: math.log(qw / q0),
            Arm.INCUMBENT: math.log((1 - qw) / (1 - q0)),
        }
        self.better = {
            Arm.CANDIDATE: math.log(qb / q0),
            Arm.INCUMBENT: math.log((1 - qb) / (1 - q0)),
        }

    def add(self, ev: Evidence, job: JobOutcome) -> None:
        if not job.ok:
            ev.log_e_worse += self.worse[job.arm]
            ev.log_e_better += self.better[job.arm]


def _decision(ev: Evidence, rule: RolloutRule) -> tuple[Decision, str] | None:
    n = ev.jobs[Arm.CANDIDATE.value]
    if ev.over_takt_recent >= rule.takt_over_limit:
        return Decision.ROLL_BACK, (
            f"{ev.over_takt_recent} of the candidate's last {rule.takt_window} jobs ran over takt"
        )
    if ev.test is SequentialTest.REFERENCE:
        worse, better = ev.reference_log_e_worse, ev.reference_log_e_better
        beside = "the incumbent's record and its jobs beside it"
    else:
        worse, better = ev.log_e_worse, ev.log_e_better
        beside = "the incumbent's jobs beside it"
    if worse >= math.log(1.0 / rule.rollback_alpha):
        return Decision.ROLL_BACK, (
            f"candidate's first-pass yield worse than {beside} (after {n} candidate jobs)"
        )
    if better >= math.log(1.0 / rule.promote_alpha):
        return Decision.PROMOTE, (
            f"candidate's first-pass yield better than {beside} (after {n} candidate jobs)"
        )
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
