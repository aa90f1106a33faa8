import re
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


def test_the_part_id_policy_takes_plant_codes_and_names_what_it_refuses(tmp_path: Path) -> None:
    policy = load_line_config(sample_config_path()).part_id
    assert (policy.max_length, policy.separators) == (256, ("GS",))
    assert policy.refusal("\x1d01095011010209171719050810ABCD1234\x1d2110") is None
    assert policy.refusal("Gussteil Ä-4711 鋳造") is None
    assert policy.refusal("X" * 256) is None
    assert policy.refusal("X" * 257) == "257 characters, more than the line's 256"
    assert policy.refusal("DC1\t42") == (
        "character U+0009 at position 4 is not printable (separators the line allows: GS)"
    )
    assert "U+001E" in (policy.refusal("A\x1eB") or "")


@pytest.mark.parametrize(
    ("block", "message"),
    [
        ({"max_length": 300}, "part_id.max_length: Input should be less than or equal to 256"),
        ({"max_length": 0}, "part_id.max_length: Input should be greater than or equal to 1"),
        (
            {"separators": ["TAB"]},
            "part_id.separators[0]: Input should be 'GS', 'RS', 'FS', 'US' or 'EOT'",
        ),
        ({"max_len": 20}, "part_id.max_len: Extra inputs are not permitted"),
    ],
)
def test_a_bad_part_id_policy_names_the_field(tmp_path: Path, block: dict, message: str) -> None:
    data = _sample()
    data["part_id"] = block
    with pytest.raises(LineConfigError, match=re.escape(message)):
        load_line_config(_write(tmp_path, data))


def test_a_line_may_allow_other_separators_or_none(tmp_path: Path) -> None:
    data = _sample()
    data["part_id"] = {"max_length": 40, "separators": ["RS", "GS", "EOT"]}
    policy = load_line_config(_write(tmp_path, data)).part_id
    assert policy.refusal("[)>\x1e06\x1dP1234\x1e\x04") is None  # ISO/IEC 15434
    assert policy.refusal("X" * 41) == "41 characters, more than the line's 40"
    data["part_id"] = {"separators": []}
    strict = load_line_config(_write(tmp_path, data)).part_id
    assert "separators the line allows: none" in (strict.refusal("\x1d01") or "")
