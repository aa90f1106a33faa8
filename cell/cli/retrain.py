"""``intern policy train-from-record``: continue a station's policy on its recorded jobs.

Mounted under ``intern policy`` by ``cell.cli.build_app`` (as the rollouts are): the
selection reads the record, which ``policy`` may not import, so this module chooses the
episodes and hands plain paths to ``policy.retrain.retrain``.

Selection (``choose``): the station's unpruned episodes on record (jobs ended from
``--since``), newest first; every NOK one up to ``--max-episodes``, then OK ones,
``--ok-share`` of them per NOK one, within the same cap, so that the correction does not
make the policy forget what already works. The base is ``--base VERSION``, else the
version the station's newest selected job ran, found in the checkpoint store (the shipped
checkpoints, then ``INTERN_CHECKPOINT_DIR`` or ``<data_dir>/checkpoints``); the new
checkpoint goes into the plant's store under its own version.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from cell.cli.common import ConfigOpt, check_names, database, fail, moment, settings, the_line

if TYPE_CHECKING:
    from cell.record.episodes import EpisodeRow

EXPERT = "expert"  # the version a job run by the robot's own program records
# The recipe's own learning rate, and correction rounds. Continuing the shipped nut
# installation checkpoint gently (300 steps at 3e-6 on its own kind of data, or on the
# base policy's failed runs labelled by the expert) cost it yield on every part: what
# it loses is how it recovers from its own mistakes, learnt in its last relabelling
# rounds. Trained properly on the corrections, then rounds of the new policy on the
# failed parts, it learns the new part and keeps the old (``bench/loop.py``).
LR = 1e-3
STEPS = 1000
ROUNDS = 3  # correction rounds (see policy.retrain); each re-runs every failed part
ROUND_STEPS = 400


def choose(
    rows: Sequence[EpisodeRow], max_episodes: int, ok_share: float
) -> tuple[list[EpisodeRow], list[EpisodeRow]]:
    """(NOK, OK) episodes to train on from ``rows``, each newest first (see the module)."""
    newest = sorted(rows, key=lambda r: (r.ended_at, r.id), reverse=True)
    nok = [r for r in newest if not r.ok][:max_episodes]
    room = max_episodes - len(nok)
    ok = [r for r in newest if r.ok][: min(room, round(ok_share * len(nok)))]
    return nok, ok


def _base_version(base: str | None, nok: Sequence[EpisodeRow], ok: Sequence[EpisodeRow]) -> str:
    if base is not None:
        return base
    newest = max([*nok, *ok], key=lambda r: (r.ended_at, r.id))
    if newest.policy_version in (None, EXPERT):
        raise fail(
            f"the newest job of {newest.station_id} ({newest.job_key}) ran the robot's own "
            "program, not a policy version: name the checkpoint to continue with --base VERSION"
        )
    return str(newest.policy_version)


def _select(
    config: Path | None, station: str, since: str | None, max_episodes: int, ok_share: float
) -> tuple[list[EpisodeRow], list[EpisodeRow]]:
    from cell.record.episodes import EpisodeFilter, find_episodes

    line = the_line(config)
    f = EpisodeFilter(station=station, since=moment("--since", since, line))
    with database() as (s, _):
        check_names(s, line, station=station)
        rows = find_episodes(s, f)
    nok, ok = choose(rows, max_episodes, ok_share)
    if not nok:
        raise fail(
            f"no NOK episodes of {station} on record ({len(rows)} OK): nothing to correct; "
            "see intern episodes list --nok"
        )
    tasks = {r.task for r in [*nok, *ok]}
    if len(tasks) != 1:
        raise fail(f"{station}'s episodes are of several tasks ({sorted(map(str, tasks))})")
    return nok, ok


def train_from_record(
    station: Annotated[str, typer.Option(help="The station whose episodes to learn from.")],
    author: Annotated[
        str, typer.Option(help="Who starts the canary (shown in the next command).")
    ] = "<you>",
    since: Annotated[
        str | None,
        typer.Option(help="Jobs ended from, ISO 8601 (the line's time zone without an offset)."),
    ] = None,
    max_episodes: Annotated[int, typer.Option(min=1, help="Most episodes used.")] = 200,
    ok_share: Annotated[float, typer.Option(min=0.0, max=10.0, help="OK per NOK episode.")] = 1.0,
    base: Annotated[
        str | None, typer.Option(help="Version to continue (default: the station's newest).")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="Training steps before the rounds.")] = STEPS,
    rounds: Annotated[
        int,
        typer.Option(
            min=0, max=20, help="Correction rounds: the new policy drives the failed parts again."
        ),
    ] = ROUNDS,
    round_steps: Annotated[
        int, typer.Option(min=0, help="Training steps after each correction round.")
    ] = ROUND_STEPS,
    batch: Annotated[int, typer.Option(min=2, max=1024, help="Samples per step.")] = 32,
    lr: Annotated[float, typer.Option(min=1e-8, max=1e-2, help="Peak learning rate.")] = LR,
    minutes: Annotated[float, typer.Option(min=0.1, help="Wall-time budget.")] = 20.0,
    seed: Annotated[int, typer.Option(min=0, max=1000)] = 0,
    threads: Annotated[int, typer.Option(min=1, max=2, help="torch threads.")] = 1,
    config: ConfigOpt = None,
) -> None:
    """Continue the station's checkpoint on its recorded failures (expert-labelled) and
    successes; write it into the checkpoint store and say how to canary it."""
    from policy.base import CheckpointError
    from policy.recipe import TrainConfig
    from policy.retrain import retrain
    from policy.runtime import checkpoint_root
    from policy.store import CheckpointStore
    from robot.job_episodes import EpisodeStore
    from robot.jobs import Task

    nok, ok = _select(config, station, since, max_episodes, ok_share)
    version = _base_version(base, nok, ok)
    plant = settings().checkpoint_store()
    found = CheckpointStore([checkpoint_root(), plant]).find(version)
    if found is None:
        raise fail(f"policy version {version} is not in the checkpoint store ({plant})")
    episodes = EpisodeStore(settings().episode_store())
    try:
        cfg = TrainConfig(
            task=Task(str(nok[0].task)),
            out=plant,
            steps=steps,
            batch=batch,
            lr=lr,
            time_budget_min=minutes,
            seed=seed,
            threads=threads,
            dagger_rounds=rounds,
            dagger_steps=round_steps,
        )
        failures = [episodes.manifest_path(r.path) for r in nok]
        successes = [episodes.manifest_path(r.path) for r in ok]
        summary = retrain(failures, successes, found, plant, cfg, log=typer.echo)
    except (ValueError, CheckpointError) as exc:
        raise fail(str(exc)) from None
    summary["nok_jobs"] = [r.job_key for r in nok]
    summary["ok_jobs"] = [r.job_key for r in ok]
    typer.echo(json.dumps(summary, indent=2))
    Console().print(
        f"new version {summary['version']} (from {version}); canary it with:\n"
        f"  intern policy rollout start --station {station} "
        f"--candidate {summary['version']} --author {author}",
        highlight=False,
        soft_wrap=True,
    )
