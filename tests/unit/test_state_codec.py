"""The checkpoint codec: typed round trips, refusal of anything else, and no code ever run from a checkpoint."""

from __future__ import annotations

import datetime as dt
import math
import os
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stream.contracts.state_codec import MAGIC, StateDecodeError, decode_state, encode_state
from stream.monitor.detectors import SignalMonitor
from stream.monitor.model_monitor import ModelMonitor
from stream.pipeline.aggregate import Aggregator


def test_typed_values_round_trip_exactly() -> None:
    state: dict[str, Any] = {
        "ints": np.arange(5, dtype=np.int64).reshape(5, 1), "floats": np.array([0.5, np.nan, -np.inf]),
        "hashes": np.array([2**64 - 1], dtype=np.uint64), "flags": np.array([True, False]),
        "blob": b"\x00\x80raw", "pair": (1, "a"), "by_tuple": {("v1", 60_000): [1, 2], ("v2", 0): []},
        "dollar": {"$nd": "a plain key"}, "when": dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC),
        "day": dt.date(2024, 5, 1), "specials": [math.inf, -math.inf], "nan": math.nan, "np_scalar": np.float64(2.5),
        "nested": [{"x": None, "y": True}],
    }
    version, back = decode_state(encode_state("test", 3, state), "test", (3,))
    assert version == 3
    for name in ("ints", "floats", "hashes", "flags"):
        np.testing.assert_array_equal(back[name], state[name])
        assert back[name].dtype == state[name].dtype and back[name].shape == state[name].shape
    assert back["blob"] == state["blob"] and back["pair"] == (1, "a")
    assert back["by_tuple"] == state["by_tuple"] and back["dollar"] == state["dollar"]
    assert back["when"] == state["when"] and back["day"] == state["day"]
    assert back["specials"] == [math.inf, -math.inf] and math.isnan(back["nan"]) and back["np_scalar"] == 2.5
    assert back["nested"] == [{"x": None, "y": True}]


@pytest.mark.parametrize(("data", "message"), [
    (pickle.dumps({"a": 1}), "old pickle checkpoint"), (b"garbage", "not a Driftwarden state"),
    (MAGIC + b"{", "broken JSON"), (encode_state("other", 1, {}), "holds"),
    (MAGIC + b'{"kind":"test","version":1,"state":{"$nd":["|O8",[1],"AAAAAAAAAAA="]}}', "dtype object"),
    (MAGIC + b'{"kind":"test","version":1,"state":{"$f":"1e9"}}', "special float"),
])
def test_anything_else_is_refused_with_the_reason(data: bytes, message: str) -> None:
    with pytest.raises(StateDecodeError, match=message):
        decode_state(data, "test")


def test_objects_without_a_plain_form_are_not_encoded() -> None:
    with pytest.raises(TypeError, match="not checkpointable"):
        encode_state("test", 1, {"x": object()})
    with pytest.raises(TypeError, match="not checkpointable"):
        encode_state("test", 1, np.array([object()]))


class _Plant:
    """A pickle payload that creates a marker file when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_a_planted_pickle_never_runs(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    payload = pickle.dumps({"monitors": _Plant(marker)})
    with pytest.raises(StateDecodeError, match="old pickle checkpoint"):
        Aggregator.restore(payload, lambda _: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(StateDecodeError):
        SignalMonitor.from_bytes(payload)
    with pytest.raises(StateDecodeError):
        ModelMonitor.from_bytes(payload, None)  # type: ignore[arg-type]
    assert not marker.exists()
    pickle.loads(payload)  # the payload is real: unpickling it would have run it
    assert marker.exists()
