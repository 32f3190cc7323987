"""Window eviction follows the slowest input partition, so a partition read late loses nothing."""

from __future__ import annotations

import numpy as np

from stream.contracts import ModelSpec
from stream.windows import WindowStore

SPEC = ModelSpec.model_validate({
    "model_id": "m", "task": "regression",
    "monitor": {"window_seconds": 60, "allowed_lateness_seconds": 0, "max_label_delay_seconds": 60}})


def _add(store: WindowStore, ts: list[int], source: int) -> None:
    n = len(ts)
    store.add_predictions("m", ["1"] * n, [{}] * n, np.asarray(ts, dtype=np.int64), np.ones(n), np.full(n, np.nan),
                          np.full(n, np.nan), source=source)


def test_a_partition_read_ahead_does_not_evict_windows_a_slower_one_still_fills() -> None:
    store = WindowStore(lambda _: SPEC)
    _add(store, [0, 1000], source=0)
    _add(store, [5_000], source=1)
    _add(store, [3_600_000], source=0)  # partition 0 jumps an hour ahead
    store.close_due()
    assert store.evict() == []  # partition 1 is still at 5 s: window 0 stays
    _add(store, [10_000, 20_000], source=1)  # the slower partition's predictions for window 0
    assert store.too_late == 0
    assert store.windows[("m", "1", "", 0)].metrics()["predictions"][0] == 5
    _add(store, [3_600_000], source=1)
    store.close_due()
    store.take_dirty()  # written to ClickHouse: only then may a window go
    assert ("m", "1", "", 0) in store.evict()  # both partitions past it: evicted now
    _add(store, [30_000], source=1)
    assert store.too_late == 1  # and a later item for it is counted, not re-created
