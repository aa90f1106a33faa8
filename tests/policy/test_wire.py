import pickle

import msgpack
import numpy as np
import pytest

from policy.wire import (
    NDARRAY_EXT,
    WireError,
    frame,
    frame_length,
    pack,
    parse_request,
    unpack,
)
from robot.schema import ACTION_DIM
from tests.policy.helpers import make_obs


def test_numeric_arrays_round_trip_exactly():
    arrays = {
        "f32": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "u8": np.arange(256, dtype=np.uint8).reshape(16, 16),
        "i64": np.array([-(2**40), 5]),
        "bool": np.array([True, False]),
        "big_endian": np.arange(4, dtype=">f8"),
        "empty": np.zeros((0, ACTION_DIM), dtype=np.float32),
    }
    back = unpack(pack(arrays))
    for k, v in arrays.items():
        assert back[k].dtype == v.dtype.newbyteorder("=") or back[k].dtype == v.dtype
        np.testing.assert_array_equal(back[k], v)
        assert back[k].flags.writeable


def test_object_arrays_are_refused_when_sending():
    with pytest.raises(WireError) as err:
        pack({"x": np.array([object()], dtype=object)})
    assert err.value.code == "bad_dtype"
    with pytest.raises(WireError):
        pack({"x": np.array(["a", "b"])})


def test_object_dtype_from_a_foreign_sender_is_refused():
    payload = msgpack.packb(["|O", [1], b"\x00" * 8])
    data = msgpack.packb({"x": msgpack.ExtType(NDARRAY_EXT, payload)})
    with pytest.raises(WireError) as err:
        unpack(data)
    assert err.value.code == "bad_dtype"
    assert "object" in str(err.value) or "numeric" in str(err.value)


def test_unknown_extension_and_bad_lengths_are_refused():
    with pytest.raises(WireError) as err:
        unpack(msgpack.packb({"x": msgpack.ExtType(7, b"abc")}))
    assert err.value.code == "bad_ext"
    bad = msgpack.packb(["<f4", [4], b"\x00" * 3])
    with pytest.raises(WireError) as err:
        unpack(msgpack.packb({"x": msgpack.ExtType(NDARRAY_EXT, bad)}))
    assert err.value.code == "bad_array"


def test_pickle_is_recognised_and_never_loaded():
    class Boom:
        def __reduce__(self):
            return (exec, ("raise SystemExit('pickle executed')",))

    data = pickle.dumps({"obs": Boom()})
    with pytest.raises(WireError) as err:
        unpack(data)
    assert err.value.code == "pickle_refused"
    assert "never unpickles" in str(err.value)


def test_frames_carry_their_length_and_oversize_is_refused():
    f = frame({"op": "hello"})
    assert frame_length(f[:4]) == len(f) - 4
    with pytest.raises(WireError) as err:
        frame_length((2**31).to_bytes(4, "big"))
    assert err.value.code == "too_large"


def test_requests_are_validated_with_actionable_messages():
    from policy.wire import observation_message

    obs = observation_message(make_obs())
    req = parse_request(unpack(pack({"op": "infer", "obs": obs, "prefix": None})))
    assert req.obs is not None and req.obs.to_observation().instruction.startswith("install")

    obs_bad = dict(obs, state=np.zeros(3, dtype=np.float32))
    with pytest.raises(WireError) as err:
        parse_request(unpack(pack({"op": "infer", "obs": obs_bad})))
    assert err.value.code == "bad_request" and "obs.state" in str(err.value)

    images = dict(obs["images"])
    images.pop("head")
    with pytest.raises(WireError) as err:
        parse_request({"op": "infer", "obs": dict(obs, images=images)})
    assert "cameras must be exactly" in str(err.value)

    with pytest.raises(WireError) as err:
        parse_request({"op": "infer"})
    assert "obs" in str(err.value)
    with pytest.raises(WireError) as err:
        parse_request({"op": "shutdown"})
    assert "op" in str(err.value)
    with pytest.raises(WireError):
        parse_request({"op": "infer", "obs": obs, "prefix": np.zeros((2, 3), np.float32)})
