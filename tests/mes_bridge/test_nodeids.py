"""Node id text from tag maps: parsing, resolving by namespace URI, clear errors."""

from __future__ import annotations

import uuid

import pytest
from asyncua import ua
from pydantic import ValidationError

from mes_bridge.errors import TagMapError
from mes_bridge.nodeids import parse_node_ref
from mes_bridge.session import PlcSession
from mes_bridge.tag_nodes import resolve_nodes
from mes_bridge.tags import Tag, TagMap

NAMESPACES = [
    "http://opcfoundation.org/UA/",
    "urn:plc:server",
    "http://www.siemens.com/simatic-s7-opcua",
]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('ns=2;s="DB_Cell01"."JobSeq"', ua.NodeId('"DB_Cell01"."JobSeq"', 2)),
        (
            'nsu=http://www.siemens.com/simatic-s7-opcua;s="DB_Cell01"."JobSeq"',
            ua.NodeId('"DB_Cell01"."JobSeq"', 2),
        ),
        ("s=Line1.ST10.JobSeq", ua.NodeId("Line1.ST10.JobSeq", 1)),
        ("s=a;b=c", ua.NodeId("a;b=c", 1)),  # a string id is taken verbatim
        ("i=6012", ua.NodeId(6012, 1, ua.NodeIdType.Numeric)),
        (
            "nsu=urn:plc:server;g=09087e75-8e5e-499b-954f-f2a9603db28a",
            ua.NodeId(uuid.UUID("09087e75-8e5e-499b-954f-f2a9603db28a"), 1, ua.NodeIdType.Guid),
        ),
        ("ns=1;b=AQID", ua.NodeId(b"\x01\x02\x03", 1, ua.NodeIdType.ByteString)),
    ],
)
def test_node_ids_of_every_form_resolve_by_namespace(text: str, expected: ua.NodeId) -> None:
    assert parse_node_ref(text, "urn:plc:server").resolve(NAMESPACES) == expected


def test_a_namespace_index_moved_by_a_program_download_follows_the_uri() -> None:
    ref = parse_node_ref("nsu=urn:plc:server;s=X", None)
    assert ref.resolve(NAMESPACES).NamespaceIndex == 1
    assert ref.resolve([NAMESPACES[0], "urn:other", "urn:plc:server"]).NamespaceIndex == 2


@pytest.mark.parametrize(
    ("text", "default", "message"),
    [
        ("s=X", None, "no ns=/nsu= and the tag map has no namespace_uri"),
        ("ns=two;s=X", None, "numeric index"),
        ("nsu=;s=X", None, "expected 'nsu=<uri>;<id>'"),
        ("q=X", "urn:a", "identifier must be"),
        ("i=-1", "urn:a", "bad Numeric identifier"),
        ("g=not-a-guid", "urn:a", "bad Guid identifier"),
        ("b=***", "urn:a", "bad ByteString identifier"),
    ],
)
def test_bad_node_id_text_is_refused_with_the_reason(text, default, message) -> None:
    with pytest.raises(TagMapError, match=message):
        parse_node_ref(text, default)


def test_an_unknown_namespace_or_index_is_a_clear_error() -> None:
    with pytest.raises(TagMapError, match="namespace 'urn:gone' is not on the server"):
        parse_node_ref("nsu=urn:gone;s=X", None).resolve(NAMESPACES)
    with pytest.raises(TagMapError, match="index 7 does not exist"):
        parse_node_ref("ns=7;s=X", None).resolve(NAMESPACES)


def test_session_options_are_checked_before_any_connection() -> None:
    tags = {"ST10": TagMap(namespace_uri="urn:a", prefix="L.ST10")}
    with pytest.raises(ValueError, match=r"opc\.tcp://"):
        PlcSession("http://127.0.0.1:4840", tags)
    with pytest.raises(ValueError, match="plc_heartbeat_timeout_s must be positive"):
        PlcSession("opc.tcp://127.0.0.1:4840", tags, plc_heartbeat_timeout_s=0)


def test_a_tag_map_is_checked_when_it_is_read() -> None:
    with pytest.raises(
        ValidationError,
        match=(r"tag JobSeq: node id 'ns=x;s=A': expected 'ns=<index>;<id>' with a numeric index"),
    ):
        TagMap(prefix="L", nodes={Tag.JOB_SEQ: "ns=x;s=A"})
    with pytest.raises(ValidationError, match="no ns=/nsu= and the tag map has no namespace_uri"):
        TagMap(prefix="L.ST10")
    with pytest.raises(ValidationError, match=r"tags share a node: JobSeq, JobAckSeq -> 's=L.J'"):
        TagMap(
            namespace_uri="urn:a",
            prefix="L",
            nodes={Tag.JOB_SEQ: "s=L.J", Tag.JOB_ACK_SEQ: "s=L.J"},
        )
    with pytest.raises(ValidationError, match=r"no '\{tag\}' in it"):
        TagMap(namespace_uri="urn:a", pattern='"DB_Cell01"')
    siemens = TagMap(
        namespace_uri="http://www.siemens.com/simatic-s7-opcua",
        pattern='"DB_Cell01"."{tag}"',
        nodes={Tag.HEARTBEAT_PLC: 's="DB_C"."Life"'},
    )
    refs = siemens.refs("ST10")
    assert refs[Tag.JOB_SEQ].identifier == '"DB_Cell01"."JobSeq"'
    assert refs[Tag.HEARTBEAT_PLC].identifier == '"DB_C"."Life"'
    assert refs[Tag.JOB_SEQ].namespace == "http://www.siemens.com/simatic-s7-opcua"


def test_two_stations_on_one_node_are_refused_whatever_the_spelling() -> None:
    st10 = TagMap(namespace_uri="urn:plc:server", prefix="DB10")
    st20 = TagMap(
        namespace_uri="urn:plc:server",
        prefix="DB20",
        nodes={Tag.RESULT_SEQ: "ns=1;s=DB10.ResultSeq"},
    )  # copied from ST10's map
    with pytest.raises(
        TagMapError,
        match=(
            r"station ST20, tag ResultSeq, node 'ns=1;s=DB10.ResultSeq': the same node as "
            r"station ST10, tag ResultSeq, node 's=DB10.ResultSeq'"
        ),
    ):
        resolve_nodes({"ST10": st10.refs("ST10"), "ST20": st20.refs("ST20")}, NAMESPACES)
