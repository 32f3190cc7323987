"""The checkpoint format of stage state: versioned JSON (orjson) with explicitly typed values, never pickle.

Decoding builds only plain data (None, bool, int, float, str, list, dict) and the typed values below; it
never imports or calls anything named by the data, so a planted checkpoint can at worst be refused.

======================  ========================================================
value                   encoded as
======================  ========================================================
``numpy.ndarray``       ``{"$nd": [dtype, shape, base64]}`` (numeric, bool, str)
``bytes``               ``{"$b": base64}``
``tuple``               ``{"$t": [...]}``
``datetime``/``date``   ``{"$dt": iso}`` / ``{"$d": iso}``
dict, non-str keys      ``{"$m": [[key, value], ...]}`` (also keys starting ``$``)
inf, -inf, nan          ``{"$f": "inf"}`` (JSON has no such numbers)
numpy scalar            the Python number
======================  ========================================================

To add a field to a checkpointed class, put a plain value (or one of the above) in its state dict and read
it back with ``state.get(name, default)``, so that checkpoints written before the field still load.
"""

from __future__ import annotations

import base64
import datetime as dt
import math
from typing import Any

import numpy as np
import orjson

__all__ = ["MAGIC", "StateDecodeError", "decode_state", "encode_state"]

MAGIC = b"DWSTATE1\n"
"""First bytes of every encoded state (a pickle starts with ``\\x80``: it is refused, never loaded)."""

_ARRAY_KINDS = frozenset("biufcUS?")


class StateDecodeError(ValueError):
    """Bytes that are not a Driftwarden state of the expected kind and version."""


def encode_state(kind: str, version: int, state: Any) -> bytes:
    """``state`` (plain data and the typed values of the module docstring) as checkpoint bytes."""
    return MAGIC + orjson.dumps({"kind": kind, "version": version, "state": _encode(state)})


def decode_state(data: bytes, kind: str, versions: tuple[int, ...] = (1,)) -> tuple[int, Any]:
    """The ``(version, state)`` in ``data``; :class:`StateDecodeError` unless it is a ``kind`` state of one of
    ``versions``."""
    if not isinstance(data, bytes | bytearray | memoryview) or bytes(data[: len(MAGIC)]) != MAGIC:
        head = bytes(data[:2]) if isinstance(data, bytes | bytearray | memoryview) else b""
        what = "an old pickle checkpoint" if head[:1] == b"\x80" else "not a Driftwarden state"
        raise StateDecodeError(f"{kind} checkpoint refused: {what} (it is never unpickled)")
    try:
        doc = orjson.loads(bytes(data[len(MAGIC):]))
    except orjson.JSONDecodeError as exc:
        raise StateDecodeError(f"{kind} checkpoint refused: broken JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("kind") != kind or doc.get("version") not in versions:
        got = (doc.get("kind"), doc.get("version")) if isinstance(doc, dict) else type(doc).__name__
        raise StateDecodeError(f"{kind} checkpoint refused: holds {got}, expected {kind} version {versions}")
    try:
        return int(doc["version"]), _decode(doc.get("state"))
    except (ValueError, TypeError, KeyError, IndexError) as exc:
        raise StateDecodeError(f"{kind} checkpoint refused: bad typed value ({exc})") from None


def _encode(value: Any) -> Any:
    if isinstance(value, np.generic):  # before float: numpy.float64 is a float
        return _encode(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return {"$f": repr(value)}
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in _ARRAY_KINDS:
            raise TypeError(f"arrays of dtype {value.dtype} are not checkpointable")
        array = np.ascontiguousarray(value)
        return {"$nd": [array.dtype.str, list(array.shape), base64.b64encode(array.tobytes()).decode()]}
    if isinstance(value, bytes | bytearray | memoryview):
        return {"$b": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, tuple):
        return {"$t": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$d": value.isoformat()}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _encode(v) for k, v in value.items()}
        return {"$m": [[_encode(k), _encode(v)] for k, v in value.items()]}
    raise TypeError(f"{type(value).__name__} is not checkpointable: convert it to plain data")


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1:
        (tag, body), = value.items()
        if tag == "$nd":
            dtype_text, shape, encoded = body
            dtype = np.dtype(str(dtype_text))
            if dtype.kind not in _ARRAY_KINDS:
                raise ValueError(f"array dtype {dtype} is not allowed")
            raw = base64.b64decode(encoded, validate=True)
            return np.frombuffer(raw, dtype=dtype).reshape([int(n) for n in shape]).copy()
        if tag == "$f":
            if body not in ("inf", "-inf", "nan"):
                raise ValueError(f"not a special float: {body!r}")
            return float(body)
        if tag == "$b":
            return base64.b64decode(body, validate=True)
        if tag == "$t":
            return tuple(_decode(v) for v in body)
        if tag == "$dt":
            return dt.datetime.fromisoformat(str(body))
        if tag == "$d":
            return dt.date.fromisoformat(str(body))
        if tag == "$m":
            return {_hashable(_decode(k)): _decode(v) for k, v in body}
    return {k: _decode(v) for k, v in value.items()}


def _hashable(key: Any) -> Any:
    if isinstance(key, list):
        return tuple(_hashable(k) for k in key)
    return key
