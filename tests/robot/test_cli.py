"""``intern sim`` commands through typer's runner."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from robot.cli import sim_app, wilson
from robot.episode_files import load_episode

runner = CliRunner()


def test_episode_prints_outcome_and_fastener_table() -> None:
    res = runner.invoke(sim_app, ["episode", "--task", "nut_install", "--seed", "1"])
    assert res.exit_code == 0, res.output
    assert "OK; cycle" in res.output and "within takt" in res.output
    assert res.output.count("540-900") == 6 and "right" in res.output


def test_episode_shows_a_nok_with_its_failure() -> None:
    res = runner.invoke(
        sim_app, ["episode", "--task", "nut_install", "--seed", "0", "--difficulty", "4"]
    )
    assert res.exit_code == 0, res.output
    assert "NOK" in res.output


def test_demos_writes_loadable_episodes(tmp_path: Path) -> None:
    out = tmp_path / "demos"
    res = runner.invoke(
        sim_app,
        ["demos", "--task", "screwing", "--episodes", "2", "--out", str(out), "--seed-start", "5"],
    )
    assert res.exit_code == 0, res.output
    assert "wrote 2 episodes" in res.output
    ep = load_episode(out / "screwing_s000005.json")
    assert ep.length > 0 and set(ep.images) == {"head", "wrist_left", "wrist_right"}


def test_expert_rate_prints_a_wilson_interval_and_failure_modes() -> None:
    res = runner.invoke(
        sim_app, ["expert-rate", "--task", "nut_install", "--seeds", "20", "--difficulty", "3"]
    )
    assert res.exit_code == 0, res.output
    assert "95% CI" in res.output and "cross_thread" in res.output


def test_bad_options_are_refused_with_a_message() -> None:
    res = runner.invoke(sim_app, ["episode", "--task", "welding"])
    assert res.exit_code == 2 and "welding" in res.output
    res = runner.invoke(sim_app, ["expert-rate", "--difficulty", "9"])
    assert res.exit_code == 2 and "difficulty" in res.output


def test_wilson_interval() -> None:
    lo, hi = wilson(190, 200)
    assert 0.90 < lo < 0.95 < hi < 0.98
    assert wilson(0, 0) == (0.0, 1.0)
    assert wilson(10, 10)[1] == 1.0
