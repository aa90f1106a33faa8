"""The command line and the plant compose file that calls it."""

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cell.cli import app

ROOT = Path(__file__).resolve().parents[3]


def _parses(argv: list[str]) -> bool:
    """Whether the CLI accepts ``argv`` (without the program name) as a real command line.

    ``--help`` is eager, so it stops before running the command, but only after the
    command path and the option names were parsed.
    """
    result = CliRunner().invoke(app, [*argv, "--help"])
    return result.exit_code == 0 and "Usage" in result.output


def test_compose_parses_and_every_service_runs_a_real_subcommand() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    commands = {
        name: svc["command"]
        for name, svc in compose["services"].items()
        if svc.get("command") and svc["command"][0] == "intern"
    }
    assert {"migrate", "cell", "plcsim"} <= set(commands)
    assert any(c[1] == "worker" for c in commands.values())
    for name, argv in commands.items():
        assert _parses(argv[1:]), f"service {name}: {argv} is not an intern command line"
    # Required values are declared as ${VAR:?...} so a missing one stops compose.
    text = (ROOT / "docker-compose.yml").read_text()
    assert "${POSTGRES_PASSWORD:?" in text and "${INTERN_LINE_CONFIG:?" in text
    assert compose["services"]["postgres"]["healthcheck"]
    assert compose["services"]["plcsim"]["profiles"] == ["demo"]
    # Grafana's provisioning comes from the repository.
    for volume in compose["services"]["grafana"]["volumes"]:
        host = volume.split(":", 1)[0]
        assert (ROOT / host).is_dir(), f"grafana mounts {host}, which is not in the repository"


def test_unknown_subcommand_is_refused() -> None:
    assert not _parses(["conquer"])
    assert not _parses(["plcsim", "--no-such-option", "1"])


def test_bad_line_config_is_reported_with_file_field_and_reason(tmp_path: Path) -> None:
    bad = tmp_path / "line.yaml"
    bad.write_text("line: L\nstations: []\n")
    result = CliRunner().invoke(app, ["worker", "--robot", "R1", "--config", str(bad)])
    assert result.exit_code == 2
    assert str(bad) in result.output and "stations" in result.output


def test_worker_for_an_unknown_robot_names_the_known_ones() -> None:
    result = CliRunner().invoke(app, ["worker", "--robot", "R9"])
    assert result.exit_code == 2
    assert "R9" in result.output and "R1" in result.output


@pytest.mark.parametrize("args", [["worker", "--robot", "R1"], ["demo"]])
def test_an_unknown_policy_source_is_refused_with_the_accepted_ones(args: list[str]) -> None:
    result = CliRunner().invoke(app, [*args, "--policy", "tcp://nowhere"])
    assert result.exit_code == 2
    assert "tcp://nowhere" in result.output and "auto, expert" in result.output


def test_a_bad_policy_setting_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERN_POLICY", "gpu-box")
    result = CliRunner().invoke(app, ["worker", "--robot", "R1"])
    assert result.exit_code == 2 and "INTERN_POLICY" in result.output


def test_bad_database_url_names_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("INTERN_DATABASE_URL", "mysql://x@y/z")
    result = CliRunner().invoke(app, ["db", "upgrade"])
    assert result.exit_code == 2
    assert "INTERN_DATABASE_URL" in result.output and "PostgreSQL" in result.output


def test_the_cell_side_never_imports_torch() -> None:
    import subprocess
    import sys

    code = (
        "import sys, cell.cli, cell.line.orchestrator, cell.demo.runner, cell.api.app; "
        "sys.exit(1 if 'torch' in sys.modules else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], timeout=120).returncode == 0


def test_version_prints_the_installed_release() -> None:
    from importlib.metadata import version

    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.output.strip() == f"intern-cells {version('intern-cells')}"
