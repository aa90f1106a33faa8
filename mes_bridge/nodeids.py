"""Parse the node id strings of a tag map and resolve them against a server's namespaces.

A tag map names nodes as text (see ``mes_bridge.tags``). Namespace indices are only
meaningful for one server at one moment (a PLC program download may renumber them), so
the text is parsed once into a ``NodeRef`` that keeps the namespace *URI* where one was
given, and turned into an ``asyncua.ua.NodeId`` only at connect time, from the namespace
array the server reports then.
"""

from __future__ import annotations

import base64
import binascii
import uuid
from dataclasses import dataclass

from asyncua import ua

from mes_bridge.errors import TagMapError

_KINDS = {
    "s": ua.NodeIdType.String,
    "i": ua.NodeIdType.Numeric,
    "g": ua.NodeIdType.Guid,
    "b": ua.NodeIdType.ByteString,
}


@dataclass(frozen=True)
class NodeRef:
    """A node id with its namespace given either by index or by URI, not yet resolved."""

    text: str
    namespace: int | str
    kind: ua.NodeIdType
    identifier: str | int | uuid.UUID | bytes

    def resolve(self, namespaces: list[str]) -> ua.NodeId:
        """The concrete node id on a server whose namespace array is ``namespaces``.

        Raises ``TagMapError`` if the URI is not among the server's namespaces or the index
        is out of range.
        """
        if isinstance(self.namespace, str):
            try:
                index = namespaces.index(self.namespace)
            except ValueError:
                raise TagMapError(
                    f"node {self.text!r}: namespace {self.namespace!r} is not on the server; "
                    f"it has {namespaces}"
                ) from None
        else:
            index = self.namespace
            if index >= len(namespaces):
                raise TagMapError(
                    f"node {self.text!r}: namespace index {index} does not exist on the server "
                    f"(it has {len(namespaces)} namespaces: {namespaces})"
                )
        return node_id(self.identifier, index, self.kind)


def node_id(
    identifier: int | str | uuid.UUID | bytes,
    namespace_index: int = 0,
    kind: ua.NodeIdType | None = None,
) -> ua.NodeId:
    """A ``ua.NodeId`` from plain Python values (``kind`` None: guessed from the value).

    asyncua annotates NodeId's fields with its own marker classes (``ua.Int16``,
    ``ua.String``, ...) but builds and compares node ids from plain ints, strings, UUIDs
    and bytes throughout; the one place that bridges the two is here.
    """
    return ua.NodeId(identifier, namespace_index, kind)  # type: ignore[arg-type]


def parse_node_ref(text: str, default_uri: str | None) -> NodeRef:
    """Parse ``ns=<n>;<id>``, ``nsu=<uri>;<id>`` or a bare ``<id>`` (using ``default_uri``).

    ``<id>`` is ``s=<string>``, ``i=<uint32>``, ``g=<guid>`` or ``b=<base64>``. A string
    identifier is taken verbatim after ``s=`` (Siemens ids such as ``"DB_Cell"."JobSeq"``
    contain quotes and dots). Raises ``TagMapError`` naming the text and what is wrong.
    """
    namespace: int | str
    rest = text
    if text.startswith("nsu="):
        uri, sep, rest = text[4:].partition(";")
        if not sep or not uri:
            raise TagMapError(f"node {text!r}: expected 'nsu=<uri>;<id>'")
        namespace = uri
    elif text.startswith("ns="):
        index, sep, rest = text[3:].partition(";")
        if not sep or not index.isdigit():
            raise TagMapError(f"node {text!r}: expected 'ns=<index>;<id>' with a numeric index")
        namespace = int(index)
    else:
        if default_uri is None:
            raise TagMapError(f"node {text!r}: no ns=/nsu= and the tag map has no namespace_uri")
        namespace = default_uri
    kind_key, eq, value = rest.partition("=")
    if not eq or kind_key not in _KINDS or value == "":
        raise TagMapError(
            f"node {text!r}: identifier must be s=<text>, i=<number>, g=<guid> or b=<base64>"
        )
    kind = _KINDS[kind_key]
    identifier: str | int | uuid.UUID | bytes
    try:
        if kind is ua.NodeIdType.Numeric:
            identifier = int(value)
            if not 0 <= identifier <= 0xFFFFFFFF:
                raise ValueError("out of UInt32 range")
        elif kind is ua.NodeIdType.Guid:
            identifier = uuid.UUID(value)
        elif kind is ua.NodeIdType.ByteString:
            identifier = base64.b64decode(value, validate=True)
        else:
            identifier = value
    except (ValueError, binascii.Error) as exc:
        raise TagMapError(f"node {text!r}: bad {kind.name} identifier: {exc}") from None
    return NodeRef(text=text, namespace=namespace, kind=kind, identifier=identifier)
