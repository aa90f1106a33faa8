"""Continue a checkpoint on the episodes a station's jobs left in the episode store.

``retrain(failures, successes, base, store, cfg)`` takes plain paths (the episodes'
``episode.json`` manifests, chosen by the caller from the record; see
``cell.cli.retrain``), the base checkpoint folder and the plant's checkpoint store, and:

1. takes a correction for every failure: the expert's run of the same part. On the
   simulator it makes the episode's part again (task, seed, difficulty and the job's
   recipe) and the scripted expert works it, standing in for a technician's
   teleoperated correction; on a real line a recorded correction episode (one that
   carries ``expert_action`` and all cameras) is used as stored;
2. keeps every success as a demonstration, so that the fix forgets nothing: the
   expert's run of the same part, or the stored episode when it carries the expert's
   labels. Not the actions a policy applied, nor the base policy's run of a failed part
   labelled by the expert: continuing on those took housing B (``bench/loop.py``) from
   42.5 % to 8 % first-pass yield and housing A from 92 % to 0 %;
3. continues the base checkpoint's training for ``cfg.steps`` (its architecture and
   normalisation kept), failures drawn ``cfg.relabel_weight`` times as often, then
   ``cfg.dagger_rounds`` correction rounds on the failed parts (``_correction_rounds``):
   the policy being trained drives each of them, the expert labels what it visits, and
   training goes on; then writes the new checkpoint into ``store/<version>/`` beside
   the others.

Imports torch (through ``policy.train``); the CLI imports this module inside its command.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from policy.checkpoint import load_checkpoint, save_checkpoint
from policy.data import ChunkDataset, Episode, check_episode, collect_expert_episode
from policy.local import LocalPolicy
from policy.recipe import TrainConfig
from policy.train import _Budget, _Fitter, expert_share, make_env, relabel_round
from robot.episode_files import load_episode
from robot.jobs import FastenerSpec
from robot.schema import CAMERAS

Log = Callable[[str], None]


def _manifest(path: Path) -> dict[str, Any]:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the episode's manifest: {exc}") from None
    if not isinstance(doc, dict) or "task" not in doc or "seed" not in doc:
        raise ValueError(f"{path}: not an episode manifest (no task or seed)")
    return doc


def _stored(path: Path) -> Episode | None:
    """The episode at ``path`` as training data when it can be used as stored (all
    cameras and the expert's labels: ``expert_action``), else None."""
    rec = load_episode(path)
    if set(rec.images) != set(CAMERAS) or rec.expert_action is None:
        return None
    m = rec.manifest
    ep = Episode(
        images=np.stack([rec.images[c] for c in CAMERAS], axis=1),
        state=rec.state.astype(np.float32),
        action=rec.expert_action.astype(np.float32),
        instruction=str(m["instruction"]),
        success=bool(rec.outcome.success),
        task=str(m["task"]),
        seed=int(m["seed"]),
        executed=rec.action.astype(np.float32),
    )
    check_episode(ep, path)
    return ep


def _episode_cfg(cfg: TrainConfig, doc: dict[str, Any]) -> TrainConfig:
    """``cfg`` for remaking the episode's part: its difficulty and its job's recipe (an
    episode written before manifests kept the recipe gets the task's default one)."""
    if doc["task"] != cfg.task.value:
        raise ValueError(f"an episode of {doc['task']} among {cfg.task.value} episodes")
    recipe = doc.get("recipe")
    fasteners = tuple(FastenerSpec.model_validate(f) for f in recipe) if recipe else None
    return cfg.model_copy(
        update={"difficulty": float(doc.get("difficulty", cfg.difficulty)), "fasteners": fasteners}
    )


Part = tuple[TrainConfig, int]  # an episode's part: its environment's config and seed


def _part(path: Path, cfg: TrainConfig) -> Part:
    """The part of the episode at ``path``, to make again on the simulator."""
    doc = _manifest(path)
    return _episode_cfg(cfg, doc), int(doc["seed"])


def _expert_run(part: Part) -> Episode:
    env_cfg, seed = part
    return collect_expert_episode(make_env(env_cfg, seed), task=env_cfg.task.value, seed=seed)


def _demonstration_of(path: Path, cfg: TrainConfig) -> tuple[Episode, Part | None]:
    """``demonstration(path, cfg)`` and the part the simulator made again for it (None
    when the stored episode served)."""
    ep = _stored(path)
    if ep is not None:
        return ep, None
    part = _part(path, cfg)
    return _expert_run(part), part


def demonstration(path: Path, cfg: TrainConfig) -> Episode:
    """The expert's run of the episode's part (module docstring, steps 1 and 2), or the
    stored episode when it carries the expert's labels and all cameras."""
    return _demonstration_of(path, cfg)[0]


def _corrections(failures: Sequence[Path], cfg: TrainConfig) -> tuple[list[Episode], list[Part]]:
    """Each failure's correction (as ``demonstration``), and the parts of those that the
    simulator made again: the ones the correction rounds re-run."""
    pairs = [_demonstration_of(path, cfg) for path in failures]
    return [ep for ep, _ in pairs], [part for _, part in pairs if part is not None]


def _save_into(store: Path, model: Any, info: dict[str, Any]) -> tuple[str, Path]:
    """Save under a temporary name in ``store``, then rename to ``store/<version>``."""
    store.mkdir(parents=True, exist_ok=True)
    tmp = store / f".retrain.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    version = save_checkpoint(model, tmp, train_info=info)
    final = store / version
    if final.exists():  # the same weights again: the store has them already
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, final)
    return version, final


def _correction_rounds(
    fitter: _Fitter, parts: Sequence[Part], cfg: TrainConfig, log: Log
) -> list[dict[str, float]]:
    """``cfg.dagger_rounds`` rounds on the failed ``parts``: the policy being trained
    drives each of them, the expert labels what it visits, and ``cfg.dagger_steps`` more
    steps follow. Why: training moves the policy away from the base, so it reaches states
    that are in nobody's labels, and the base learnt to recover from its own mistakes in
    rounds like these. Returns each round's share of those parts the policy passed before
    its labels were added."""
    rounds: list[dict[str, float]] = []
    for r in range(cfg.dagger_rounds if parts else 0):
        if fitter.budget.spent():
            log("time budget reached; skipping remaining correction rounds")
            break
        policy = LocalPolicy(fitter.model, "training", seed=cfg.seed + r)
        passed, _ = relabel_round(fitter, policy, parts, expert_share(r, cfg.dagger_rounds))
        rate = passed / len(parts)
        rounds.append({"round": r, "policy_passed": rate})
        log(f"correction round {r}: the policy passed {rate:.0%} of {len(parts)} failed parts")
        fitter.fit(cfg.dagger_steps)
    return rounds


def retrain(
    failures: Sequence[Path],
    successes: Sequence[Path],
    base: Path,
    store: Path,
    cfg: TrainConfig,
    log: Log = print,
) -> dict[str, Any]:
    """Continue checkpoint ``base`` on the episodes (manifest paths) and write the result
    into ``store``; returns a summary with ``version``, ``folder`` and ``continued_from``.
    ``cfg`` gives the task, steps, batch, learning rate, seed, delay and weights; its
    ``out`` is unused. Raises ``ValueError`` for unusable episodes, ``CheckpointError``
    for a base that does not load."""
    if not failures:
        raise ValueError("no failed episodes to correct")
    budget = _Budget.of(cfg)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    model, base_version, _ = load_checkpoint(base)
    fixed, remade = _corrections(failures, cfg)
    demos = [demonstration(p, cfg) for p in successes]
    t_data = budget.elapsed()
    log(
        f"{len(fixed)} failures corrected by the expert ({sum(map(len, fixed))} states), "
        f"{len(demos)} successes kept, in {t_data:.0f} s"
    )
    data = ChunkDataset(model.cfg.horizon)
    data.add(demos)
    data.add(fixed, weight=cfg.relabel_weight)
    fitter = _Fitter(model, data, cfg, rng, budget, log)
    started = time.monotonic()
    fitter.fit(cfg.steps)
    rounds = _correction_rounds(fitter, remade, cfg, log)
    train_s = time.monotonic() - started
    info = {
        "task": cfg.task.value,
        "continued_from": base_version,
        "from_record": {"failures": len(fixed), "successes": len(demos)},
        "correction_rounds": rounds,
        "steps": fitter.step,
        "batch": cfg.batch,
        "lr": cfg.lr,
        "samples": len(data),
        "final_loss": float(np.mean(fitter.losses[-200:])) if fitter.losses else None,
        "train_time_s": round(train_s, 1),
        "data_time_s": round(t_data, 1),
        "torch": torch.__version__,
    }
    version, folder = _save_into(store, model, info)
    log(f"wrote {folder} version {version} after {budget.elapsed():.0f} s ({fitter.step} steps)")
    return {"version": version, "folder": str(folder), **info}
