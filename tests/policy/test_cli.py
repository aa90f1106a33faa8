import subprocess
import sys

import pytest
import typer
from typer.testing import CliRunner

from policy.cli import policy_app


def test_cli_client_and_runtime_modules_do_not_import_torch():
    code = (
        "import sys\n"
        "import policy.cli, policy.client, policy.runtime, policy.server, policy.recording\n"
        "import policy.openpi_client, policy.openpi_server, policy.sources\n"
        "import policy.checkpoint, policy.executor, policy.simtime\n"
        "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == ""


@pytest.mark.parametrize("protocol", ["tcp", "openpi"])
def test_serve_refuses_a_public_address_without_a_token(monkeypatch, protocol):
    monkeypatch.delenv("INTERN_POLICY_TOKEN", raising=False)
    args = ["serve", "--host", "0.0.0.0", "--task", "nut_install", "--protocol", protocol]
    r = CliRunner().invoke(policy_app, args)
    assert r.exit_code == 2
    assert "token" in r.output and "127.0.0.1" in r.output and "--token-file" in r.output


def test_serve_takes_no_token_on_its_command_line():
    args = ["serve", "--task", "nut_install", "--token", "a-long-enough-secret-token"]
    r = CliRunner().invoke(policy_app, args)
    assert r.exit_code == 2 and "--token" in r.output


def test_serve_reads_its_token_from_a_file_or_the_environment(tmp_path, monkeypatch):
    public = ["serve", "--host", "0.0.0.0", "--task", "nut_install"]
    missing = tmp_path / "nowhere"
    r = CliRunner().invoke(policy_app, [*public, "--token-file", str(missing)])
    assert r.exit_code == 2 and str(missing) in r.output
    empty = tmp_path / "empty"
    empty.write_text("\n")
    r = CliRunner().invoke(policy_app, [*public, "--token-file", str(empty)])
    assert r.exit_code == 2 and "empty" in r.output
    short = tmp_path / "short"
    short.write_text("tiny\n")
    short.chmod(0o644)
    r = CliRunner().invoke(policy_app, [*public, "--token-file", str(short)])
    assert r.exit_code == 2 and "at least 16" in r.output
    assert "chmod 600" in r.output  # others could read it: said, not refused
    monkeypatch.setenv("INTERN_POLICY_TOKEN", "tiny")
    r = CliRunner().invoke(policy_app, public)
    assert r.exit_code == 2 and "at least 16" in r.output


def test_bad_options_get_actionable_errors(tmp_path):
    r = CliRunner().invoke(policy_app, ["eval", "--task", "nut_install", "--latency", "soon"])
    assert r.exit_code == 2 and "fixed:MS" in r.output
    r = CliRunner().invoke(policy_app, ["eval", "--task", "nut_install", "--mode", "fast"])
    assert r.exit_code == 2 and "mode" in r.output
    for cmd in ("eval", "train"):
        r = CliRunner().invoke(policy_app, [cmd, "--task", "nut_install", "--replan-age", "40"])
        assert r.exit_code == 2 and "replan_age: Input should be less than or equal to 29" in (
            r.output
        )
    r = CliRunner().invoke(policy_app, ["eval", "--task", "nut_install", "--join-ticks", "-1"])
    assert r.exit_code == 2 and "join_ticks: Input should be greater than or equal to 0" in (
        r.output
    )
    r = CliRunner().invoke(policy_app, ["eval", "--task", "nut_install", "--continuous-from", "-2"])
    assert r.exit_code == 2 and "continuous_from_ticks: Input should be greater than or" in (
        r.output
    )
    r = CliRunner().invoke(policy_app, ["train", "--task", "nut_install", "--demos", str(tmp_path)])
    assert r.exit_code == 2 and "intern sim demos" in r.output
    r = CliRunner().invoke(policy_app, ["train", "--task", "welding"])
    assert r.exit_code != 0 and "welding" in r.output
    r = CliRunner().invoke(
        policy_app, ["eval", "--task", "screwing", "--checkpoint", str(tmp_path)]
    )
    assert r.exit_code == 2 and "config.json" in r.output


def test_train_options_default_to_the_recipe():
    from policy.recipe import TrainConfig

    cmd = typer.main.get_command(policy_app).commands["train"]  # type: ignore[attr-defined]
    shown = {p.name: p.default for p in cmd.params}
    fields = {
        "episodes": "expert_episodes",
        "steps": "steps",
        "relabel_rounds": "dagger_rounds",
        "relabel_episodes": "dagger_episodes",
        "relabel_steps": "dagger_steps",
        "minutes": "time_budget_min",
        "difficulty": "difficulty",
        "seed": "seed",
        "lr": "lr",
        "threads": "threads",
        "teacher_error": "teacher_error",
    }
    for opt, field in fields.items():
        assert shown[opt] == TrainConfig.model_fields[field].default, opt
