"""openpi's msgpack encoding of numpy arrays, decoded with nothing executable.

The format is openpi-client's ``msgpack_numpy``: plain msgpack, where a numpy array is the
map ``{b"__ndarray__": True, b"data": bytes, b"dtype": str, b"shape": [int, ...]}`` and a
numpy scalar ``{b"__npgeneric__": True, b"data": number, b"dtype": str}`` (keys as msgpack
bin). Messages are maps with string keys; what they hold is ``policy.openpi_schema``'s
business.

Decoding refuses what the reference decoder would let through: any dtype that is not
numeric (``policy.wire.numeric_dtype``: no object, string, void or structured arrays),
data whose length does not match the dtype and shape, msgpack extension types, a pickle
stream, and messages that are not maps. Arrays come back as fresh, writable copies.
Errors are ``policy.wire.WireError`` with a code, as on our own wire.

This module imports only numpy, msgpack and ``policy.wire``.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from policy.wire import MAX_FRAME_BYTES, WireError, array_from_bytes, numeric_dtype, refuse_pickle

_ARRAY = b"__ndarray__"
_SCALAR = b"__npgeneric__"


def _encode(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        if obj.dtype.kind not in "biuf":
            raise WireError(
                "bad_dtype",
                f"array dtype {obj.dtype} cannot be sent; only numeric arrays are sent",
            )
        if isinstance(obj, np.generic):
            return {_SCALAR: True, b"data": obj.item(), b"dtype": obj.dtype.str}
        arr = np.ascontiguousarray(obj)
        return {
            _ARRAY: True,
            b"data": arr.tobytes(),
            b"dtype": arr.dtype.str,
            b"shape": list(arr.shape),
        }
    raise WireError("bad_type", f"a {type(obj).__name__} cannot be sent as msgpack")


def _decode_map(obj: dict[Any, Any]) -> Any:
    if _ARRAY in obj:
        return array_from_bytes(obj.get(b"dtype"), obj.get(b"shape"), obj.get(b"data"))
    if _SCALAR in obj:
        dt = numeric_dtype(obj.get(b"dtype"))
        value = obj.get(b"data")
        if not isinstance(value, int | float):  # bool is an int
            raise WireError("bad_array", "a numpy scalar's data must be a number")
        try:
            return dt.type(value)
        except (OverflowError, ValueError) as exc:
            raise WireError("bad_array", f"numpy scalar does not fit {dt}: {exc}") from None
    return obj


def _refuse_ext(code: int, data: bytes) -> Any:
    raise WireError("bad_ext", f"msgpack extension type {code} is not accepted")


def packb(message: dict[str, Any]) -> bytes:
    """``message`` as msgpack with numpy arrays in openpi's encoding."""
    return msgpack.packb(message, default=_encode, use_bin_type=True)


def unpackb(data: bytes) -> dict[str, Any]:
    """Decode one message (a map); ``WireError`` for anything else (see the module doc)."""
    refuse_pickle(data)
    try:
        msg = msgpack.unpackb(
            data,
            object_hook=_decode_map,
            ext_hook=_refuse_ext,
            raw=False,
            strict_map_key=True,
            max_bin_len=MAX_FRAME_BYTES,
        )
    except WireError:
        raise
    except Exception as exc:
        raise WireError("bad_msgpack", f"payload is not valid msgpack: {exc}") from exc
    if not isinstance(msg, dict):
        raise WireError("bad_message", "a message must be a msgpack map")
    return msg
