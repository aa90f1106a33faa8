"""The sample Prometheus alert rules (``monitoring/``) are valid, fire as intended, and
name only metrics that ``/metrics`` really exports."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import generate_latest
from sqlalchemy import create_engine
from sqlalchemy.orm import sessionmaker

from cell.insight.metrics import record_registry

MONITORING = Path(__file__).resolve().parents[3] / "monitoring"
RULES = MONITORING / "intern-alerts.yml"
SUFFIXES = ("_bucket", "_count", "_sum", "_total")


def _exported(url: str, redis_url: str) -> set[str]:
    engine = create_engine(url)
    try:
        body = generate_latest(record_registry(sessionmaker(engine), redis_url)).decode()
    finally:
        engine.dispose()
    return {line.split()[2] for line in body.splitlines() if line.startswith("# TYPE")}


def test_rules_name_only_exported_metrics(history_url: str, redis_url: str) -> None:
    doc = yaml.safe_load(RULES.read_text())
    rules = [r for g in doc["groups"] for r in g["rules"]]
    assert {r["alert"] for r in rules} >= {
        "InternStationHeld",
        "InternPlcDown",
        "InternWorkerDown",
        "InternOutboxGrowing",
        "InternFirstPassYieldLow",
    }
    exported = _exported(history_url, redis_url)
    for rule in rules:
        assert rule["labels"]["severity"] in ("page", "warning")
        assert rule["annotations"]["summary"]
        for name in re.findall(r"\bintern_[a-z_]+", rule["expr"]):
            family = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
            assert family in exported or name in exported, f"{rule['alert']}: {name}"


@pytest.mark.skipif(
    not shutil.which("promtool"), reason="promtool not installed (Debian: prometheus)"
)
def test_promtool_checks_and_unit_tests_the_rules() -> None:
    for argv in (["check", "rules", RULES.name], ["test", "rules", "intern-alerts.test.yml"]):
        done = subprocess.run(
            ["promtool", *argv], cwd=MONITORING, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stdout + done.stderr
