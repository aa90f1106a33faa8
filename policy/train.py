"""Training the VLA on the simulator: expert demonstrations, then DAgger-style relabelling.

1. Demonstrations: loaded from ``--demos DIR`` (``robot.episode_files`` format) or generated
   in-process by running the scripted expert in ``robot.env.CellEnv``; only successful
   episodes are kept.
2. Behaviour cloning with the flow-matching loss, each sample conditioned on a random
   committed prefix of 0..``max_prefix`` actions (as asynchronous execution will ask),
   loosened so that it cannot stand in for the cameras (``corrupt_prefix``).
3. Relabelling rounds: the current policy drives the simulator through the executors it
   will run under, asynchronous and synchronous in turn (with a simulated inference
   delay), the expert labels every visited state (``CellEnv.expert_action``), and the
   new episodes join the data. This teaches recovery from the policy's own mistakes.

Training seeds (``seed * 1_000_000 + i``) never overlap the evaluation seeds
(``policy.evaluate.EVAL_SEED0`` onwards). Wall time is capped by ``time_budget_min``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, TypedDict

import numpy as np
import torch

from policy.base import RUN_SETTINGS
from policy.checkpoint import load_checkpoint, save_checkpoint
from policy.chunking import ACTION_SCALE, MOTION_DIMS
from policy.data import ChunkDataset, Episode, EpisodeBuilder, collect_expert_episode, load_demos
from policy.exec_config import ExecConfig, ExecMode
from policy.flow import FlowPolicyModel
from policy.latency import LatencyInjector
from policy.local import LocalPolicy
from policy.model import ModelConfig
from policy.recipe import TrainConfig
from policy.simtime import SimPipeline, round_segment
from policy.tokenizer import Tokenizer

Log = Callable[[str], None]


def train_seed(cfg: TrainConfig, i: int) -> int:
    return cfg.seed * 1_000_000 + i


def make_env(cfg: TrainConfig, seed: int) -> Any:
    """A training episode's environment, with the teacher ``cfg`` asks for."""
    from robot.env import CellEnv

    return CellEnv(
        cfg.task,
        seed=seed,
        difficulty=cfg.difficulty,
        fasteners=cfg.fasteners,
        render=True,
        expert_error=cfg.teacher_error,
    )


def corrupt_prefix(
    actions: np.ndarray, rng: np.random.Generator, gain_low: float, noise: float
) -> np.ndarray:
    """The committed prefix a training sample shows the model: its own next actions with
    each motion dimension scaled by a random gain in [``gain_low``, 1.5] and jittered by
    ``noise`` of the speed limit.

    Why: a teacher's next actions encode the offset it is closing (a servo's step is a
    fixed share of the error), so a true prefix lets the model read the offset off the
    prefix instead of the cameras. At run time the prefix is the policy's own earlier
    plan, and a model that trusted it kept that plan's error. A prefix that only roughly
    matches the labels still joins the chunk but leaves the offset to the images.
    """
    out = actions.copy()
    n = len(out)
    for d in MOTION_DIMS:
        g = rng.uniform(gain_low, 1.5, (n, 1))
        jitter = rng.normal(0.0, noise * ACTION_SCALE[d], out.shape[:2])
        out[:, :, d] = out[:, :, d] * g + jitter
    return out


class Batch(TypedDict):
    """One training batch, as ``FlowPolicyModel.loss`` takes it."""

    prefix: torch.Tensor
    images: torch.Tensor
    text: torch.Tensor
    state: torch.Tensor
    actions: torch.Tensor
    valid: torch.Tensor
    aim: torch.Tensor
    aim_valid: torch.Tensor
    prefix_len: torch.Tensor


def _to_batch(
    b: dict[str, Any],
    tok: Tokenizer,
    rng: np.random.Generator,
    max_prefix: int,
    cfg: TrainConfig,
) -> Batch:
    n = len(b["text"])
    # A third of samples run without a prefix (first chunk of an episode, synchronous use).
    plen = np.where(rng.random(n) < 0.3, 0, rng.integers(1, max_prefix + 1, n))
    prefix = corrupt_prefix(b["actions"], rng, cfg.prefix_gain_low, cfg.prefix_noise)
    # Relabelled samples show the plan the policy really committed, errors and all.
    prefix[b["has_executed"]] = b["executed"][b["has_executed"]]
    return {
        "prefix": torch.from_numpy(prefix.astype(np.float32)),
        "images": torch.from_numpy(b["images"]),
        "text": torch.from_numpy(np.stack([tok.encode(t) for t in b["text"]])),
        "state": torch.from_numpy(b["state"]),
        "actions": torch.from_numpy(b["actions"]),
        "valid": torch.from_numpy(b["valid"]),
        "aim": torch.from_numpy(b["aim"]),
        "aim_valid": torch.from_numpy(b["aim_valid"]),
        "prefix_len": torch.from_numpy(plen.astype(np.int64)),
    }


def relabel_mode(seed: int) -> ExecMode:
    """How the policy drives relabelling episode ``seed``: every other one synchronously,
    the rest with the default asynchronous executor.

    Why both: each executor leads the policy into states the other never visits (an
    asynchronous chunk's first rows ran while it was computed; a synchronous one holds
    the arm while it thinks). Continuing the nut checkpoint with the same recipe on 20
    held-out seeds at 80 ms, relabelling under both rather than only asynchronously
    took the asynchronous run from 206.6 to 175.0 ticks (arm-ticks spent lifting clear
    of finished nuts: 86.8 to 48.4) and the synchronous one from 218.3 to 210.3 (the
    asynchronous-only run also had 500 more steps on the demonstrations).
    """
    return ExecMode.SYNC if seed % 2 else ExecConfig().mode


def relabel_episode(
    policy: LocalPolicy, cfg: TrainConfig, seed: int, rng: np.random.Generator, beta: float
) -> tuple[Episode, bool]:
    """The policy drives (under ``relabel_mode(seed)``, with a simulated delay), the expert
    labels every state.

    With probability ``beta`` per tick the expert's own action is executed instead, which
    keeps early, weak policies near the states that matter.
    """
    env = make_env(cfg, seed)
    pipe = SimPipeline(
        policy,
        ExecConfig(mode=relabel_mode(seed)),
        LatencyInjector(cfg.dagger_latency, seed=seed),
        policy.horizon,
    )
    policy.reset()
    b = EpisodeBuilder()
    obs = env.reset()
    for tick in range(env.max_steps):
        label = env.expert_action()
        pipe.new_segment(obs, round_segment)
        pipe.deliver_due(tick)
        if pipe.sched.want_request(tick):
            pipe.request(tick, obs)
        a = pipe.sched.next_action(tick)
        run = label if rng.random() < beta else a
        b.add(obs, label, env.aim(), executed=run)
        obs, done = env.step(run)
        if done:
            break
    ok = bool(env.outcome().success)
    return b.build(success=ok, task=cfg.task.value, seed=seed), ok


@dataclass(frozen=True)
class _Budget:
    """The run's wall-time budget (``time_budget_min``) from its start."""

    start: float
    deadline: float

    @classmethod
    def of(cls, cfg: TrainConfig) -> _Budget:
        now = time.monotonic()
        return cls(now, now + cfg.time_budget_min * 60)

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def fraction(self) -> float:
        return self.elapsed() / (self.deadline - self.start)

    def spent(self) -> bool:
        return time.monotonic() > self.deadline


def run_settings(cfg: TrainConfig, inherited: dict[str, str]) -> dict[str, str]:
    """What the checkpoint keeps beside its weights for run time (``ModelConfig.extra``):
    its sampling temperature and each of ``RUN_SETTINGS`` (``cfg``'s, else ``inherited``
    from the checkpoint continued from, else none)."""
    extra = {"noise_scale": f"{cfg.noise_scale:g}"}
    for name in RUN_SETTINGS:
        own = getattr(cfg, name)
        value = own if own is not None else inherited.get(name)
        if value is not None:
            extra[name] = str(value)
    return extra


def _initial_model(cfg: TrainConfig, log: Log) -> tuple[FlowPolicyModel, str | None]:
    """A new model, or the ``cfg.init`` checkpoint's with its version."""
    if cfg.init is None:
        extra = run_settings(cfg, {})
        mcfg = replace(ModelConfig(), d_model=cfg.d_model, flow_steps=cfg.flow_steps, extra=extra)
        return FlowPolicyModel(mcfg), None
    # Continue from a checkpoint: its architecture, vocabulary and normalisation are
    # kept, so the new run refines what it learned instead of starting over.
    model, init_version, _ = load_checkpoint(cfg.init)
    model.cfg = replace(model.cfg, extra=run_settings(cfg, model.cfg.extra))
    log(f"continuing from {cfg.init} (version {init_version})")
    return model, init_version


def _demonstrations(cfg: TrainConfig, budget: _Budget, log: Log) -> list[Episode]:
    """The successful demonstrations: loaded from ``cfg.demos`` or generated."""
    if cfg.demos is not None:
        demos = load_demos(cfg.demos, task=cfg.task.value)
        log(f"loaded {len(demos)} successful demonstrations from {cfg.demos}")
    else:
        demos, n_fail = [], 0
        for i in range(cfg.expert_episodes):
            seed = train_seed(cfg, i)
            ep = collect_expert_episode(make_env(cfg, seed), task=cfg.task.value, seed=seed)
            if ep.success:
                demos.append(ep)
            else:
                n_fail += 1
        log(
            f"generated {len(demos)} expert demonstrations ({n_fail} failed, dropped) "
            f"in {budget.elapsed():.0f} s"
        )
    if not demos:
        raise ValueError("no successful demonstrations to train on")
    return demos


def _normalise(model: FlowPolicyModel, data: ChunkDataset) -> None:
    # Demonstrations move sideways by well under a millimetre a tick, but relabelled
    # states far off target are labelled with full-speed corrections: with the
    # demonstrations' spread as the unit those labels sit tens of units out, swamp
    # the loss and make training diverge. A tenth of each limit is the least unit.
    model.set_normalisation(
        torch.from_numpy(data.all_states()),
        torch.from_numpy(data.all_actions()),
        floor=torch.from_numpy(0.1 * ACTION_SCALE),
    )


class _Fitter:
    """Gradient steps on the growing data set: AdamW with a warm-up, then a cosine decay
    over whichever runs out first, the planned steps or the wall-time budget."""

    def __init__(
        self,
        model: FlowPolicyModel,
        data: ChunkDataset,
        cfg: TrainConfig,
        rng: np.random.Generator,
        budget: _Budget,
        log: Log,
    ) -> None:
        self.model, self.data, self.cfg, self.rng = model, data, cfg, rng
        self.budget, self.log = budget, log
        self.tok = Tokenizer(model.cfg.vocab, model.cfg.text_len)
        self.opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=1e-4)
        self.total = cfg.steps + cfg.dagger_rounds * cfg.dagger_steps
        self.warm = min(200, self.total // 10 + 1)
        self.step = 0
        self.losses: list[float] = []

    def lr_at(self, step: int) -> float:
        lr, warm = self.cfg.lr, self.warm
        if step < warm:
            return lr * (step + 1) / warm
        # Cosine decay over whichever runs out first, the steps or the wall-time budget,
        # so that a run cut short by the budget still ends at a low learning rate.
        by_steps = (step - warm) / max(self.total - warm, 1)
        by_time = self.budget.fraction()
        return lr * 0.5 * (1 + math.cos(math.pi * min(1.0, max(by_steps, by_time))))

    def fit(self, n: int) -> None:
        """Up to ``n`` steps (fewer when the budget is spent)."""
        model, cfg = self.model, self.cfg
        model.train()
        for _ in range(n):
            if self.budget.spent():
                return
            for g in self.opt.param_groups:
                g["lr"] = self.lr_at(self.step)
            b = _to_batch(
                self.data.sample(self.rng, cfg.batch), self.tok, self.rng, model.cfg.max_prefix, cfg
            )
            loss = model.loss(**b)
            self.opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            self.opt.step()
            self.losses.append(loss.item())
            self.step += 1
            if self.step % 250 == 0:
                self.log(
                    f"step {self.step}/{self.total} loss {np.mean(self.losses[-250:]):.4f} "
                    f"samples {len(self.data)} elapsed {self.budget.elapsed():.0f} s"
                )
        model.eval()


def expert_share(r: int, rounds: int) -> float:
    """The share of ticks the expert drives in relabelling round ``r`` of ``rounds``. It
    fades over the rounds: early, weak policies would otherwise wander far from anything
    the task needs and fill the data with states that do not matter."""
    return 0.3 * (1 - r / max(rounds, 1))


def relabel_round(
    fitter: _Fitter, policy: LocalPolicy, parts: Sequence[tuple[TrainConfig, int]], beta: float
) -> tuple[int, int]:
    """``policy`` drives each part (its environment's config and seed, see
    ``relabel_episode``) and the expert labels every state; the episodes join the data.
    Returns how many parts the policy passed and how many states were labelled."""
    new, passed = [], 0
    for cfg, seed in parts:
        ep, ok = relabel_episode(policy, cfg, seed, fitter.rng, beta)
        new.append(ep)
        passed += ok
    # The policy's own states are few next to the demonstrations but are where it goes
    # wrong: draw them more often.
    fitter.data.add(new, weight=fitter.cfg.relabel_weight)
    return passed, sum(len(e) for e in new)


def _relabel_rounds(fitter: _Fitter, cfg: TrainConfig, log: Log) -> list[dict[str, float]]:
    """The relabelling rounds, each followed by training; returns each round's record."""
    rounds: list[dict[str, float]] = []
    next_seed = cfg.expert_episodes
    for r in range(cfg.dagger_rounds):
        if fitter.budget.spent():
            log("time budget reached; skipping remaining relabelling rounds")
            break
        beta = expert_share(r, cfg.dagger_rounds)
        policy = LocalPolicy(fitter.model, "training", seed=r, noise_scale=cfg.noise_scale)
        parts = [(cfg, train_seed(cfg, next_seed + i)) for i in range(cfg.dagger_episodes)]
        ok, states = relabel_round(fitter, policy, parts, beta)
        next_seed += cfg.dagger_episodes
        rate = ok / cfg.dagger_episodes
        rounds.append({"round": r, "beta": beta, "policy_success": rate})
        log(
            f"relabel round {r}: policy success {rate:.0%} (beta {beta:.2f}), "
            f"{states} labelled states"
        )
        fitter.fit(cfg.dagger_steps)
    return rounds


def train(cfg: TrainConfig, log: Log = print) -> dict[str, Any]:
    """Run the whole recipe and write the checkpoint to ``cfg.out``; returns a summary."""
    budget = _Budget.of(cfg)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model, init_version = _initial_model(cfg, log)
    data = ChunkDataset(model.cfg.horizon)
    demos = _demonstrations(cfg, budget, log)
    data.add(demos)
    t_data = budget.elapsed()
    if cfg.init is None:
        _normalise(model, data)
    fitter = _Fitter(model, data, cfg, rng, budget, log)
    fitter.fit(cfg.steps)
    relabel_log = _relabel_rounds(fitter, cfg, log)

    wall = budget.elapsed()
    losses = fitter.losses
    info = {
        "task": cfg.task.value,
        "continued_from": init_version,
        "difficulty": cfg.difficulty,
        "steps": fitter.step,
        "batch": cfg.batch,
        "expert_episodes": len(demos),
        "samples": len(data),
        "final_loss": float(np.mean(losses[-200:])) if losses else None,
        "relabel_rounds": relabel_log,
        "wall_time_s": round(wall, 1),
        "data_time_s": round(t_data, 1),
        "threads": cfg.threads,
        "torch": torch.__version__,
    }
    version = save_checkpoint(model, cfg.out, train_info=info)
    log(f"wrote {cfg.out} version {version} after {wall:.0f} s ({fitter.step} steps)")
    return {"version": version, **info}
