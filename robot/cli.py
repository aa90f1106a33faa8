"""``intern sim``: run the cell simulator from the shell.

* ``episode``: one expert episode, its outcome and a per-fastener table;
* ``demos``: record expert demonstrations (see ``robot/EPISODES.md``);
* ``expert-rate``: the expert's success rate over many seeds with a 95 % Wilson interval
  and the count of each failure mode.
"""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from robot.jobs import Task

if TYPE_CHECKING:
    from robot.env import CellEnv

# The simulator imports numpy and the physics; each command imports it when it runs, so
# that ``intern --help`` stays fast.

sim_app = typer.Typer(
    help="The humanoid cell simulator: episodes, demonstrations, expert success rates.",
    no_args_is_help=True,
)

TaskOpt = Annotated[Task, typer.Option("--task", help="nut_install, screwing or material_handling")]
DifficultyOpt = Annotated[
    float, typer.Option("--difficulty", min=0.0, max=5.0, help="1 is the line's normal")
]


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (95 % for z = 1.96)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def _env(task: Task, seed: int, difficulty: float, render: bool) -> CellEnv:
    from robot.env import CellEnv

    try:
        return CellEnv(task, seed=seed, difficulty=difficulty, render=render)
    except ValidationError as exc:
        msg = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise typer.BadParameter(msg) from None


@sim_app.command()
def episode(
    task: TaskOpt = Task.NUT_INSTALL,
    seed: Annotated[int, typer.Option(min=0, help="episode seed")] = 1,
    difficulty: DifficultyOpt = 1.0,
) -> None:
    """Run one episode with the scripted expert and print its outcome."""
    from robot.env import rollout
    from robot.skills import describe

    console = Console()
    out = rollout(_env(task, seed, difficulty, render=False))
    style = "green" if out.success else "red"
    line = describe(out.report())
    console.print(
        f"[bold]{task.value}[/] seed {seed} difficulty {difficulty:g}: [{style}]{line}[/]"
    )
    console.print(
        f"control ticks {out.steps}, takt {out.takt_s:g} s, "
        f"{'within' if out.within_takt else 'OVER'} takt"
    )
    if out.fasteners:
        table = Table("side", "pos", "torque Nm", "window", "angle deg", "window", "status")
        for f in out.fasteners:
            status = "[green]OK[/]" if f.ok else f"[red]NOK {f.error_code}[/]"
            table.add_row(
                f.side.value,
                str(f.position),
                f"{f.torque_nm:.2f}",
                f"{f.torque_min_nm:g}-{f.torque_max_nm:g}",
                f"{f.angle_deg:.0f}",
                f"{f.angle_min_deg:g}-{f.angle_max_deg:g}",
                status,
            )
        console.print(table)


@sim_app.command()
def demos(
    out: Annotated[Path, typer.Option("--out", help="folder for the episodes")],
    task: TaskOpt = Task.NUT_INSTALL,
    episodes: Annotated[int, typer.Option(min=1, help="how many")] = 10,
    seed_start: Annotated[int, typer.Option(min=0, help="first seed")] = 0,
    difficulty: DifficultyOpt = 1.0,
) -> None:
    """Record expert demonstrations as npz + JSON manifest, one pair per episode."""
    from robot.episode_files import write_demos

    _env(task, seed_start, difficulty, render=False)  # validate before writing anything
    paths = write_demos(task, episodes, out, seed_start=seed_start, difficulty=difficulty)
    Console().print(f"wrote {len(paths)} episodes of {task.value} to {out}")


@sim_app.command("expert-rate")
def expert_rate(
    task: TaskOpt = Task.NUT_INSTALL,
    seeds: Annotated[int, typer.Option(min=1, help="number of seeds")] = 200,
    seed_start: Annotated[int, typer.Option(min=0, help="first seed")] = 0,
    difficulty: DifficultyOpt = 1.0,
) -> None:
    """The expert's success rate with a 95 % Wilson interval and its failure modes."""
    from robot.env import rollout

    console = Console()
    failures: Counter[str] = Counter()
    ok = 0
    cycle = 0.0
    for seed in range(seed_start, seed_start + seeds):
        res = rollout(_env(task, seed, difficulty, render=False))
        ok += res.success
        cycle += res.cycle_time_s
        if res.failure:
            failures[res.failure] += 1
    lo, hi = wilson(ok, seeds)
    console.print(
        f"{task.value} difficulty {difficulty:g}: expert success {ok}/{seeds} = "
        f"{ok / seeds:.1%} (95% CI {lo:.1%}-{hi:.1%}), mean cycle {cycle / seeds:.1f} s"
    )
    table = Table("failure", "count", "share")
    for name, count in failures.most_common():
        table.add_row(name, str(count), f"{count / seeds:.1%}")
    if failures:
        console.print(table)
