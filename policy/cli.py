"""``intern policy ...``: train, evaluate and serve the VLA policy.

Mounted by the main CLI in ``cell``, which must never import torch: this module imports
only typer, pydantic and torch-free policy modules; torch loads inside the commands.
"""

from __future__ import annotations

import contextlib
import json
import os
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from policy.recipe import TrainConfig
from robot.jobs import Task

if TYPE_CHECKING:
    from policy.server import ServerConfig
    from robot.chunk_policy import ChunkPolicy

policy_app = typer.Typer(help="The VLA policy: train, evaluate, serve.", no_args_is_help=True)

TaskOpt = Annotated[Task, typer.Option("--task", help="nut_install, screwing or material_handling")]
DemosOpt = Annotated[
    Path | None,
    typer.Option(help="episodes recorded by 'intern sim demos'; omit to generate them"),
]
InitOpt = Annotated[Path | None, typer.Option(help="checkpoint folder to continue training from")]


def _fail(message: str) -> NoReturn:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def _default(name: str) -> Any:
    """The recipe's default for ``TrainConfig`` field ``name``: one source for both."""
    return TrainConfig.model_fields[name].default


def _explain(exc: ValidationError) -> str:
    parts = []
    for e in exc.errors():
        where = ".".join(str(x) for x in e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    return "; ".join(parts)


@policy_app.command()
def train(
    task: TaskOpt,
    demos: DemosOpt = None,
    out: Annotated[Path | None, typer.Option(help="checkpoint folder to write")] = None,
    episodes: Annotated[int, typer.Option(help="expert episodes to generate")] = _default(
        "expert_episodes"
    ),
    steps: Annotated[int, typer.Option(help="behaviour-cloning steps")] = _default("steps"),
    relabel_rounds: Annotated[int, typer.Option(help="DAgger-style relabelling rounds")] = _default(
        "dagger_rounds"
    ),
    relabel_episodes: Annotated[int, typer.Option(help="policy episodes per round")] = _default(
        "dagger_episodes"
    ),
    relabel_steps: Annotated[int, typer.Option(help="training steps after each round")] = _default(
        "dagger_steps"
    ),
    relabel_weight: Annotated[
        float, typer.Option(help="how much more often relabelled states are drawn")
    ] = _default("relabel_weight"),
    replan_age: Annotated[
        int | None,
        typer.Option(
            help="ticks the checkpoint's chunks run (default: --init's, else the executor's)"
        ),
    ] = None,
    join_ticks: Annotated[
        int | None,
        typer.Option(help="ticks the checkpoint's chunk boundaries are spread over (as above)"),
    ] = None,
    minutes: Annotated[float, typer.Option(help="wall-time budget")] = _default("time_budget_min"),
    difficulty: float = _default("difficulty"),
    seed: int = _default("seed"),
    init: InitOpt = None,
    lr: Annotated[float, typer.Option(help="peak learning rate")] = _default("lr"),
    threads: Annotated[
        int, typer.Option(help="torch threads (2 only on an idle machine)")
    ] = _default("threads"),
    teacher_error: Annotated[
        bool, typer.Option(help="label with the expert's perception error, not the truth")
    ] = _default("teacher_error"),
) -> None:
    """Train on simulator demonstrations and write a safetensors checkpoint."""
    if demos is not None and not any(demos.glob("*.json")):
        _fail(f"{demos} holds no recorded episodes; record some with 'intern sim demos'")
    try:
        cfg = TrainConfig(
            task=task,
            out=out or Path("checkpoints") / task.value,
            demos=demos,
            expert_episodes=episodes,
            steps=steps,
            dagger_rounds=relabel_rounds,
            dagger_episodes=relabel_episodes,
            dagger_steps=relabel_steps,
            relabel_weight=relabel_weight,
            replan_age=replan_age,
            join_ticks=join_ticks,
            time_budget_min=minutes,
            difficulty=difficulty,
            seed=seed,
            init=init,
            lr=lr,
            threads=threads,
            teacher_error=teacher_error,
        )
    except ValidationError as exc:
        _fail(_explain(exc))
    _run_training(cfg)


def _run_training(cfg: TrainConfig) -> None:
    """Train (imports torch), then print the run's summary as JSON."""
    from policy.base import CheckpointError
    from policy.train import train as run_training

    try:
        summary = run_training(cfg, log=typer.echo)
    except CheckpointError as exc:
        _fail(str(exc))
    typer.echo(json.dumps(summary, indent=2))


@policy_app.command("eval")
def evaluate_cmd(
    task: TaskOpt,
    episodes: Annotated[int, typer.Option(min=1, help="seeds to run")] = 200,
    checkpoint: Annotated[
        Path | None, typer.Option(help="checkpoint folder (default: the shipped one)")
    ] = None,
    latency: Annotated[str, typer.Option(help="simulated inference delay")] = "fixed:80",
    mode: Annotated[str, typer.Option(help="prefix, naive, blend, rtc or sync")] = "prefix",
    replan_age: Annotated[
        int | None, typer.Option(help="ticks each chunk runs (default: the checkpoint's)")
    ] = None,
    join_ticks: Annotated[
        int | None,
        typer.Option(help="prefix: ticks a boundary is spread over (default: the checkpoint's)"),
    ] = None,
    continuous_from: Annotated[
        int | None,
        typer.Option(
            help="delay in ticks from which chunks are requested as they arrive (0: never; "
            "default: the executor's)"
        ),
    ] = None,
    difficulty: float = 1.0,
    expert: Annotated[bool, typer.Option(help="run the expert on the same seeds")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    threads: Annotated[int, typer.Option(min=1, max=64, help="torch threads")] = 1,
) -> None:
    """Success rate (95% interval), failure modes and cycle time beside the expert."""
    from policy.exec_config import ExecConfig
    from policy.latency import LatencySpec

    try:
        LatencySpec.parse(latency)
        given = {
            "mode": mode,
            "replan_age": replan_age,
            "join_ticks": join_ticks,
            "continuous_from_ticks": continuous_from,
        }
        cfg = ExecConfig.model_validate({k: v for k, v in given.items() if v is not None})
    except (ValueError, ValidationError) as exc:
        _fail(str(exc) if not isinstance(exc, ValidationError) else _explain(exc))
    import torch

    from policy.base import CheckpointError
    from policy.evaluate import evaluate, format_report
    from policy.local import LocalPolicy
    from policy.runtime import load_policy

    torch.set_num_threads(threads)
    try:
        pol = LocalPolicy.load(checkpoint) if checkpoint else load_policy(task)
    except CheckpointError as exc:
        _fail(str(exc))

    def progress(n: int, p: object, e: object) -> None:
        if n % 25 == 0 and not as_json:
            typer.echo(f"  {n}/{episodes} episodes", err=True)

    report = evaluate(
        pol,
        task,
        episodes,
        difficulty=difficulty,
        latency=latency,
        config=cfg,
        with_expert=expert,
        progress=progress,
    )
    typer.echo(json.dumps(report, indent=2) if as_json else format_report(report))


class ServeProtocol(StrEnum):
    TCP = "tcp"
    OPENPI = "openpi"


def _read_token(token_file: Path | None) -> str | None:
    """The server's token: from ``token_file`` when given, else ``INTERN_POLICY_TOKEN``;
    never from the command line, where every user of the machine could read it."""
    if token_file is None:
        return os.environ.get("INTERN_POLICY_TOKEN") or None
    try:
        text = token_file.read_text(encoding="utf-8").strip()
        mode = token_file.stat().st_mode
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"--token-file {token_file}: {exc}")
    if not text:
        _fail(f"--token-file {token_file} is empty")
    if mode & 0o077:
        typer.echo(
            f"warning: other users of this machine can open {token_file}; chmod 600 it", err=True
        )
    return text


@policy_app.command()
def serve(
    task: Annotated[Task | None, typer.Option(help="serve the shipped policy of this task")] = None,
    checkpoint: Annotated[Path | None, typer.Option(help="or this checkpoint folder")] = None,
    host: Annotated[str, typer.Option(help="address to bind (loopback by default)")] = "127.0.0.1",
    port: int = 8765,
    protocol: Annotated[
        ServeProtocol,
        typer.Option(help="tcp (policy.wire, tcp:// sources) or openpi (websocket, ws://)"),
    ] = ServeProtocol.TCP,
    token_file: Annotated[
        Path | None,
        typer.Option(help="file holding the token clients must send; else INTERN_POLICY_TOKEN"),
    ] = None,
    max_connections: Annotated[
        int, typer.Option(min=1, max=1024, help="connections served at once")
    ] = 16,
    threads: Annotated[int, typer.Option(min=1, max=64, help="torch threads")] = 2,
) -> None:
    """Answer observations with action chunks (see policy.wire, policy.openpi_schema)."""
    from policy.server import ServerConfig

    try:
        cfg = ServerConfig(
            host=host, port=port, token=_read_token(token_file), max_connections=max_connections
        )
    except ValidationError as exc:
        _fail(_explain(exc))
    if (task is None) == (checkpoint is None):
        _fail("give exactly one of --task or --checkpoint")
    _serve(_load_served(task, checkpoint, threads), cfg, protocol)


def _load_served(task: Task | None, checkpoint: Path | None, threads: int) -> ChunkPolicy:
    """The policy to serve (imports torch)."""
    import torch

    from policy.base import CheckpointError
    from policy.local import LocalPolicy
    from policy.runtime import load_policy

    torch.set_num_threads(threads)
    try:
        if checkpoint is not None:
            return LocalPolicy.load(checkpoint)
        assert task is not None  # exactly one of --task and --checkpoint (checked above)
        return load_policy(task)
    except CheckpointError as exc:
        _fail(str(exc))


def _serve(pol: ChunkPolicy, cfg: ServerConfig, protocol: ServeProtocol) -> None:
    """Bind, say where (the real port when 0 was asked), serve until interrupted."""
    import asyncio

    from policy.openpi_server import OpenpiServer
    from policy.server import PolicyServer

    server = OpenpiServer(pol, cfg) if protocol is ServeProtocol.OPENPI else PolicyServer(pol, cfg)
    scheme = "ws" if protocol is ServeProtocol.OPENPI else "tcp"

    async def run() -> None:
        try:
            await server.start()
        except OSError as exc:
            _fail(f"cannot listen on {cfg.host}:{cfg.port}: {exc}")
        auth = "token required" if cfg.token else "no token (loopback only)"
        typer.echo(
            f"serving policy {pol.version} on {scheme}://{cfg.host}:{server.port} "
            f"({protocol.value}; {auth}; at most {cfg.max_connections} connections)"
        )
        await server.serve_forever()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run())


if __name__ == "__main__":  # python -m policy.cli ... (the same commands as intern policy)
    policy_app()
