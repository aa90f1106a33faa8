from pathlib import Path

import pytest
import yaml

from cell.config import LineConfigError, load_line_config, sample_config_path
from robot.jobs import Task


def _write(tmp_path: Path, data: object) -> Path:
    p = tmp_path / "line.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


def _sample() -> dict:
    return yaml.safe_load(sample_config_path().read_text())


def test_sample_line_has_the_three_tasks_and_two_robots() -> None:
    line = load_line_config(sample_config_path())
    assert {t for s in line.stations for t in s.tasks} == set(Task)
    assert len(line.robots) >= 2
    st10 = line.station("ST10")
    sides = {f.side.value for f in st10.recipe(1).fasteners}
    assert sides == {"left", "right"}


def test_bad_field_names_file_station_field_and_reason(tmp_path: Path) -> None:
    data = _sample()
    data["stations"][1]["recipes"][0]["fasteners"][0]["torque_min_nm"] = -3
    path = _write(tmp_path, data)
    with pytest.raises(LineConfigError) as err:
        load_line_config(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "stations[ST20].recipes[0].fasteners[0].torque_min_nm" in msg
    assert "greater than 0" in msg


def test_robot_without_skill_for_its_home_station_is_refused(tmp_path: Path) -> None:
    data = _sample()
    data["robots"][2]["home_station"] = "ST10"
    with pytest.raises(LineConfigError, match="no skill for nut_install"):
        load_line_config(_write(tmp_path, data))


def test_tag_map_without_prefix_must_list_every_tag(tmp_path: Path) -> None:
    data = _sample()
    data["stations"][0]["tags"] = {"namespace_uri": "urn:x", "nodes": {"JobSeq": "s=A.JobSeq"}}
    with pytest.raises(LineConfigError, match="PartId"):
        load_line_config(_write(tmp_path, data))


def test_malformed_node_id_is_named(tmp_path: Path) -> None:
    data = _sample()
    data["stations"][0]["tags"]["nodes"] = {"JobSeq": "DB_Cell.JobSeq"}
    with pytest.raises(LineConfigError, match=r"JobSeq: node id 'DB_Cell\.JobSeq'"):
        load_line_config(_write(tmp_path, data))


def test_not_yaml_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "x.yaml"
    p.write_text("line: [unclosed")
    with pytest.raises(LineConfigError, match="not valid YAML"):
        load_line_config(p)
    with pytest.raises(LineConfigError, match="cannot read"):
        load_line_config(tmp_path / "missing.yaml")


def test_security_is_per_endpoint_and_checked(tmp_path: Path) -> None:
    data = _sample()
    data["stations"][0]["security"] = {"policy": "Basic256Sha256", "mode": "SignAndEncrypt"}
    with pytest.raises(LineConfigError, match="needs 'certificate'"):
        load_line_config(_write(tmp_path, data))
    secure = {
        "policy": "Basic256Sha256",
        "mode": "SignAndEncrypt",
        "certificate": "/etc/intern/cert.der",
        "private_key": "/etc/intern/key.pem",
        "trusted_server_certificates": "/etc/intern/trusted",
    }
    data["stations"][0]["security"] = secure
    with pytest.raises(LineConfigError, match="must give the same 'security'"):
        load_line_config(_write(tmp_path, data))
    for st in data["stations"]:
        st["security"] = secure
    line = load_line_config(_write(tmp_path, data))
    assert line.station("ST20").security.mode == "SignAndEncrypt"
