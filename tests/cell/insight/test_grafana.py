"""The Grafana provisioning parses and every panel's SQL runs on the documented views."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from sqlalchemy import text
from sqlalchemy.orm import Session

GRAFANA = Path(__file__).resolve().parents[3] / "grafana"


def _panels() -> list[tuple[str, str]]:
    out = []
    for path in sorted((GRAFANA / "dashboards").glob("*.json")):
        dash = json.loads(path.read_text())
        for p in dash["panels"]:
            for t in p["targets"]:
                out.append((f"{path.name}: {p['title']}", t["rawSql"]))
    return out


def test_provisioning_files_point_at_the_record() -> None:
    ds = yaml.safe_load((GRAFANA / "provisioning/datasources/intern.yaml").read_text())
    (source,) = ds["datasources"]
    assert source["uid"] == "intern-record" and "database" in source["jsonData"]
    prov = yaml.safe_load((GRAFANA / "provisioning/dashboards/intern.yaml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    uids = {json.loads(p.read_text())["uid"] for p in (GRAFANA / "dashboards").glob("*.json")}
    assert uids == {"intern-yield", "intern-spc"}


def test_every_panel_query_runs_and_returns_rows(hist: Session) -> None:
    panels = _panels()
    assert len(panels) >= 7
    for title, sql in panels:
        # Grafana's macros and variables, as Grafana would expand them.
        sql = re.sub(
            r"\$__timeFilter\((\w+)\)",
            r"\1 BETWEEN '2026-03-01T00:00:00Z' AND '2026-03-10T00:00:00Z'",
            sql,
        )
        sql = sql.replace("($station)", "('L1-ST10', 'L1-ST20')")
        sql = sql.replace("'$position'", "'left 1'")
        assert "$" not in sql, title
        rows = hist.execute(text(sql)).all()
        assert rows, f"{title}: no rows"
