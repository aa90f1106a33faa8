"""openpi's msgpack encoding: what the real openpi-client packs decodes here, what is
packed here decodes there, and nothing but numeric arrays gets through."""

import pickle

import msgpack
import numpy as np
import pytest
from openpi_client import msgpack_numpy

from policy.openpi_codec import packb, unpackb
from policy.wire import WireError


def _array_map(dtype: str, shape: list[int], data: bytes) -> dict[bytes, object]:
    return {b"__ndarray__": True, b"data": data, b"dtype": dtype, b"shape": shape}


def test_the_openpi_client_encoding_round_trips_both_ways() -> None:
    msg = {
        "observation/state": np.linspace(-1, 1, 16, dtype=np.float32),
        "observation/head_image": np.arange(64 * 64 * 3, dtype=np.uint8).reshape(64, 64, 3),
        "flags": np.array([True, False]),
        "wide": np.arange(3, dtype=">i8"),
        "scalar": np.float32(2.5),  # np.float64 is a float: plain msgpack
        "prompt": "install 3 nuts per side",
        "nested": {"ms": 1.5},
    }
    ours = unpackb(msgpack_numpy.packb(msg))
    theirs = msgpack_numpy.unpackb(packb(msg))
    for back in (ours, theirs):
        assert back["prompt"] == msg["prompt"] and back["nested"] == {"ms": 1.5}
        assert back["scalar"] == 2.5 and isinstance(back["scalar"], np.float32)
        for key in ("observation/state", "observation/head_image", "flags", "wide"):
            np.testing.assert_array_equal(back[key], msg[key])
            assert back[key].shape == msg[key].shape
    assert ours["observation/state"].flags.writeable  # a copy, not a view of the message


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (_array_map("|O", [1], b"\x00" * 8), "bad_dtype"),  # the reference decoder takes it
        (_array_map("<U1", [2], b"\x00" * 8), "bad_dtype"),
        (_array_map("|V8", [1], b"\x00" * 8), "bad_dtype"),
        (_array_map("<f4", [3], b"\x00" * 8), "bad_array"),
        (_array_map("<f4", [-2], b""), "bad_array"),
        (_array_map("<f4", "x", b"\x00" * 4), "bad_array"),
        ({b"__npgeneric__": True, b"data": "1", b"dtype": "<f8"}, "bad_array"),
        ({b"__npgeneric__": True, b"data": 1, b"dtype": "|O"}, "bad_dtype"),
        (msgpack.ExtType(42, b"\x00"), "bad_ext"),
    ],
)
def test_anything_but_numeric_arrays_is_refused(value: object, code: str) -> None:
    data = msgpack.packb({"x": value}, use_bin_type=True)
    with pytest.raises(WireError) as err:
        unpackb(data)
    assert err.value.code == code


def test_object_arrays_are_not_sent() -> None:
    with pytest.raises(WireError, match="numeric"):
        packb({"x": np.array([object()], dtype=object)})
    with pytest.raises(WireError, match="numeric"):
        packb({"x": np.array(["text"])})


def test_pickle_and_garbage_get_named_refusals() -> None:
    with pytest.raises(WireError) as err:
        unpackb(pickle.dumps({"actions": np.zeros(3)}))
    assert err.value.code == "pickle_refused" and "never unpickles" in str(err.value)
    with pytest.raises(WireError) as err:
        unpackb(b"\xc1\xc1")
    assert err.value.code == "bad_msgpack"
    with pytest.raises(WireError) as err:
        unpackb(msgpack.packb([1, 2]))
    assert err.value.code == "bad_message"
