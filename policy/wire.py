"""The policy wire format: length-prefixed msgpack frames carrying numeric arrays only.

Frame: a 4-byte big-endian unsigned length, then that many bytes of msgpack. Frames
longer than ``MAX_FRAME_BYTES`` are refused before they are read.

Arrays travel as msgpack extension type ``NDARRAY_EXT`` (42) whose payload is itself
msgpack: ``[dtype, shape, data]`` with ``dtype`` a little-endian numpy type string from
``ALLOWED_DTYPES`` (bool, signed/unsigned integers, floats), ``shape`` a list of ints
and ``data`` the C-order bytes. Object, string, void and structured dtypes are refused on
both sides, any other extension type is refused, and a pickle stream is recognised and
answered with a clear error: nothing executable ever crosses this wire.

Connection: when the server has a token, the first frame on a connection must be a
``hello`` carrying it, at most ``MAX_HELLO_BYTES`` long; the server reads nothing larger
before that, and closes a connection whose first frame is anything else. Later frames
need no token (a token in them is ignored). A server without a token (loopback only)
takes any request first.

Messages (maps with string keys):

* request ``{"op": "hello" | "infer" | "reset", "token": str | None, ...}``;
  ``infer`` adds ``"obs": {"images": {camera: uint8 (H, W, 3)}, "state": float32
  (STATE_DIM,), "instruction": str, "step": int}`` and ``"prefix": float32 (k,
  ACTION_DIM) | None``;
* reply ``{"ok": true, "version": str, ...}`` with, for ``infer``, ``"actions"``
  (float32 (H, ACTION_DIM)) and ``"timing": {"model_ms", "total_ms"}``; for ``hello``
  ``"horizon"``, ``"max_prefix"``, ``"replan_age"`` and ``"join_ticks"`` (int or None),
  ``"action_dim"``, ``"cameras"``, ``"image_size"``, ``"state_dim"``;
* error ``{"ok": false, "error": {"code": str, "message": str}}``.

This module imports only numpy, msgpack, pydantic and the standard library.
"""

from __future__ import annotations

import struct
from typing import Any, Literal

import msgpack
import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from robot.schema import ACTION_DIM, CAMERAS, IMAGE_SIZE, STATE_DIM, Observation

NDARRAY_EXT = 42
MAX_FRAME_BYTES = 16 * 1024 * 1024
MAX_HELLO_BYTES = 4096  # a hello with its token, before the connection is authenticated
HEADER = struct.Struct(">I")
ALLOWED_DTYPES = frozenset(
    {"|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"}
)
_PICKLE_PROTO = b"\x80"


class WireError(ValueError):
    """A frame or message that breaks the wire format; ``code`` names the kind."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _dtype_str(dtype: np.dtype) -> str:
    return dtype.newbyteorder("<").str if dtype.byteorder == ">" else dtype.str


def _default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray | np.generic):
        arr = np.asarray(obj)
        if arr.dtype.kind not in "biuf":
            raise WireError(
                "bad_dtype",
                f"array dtype {arr.dtype} cannot cross the wire; only numeric arrays are sent",
            )
        arr = np.ascontiguousarray(arr.astype(arr.dtype.newbyteorder("<"), copy=False))
        payload = msgpack.packb([_dtype_str(arr.dtype), list(arr.shape), arr.tobytes()])
        return msgpack.ExtType(NDARRAY_EXT, payload)
    raise WireError("bad_type", f"a {type(obj).__name__} cannot cross the policy wire")


def numeric_dtype(name: object) -> np.dtype:
    """The numpy dtype named ``name`` if it is numeric (``ALLOWED_DTYPES``, either byte
    order), else ``WireError('bad_dtype')``: the one rule for arrays from any sender."""
    if not isinstance(name, str) or name.replace(">", "<") not in ALLOWED_DTYPES:
        raise WireError(
            "bad_dtype", f"array dtype {name!r} refused; numeric dtypes only (no objects)"
        )
    return np.dtype(name)


def array_from_bytes(dtype: object, shape: object, raw: object) -> np.ndarray:
    """A C-order array of numeric ``dtype`` and ``shape`` from ``raw`` bytes, as a fresh
    little-endian copy; ``WireError`` when any part does not fit the others."""
    dt = numeric_dtype(dtype)
    if not isinstance(shape, list | tuple) or not all(isinstance(s, int) and s >= 0 for s in shape):
        raise WireError("bad_array", "array shape must be a list of non-negative ints")
    if not isinstance(raw, bytes) or int(np.prod(shape, dtype=np.int64)) * dt.itemsize != len(raw):
        raise WireError("bad_array", "array data length does not match its dtype and shape")
    try:
        arr = np.frombuffer(raw, dtype=dt).reshape(shape)
    except ValueError as exc:  # a product that overflowed into a matching length
        raise WireError("bad_array", f"array shape {shape} does not fit its data") from exc
    return arr.astype(dt.newbyteorder("<"), copy=True)


def _ext_hook(code: int, data: bytes) -> np.ndarray:
    if code != NDARRAY_EXT:
        raise WireError("bad_ext", f"msgpack extension type {code} is not accepted")
    try:
        dtype, shape, raw = msgpack.unpackb(data, raw=False)
    except Exception as exc:  # malformed extension payload from a foreign sender
        raise WireError("bad_array", f"array payload is malformed: {exc}") from exc
    return array_from_bytes(dtype, shape, raw)


def refuse_pickle(data: bytes) -> None:
    """``WireError('pickle_refused')`` when ``data`` starts like a pickle stream (the PROTO
    opcode, protocols 2-5): named for what it is rather than as bad msgpack."""
    if data[:1] == _PICKLE_PROTO and len(data) > 1 and 2 <= data[1] <= 5:
        raise WireError(
            "pickle_refused",
            "this looks like a Python pickle; the policy wire never unpickles. "
            "Send msgpack with numeric arrays (see policy.wire).",
        )


def pack(message: dict[str, Any]) -> bytes:
    """Serialise one message to msgpack bytes (no frame header)."""
    return msgpack.packb(message, default=_default, use_bin_type=True)


def unpack(data: bytes) -> dict[str, Any]:
    """Parse msgpack bytes into a message; raises ``WireError`` on anything else."""
    refuse_pickle(data)
    try:
        msg = msgpack.unpackb(
            data, ext_hook=_ext_hook, raw=False, strict_map_key=True, max_bin_len=MAX_FRAME_BYTES
        )
    except WireError:
        raise
    except Exception as exc:
        raise WireError("bad_msgpack", f"payload is not valid msgpack: {exc}") from exc
    if not isinstance(msg, dict):
        raise WireError("bad_message", "a message must be a msgpack map")
    return msg


def frame(message: dict[str, Any]) -> bytes:
    """A message as one frame: length header plus msgpack body."""
    body = pack(message)
    if len(body) > MAX_FRAME_BYTES:
        raise WireError("too_large", f"message of {len(body)} bytes exceeds {MAX_FRAME_BYTES}")
    return HEADER.pack(len(body)) + body


def frame_length(header: bytes) -> int:
    """Body length announced by a 4-byte header; refuses oversize frames."""
    (n,) = HEADER.unpack(header)
    if n > MAX_FRAME_BYTES:
        raise WireError("too_large", f"frame of {n} bytes exceeds {MAX_FRAME_BYTES}")
    return n


def error_reply(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


class WireObservation(BaseModel):
    """An observation as received from the wire, checked against ``robot.schema``."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    images: dict[str, np.ndarray]
    state: np.ndarray
    instruction: str = Field(min_length=1, max_length=500)
    step: int = Field(default=0, ge=0)

    @field_validator("images")
    @classmethod
    def _images(cls, v: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        if set(v) != set(CAMERAS):
            raise ValueError(f"cameras must be exactly {list(CAMERAS)}, got {sorted(v)}")
        for name, img in v.items():
            if img.dtype != np.uint8 or img.shape != (IMAGE_SIZE, IMAGE_SIZE, 3):
                raise ValueError(
                    f"image {name!r} must be uint8 ({IMAGE_SIZE}, {IMAGE_SIZE}, 3), "
                    f"got {img.dtype} {img.shape}"
                )
        return v

    @field_validator("state")
    @classmethod
    def _state(cls, v: np.ndarray) -> np.ndarray:
        if v.shape != (STATE_DIM,) or v.dtype.kind != "f" or not np.all(np.isfinite(v)):
            raise ValueError(f"state must be finite floats of shape ({STATE_DIM},)")
        return v.astype(np.float32)

    def to_observation(self) -> Observation:
        return Observation(
            images=dict(self.images),
            state=self.state,
            instruction=self.instruction,
            step=self.step,
        )


class WireRequest(BaseModel):
    """One request; ``obs`` is required for ``infer``."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    op: Literal["hello", "infer", "reset"]
    token: str | None = Field(default=None, max_length=500)
    obs: WireObservation | None = None
    prefix: np.ndarray | None = None

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: np.ndarray | None) -> np.ndarray | None:
        if v is None:
            return None
        if v.ndim != 2 or v.shape[1] != ACTION_DIM or v.dtype.kind != "f":
            raise ValueError(f"prefix must be floats of shape (k, {ACTION_DIM})")
        if not np.all(np.isfinite(v)):
            raise ValueError("prefix must be finite")
        return v.astype(np.float32)


def parse_request(msg: dict[str, Any]) -> WireRequest:
    """Validate a decoded message as a request; ``WireError('bad_request')`` says what is off."""
    try:
        req = WireRequest.model_validate(msg)
    except ValidationError as exc:
        parts = [
            f"{'.'.join(str(x) for x in e['loc']) or 'message'}: {e['msg']}" for e in exc.errors()
        ]
        raise WireError("bad_request", "; ".join(parts)) from None
    if req.op == "infer" and req.obs is None:
        raise WireError("bad_request", "obs: required for op 'infer'")
    return req


def observation_message(obs: Observation) -> dict[str, Any]:
    """The wire form of an observation (arrays stay arrays; the codec packs them)."""
    return {
        "images": {k: np.asarray(v) for k, v in obs.images.items()},
        "state": np.asarray(obs.state, dtype=np.float32),
        "instruction": obs.instruction,
        "step": int(obs.step),
    }
